"""Tests written for mutants of `agent.py` that survived tools/parity/mutation.sh (docs/parity.md,
"agent.py"), part 2: acting (exploration noise, draws on the collector's own stream, the policy
snapshot, `policy` and `report`). Expected values come from the spec (§2.10 acting: ε/n +
(1 − ε)·one-hot for discrete actions, N(0, ε) noise clipped to [−1, 1] for continuous ones; §1.5
and §2.8 for the inverse-CDF draws), the official `common.action_noise` or hand computation.
Part 1 (device, precision, switches) is tests/test_mutants_agent.py."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from agent_support import DISCRETE, OBS, bare, make_agent
from torch import nn

from dreamerv2_torch.agent import (
    draw,
)
from dreamerv2_torch.dists import OneHotDist, TruncNormalDist
from dreamerv2_torch.envs.base import FLAG_SPACES, Space

pytestmark = pytest.mark.usefixtures("one_thread")

NS = types.SimpleNamespace
CONTINUOUS = Space((2,), np.float32, -1.0, 1.0)
TOP = 1 - 2 ** -24  # the largest value torch.rand returns in float32


# ---- acting_nets, policy_snapshot -------------------------------------------------------------

def small_nets():
    torch.manual_seed(0)
    return NS(encoder=nn.Linear(3, 4), rssm=nn.Linear(4, 5)), NS(actor=nn.Linear(5, 2))


def test_acting_nets_are_the_live_encoder_rssm_and_actor():
    wm, behavior = small_nets()
    nets = bare(wm=wm, behavior=behavior).acting_nets()
    assert nets == {"encoder": wm.encoder, "rssm": wm.rssm, "actor": behavior.actor}


def test_policy_snapshot_is_a_frozen_copy_without_the_compiled_loops():
    wm, behavior = small_nets()
    compiled = {"observe": object(), "imagine": object()}  # what compile_loops sets
    wm.rssm.__dict__.update(compiled)
    agent = bare(wm=wm, behavior=behavior)
    snap = agent.policy_snapshot()
    assert isinstance(snap, nn.ModuleDict) and list(snap) == ["encoder", "rssm", "actor"]
    for name, live in agent.acting_nets().items():
        assert snap[name] is not live and type(snap[name]) is type(live)
        for mine, theirs in zip(snap[name].parameters(), live.parameters(), strict=True):
            assert mine is not theirs and torch.equal(mine, theirs)
            assert not mine.requires_grad and theirs.requires_grad  # the live ones still learn
    assert "observe" not in snap["rssm"].__dict__ and "imagine" not in snap["rssm"].__dict__
    assert {k: wm.rssm.__dict__[k] for k in compiled} == compiled  # the live ones keep theirs


# ---- draw: the collector's samples on its own generator (spec §1.5, §2.8) ----------------------

def test_one_hot_draw_is_the_inverse_cdf_of_the_generators_uniforms():
    logits = torch.randn(40, 3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    sample = draw(OneHotDist(logits, 1), torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), state)  # the global stream is not used
    u = torch.rand((40, 3, 1), generator=torch.Generator().manual_seed(7))  # float32, as the probs
    cdf = np.cumsum(torch.softmax(logits, -1).numpy(), -1)
    want = (cdf < u.double().numpy()).sum(-1)  # the first class whose cumulative probability >= u
    assert sample.dtype == torch.float32 and sample.shape == (40, 3, 4)
    assert sample.sum(-1).eq(1).all() and sample.argmax(-1).numpy().tolist() == want.tolist()
    assert len(set(want.flatten().tolist())) == 4  # every class drawn somewhere


def fixed_uniform(monkeypatch, value):
    def rand(shape, *, generator=None, dtype=None, device=None):
        return torch.full(tuple(shape), value, dtype=dtype, device=device)
    monkeypatch.setattr(torch, "rand", rand)


def test_one_hot_draw_at_both_ends_of_the_uniform_range(monkeypatch):
    """u = 0 gives the first class and the largest u the last one, also where the float32
    cumulative probabilities end just below 1 (as `OneHotDist.sample`)."""
    logits = torch.randn(1000, 4, generator=torch.Generator().manual_seed(0)) * 2
    logits[:, -1] = logits.max(-1).values + 1
    assert (torch.softmax(logits, -1).cumsum(-1)[:, -1] < TOP).any()  # the rounding case occurs
    for u, index in ((0.0, 0), (TOP, 3)):
        fixed_uniform(monkeypatch, u)
        sample = draw(OneHotDist(logits, 1), torch.Generator())
        assert sample.argmax(-1).eq(index).all() and sample.sum(-1).eq(1).all()


def test_truncated_normal_draw_is_the_inverse_cdf_of_the_generators_uniforms():
    loc = torch.tensor([[-0.9, 0.0, 0.5], [0.99, -0.3, 0.2]])
    scale = torch.tensor([[0.5, 1.0, 0.1], [0.3, 2.0, 0.05]])
    torch.manual_seed(123)
    state = torch.get_rng_state()
    sample = draw(TruncNormalDist(loc, scale, -1, 1, event_dims=1),
                  torch.Generator().manual_seed(9))
    assert torch.equal(torch.get_rng_state(), state)
    u = torch.rand((2, 3), generator=torch.Generator().manual_seed(9)).double()
    nd, ndtri = torch.special.ndtr, torch.special.ndtri
    lo, hi = nd((-1 - loc.double()) / scale), nd((1 - loc.double()) / scale)
    want = loc.double() + scale * ndtri(lo + u * (hi - lo))  # x = μ + σ·Φ⁻¹(Φ(α) + u(Φ(β) − Φ(α)))
    torch.testing.assert_close(sample.double(), want, rtol=0, atol=2e-5)


def test_draws_stay_on_the_device_of_the_distribution():
    generator = torch.Generator()
    assert draw(OneHotDist(torch.zeros(2, 3, device="meta"), 1), generator).device.type == "meta"
    dist = TruncNormalDist(torch.zeros(2, 3, device="meta"), torch.ones(2, 3, device="meta"))
    assert draw(dist, generator).device.type == "meta"


def test_draw_names_the_actor_distribution_it_cannot_sample():
    with pytest.raises(TypeError, match=r"^acting on its own random stream \(overlap\) cannot "
                       r"sample a Normal actor; use actor.dist onehot or trunc_normal$"):
        draw(torch.distributions.Normal(torch.zeros(2), 1.0), torch.Generator())


# ---- _noise: exploration noise (spec §2.10, official common.action_noise) ---------------------

def noisy(space, action, amount, generator=None):
    return bare(act_space=space)._noise(action, amount, generator)


def test_no_noise_returns_the_action_and_draws_nothing():
    for space, action in ((DISCRETE, torch.eye(3)), (CONTINUOUS, torch.full((3, 2), 0.5))):
        state = torch.get_rng_state()
        assert noisy(space, action, 0.0) is action
        assert torch.equal(torch.get_rng_state(), state)


def test_discrete_noise_resamples_from_epsilon_over_n_plus_the_one_hot():
    """ε = 0.4, n = 4, action 2: P = 0.1 for each other action and 0.1 + 0.6 = 0.7 for action 2."""
    space = Space((4,), np.float32, 0.0, 1.0, discrete=True)
    action = torch.zeros(20000, 4)
    action[:, 2] = 1
    out = noisy(space, action, 0.4, torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32 and out.shape == (20000, 4) and out.sum(-1).eq(1).all()
    np.testing.assert_allclose(out.mean(0).numpy(), [0.1, 0.1, 0.7, 0.1], atol=0.015)


def test_continuous_noise_is_gaussian_with_std_epsilon():
    action = torch.full((20000, 2), 0.25)
    out = noisy(CONTINUOUS, action, 0.1, torch.Generator().manual_seed(0))  # clipping: 1e-13
    np.testing.assert_allclose(out.mean(0).numpy(), [0.25, 0.25], atol=0.005)
    np.testing.assert_allclose(out.std(0).numpy(), [0.1, 0.1], atol=0.005)


def test_noise_draws_on_the_given_generator_only():
    """The collector's generator draws every sample: the same seed, the same actions, and the
    global stream untouched; without a generator the global stream draws."""
    one_hot = torch.eye(5)[[0, 3, 4, 1, 2, 2]]
    probs = 0.3 / 5 + 0.7 * one_hot
    want = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(3))[:, 0]
    torch.manual_seed(0)
    state = torch.get_rng_state()
    got = noisy(Space((5,), np.float32, 0.0, 1.0, discrete=True), one_hot, 0.3,
                torch.Generator().manual_seed(3))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(got, torch.eye(5)[want])

    action = torch.linspace(-1, 1, 12).reshape(6, 2)
    want = (action + 0.8 * torch.randn((6, 2), generator=torch.Generator().manual_seed(4)))
    got = noisy(CONTINUOUS, action, 0.8, torch.Generator().manual_seed(4))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(got, want.clamp(-1, 1))
    torch.manual_seed(4)
    assert torch.equal(noisy(CONTINUOUS, action, 0.8), want.clamp(-1, 1))


def test_continuous_noise_is_clipped_to_the_action_range():
    action = torch.linspace(-1, 1, 2000).reshape(1000, 2)
    out = noisy(CONTINUOUS, action, 1.0, torch.Generator().manual_seed(0))
    assert out.min() == -1 and out.max() == 1
    assert ((out == -1).float().mean() > 0.1) and ((out == 1).float().mean() > 0.1)


def test_noise_stays_on_the_device_of_the_action():
    action = torch.zeros(4, 2, device="meta")
    assert noisy(CONTINUOUS, action, 0.5, torch.Generator()).device.type == "meta"


# ---- policy (spec §2.10; mutmut leaves it out: it does not mutate decorated functions) --------

def observations(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    flags = {k: np.zeros(n, bool) for k in FLAG_SPACES}
    return {"vector": rng.normal(size=(n, 8)).astype(np.float32), **flags,
            "is_first": np.ones(n, bool)}


def act(agent, obs, seed, **kwargs):
    torch.manual_seed(seed)
    out, state = agent.policy(obs, **kwargs)
    return out["action"]


def test_eval_acts_with_the_mode_and_train_samples():
    """eval: the actor's mode on the latent's mode (eval_state_mean), so no draw changes it;
    train: a sample of the actor on a sampled latent."""
    agent, obs = make_agent(eval_state_mean=True), observations(256)
    eval_actions = [act(agent, obs, seed, mode="eval") for seed in (1, 2)]
    train_actions = [act(agent, obs, seed, mode="train") for seed in (1, 2)]
    for actions in eval_actions + train_actions:
        assert actions.shape == (256, 3) and (actions.sum(-1) == 1).all()
    assert np.array_equal(*eval_actions) and not np.array_equal(*train_actions)
    sampled_latent = make_agent(eval_state_mean=False)
    assert not np.array_equal(*[act(sampled_latent, obs, seed, mode="eval") for seed in (1, 2)])


@pytest.mark.parametrize("mode, other", [("train", "eval"), ("eval", "train")])
def test_each_mode_adds_its_own_noise(mode, other):
    """ε = 1 resamples uniformly (1/n each); the other mode's ε = 0 leaves its actions alone."""
    noise = {"train": "expl_noise", "eval": "eval_noise"}
    agent = make_agent(eval_state_mean=True, **{noise[mode]: 1.0, noise[other]: 0.0})
    obs = observations(3000)
    np.testing.assert_allclose(act(agent, obs, 1, mode=mode).mean(0), [1 / 3] * 3, atol=0.04)
    if other == "eval":  # the mode: the same actions whatever the seed
        assert np.array_equal(act(agent, obs, 1, mode=other), act(agent, obs, 2, mode=other))


