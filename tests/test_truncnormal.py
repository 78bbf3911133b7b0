"""The continuous actor's truncated normal (spec §2.8, §9 item 24) against scipy.stats.truncnorm.

`dists.TruncNormalDist` samples by the inverse CDF with u ~ U(0, 1), so for a fixed u the sample
is a deterministic function x(loc, scale) with F(x; loc, scale) = u (F = the truncated CDF). Its
gradient must therefore equal the implicit-reparameterisation gradient −∂F/∂θ / p(x), which is
computed here in float64 from scipy independently of torch.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dreamerv2_torch.dists import TruncNormalDist
from dreamerv2_torch.nets import DistHead

truncnorm = pytest.importorskip("scipy.stats").truncnorm

LOW, HIGH, CLIP = -1.0, 1.0, 1e-6
# Interior, near-boundary and boundary locations; the actor's scale range is (0.1, 2.1), the rest
# are extremes that the sampler must still keep inside the support.
LOCS = [-1.0, -0.999, -0.5, 0.0, 0.3, 0.999, 1.0]
SCALES = [1e-3, 0.1, 0.5, 2.1, 10.0]


def scipy_dist(loc: float, scale: float):
    return truncnorm((LOW - loc) / scale, (HIGH - loc) / scale, loc=loc, scale=scale)


def dist(loc, scale, event_dims=0, grad="exact") -> TruncNormalDist:
    loc = torch.as_tensor(loc, dtype=torch.float32)
    scale = torch.as_tensor(scale, dtype=torch.float32)
    return TruncNormalDist(loc, scale, event_dims=event_dims, grad=grad)


@pytest.mark.parametrize("loc", LOCS)
@pytest.mark.parametrize("scale", SCALES)
def test_samples_stay_inside_the_clipped_support(loc, scale):
    torch.manual_seed(0)
    x = dist(torch.full((20_000,), loc), torch.full((20_000,), scale)).sample()
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    bound = torch.tensor(1 - CLIP, dtype=torch.float32)
    assert x.min() >= -bound and x.max() <= bound


def test_straight_through_clip_passes_gradients_at_the_boundary():
    # loc at the bound with a tiny scale: most samples are clipped, their gradient is still 1·dx.
    torch.manual_seed(0)
    loc = torch.full((1000,), 1.0, requires_grad=True)
    x = dist(loc, torch.full((1000,), 1e-3)).sample()
    x.sum().backward()
    assert torch.isfinite(loc.grad).all() and (loc.grad > 0).all()


@pytest.mark.parametrize(("loc", "scale"), [(0.0, 0.1), (0.0, 1.0), (0.7, 0.3), (-0.95, 0.5),
                                            (0.999, 0.1), (-1.0, 2.1), (0.5, 10.0)])
def test_log_prob_and_entropy_match_scipy(loc, scale):
    ref = scipy_dist(loc, scale)
    xs = np.linspace(-0.999, 0.999, 41)
    d = dist(torch.full((41,), loc), torch.full((41,), scale))
    got = d.log_prob(torch.tensor(xs, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(got, ref.logpdf(xs), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(float(d.entropy()[0]), ref.entropy(), rtol=1e-4, atol=1e-4)


def test_event_dims_sum_log_prob_and_entropy():
    loc, scale = torch.tensor([[0.2, -0.4, 0.9]]), torch.tensor([[0.3, 1.0, 0.1]])
    value = torch.tensor([[0.1, -0.5, 0.95]])
    joint, single = dist(loc, scale, event_dims=1), dist(loc, scale, event_dims=0)
    assert joint.log_prob(value).shape == (1,)
    torch.testing.assert_close(joint.log_prob(value), single.log_prob(value).sum(-1))
    torch.testing.assert_close(joint.entropy(), single.entropy().sum(-1))


@pytest.mark.parametrize(("loc", "scale"), [(0.0, 0.1), (0.0, 2.1), (0.8, 0.4), (-0.99, 0.2),
                                            (1.0, 0.1), (0.3, 1.0)])
def test_sample_moments_match_scipy(loc, scale):
    n = 200_000
    torch.manual_seed(1)
    x = dist(torch.full((n,), loc), torch.full((n,), scale)).sample().double().numpy()
    ref = scipy_dist(loc, scale)
    # 5 standard errors of the mean and (roughly) of the standard deviation.
    assert abs(x.mean() - ref.mean()) < 5 * ref.std() / np.sqrt(n) + 1e-5
    assert abs(x.std() - ref.std()) < 5 * ref.std() / np.sqrt(n / 2) + 1e-5
    # The whole distribution, not only two moments: Kolmogorov-Smirnov distance.
    grid = np.linspace(-1, 1, 201)
    empirical = np.searchsorted(np.sort(x), grid, side="right") / n
    assert np.abs(empirical - ref.cdf(grid)).max() < 0.01


def test_mode_is_the_clipped_loc():
    d = dist(torch.tensor([-1.0, 0.25, 1.0]), torch.tensor([0.5, 0.5, 0.5]))
    torch.testing.assert_close(d.mode(), torch.tensor([-1.0, 0.25, 1.0]))


def _implicit_grad(x: float, loc: float, scale: float, eps: float = 1e-6) -> tuple[float, float]:
    """dx/dloc and dx/dscale for a fixed u: −∂F(x; θ)/∂θ / p(x; θ), in float64 via scipy."""
    pdf = scipy_dist(loc, scale).pdf(x)
    dloc = (scipy_dist(loc + eps, scale).cdf(x) - scipy_dist(loc - eps, scale).cdf(x)) / (2 * eps)
    dscale = (scipy_dist(loc, scale + eps).cdf(x) - scipy_dist(loc, scale - eps).cdf(x)) / (2 * eps)
    return -dloc / pdf, -dscale / pdf


@pytest.mark.parametrize(("loc", "scale"), [(0.0, 0.5), (0.6, 0.2), (-0.8, 1.0), (0.3, 2.1),
                                            (0.95, 0.1)])
def test_reparameterised_gradients_match_the_implicit_formula(loc, scale):
    n = 64
    locs = torch.full((n,), loc, requires_grad=True)
    scales = torch.full((n,), scale, requires_grad=True)
    torch.manual_seed(2)
    x = dist(locs, scales).sample()
    # Each sample depends only on its own (loc, scale): the sum's gradient is elementwise dx/dθ.
    x.sum().backward()
    x = x.detach()
    # Samples far in a tail are poorly conditioned in float32 (p ≈ 0); compare the bulk.
    ref = scipy_dist(loc, scale)
    inside = [i for i in range(n) if 0.01 < ref.cdf(float(x[i])) < 0.99]
    assert len(inside) > n // 2
    for i in inside:
        want_loc, want_scale = _implicit_grad(float(x[i]), loc, scale)
        assert locs.grad[i].item() == pytest.approx(want_loc, rel=2e-3, abs=2e-3)
        assert scales.grad[i].item() == pytest.approx(want_scale, rel=2e-3, abs=2e-3)


def test_gradients_match_finite_differences_for_a_fixed_u():
    """The same check without scipy: perturb θ, redraw with the same seed (hence the same u)."""
    def sample(loc, scale):
        torch.manual_seed(3)
        return dist(torch.full((256,), loc), torch.full((256,), scale)).sample().double()

    loc, scale, h = 0.2, 0.6, 1e-3
    locs = torch.full((256,), loc, requires_grad=True)
    scales = torch.full((256,), scale, requires_grad=True)
    torch.manual_seed(3)
    dist(locs, scales).sample().sum().backward()
    fd_loc = (sample(loc + h, scale) - sample(loc - h, scale)) / (2 * h)
    fd_scale = (sample(loc, scale + h) - sample(loc, scale - h)) / (2 * h)
    torch.testing.assert_close(locs.grad.double(), fd_loc, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(scales.grad.double(), fd_scale, rtol=2e-2, atol=2e-2)


def test_actor_head_parameterisation():
    """loc = tanh(out), scale = 2σ((s + init_std)/2) + min_std ∈ (0.1, 2.1) (spec §2.8)."""
    head = DistHead(3, (2,), "trunc_normal", min_std=0.1, init_std=0.0)
    with torch.no_grad():
        head.out.weight.zero_()
        head.std.weight.zero_()
        head.out.bias.copy_(torch.tensor([50.0, -0.3]))
        head.std.bias.copy_(torch.tensor([-60.0, 60.0]))
    d = head(torch.zeros(1, 3))
    torch.testing.assert_close(d.loc, torch.tanh(torch.tensor([[50.0, -0.3]])))
    torch.testing.assert_close(d.scale, torch.tensor([[0.1, 2.1]]))
    assert d.sample().shape == (1, 2) and d.log_prob(d.sample()).shape == (1,)


@pytest.mark.parametrize(("loc", "scale"), [(0.0, 0.5), (0.6, 0.2), (-0.8, 1.0), (0.95, 0.1)])
def test_tf_gradient_rule_by_hand(loc, scale):
    """The default rule is TensorFlow's gradient of `StatelessParameterizedTruncatedNormal`
    (the official sampler, bounds constant): dx/dloc = 1, dx/dscale = (x − loc)/scale."""
    n = 64
    locs = torch.full((n,), loc, requires_grad=True)
    scales = torch.full((n,), scale, requires_grad=True)
    torch.manual_seed(2)
    x = TruncNormalDist(locs, scales, event_dims=0).sample()
    x.sum().backward()
    x = x.detach()
    torch.testing.assert_close(locs.grad, torch.ones(n))
    torch.testing.assert_close(scales.grad, (x - loc) / scale)
    # The same sample value as the exact rule for the same uniforms.
    torch.manual_seed(2)
    assert torch.equal(dist(torch.full((n,), loc), torch.full((n,), scale)).sample(), x)


def test_tf_and_exact_rules_differ_where_the_bounds_matter():
    """Near a bound the exact gradient moves the standardised bounds too, TF's does not."""
    loc = torch.full((1,), 0.9, requires_grad=True)
    u = torch.tensor([0.5])
    grads = {}
    for rule in ("tf", "exact"):
        loc.grad = None
        TruncNormalDist(loc, torch.tensor([0.5]), event_dims=0, grad=rule).sample_from(u).sum()\
            .backward()
        grads[rule] = float(loc.grad)
    assert grads["tf"] == 1.0 and abs(grads["exact"] - 1.0) > 0.1


