"""Tests written for mutants that survived tools/parity/mutation.sh (docs/parity.md, "Mutation
testing"): details the parity goldens do not exercise (integer and `log_` observation
keys, the configuration without a slow critic, `ActorCritic.losses`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from parity_support import Draws, Golden

from dreamerv2_torch import dists, presets
from dreamerv2_torch.behavior import ActorCritic, imagined_discounts
from dreamerv2_torch.envs.base import Space
from dreamerv2_torch.world_model import WorldModel


def test_preprocess_converts_integer_keys_and_drops_log_keys():
    """Official `preprocess`: int32 observations become the compute dtype with the same values;
    `log_*` keys are not the model's inputs."""
    agent = Golden("dmc_proprio").agent()
    obs = {"log_first": torch.ones(2, 3),  # first: a `log_` key is skipped, not the end
           "reward": torch.zeros(2, 3), "is_terminal": torch.zeros(2, 3, dtype=torch.bool),
           "count": torch.arange(6, dtype=torch.int32).reshape(2, 3),
           "wide": torch.arange(6, dtype=torch.int64).reshape(2, 3),
           "log_achievement": torch.ones(2, 3)}
    out = agent.wm.preprocess(obs)
    assert "log_achievement" not in out and "log_first" not in out
    assert {"reward", "discount", "count", "wide"} <= set(out)
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


def test_discounts_without_a_head_stay_on_the_data_device():
    terminal = torch.zeros(3, dtype=torch.bool, device="meta")
    assert imagined_discounts(None, terminal, 0.9, torch.Size([4, 3])).device.type == "meta"


def test_actor_head_options_and_the_update_counter_type():
    ac = _behavior(**{"actor.min_std": 0.3, "actor.init_std": 2.0})
    assert (ac.actor.dist.min_std, ac.actor.dist.init_std) == (0.3, 2.0)
    assert ac.updates.dtype == torch.int64  # an exact counter in checkpoints


def _wm_loss(name, **overrides):
    golden = Golden(name)
    agent = golden.agent(**overrides)
    batch = {k[len("u0/batch/"):]: torch.as_tensor(v) for k, v in golden.arrays.items()
             if k.startswith("u0/batch/")}
    data = agent.wm.preprocess(batch)
    with dists.injected_samples(Draws(golden, 0)):
        total, _, metrics = agent.wm.loss(data)
    return agent, total, metrics


def test_kl_direction_switch_reaches_the_loss():
    *_, backward = _wm_loss("atari")
    *_, forward = _wm_loss("atari", **{"kl.forward": True})
    assert not torch.isclose(forward["kl_loss"], backward["kl_loss"], rtol=1e-3)


@pytest.mark.parametrize(("key", "term"), [("reward", "reward_loss"), ("image", "image_loss"),
                                            ("discount", "discount_loss"), ("kl", "kl_loss")])
def test_each_loss_scale_scales_its_own_term(key, term):
    # The totals are ~4e3 (an image term): compare up to a few float32 ulps of them.
    _, base, metrics = _wm_loss("atari", **{f"loss_scales.{key}": 1.0})
    _, scaled, _ = _wm_loss("atari", **{f"loss_scales.{key}": 3.0})
    torch.testing.assert_close(scaled - base, 2 * metrics[term], rtol=1e-4, atol=1e-3)
    _, proprio, _ = _wm_loss("atari", **{f"loss_scales.{key}": 1.0, "loss_scales.proprio": 3.0})
    torch.testing.assert_close(proprio, base, rtol=0, atol=1e-3)  # no vector key here


def test_heads_outside_grad_heads_do_not_shape_the_representation():
    only_reward = {"loss_scales.kl": 0.0, "loss_scales.proprio": 0.0}
    for heads, shaped in ((("decoder", "reward"), True), (("decoder",), False)):
        agent, total, _ = _wm_loss("dmc_proprio", grad_heads=heads, **only_reward)
        total.backward()
        grad = agent.wm.encoder.mlp.net[0].weight.grad
        assert (grad is not None and bool(grad.abs().sum() > 0)) == shaped


def test_log_keys_of_the_observation_space_are_not_encoded():
    config = presets.resolve(["debug"], {"precision": 32, "device": "cpu"})
    obs = {"vector": Space((3,), np.float32), "log_extra": Space((5,), np.float32),
           "reward": Space((), np.float32), "is_first": Space((), bool),
           "is_last": Space((), bool), "is_terminal": Space((), bool)}
    act = {"action": Space((2,), np.float32, discrete=True, low=0, high=1)}
    wm = WorldModel(obs, act, config)
    assert wm.encoder.mlp_keys == ["vector"] and list(wm.heads["decoder"].mlp_keys) == ["vector"]


def test_replay_argument_bounds(tmp_path):
    """The smallest valid replay (capacity 1, minlen = maxlen = 1) is accepted; one step below
    each bound is refused (mutants at the boundaries of the check survived)."""
    from dreamerv2_torch.replay import Replay

    Replay(tmp_path / "a" / "nested", capacity=1, minlen=1, maxlen=1)  # parents are created
    for bad in ({"capacity": 0}, {"minlen": 0, "maxlen": 1}, {"minlen": 3, "maxlen": 2}):
        with pytest.raises(AssertionError):
            Replay(tmp_path / "b", **{"capacity": 10, "minlen": 1, "maxlen": 1, **bad})
