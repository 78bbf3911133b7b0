"""KL balancing with free nats, the GRU cell, and the RSSM filter (spec §1.3, §1.4, §1.7)."""

import math

import pytest
import torch

from dreamerv2_torch.nets import GRUCell
from dreamerv2_torch.rssm import RSSM, kl_loss

# One latent with two classes: posterior q = (0.8, 0.2), prior p = (0.5, 0.5).
Q, P = torch.tensor([0.8, 0.2]), torch.tensor([0.5, 0.5])
KL = 0.8 * math.log(0.8 / 0.5) + 0.2 * math.log(0.2 / 0.5)  # 0.192745


def logits(probs, requires_grad=True):
    return probs.log()[None, None].clone().requires_grad_(requires_grad)  # (N=1, S=1, K=2)


def test_kl_balancing_value_and_gradient_split():
    post, prior = logits(Q), logits(P)
    loss, value = kl_loss(post, prior, balance=0.8, free=0.0)
    assert float(loss) == pytest.approx(KL, rel=1e-5)
    assert float(value.mean()) == pytest.approx(KL, rel=1e-5)
    loss.backward()
    # dKL(q‖p)/d prior-logits = p − q, scaled by α = 0.8 (the prior is trained by 0.8).
    assert prior.grad.flatten().tolist() == pytest.approx([0.8 * -0.3, 0.8 * 0.3], rel=1e-4)
    # dKL/d post-logits = q_i·(log q_i/p_i − KL), scaled by 1 − α = 0.2.
    g0 = 0.8 * (math.log(1.6) - KL)
    assert post.grad.flatten().tolist() == pytest.approx([0.2 * g0, -0.2 * g0], rel=1e-4)


def test_kl_sums_over_latents():
    post = torch.stack([Q, Q]).log()[None]  # two latents, each KL 0.1927
    prior = torch.stack([P, P]).log()[None]
    _, value = kl_loss(post, prior, balance=0.8, free=0.0)
    assert float(value) == pytest.approx(2 * KL, rel=1e-5)


def test_free_nats_clamp_the_batch_mean_or_each_element():
    post, prior = logits(Q), logits(P)
    loss, _ = kl_loss(post, prior, balance=0.8, free=0.5)  # KL < free: constant, no gradient
    assert float(loss) == pytest.approx(0.5)
    loss.backward()
    assert post.grad.abs().sum() == 0 and prior.grad.abs().sum() == 0
    loss, _ = kl_loss(logits(Q), logits(P), balance=0.8, free=0.1)  # KL > free: unchanged
    assert float(loss) == pytest.approx(KL, rel=1e-5)
    # A batch of two: one element with KL 0.1927, one with KL 0 (q = p).
    post = torch.stack([Q, P]).log()[:, None]
    prior = torch.stack([P, P]).log()[:, None]
    loss, _ = kl_loss(post, prior, balance=0.8, free=0.1, free_avg=True)
    assert float(loss) == pytest.approx(0.1)  # mean 0.0964 clamped to 0.1
    loss, _ = kl_loss(post, prior, balance=0.8, free=0.1, free_avg=False)
    assert float(loss) == pytest.approx((KL + 0.1) / 2, rel=1e-5)  # clamp, then average


def test_balance_half_is_one_unsplit_kl():
    post, prior = logits(Q), logits(P)
    loss, _ = kl_loss(post, prior, balance=0.5, free=0.0)
    loss.backward()
    assert float(loss) == pytest.approx(KL, rel=1e-5)
    assert prior.grad.flatten().tolist() == pytest.approx([-0.3, 0.3], rel=1e-4)


def test_gru_cell_by_hand():
    cell = GRUCell(1, 1)
    with torch.no_grad():
        cell.layer.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]))
        cell.layer.bias.zero_()
    x, h = torch.tensor([[1.0]]), torch.tensor([[0.5]])
    # Pre-activations (1, 1, 1.5); one LayerNorm over all three (ε = 1e-3); gates reset,
    # candidate, update; update bias −1; h' = u·c + (1 − u)·h.
    parts = [1.0, 1.0, 1.5]
    mean = sum(parts) / 3
    var = sum((p - mean) ** 2 for p in parts) / 3
    r, c, u = [(p - mean) / math.sqrt(var + 1e-3) for p in parts]
    r = 1 / (1 + math.exp(-r))
    c = math.tanh(r * c)
    u = 1 / (1 + math.exp(-(u - 1)))
    expected = u * c + (1 - u) * 0.5
    assert expected == pytest.approx(0.063667, abs=1e-5)
    assert float(cell(x, h)) == pytest.approx(expected, rel=1e-5)
    assert cell.norm.eps == 1e-3


def test_gru_is_not_torch_gru():
    torch.manual_seed(0)
    ours = GRUCell(3, 4)
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    assert ours(x, h).shape == (2, 4)
    # At initialisation the −1 update bias keeps most of the old state: u ≈ σ(−1) ≈ 0.27.
    zero = GRUCell(3, 4)
    with torch.no_grad():
        zero.layer.weight.zero_()
    assert torch.allclose(zero(x, h), (1 - torch.sigmoid(torch.tensor(-1.0))) * h, atol=1e-6)


def test_observe_equals_loop_of_obs_step():
    torch.manual_seed(0)
    rssm = RSSM(action_dim=3, embed_dim=5, hidden=8, deter=6, stoch=4, discrete=4)
    B, T = 2, 7
    embed, action = torch.randn(B, T, 5), torch.randn(B, T, 3)
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, 0] = True
    is_first[1, 4] = True  # a reset inside the sequence
    post, prior_logit = rssm.observe(embed, action, is_first, sample=False)
    state = rssm.initial(B)
    for t in range(T):
        state, prior = rssm.obs_step(state, action[:, t], embed[:, t], is_first[:, t],
                                     sample=False)
        for key in ("logit", "stoch", "deter"):
            assert torch.allclose(post[key][:, t], state[key], atol=1e-5), (key, t)
        assert torch.allclose(prior_logit[:, t], prior["logit"], atol=1e-5)


def test_posterior_ignores_prior_sample_and_resets_at_is_first():
    torch.manual_seed(0)
    rssm = RSSM(action_dim=2, embed_dim=3, hidden=8, deter=6, stoch=4, discrete=4)
    prev = {k: torch.randn_like(v) for k, v in rssm.initial(1).items()}
    embed, action = torch.randn(1, 3), torch.randn(1, 2)
    first = torch.tensor([True])
    reset, _ = rssm.obs_step(prev, action, embed, first, sample=False)
    fresh, _ = rssm.obs_step(rssm.initial(1), torch.zeros(1, 2), embed, first, sample=False)
    assert torch.allclose(reset["deter"], fresh["deter"])
    assert torch.allclose(reset["logit"], fresh["logit"])