def test_injected_value_keeps_each_rule_gradient():
    """`dists.injected_samples` (the parity seam) returns the given value with the rule's
    gradient: TF's 1 and (x − loc)/scale, or the exact one of the u that yields the value."""
    from dreamerv2_torch.dists import injected_samples

    value = torch.tensor([0.3, -0.7])
    for rule in ("tf", "exact"):
        loc = torch.tensor([0.1, -0.2], requires_grad=True)
        scale = torch.tensor([0.4, 0.9], requires_grad=True)
        d = TruncNormalDist(loc, scale, event_dims=0, grad=rule)
        with injected_samples(lambda _: value):
            x = d.sample()
        assert torch.equal(x.detach(), value)
        x.sum().backward()
        if rule == "tf":
            torch.testing.assert_close(loc.grad, torch.ones(2))
            torch.testing.assert_close(scale.grad, (value - loc.detach()) / scale.detach())
        else:
            u = ((torch.special.ndtr((value - d.loc) / d.scale) - d.cdf_alpha) / d.z).detach()
            loc2 = loc.detach().clone().requires_grad_()
            scale2 = scale.detach().clone().requires_grad_()
            TruncNormalDist(loc2, scale2, event_dims=0, grad="exact").sample_from(u).sum()\
                .backward()
            torch.testing.assert_close(loc.grad, loc2.grad)
            torch.testing.assert_close(scale.grad, scale2.grad)


