"""Decoupled weight decay, Keras Adam ε, clipping, non-finite skips (spec §1.8, §9 item 11)."""

import math

import pytest
import torch

from dreamerv2_torch.config import OptConfig
from dreamerv2_torch.optim import Optimizer


def _param(value=2.0):
    return torch.nn.Parameter(torch.tensor([value]))


def test_weight_decay_is_not_scaled_by_lr():
    for lr in (1e-4, 1.0):
        p = _param()
        opt = Optimizer("m", [p], OptConfig(lr=lr, wd=0.1, clip=100.0))
        opt.step((p * 0.0).sum())  # zero gradient: Adam moves nothing
        assert float(p) == pytest.approx(2.0 * 0.9)


def test_decay_before_adam_with_keras_epsilon():
    p = _param()
    opt = Optimizer("m", [p], OptConfig(lr=0.1, eps=1e-5, wd=0.1, clip=100.0))
    opt.step(p.sum())  # gradient 1
    # Keras first step: lr·sqrt(1−β2)/(1−β1) · m/(sqrt(v) + ε) with m = 0.1, v = 0.001.
    update = 0.1 * math.sqrt(0.001) / 0.1 * 0.1 / (math.sqrt(0.001) + 1e-5)
    assert update == pytest.approx(0.0999684, abs=1e-7)
    # Decay first, then Adam (decay after would give 0.9·(2 − u)).
    assert float(p) == pytest.approx(0.9 * 2.0 - update, abs=1e-7)


def test_clipping_by_global_norm_and_logged_pre_clip_norm():
    a, b = _param(0.0), _param(0.0)
    opt = Optimizer("m", [a, b], OptConfig(lr=1e-3, wd=0.0, clip=1.0))
    metrics = opt.step(3 * a.sum() + 4 * b.sum())
    assert float(metrics["m_grad_norm"]) == pytest.approx(5.0)
    assert a.grad.tolist() == pytest.approx([0.6]) and b.grad.tolist() == pytest.approx([0.8])


def test_non_finite_gradient_skips_the_step():
    p = _param()
    opt = Optimizer("m", [p], OptConfig(lr=0.1, wd=0.1, clip=100.0))
    metrics = opt.step(p.sum() * float("inf"))
    assert float(p) == 2.0 and opt.steps == 0 and float(metrics["m_skipped"]) == 1


def test_backward_reaches_only_its_own_parameters():
    mine, other = _param(), _param()
    opt = Optimizer("m", [mine], OptConfig())
    opt.step((mine * other).sum())
    assert other.grad is None and mine.grad is not None