def test_a_generator_draws_every_sample_of_the_policy():
    """The collector's stream (overlap): latent, action and noise all drawn from it; the same
    seed acts the same, with the live networks or a snapshot of them, and the global stream is
    left alone."""
    agent, obs = make_agent(expl_noise=0.5), observations(64)
    snapshot = agent.policy_snapshot()
    torch.manual_seed(0)
    state = torch.get_rng_state()
    runs = [agent.policy(obs, generator=torch.Generator().manual_seed(5), nets=nets)
            for nets in (None, snapshot, None)]
    assert torch.equal(torch.get_rng_state(), state)
    for out, (latent, action) in runs:
        assert np.array_equal(out["action"], runs[0][0]["action"])
        assert torch.equal(latent["stoch"], runs[0][1][0]["stoch"])
        assert np.array_equal(action.numpy(), out["action"])  # the state carries the action
    out, (latent, _) = agent.policy(obs, generator=torch.Generator().manual_seed(6))
    assert not np.array_equal(out["action"], runs[0][0]["action"])
    assert not torch.equal(latent["stoch"], runs[0][1][0]["stoch"])  # a sampled latent


def test_refresh_snapshot_copies_the_live_weights_into_the_frozen_copy():
    wm, behavior = small_nets()
    agent = bare(wm=wm, behavior=behavior)
    snap = agent.policy_snapshot()
    with torch.no_grad():
        for p in nn.ModuleDict(agent.acting_nets()).parameters():
            p.add_(1.0)
    agent.refresh_snapshot(snap)
    live = nn.ModuleDict(agent.acting_nets()).state_dict()
    assert all(torch.equal(snap.state_dict()[k], v) for k, v in live.items())
    assert not any(p.requires_grad for p in snap.parameters())


