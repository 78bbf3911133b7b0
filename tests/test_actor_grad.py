"""Which parameters each loss reaches, and which ones each optimiser changes (spec §2.7, §2.9,
§9 item 15).

`reinforce` (ρ=1): the actor loss depends on the actor only. `dynamics` (ρ=0, the continuous
default): the actor gradient flows back through the imagined trajectory (rewards, values and later
states are functions of the reparameterised actions), so it reaches the world model too, yet only
the actor optimiser steps and it leaves the world model's and critic's parameters and `.grad`
untouched. `both` is the mixture. The critic loss reaches the critic only; the slow critic never
gets a gradient.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamerv2_torch.agent import Agent
from dreamerv2_torch.envs.base import FLAG_SPACES, Space
from dreamerv2_torch.presets import resolve

pytestmark = pytest.mark.usefixtures("one_thread")

OBS = {"vector": Space((8,), np.float32), **FLAG_SPACES}


def make_agent(discrete: bool, **overrides) -> Agent:
    config = resolve(["debug"], {"device": "cpu", "precision": 32, "actor_ent": 0.0,
                                 **overrides})
    if discrete:
        act = Space((3,), np.float32, 0.0, 1.0, discrete=True)
    else:
        act = Space((2,), np.float32, -1.0, 1.0)
    torch.manual_seed(0)
    return Agent(OBS, {"action": act}, config)


def make_batch(agent: Agent, batch: int = 4, length: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    space = agent.act_space
    first = np.zeros((batch, length), bool)
    first[:, 0] = True
    return {
        "vector": rng.normal(size=(batch, length, 8)).astype(np.float32),
        "reward": rng.normal(size=(batch, length)).astype(np.float32),
        "is_first": first, "is_last": np.zeros_like(first), "is_terminal": np.zeros_like(first),
        "action": np.stack([np.stack([space.sample(rng) for _ in range(length)])
                            for _ in range(batch)]),
    }


def losses(agent: Agent, batch: dict, step: int = 0):
    data = agent.wm.preprocess(agent._tensors(batch))
    model_loss, post, _ = agent.wm.loss(data)
    actor_loss, critic_loss, _ = agent.behavior.losses(agent.wm, post, data["is_terminal"], step)
    return model_loss, actor_loss, critic_loss


def groups(agent: Agent) -> dict[str, list[torch.nn.Parameter]]:
    b = agent.behavior
    return {"wm": list(agent.wm.parameters()), "actor": list(b.actor.parameters()),
            "critic": list(b.critic.parameters()), "slow": list(b.target_critic.parameters())}


def reached(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> bool:
    """Whether `loss` has a non-zero gradient w.r.t. any of `params` (without touching .grad)."""
    params = [p for p in params if p.requires_grad]
    if not params or not loss.requires_grad:
        return False
    grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    return any(g is not None and bool(g.abs().sum() > 0) for g in grads)


@pytest.mark.parametrize("discrete", [True, False])
@pytest.mark.parametrize("mode", ["reinforce", "dynamics", "both"])
def test_parameters_each_loss_reaches(mode, discrete):
    agent = make_agent(discrete, actor_grad=mode)
    _, actor_loss, critic_loss = losses(agent, make_batch(agent))
    g = groups(agent)
    assert not any(p.requires_grad for p in g["slow"])  # the slow critic never gets gradients
    # Even with actor_ent = 0 the actor gets a gradient in every mode (in `dynamics` only through
    # the imagined trajectory, since the objective contains no log-probability).
    assert reached(actor_loss, g["actor"])
    assert reached(actor_loss, g["wm"]) == (mode != "reinforce")
    assert not reached(actor_loss, g["critic"])
    assert reached(critic_loss, g["critic"])
    assert not reached(critic_loss, g["wm"]) and not reached(critic_loss, g["actor"])


def test_auto_picks_reinforce_for_discrete_and_dynamics_for_continuous():
    assert make_agent(True).behavior.actor_grad == "reinforce"
    assert make_agent(False).behavior.actor_grad == "dynamics"


def _snapshot(params):
    return ([p.detach().clone() for p in params],
            [None if p.grad is None else p.grad.clone() for p in params])


def _same(params, snapshot) -> bool:
    values, grads = snapshot
    same_values = all(torch.equal(p, v) for p, v in zip(params, values, strict=True))
    same_grads = all((p.grad is None and g is None) or
                     (p.grad is not None and g is not None and torch.equal(p.grad, g))
                     for p, g in zip(params, grads, strict=True))
    return same_values and same_grads


@pytest.mark.parametrize("mode", ["dynamics", "both", "reinforce"])
def test_each_optimiser_changes_only_its_own_parameters(mode):
    """One update done by hand in Agent.train's order, checking the isolation after each step."""
    agent = make_agent(False, actor_grad=mode)
    g = groups(agent)
    model_loss, _, _ = losses(agent, make_batch(agent))
    agent.model_opt.step(model_loss)  # leaves the model's gradients in wm .grad
    _, actor_loss, critic_loss = losses(agent, make_batch(agent))
    others = {k: _snapshot(g[k]) for k in ("wm", "critic", "slow")}
    actor_before = _snapshot(g["actor"])
    agent.actor_opt.step(actor_loss)
    assert all(_same(g[k], s) for k, s in others.items()), "the actor step touched other params"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in g["actor"])
    assert not _same(g["actor"], actor_before)
    others = {k: _snapshot(g[k]) for k in ("wm", "actor", "slow")}
    agent.critic_opt.step(critic_loss)
    assert all(_same(g[k], s) for k, s in others.items()), "the critic step touched other params"
    assert all(p.grad is None for p in g["slow"])


def test_slow_critic_only_changes_by_copies():
    agent = make_agent(False, slow_target_update=3)
    g = groups(agent)
    batch = make_batch(agent)
    agent.train(batch)  # update 1: the first check copies the online critic
    for slow, online in zip(g["slow"], g["critic"], strict=True):
        assert torch.equal(slow, online) and slow.grad is None
    copied = _snapshot(g["slow"])
    agent.train(batch)
    agent.train(batch)  # updates 2 and 3: no copy (the next is after update 4)
    assert _same(g["slow"], copied)
    agent.train(batch)
    assert not _same(g["slow"], copied)
    assert all(p.grad is None for p in g["slow"])


def test_both_is_the_mixture_of_dynamics_and_reinforce():
    """∇L(mix) = mix·∇L(1) + (1 − mix)·∇L(0) on the same imagined samples (same seed)."""
    agent = make_agent(False, actor_grad="both")
    batch = make_batch(agent)
    actor = groups(agent)["actor"]

    def grad(mix: float) -> torch.Tensor:
        agent.behavior.actor_grad_mix = lambda step: mix
        torch.manual_seed(5)  # the same samples in the world model and the imagination
        _, actor_loss, _ = losses(agent, batch)
        return torch.cat([x.flatten() for x in torch.autograd.grad(actor_loss, actor)])

    dynamics, reinforce, mixed = grad(1.0), grad(0.0), grad(0.3)
    torch.testing.assert_close(mixed, 0.3 * dynamics + 0.7 * reinforce, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(dynamics, reinforce)
