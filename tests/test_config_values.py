"""Bad config values (issue 9, bugs 1 and 5): each refused in one line naming the key, before
anything is written, or accepted and run."""

import math
import subprocess
import sys
import typing

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dreamerv2_torch import presets
from dreamerv2_torch.config import flatten
from dreamerv2_torch.training import train


def test_eval_every_zero_is_refused_before_the_logdir_exists(tmp_path):
    # It used to loop forever at one step, writing eval episodes.
    with pytest.raises(presets.ConfigError, match="eval_every"):
        presets.resolve(["debug"], {"eval_every": 0})
    out = subprocess.run([sys.executable, "-m", "dreamerv2_torch", "train", "--preset", "debug",
                          "--task", "dummy_discrete", "--eval_every", "0",
                          "--logdir", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "eval_every" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


# ---- config values (bug 5) ----

def _numeric_keys():
    out = []
    for key, kind in presets.FIELD_TYPES.items():
        args = typing.get_args(kind)
        if kind in (int, float) or (args and args[0] in (int, float)):
            out.append(key)
    return out


def test_every_numeric_field_has_a_range():
    assert set(_numeric_keys()) <= set(presets.RANGES), set(_numeric_keys()) - set(presets.RANGES)


@pytest.mark.parametrize("key, value", [
    ("prefill", -1), ("replay.minlen", 0), ("replay.capacity", 0), ("rssm.stoch", 0),
    ("model_opt.lr", -1), ("time_limit", -5), ("steps", -5), ("eval_eps", -1), ("discount", 2),
    ("kl.free", float("nan")), ("render_size", "0,64"), ("model_opt.eps", 0),
])
def test_out_of_range_values_are_one_line_naming_the_key(key, value, tmp_path):
    config = presets.apply(presets.resolve(["debug"]), {key: value, "logdir": str(tmp_path / "x")})
    with pytest.raises(presets.ConfigError) as error:
        train(config)
    assert key in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "x").exists()


_VALUES = st.one_of(st.integers(-3, 3), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.5, 1e-9]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(_numeric_keys()), value=_VALUES)
def test_any_value_is_refused_in_one_line_or_accepted_in_range(key, value):
    kind = presets.FIELD_TYPES[key]
    if typing.get_args(kind) and typing.get_origin(kind) is tuple:
        value = (value, value)
    try:
        config = presets.resolve(["debug"], {key: value})
    except presets.ConfigError as error:
        assert "\n" not in str(error) and (key in str(error) or "replay.minlen" in str(error))
        return
    got = flatten(config)[key]
    for item in got if isinstance(got, tuple) else (got,):
        assert math.isfinite(float(item)), (key, got)


_SMALL = {
    "prefill": st.integers(0, 40), "eval_every": st.integers(10, 60),
    "eval_eps": st.integers(0, 1), "train_every": st.integers(1, 20),
    "train_steps": st.integers(0, 2), "pretrain": st.integers(0, 2),
    "time_limit": st.sampled_from([0, 12, 30]), "replay.minlen": st.integers(1, 12),
    "replay.capacity": st.integers(1, 400), "dataset.batch": st.integers(1, 4),
    "dataset.length": st.integers(2, 12), "log_every": st.integers(1, 60),
}


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.fixed_dictionaries({"steps": st.integers(1, 60)}, optional=_SMALL))
def test_small_loop_values_either_refuse_or_run(values, tmp_path_factory):
    """Either a one-line error with the logdir untouched, or a run that reaches --steps."""
    logdir = tmp_path_factory.mktemp("prop") / "run"
    overrides = {"task": "dummy_vector", "threads": 1, "checkpoint_every": 0, **values,
                 "logdir": str(logdir)}
    try:
        config = presets.resolve(["debug"], {"replay.maxlen": 12, **overrides})
    except presets.ConfigError as error:
        assert "\n" not in str(error)
        assert not logdir.exists()
        return
    result = train(config, progress=False)
    assert result["step"] >= config.steps
    assert torch.load(logdir / "checkpoint.pt", weights_only=True)["step"] == result["step"]