def test_report_films_each_video_key_as_uint8_truth_model_and_error():
    """Open-loop videos (spec §7.3): uint8 [T, 3·H, 6·W, C], the top third the frames given."""
    obs = {"image": Space((64, 64, 3), np.uint8), **OBS}
    agent = make_agent(obs, log_keys_video=("image", "vector"))
    rng, (b, t) = np.random.default_rng(0), (7, 6)
    first = np.zeros((b, t), bool)
    first[:, 0] = True
    batch = {"image": rng.integers(0, 256, (b, t, 64, 64, 3), dtype=np.uint8),
             "vector": rng.normal(size=(b, t, 8)).astype(np.float32),
             "action": np.eye(3, dtype=np.float32)[rng.integers(0, 3, (b, t))],
             "reward": np.zeros((b, t), np.float32), "is_first": first,
             "is_last": np.zeros((b, t), bool), "is_terminal": np.zeros((b, t), bool)}
    out = agent.report(batch)
    assert list(out) == ["openl_image"]
    video = out["openl_image"]
    assert video.dtype == np.uint8 and video.shape == (t, 3 * 64, 6 * 64, 3)
    truth = video[:, :64].reshape(t, 64, 6, 64, 3).transpose(2, 0, 1, 3, 4)  # (6, T, H, W, C)
    assert np.array_equal(truth, batch["image"][:6])
