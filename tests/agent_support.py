"""A small discrete-action `Agent` and a bare one, shared by tests/test_mutants_agent*.py."""

from __future__ import annotations

import numpy as np
import torch

from dreamerv2_torch.agent import Agent
from dreamerv2_torch.envs.base import FLAG_SPACES, Space
from dreamerv2_torch.presets import resolve

OBS = {"vector": Space((8,), np.float32), **FLAG_SPACES}
DISCRETE = Space((3,), np.float32, 0.0, 1.0, discrete=True)


def make_agent(obs=OBS, act=DISCRETE, **overrides) -> Agent:
    config = resolve(["debug"], {"device": "cpu", "precision": 32, **overrides})
    torch.manual_seed(0)
    return Agent(obs, {"action": act}, config)


def bare(**attrs) -> Agent:
    """An Agent without __init__: only the attributes the method under test reads."""
    agent = Agent.__new__(Agent)
    agent.__dict__.update(attrs)
    return agent