def test_actor_head_is_two_dense_layers_of_width_n_with_their_own_glorot_bound():
    """Official `DistLayer`: Dense `out` (n) for the mean and Dense `std` (n), each Glorot-uniform
    with fan-out n: bound √(6 / (in + n)), not √(6 / (in + 2n)) of one joint layer."""
    torch.manual_seed(0)
    head = DistHead(400, (6,), "trunc_normal")
    assert head.out.weight.shape == head.std.weight.shape == (6, 400)
    bound = math.sqrt(6 / (400 + 6))
    for layer in (head.out, head.std):
        assert layer.weight.abs().max() <= bound
        assert layer.weight.abs().max() > math.sqrt(6 / (400 + 12))


def test_old_checkpoints_with_one_joint_layer_load_into_the_two_layers():
    head = DistHead(3, (2,), "trunc_normal")
    joint = {"out.weight": torch.arange(12.0).reshape(4, 3), "out.bias": torch.arange(4.0)}
    head.load_state_dict(joint)
    torch.testing.assert_close(head.out.weight, joint["out.weight"][:2])
    torch.testing.assert_close(head.std.bias, joint["out.bias"][2:])


@pytest.mark.parametrize("rule", ["tf", "exact"])
def test_config_switch_reaches_the_actor(rule):
    from dreamerv2_torch import presets
    from dreamerv2_torch.behavior import ActorCritic
    from dreamerv2_torch.envs.base import Space

    config = presets.resolve(["debug"], {"actor_trunc_grad": rule})
    space = Space((2,), np.float32, discrete=False, low=-1, high=1)
    ac = ActorCritic(4, {"action": space}, config)
    assert ac.actor(torch.zeros(1, 4)).grad == rule
