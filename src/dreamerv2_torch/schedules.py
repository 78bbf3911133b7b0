"""Hyperparameter schedules of the official `common.schedule` (spec §2.7), in policy steps.

A value is a number or one of `linear(a,b,n)`, `warmup(n,v)`, `exp(a,b,halflife)`,
`horizon(a,b,n)`; `parse` turns it into a function of the step counter once, at config time.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_NUMBER = r"\s*([-+0-9.eE]+)\s*"


def _clip01(x: float) -> float:
    return min(max(x, 0.0), 1.0)


def parse(value: float | str) -> Callable[[int], float]:
    """A function step -> value; raises ValueError for a string that is no known schedule."""
    try:
        constant = float(value)
        return lambda step: constant
    except (TypeError, ValueError):
        pass
    text = str(value).replace(" ", "")
    forms = {
        "linear": 3, "warmup": 2, "exp": 3, "horizon": 3,
    }
    for name, arity in forms.items():
        match = re.fullmatch(name + r"\(" + ",".join([_NUMBER] * arity) + r"\)", text)
        if not match:
            continue
        args = [float(g) for g in match.groups()]
        if name == "linear":
            a, b, n = args
            return lambda step: (1 - _clip01(step / n)) * a + _clip01(step / n) * b
        if name == "warmup":
            n, v = args
            return lambda step: _clip01(step / n) * v
        if name == "exp":
            a, b, halflife = args
            return lambda step: (a - b) * 0.5 ** (step / halflife) + b
        a, b, n = args  # horizon: interpolate the horizon, return the matching discount
        return lambda step: 1 - 1 / ((1 - _clip01(step / n)) * a + _clip01(step / n) * b)
    raise ValueError(
        f"'{value}' is neither a number nor a schedule "
        "(linear(a,b,n), warmup(n,v), exp(a,b,halflife), horizon(a,b,n))")
