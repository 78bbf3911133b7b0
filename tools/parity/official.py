"""Load the official DreamerV2 (`dreamerv2==2.2.0`, TensorFlow 2.15 CPU) with the shims it needs.

Runs ONLY in the parity virtualenv (tools/parity/setup_venv.sh), never in the project's. The 2021
code is used as installed: nothing in its site-packages is edited. The shims, applied from outside
before it is imported:

- `np.bool` (removed in NumPy 1.24) is set to `bool`;
- `tensorflow.keras.mixed_precision.experimental` (removed in TF 2.11+) is registered as an alias
  of `tensorflow.keras.mixed_precision`, which has the `global_policy` the code calls;
- `train.py` (with its GPU assert) is never imported: the agent is built directly.

`tf.config.run_functions_eagerly(True)` makes every `tf.function` run eagerly, so that the draws
of the samplers and every intermediate value can be recorded from Python.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

np.bool = bool  # shim: removed in NumPy 1.24, used by the 2021 code

import tensorflow as tf  # noqa: E402
from tensorflow.keras import mixed_precision  # noqa: E402

sys.modules["tensorflow.keras.mixed_precision.experimental"] = mixed_precision
mixed_precision.experimental = mixed_precision

_SPEC = importlib.util.find_spec("dreamerv2")
PACKAGE = pathlib.Path(_SPEC.submodule_search_locations[0])
sys.path.insert(0, str(PACKAGE))  # the code imports `common` and `expl` as top-level modules

import agent as official_agent  # noqa: E402, F401  (re-exported)
import common  # noqa: E402
import ruamel.yaml  # noqa: E402

tf.config.run_functions_eagerly(True)


def versions() -> dict[str, str]:
    from importlib.metadata import version

    import tensorflow_probability as tfp

    return {"dreamerv2": version("dreamerv2"), "tensorflow": tf.__version__,
            "tensorflow_probability": tfp.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0]}


def make_config(preset: str, overrides: dict) -> common.Config:
    """The official `defaults` + `preset` + `overrides`, as `train.py` builds it.

    `Config.update` refuses values of another type than the default's (a schedule string for
    the float `actor_grad_mix`, 0.5 for the int `slow_target_fraction`) although the code reads
    them fine (`common.schedule`, `float(...)`); those are set by rebuilding the config from its
    flat dict instead."""
    yaml = ruamel.yaml.YAML(typ="safe")
    configs = yaml.load((PACKAGE / "configs.yaml").read_text())
    config = common.Config(configs["defaults"]).update(configs[preset])
    forced = {}
    for key, value in overrides.items():
        try:
            config = config.update({key: value})
        except TypeError:
            forced[key] = value
    return common.Config({**config.flat, **forced}) if forced else config
