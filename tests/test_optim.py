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


def test_non_finite_gradient_skips_adam_but_still_decays():
    # Official order: weight decay is applied before the (fp16 loss-scale) optimiser skips the
    # non-finite step, so the weights decay; Adam's moments and step count stay as they were.
    p = _param()
    opt = Optimizer("m", [p], OptConfig(lr=0.1, wd=0.1, clip=100.0))
    metrics = opt.step(p.sum() * float("inf"))
    assert float(p) == pytest.approx(1.8) and opt.steps == 0
    assert float(metrics["m_skipped"]) == 1 and opt.skipped == 1
    assert float(opt.m[0]) == 0.0 and float(opt.v[0]) == 0.0
    opt.step(p.sum())  # the next finite step is Adam's first (Keras step 1)
    update = 0.1 * math.sqrt(0.001) / 0.1 * 0.1 / (math.sqrt(0.001) + 1e-5)
    assert float(p) == pytest.approx(1.8 * 0.9 - update, abs=1e-6) and opt.steps == 1


def test_global_norm_accumulates_beyond_float32():
    # Squares of 3e19 and 4e19 overflow float32 (max 3.4e38); the norm 5e19 does not.
    a, b = _param(0.0), _param(0.0)
    opt = Optimizer("m", [a, b], OptConfig(lr=1e-3, wd=0.0, clip=100.0))
    metrics = opt.step(3e19 * a.sum() + 4e19 * b.sum())
    assert float(metrics["m_grad_norm"]) == pytest.approx(5e19, rel=1e-6)
    assert opt.steps == 1 and opt.skipped == 0
    assert a.grad.tolist() == pytest.approx([60.0]) and b.grad.tolist() == pytest.approx([80.0])


def test_state_round_trip_and_old_torch_adam_checkpoints():
    p = _param()
    opt = Optimizer("m", [p], OptConfig(lr=0.1, wd=0.0))
    opt.step(p.sum())
    again = Optimizer("m", [_param()], OptConfig(lr=0.1, wd=0.0))
    again.load_state_dict(opt.state_dict())
    assert again.steps == 1 and float(again.m[0]) == pytest.approx(0.1)
    old = {"opt": {"state": {0: {"exp_avg": torch.tensor([0.5]),
                                 "exp_avg_sq": torch.tensor([0.25])}}},
           "steps": 7, "skipped": 2}
    again.load_state_dict(old)
    assert (again.steps, again.skipped) == (7, 2) and float(again.v[0]) == 0.25


def test_backward_reaches_only_its_own_parameters():
    mine, other = _param(), _param()
    opt = Optimizer("m", [mine], OptConfig())
    opt.step((mine * other).sum())
    assert other.grad is None and mine.grad is not None
