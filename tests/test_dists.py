"""Straight-through one-hot samples, soft-label Bernoulli and unit Normal (spec §1.5, §1.6)."""

import math

import pytest
import torch

from dreamerv2_torch.dists import BernoulliDist, MSEDist, OneHotDist


def test_straight_through_sample_is_one_hot_with_probability_gradient():
    probs = torch.tensor([0.2, 0.3, 0.5])
    logits = probs.log().requires_grad_(True)
    sample = OneHotDist(logits).sample()
    # Forward: an exact one-hot vector.
    assert sorted(sample.tolist()) == [0.0, 0.0, 1.0]
    # Backward: the gradient of Σ sample·w is that of Σ probs·w: p_i·(w_i − p·w).
    w = torch.tensor([1.0, 2.0, 3.0])
    (sample * w).sum().backward()
    assert logits.grad.tolist() == pytest.approx([0.2 * -1.3, 0.3 * -0.3, 0.5 * 0.7], abs=1e-6)


def test_samples_follow_the_probabilities():
    torch.manual_seed(0)
    logits = torch.tensor([0.2, 0.3, 0.5]).log().expand(20000, 3)
    freq = OneHotDist(logits).sample().mean(0)
    assert freq.tolist() == pytest.approx([0.2, 0.3, 0.5], abs=0.015)


def test_mode_log_prob_entropy_and_independent_latents():
    logits = torch.tensor([[0.2, 0.8], [0.5, 0.5]]).log()  # two independent latents
    dist = OneHotDist(logits, event_dims=1)
    assert dist.mode().tolist() == [[0.0, 1.0], [1.0, 0.0]]  # ties → first class
    value = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert float(dist.log_prob(value)) == pytest.approx(math.log(0.8) + math.log(0.5))
    ent = -(0.2 * math.log(0.2) + 0.8 * math.log(0.8)) + math.log(2)
    assert float(dist.entropy()) == pytest.approx(ent)
    assert not dist.mode().requires_grad


def test_bernoulli_soft_label_is_negative_cross_entropy():
    logit = torch.tensor(0.3)
    p = 1 / (1 + math.exp(-0.3))
    target = 0.999  # γ·(1 − is_terminal)
    expected = target * math.log(p) + (1 - target) * math.log(1 - p)
    assert float(BernoulliDist(logit).log_prob(torch.tensor(target))) == pytest.approx(expected)
    assert float(BernoulliDist(logit).mean) == pytest.approx(p)


def test_unit_normal_sums_over_event_dims():
    mean = torch.zeros(2, 4, 4, 1)
    dist = MSEDist(mean, event_dims=3)
    lp = dist.log_prob(torch.ones(2, 4, 4, 1))
    # 16 pixels, each −½·1 − ½·log 2π: the per-image floor of the image loss.
    assert lp.shape == (2,)
    assert float(lp[0]) == pytest.approx(16 * (-0.5 - 0.5 * math.log(2 * math.pi)))
