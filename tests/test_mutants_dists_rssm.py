"""Tests written for mutants of `dists.py` and `rssm.py` that survived tools/parity/mutation.sh
(docs/parity.md, "Mutation testing"): edge cases of the samplers, modes, shapes, devices and
dtypes that the module tests and the parity goldens do not reach. Expected values come from the
spec, TensorFlow Probability's documented behaviour or hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from dreamerv2_torch.dists import (
    BernoulliDist,
    OneHotDist,
    TruncNormalDist,
    injected_samples,
    kl_categorical,
)
from dreamerv2_torch.rssm import RSSM, kl_loss

TOP = 1 - 2 ** -24  # the largest value torch.rand returns in float32


def small_rssm(**kwargs) -> RSSM:
    torch.manual_seed(0)
    return RSSM(action_dim=3, embed_dim=5, hidden=8, deter=6, stoch=4, discrete=4, **kwargs)


def fixed_uniform(monkeypatch, value: float) -> None:
    """Make torch.rand return `value` everywhere (the sampler's u at an end of its range)."""
    def rand(shape, *, dtype=None, device=None):
        return torch.full(tuple(shape), value, dtype=dtype, device=device)
    monkeypatch.setattr(torch, "rand", rand)


# ---- OneHotDist (spec §1.5) -------------------------------------------------------------


def test_one_hot_mode_is_a_float32_one_hot_of_the_argmax_per_latent():
    """§1.5: mode = one-hot of argmax over the classes (the last axis), float32, per latent."""
    logits = torch.tensor([[[0.0, 3.0, 1.0, 2.0], [5.0, 1.0, 1.0, 1.0], [0.0, 0.0, 4.0, 1.0]],
                           [[1.0, 2.0, 0.0, 0.0], [9.0, 0.0, 0.0, 0.0], [2.0, 0.0, 1.0, 0.0]]])
    mode = OneHotDist(logits, event_dims=1).mode()  # (batch 2, latents 3, classes 4)
    assert mode.dtype == torch.float32 and mode.shape == (2, 3, 4)
    assert mode.argmax(-1).tolist() == [[1, 0, 2], [1, 0, 0]]
    assert mode.sum(-1).eq(1).all()


def test_one_hot_sample_at_both_ends_of_the_uniform_range(monkeypatch):
    """§1.5 (inverse-CDF draw): u = 0 gives the first class and the largest u the last one,
    also where the float32 cumulative probabilities end just below 1."""
    torch.manual_seed(0)
    logits = torch.randn(1000, 4) * 2
    logits[:, -1] = logits.max(-1).values + 1  # the last class is the most probable
    assert (torch.softmax(logits, -1).cumsum(-1)[:, -1] < TOP).any()  # the rounding case occurs
    for u, index in ((0.0, 0), (TOP, 3)):
        fixed_uniform(monkeypatch, u)
        sample = OneHotDist(logits).sample()
        assert sample.dtype == torch.float32
        assert sample.argmax(-1).eq(index).all() and sample.sum(-1).eq(1).all()


def test_injected_one_hot_values_are_float32():
    """§1.5: the one-hot sample is float32 whatever the dtype of an injected (official) draw."""
    probs = torch.tensor([[0.2, 0.8]])
    with injected_samples(lambda dist: torch.tensor([[1.0, 0.0]], dtype=torch.float64)):
        sample = OneHotDist(probs.log()).sample()
    assert sample.dtype == torch.float32 and sample.tolist() == [[1.0, 0.0]]


def test_kl_categorical_per_latent_without_event_dims():
    """§1.5/§1.7: the KL sums over the classes; `event_dims=0` keeps one value per latent."""
    post = torch.tensor([[[0.8, 0.2], [0.5, 0.5], [0.1, 0.9]]]).log()  # (1, 3 latents, 2)
    prior = torch.full((1, 3, 2), 0.5).log()
    want = [0.8 * math.log(1.6) + 0.2 * math.log(0.4), 0.0,
            0.1 * math.log(0.2) + 0.9 * math.log(1.8)]
    got = kl_categorical(post, prior, event_dims=0)
    assert got.shape == (1, 3) and got[0].tolist() == pytest.approx(want, abs=1e-6)
    assert float(kl_categorical(post, prior)) == pytest.approx(sum(want), abs=1e-6)


# ---- BernoulliDist, TruncNormalDist (spec §1.6, §2.8) ---------------------------------------


def test_bernoulli_mode_is_one_where_the_probability_exceeds_a_half():
    """§1.6 `binary` (TFP Bernoulli.mode): 1 if σ(logit) > 0.5, else 0 (0 at exactly 0.5)."""
    mode = BernoulliDist(torch.tensor([-1.0, 0.0, 0.5, 3.0])).mode()
    assert mode.tolist() == [0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize("rule", ["tf", "exact"])
@pytest.mark.parametrize(("loc", "scale", "u"), [(1.0, 0.05, 0.0), (-1.0, 0.05, TOP),
                                                 (0.0, 0.1, 0.0), (0.0, 0.1, TOP)])
def test_trunc_normal_extreme_uniforms_give_finite_samples_and_gradients(rule, loc, scale, u):
    """§2.8: every u that torch.rand can return (0 and 1 − 2⁻²⁴ included) gives a sample inside
    [−1 + 1e-6, 1 − 1e-6] with finite gradients, even where Φ(α) underflows to 0 or
    Φ(α) + u·Z rounds to 1."""
    locs = torch.tensor([loc], requires_grad=True)
    scales = torch.tensor([scale], requires_grad=True)
    x = TruncNormalDist(locs, scales, event_dims=0, grad=rule).sample_from(torch.tensor([u]))
    assert torch.isfinite(x).all() and x.abs().max() <= 1 - 1e-6
    x.sum().backward()
    assert torch.isfinite(locs.grad).all() and torch.isfinite(scales.grad).all()


def test_trunc_normal_mode_is_loc_clipped_to_the_bounds():
    """TFP TruncatedNormal.mode: loc inside [low, high], else the nearer bound."""
    d = TruncNormalDist(torch.tensor([-1.5, 0.25, 1.5]), torch.ones(3), event_dims=0)
    assert d.mode().tolist() == [-1.0, 0.25, 1.0]


def test_unknown_trunc_normal_gradient_rule_is_named_in_the_error():
    """Reliability: one clear error that names the bad value and the allowed ones."""
    with pytest.raises(ValueError, match=r"'nope'.*tf.*exact"):
        TruncNormalDist(torch.zeros(1), torch.ones(1), grad="nope")


# ---- RSSM (spec §1.3, §2.2) ---------------------------------------------------------------


def test_initial_state_is_all_zero_logit_stoch_and_deter():
    """§1.3: the initial state is all zeros in logit, stoch and deter (no learned state)."""
    state = small_rssm().initial(2)
    assert set(state) == {"logit", "stoch", "deter"}
    assert state["logit"].shape == state["stoch"].shape == (2, 4, 4)
    assert state["deter"].shape == (2, 6)
    assert all(not v.any() for v in state.values())


def test_created_tensors_follow_the_device_of_the_inputs():
    """Tensors made inside (initial state, uniforms) live on the inputs' device: checked on
    PyTorch's shape-only `meta` device, which mixes with no other (no GPU needed)."""
    assert OneHotDist(torch.zeros(2, 3, device="meta")).sample().device.type == "meta"
    assert all(v.device.type == "meta" for v in small_rssm().initial(2, "meta").values())
    with torch.device("meta"):
        rssm = small_rssm()
        embed, action = torch.zeros(2, 3, 5), torch.zeros(2, 3, 3)
        first = torch.zeros(2, 3, dtype=torch.bool)
    with torch.no_grad():  # `batched_grads` asks autocast for its dtype; meta has no autocast
        post, prior_logit = rssm.observe(embed, action, first)
    assert post["stoch"].device.type == prior_logit.device.type == "meta"


def test_obs_step_samples_both_latents_by_default_and_takes_modes_without_sampling():
    """§1.3: obs_step draws the prior and the posterior latents; with sample=False both are the
    one-hot modes of their logits."""
    rssm = small_rssm()
    with torch.no_grad():  # uniform logits everywhere: the mode is class 0, a sample is not
        for layer in (rssm.img_dist, rssm.obs_dist):
            layer.weight.zero_()
            layer.bias.zero_()
    n = 400
    args = (rssm.initial(n), torch.zeros(n, 3), torch.randn(n, 5), torch.ones(n, dtype=bool))
    torch.manual_seed(1)
    post, prior = rssm.obs_step(*args)
    for state in (post, prior):  # each class ≈ 1/4 of the draws
        assert state["stoch"].mean((0, 1)).tolist() == pytest.approx([0.25] * 4, abs=0.05)
    post, prior = rssm.obs_step(*args, sample=False)
    for state in (post, prior):
        assert state["stoch"].argmax(-1).eq(0).all()


def test_steps_accept_extra_leading_axes():
    """§1.3: states are (..., S, K) and (..., D); a (2, 3) batch gives what the flat 6 gives."""
    rssm = small_rssm()
    torch.manual_seed(1)
    prev = {k: torch.randn((6,) + v.shape[1:]) for k, v in rssm.initial(6).items()}
    action, embed = torch.randn(6, 3), torch.randn(6, 5)
    first = torch.tensor([False, True] * 3)
    grid = lambda x: x.reshape((2, 3) + x.shape[1:])  # noqa: E731
    flat_img = rssm.img_step(prev, action, sample=False)
    img = rssm.img_step({k: grid(v) for k, v in prev.items()}, grid(action), sample=False)
    post, _ = rssm.obs_step({k: grid(v) for k, v in prev.items()}, grid(action), grid(embed),
                            grid(first), sample=False)
    flat_post, _ = rssm.obs_step(prev, action, embed, first, sample=False)
    for key in ("logit", "stoch", "deter"):
        torch.testing.assert_close(img[key], grid(flat_img[key]))
        torch.testing.assert_close(post[key], grid(flat_post[key]))


def test_img_step_takes_float64_actions_as_float32():
    """§1.3: the action enters img_in in the latent's dtype (float64 actions, e.g. numpy's
    default, give the float32 result)."""
    rssm = small_rssm()
    prev, action = rssm.initial(2), torch.tensor([[0.5, -1.0, 0.25], [1.0, 0.0, 0.0]])
    want = rssm.img_step(prev, action, sample=False)
    got = rssm.img_step(prev, action.double(), sample=False)
    for key in want:
        assert got[key].dtype == torch.float32
        torch.testing.assert_close(got[key], want[key])


def test_imagine_with_a_horizon_of_one():
    """§2.2: H + 1 entries per key, action[0] = 0 and action[1] the policy's action, also for
    H = 1."""
    rssm = small_rssm()
    act = torch.tensor([[0.0, 1.0, 0.0]] * 2)
    feats, actions = rssm.imagine(rssm.initial(2), lambda feat: act, horizon=1)
    assert feats.shape == (2, 2, rssm.feat_dim) and actions.shape == (2, 2, 3)
    assert not actions[0].any() and torch.equal(actions[1], act)


def test_forward_kl_balancing_gives_the_prior_the_weight_alpha():
    """§1.7 with forward=True: KL(p ‖ q); α · max(KL(p ‖ sg(q)), free) trains the prior and
    (1 − α) · max(KL(sg(p) ‖ q), free) the posterior."""
    q, p = torch.tensor([0.8, 0.2]), torch.tensor([0.5, 0.5])
    post = q.log()[None, None].clone().requires_grad_()
    prior = p.log()[None, None].clone().requires_grad_()
    kl = 0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2)  # KL(p ‖ q) = 0.2231
    loss, value = kl_loss(post, prior, balance=0.8, free=0.0, forward=True)
    assert loss.item() == pytest.approx(kl, rel=1e-5) and value.item() == pytest.approx(kl, 1e-5)
    loss.backward()
    # dKL(p‖q)/d prior-logits = p_i·(log p_i/q_i − KL); d/d post-logits = q − p.
    g = [0.5 * (math.log(0.5 / 0.8) - kl), 0.5 * (math.log(0.5 / 0.2) - kl)]
    assert prior.grad.flatten().tolist() == pytest.approx([0.8 * g[0], 0.8 * g[1]], rel=1e-4)
    assert post.grad.flatten().tolist() == pytest.approx([0.2 * 0.3, 0.2 * -0.3], rel=1e-4)


def test_batched_grads_under_bf16_autocast_give_the_plain_gradients():
    """Spec §1.9 (bf16 compute) with the `batched_grads` speed switch: the loop's Dense weights
    are gathered in the compute dtype, and the gradients equal plain autograd's to bf16
    precision."""
    torch.manual_seed(1)
    embed, action = torch.randn(2, 6, 5), torch.randn(2, 6, 3)
    first = torch.zeros(2, 6, dtype=torch.bool)
    first[:, 0] = first[1, 3] = True
    grads = []
    for batched in (True, False):
        rssm = small_rssm(batched_grads=batched)
        with torch.autocast("cpu", torch.bfloat16):
            post, prior_logit = rssm.observe(embed, action, first, sample=False)
        (post["logit"].square().mean() + prior_logit.square().mean()
         + post["deter"].float().sum()).backward()
        grads.append({n: p.grad for n, p in rssm.named_parameters()})
    for name, want in grads[1].items():
        err = (grads[0][name] - want).norm() / want.norm().clamp_min(1e-6)
        assert err < 2e-2, name
