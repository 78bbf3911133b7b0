"""λ-returns, discount weights, actor/critic loss indexing and the slow critic, against
hand-computed values (spec §2.3–§2.7, §9 items 3, 5, 6, 16)."""

import math

import numpy as np
import pytest
import torch

from dreamerv2_torch import presets
from dreamerv2_torch.behavior import (
    ActorCritic,
    discount_weights,
    imagined_discounts,
    lambda_return,
)
from dreamerv2_torch.envs.base import Space

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def col(values):
    return torch.tensor(values, dtype=torch.float32)[:, None]  # (K, N=1)


def test_lambda_return_by_hand():
    # r = (1, 2, 3), v = (0.5, 1, 1.5), v_3 = 2, d = (0.9, 0.8, 0.5), λ = 0.5:
    # R_3 = 2; R_2 = 3 + 0.5·(0.5·2 + 0.5·2) = 4; R_1 = 2 + 0.8·(0.5·1.5 + 0.5·4) = 4.2;
    # R_0 = 1 + 0.9·(0.5·1 + 0.5·4.2) = 3.34.
    reward, value, disc = col([1, 2, 3]), col([0.5, 1.0, 1.5]), col([0.9, 0.8, 0.5])
    out = lambda_return(reward, value, disc, torch.tensor([2.0]), 0.5)
    assert out[:, 0].tolist() == pytest.approx([3.34, 4.2, 4.0])
    # λ = 1 is the discounted Monte-Carlo return bootstrapped with v_3: 5.68, 5.2, 4.
    out = lambda_return(reward, value, disc, torch.tensor([2.0]), 1.0)
    assert out[:, 0].tolist() == pytest.approx([5.68, 5.2, 4.0])
    # λ = 0 is the one-step TD target r_k + d_k·v_{k+1}: 1.9, 3.2, 4.
    out = lambda_return(reward, value, disc, torch.tensor([2.0]), 0.0)
    assert out[:, 0].tolist() == pytest.approx([1.9, 3.2, 4.0])


def test_discount_weights_are_shifted_cumprod():
    # w_0 = 1, w_k = Π_{j<k} d_j: the last discount never enters.
    w = discount_weights(col([0.99, 0.9, 0.8, 0.0]))
    assert w[:, 0].tolist() == pytest.approx([1.0, 0.99, 0.891, 0.7128])


def test_first_discount_comes_from_the_data():
    predicted = col([0.5, 0.9, 0.8]).repeat(1, 2)  # (H+1, N=2)
    disc = imagined_discounts(predicted, torch.tensor([True, False]), 0.99, predicted.shape)
    # d_0 = γ·(1 − is_terminal); later ones are the head's mean, not multiplied by γ again.
    assert disc[:, 0].tolist() == pytest.approx([0.0, 0.9, 0.8])
    assert disc[:, 1].tolist() == pytest.approx([0.99, 0.9, 0.8])
    assert discount_weights(disc)[:, 0].tolist() == pytest.approx([1.0, 0.0, 0.0])
    # Without a discount head every d_k is γ (DMC).
    disc = imagined_discounts(None, torch.tensor([False]), 0.99, torch.Size([3, 1]))
    assert disc[:, 0].tolist() == pytest.approx([0.99, 0.99, 0.99])


def test_without_a_discount_head_a_terminal_start_still_gets_gamma():
    """Official `imagine`: without a discount head disc = γ·ones for every step, the first
    included, whatever `is_terminal` says (spec §2.3); only the head's prediction is overridden."""
    disc = imagined_discounts(None, torch.tensor([True, False]), 0.9, torch.Size([3, 2]))
    torch.testing.assert_close(disc, torch.full((3, 2), 0.9))
    assert discount_weights(disc)[:, 0].tolist() == pytest.approx([1.0, 0.9, 0.81])
    # λ-returns of a terminal start are then discounted as any other: r = 1, v = 0, bootstrap 0.
    returns = lambda_return(torch.ones(2, 2), torch.zeros(2, 2), disc[:-1], torch.zeros(2), 1.0)
    assert returns[:, 0].tolist() == pytest.approx([1.9, 1.0])


def test_reward_std_metric_is_the_population_std():
    """The official StreamNorm logs `inputs.std()` (tf.math.reduce_std: divides by n)."""
    ac = _behavior(discrete=True)
    feat, action, reward, disc = _trajectory()
    *_, metrics = ac.loss_terms(feat, action, reward, disc, step=0)
    # rewards 0.5, 1, 1.5, 2: mean 1.25, population variance 0.3125.
    assert float(metrics["reward_std"]) == pytest.approx(math.sqrt(0.3125))


