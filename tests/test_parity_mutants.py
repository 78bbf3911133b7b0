"""Tests written for mutants that survived tools/parity/mutation.sh (docs/parity.md, "Mutation
testing"): details the parity goldens do not exercise (integer and `log_` observation
keys, the configuration without a slow critic, `ActorCritic.losses`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from parity_support import Golden

from dreamerv2_torch import presets
from dreamerv2_torch.behavior import ActorCritic
from dreamerv2_torch.envs.base import Space


def test_preprocess_converts_integer_keys_and_drops_log_keys():
    """Official `preprocess`: int32 observations become the compute dtype with the same values;
    `log_*` keys are not the model's inputs."""
    agent = Golden("dmc_proprio").agent()
    obs = {"reward": torch.zeros(2, 3), "is_terminal": torch.zeros(2, 3, dtype=torch.bool),
           "count": torch.arange(6, dtype=torch.int32).reshape(2, 3),
           "wide": torch.arange(6, dtype=torch.int64).reshape(2, 3),
           "log_achievement": torch.ones(2, 3)}
    out = agent.wm.preprocess(obs)
    assert "log_achievement" not in out
    for key in ("count", "wide"):
        assert out[key].dtype == torch.float32
        torch.testing.assert_close(out[key], obs[key].float())


def _behavior(**overrides):
    config = presets.resolve(["debug"], overrides)
    space = Space((2,), np.float32, discrete=True, low=0, high=1)
    return ActorCritic(4, {"action": space}, config)


def test_without_a_slow_critic_the_online_critic_gives_the_values():
    ac = _behavior(slow_target=False)
    assert ac.value_net() is ac.critic and not hasattr(ac, "target_critic")
    ac.update_slow_target()  # a no-op without a slow critic
    assert int(ac.updates) == 0


def test_losses_evaluates_the_schedules_at_the_given_step():
    """`ActorCritic.losses` (rollout + loss terms in one call) passes the step to the schedules."""
    from dreamerv2_torch.world_model import WorldModel

    config = presets.resolve(["debug"], {"actor_ent": "linear(1.0,0.0,100)", "precision": 32,
                                         "device": "cpu"})
    obs = {"vector": Space((3,), np.float32), "reward": Space((), np.float32),
           "is_first": Space((), bool), "is_last": Space((), bool),
           "is_terminal": Space((), bool)}
    act = {"action": Space((2,), np.float32, discrete=True, low=0, high=1)}
    wm = WorldModel(obs, act, config)
    ac = ActorCritic(wm.rssm.feat_dim, act, config)
    start = wm.rssm.initial(4)
    start = {k: v[:, None] for k, v in start.items()}
    terminal = torch.zeros(4, 1, dtype=torch.bool)
    for step, scale in ((0, 1.0), (50, 0.5), (100, 0.0)):
        *_, metrics = ac.losses(wm, start, terminal, step)
        assert float(metrics["actor_ent_scale"]) == pytest.approx(scale)