def _behavior(actor_grad="reinforce", actor_ent=0.0, lam=0.5, discrete=True):
    config = presets.resolve(["debug"], {
        "actor.layers": 0, "critic.layers": 0, "actor_grad": actor_grad,
        "actor_ent": actor_ent, "discount_lambda": lam})
    space = Space((2,), np.float32, discrete=discrete, low=0 if discrete else -1, high=1)
    ac = ActorCritic(2, {"action": space}, config)
    with torch.no_grad():  # linear heads: slow value = feat[0], online critic = feat[1]
        for p in ac.actor.parameters():
            p.zero_()  # uniform policy: log π(a) = log 0.5, entropy log 2
        ac.target_critic.dist.out.weight.copy_(torch.tensor([[1.0, 0.0]]))
        ac.target_critic.dist.out.bias.zero_()
        ac.critic.dist.out.weight.copy_(torch.tensor([[0.0, 1.0]]))
        ac.critic.dist.out.bias.zero_()
    return ac


def _trajectory():
    # H = 3: states 0..3. Slow values v = (1, 2, 3, 4), online critic c = (0.1, 0.2, 0.3, 0.4).
    feat = torch.tensor([[1.0, 0.1], [2.0, 0.2], [3.0, 0.3], [4.0, 0.4]])[:, None]
    action = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])[:, None]
    reward = col([0.5, 1.0, 1.5, 2.0])
    disc = col([1.0, 0.5, 0.5, 0.5])
    # With λ = 0.5: R_2 = 1.5 + 0.5·4 = 3.5, R_1 = 1 + 0.5·(1.5 + 1.75) = 2.625,
    # R_0 = 0.5 + 1·(1 + 1.3125) = 2.8125; weights w = (1, 1, 0.5, 0.25).
    return feat, action, reward, disc


def test_reinforce_pairs_next_return_with_current_slow_baseline():
    ac = _behavior("reinforce")
    actor_loss, critic_loss, metrics = ac.loss_terms(*_trajectory(), step=0)
    # States k = 0, 1 (H−1 of them): advantages R_1 − v_0 = 1.625 and R_2 − v_1 = 1.5,
    # log π = log 0.5, weights w_0 = w_1 = 1.
    expected = -(math.log(0.5) * 1.625 + math.log(0.5) * 1.5) / 2
    assert float(actor_loss.detach()) == pytest.approx(expected, rel=1e-5)
    # Critic on states 0..2 against R_0..R_2 with weights (1, 1, 0.5).
    terms = [w * (0.5 * (c - r) ** 2 + LOG_SQRT_2PI)
             for w, c, r in zip([1, 1, 0.5], [0.1, 0.2, 0.3], [2.8125, 2.625, 3.5])]
    assert float(critic_loss) == pytest.approx(sum(terms) / 3, rel=1e-5)
    assert float(metrics["critic_target"]) == pytest.approx((2.8125 + 2.625 + 3.5) / 3)
    assert float(metrics["critic_slow"]) == pytest.approx(2.5)


def test_dynamics_objective_and_entropy_bonus():
    ac = _behavior("dynamics", actor_ent=0.1)
    actor_loss, _, metrics = ac.loss_terms(*_trajectory(), step=0)
    # −mean_k w_k·(R_{k+1} + η·H[π_k]) over k = 0, 1.
    expected = -((2.625 + 0.1 * math.log(2)) + (3.5 + 0.1 * math.log(2))) / 2
    assert float(actor_loss) == pytest.approx(expected, rel=1e-5)
    assert float(metrics["actor_ent"]) == pytest.approx(math.log(2), rel=1e-5)


def test_both_mixes_the_two_objectives():
    ac = _behavior("both")
    ac.actor_grad_mix = lambda step: 0.25
    actor_loss, _, metrics = ac.loss_terms(*_trajectory(), step=0)
    reinforce = [math.log(0.5) * 1.625, math.log(0.5) * 1.5]
    expected = -sum(0.25 * r + 0.75 * g for r, g in zip([2.625, 3.5], reinforce)) / 2
    assert float(actor_loss) == pytest.approx(expected, rel=1e-5)
    assert float(metrics["actor_grad_mix"]) == 0.25


def test_slow_critic_copied_after_updates_1_101_201():
    ac = _behavior()
    copies = []
    for update in range(1, 302):
        with torch.no_grad():
            ac.critic.dist.out.bias.fill_(float(update))
        ac.update_slow_target()
        copies.append(float(ac.target_critic.dist.out.bias))
    # The target holds the critic of update 1 until update 101, then 101 until 201, and so on.
    assert copies[0] == 1 and copies[99] == 1
    assert copies[100] == 101 and copies[199] == 101
    assert copies[200] == 201 and copies[299] == 201 and copies[300] == 301
    assert int(ac.updates) == 301
