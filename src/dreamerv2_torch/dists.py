"""Output distributions of every head (spec §1.5, §1.6, §2.8; official `common/dists.py`,
`DistLayer`).

Light classes instead of `torch.distributions` so that the straight-through sample, the soft-label
Bernoulli and the reparameterised truncated normal are explicit. Every class computes in float32
(the spec's fp32 islands: distributions, KL and entropies never run in bf16). `event_dims` trailing
axes are independent and summed over (e.g. the 32 latents of the RSSM state).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


# The public sampling seam (`injected_samples`): while set, `sample()` of every OneHotDist and
# TruncNormalDist takes its value from this callable instead of drawing it.
_DRAW: list[Callable] = []


@contextlib.contextmanager
def injected_samples(draw: Callable[[object], torch.Tensor]) -> Iterator[None]:
    """Within the block, `dist.sample()` returns `draw(dist)` as its value, with the gradient the
    sample would have had (straight-through for one-hots, the configured rule for the truncated
    normal). Used to replay the official code's draws in the parity test (tests/test_parity.py)."""
    _DRAW.append(draw)
    try:
        yield
    finally:
        _DRAW.pop()


def _sum(x: torch.Tensor, dims: int) -> torch.Tensor:
    return x.sum(dim=tuple(range(-dims, 0))) if dims else x


class OneHotDist:
    """Categorical over the last axis with one-hot samples and straight-through gradients."""

    def __init__(self, logits: torch.Tensor, event_dims: int = 0):
        self.logits = logits.float()
        self.event_dims = event_dims  # independent axes before the class axis

    @property
    def probs(self) -> torch.Tensor:
        return torch.softmax(self.logits, -1)

    @property
    def log_probs(self) -> torch.Tensor:
        return torch.log_softmax(self.logits, -1)

    def sample(self) -> torch.Tensor:
        """One-hot sample; forward value exact, gradient that of the probabilities (spec §1.5)."""
        probs = self.probs
        if _DRAW:
            sample = _DRAW[-1](self).to(probs.dtype).detach()
            return sample + (probs - probs.detach())
        with torch.no_grad():
            # Inverse-CDF sampling: an exact categorical draw, cheaper than multinomial on CPU.
            u = torch.rand(probs.shape[:-1] + (1,), device=probs.device, dtype=probs.dtype)
            index = (probs.cumsum(-1) < u).sum(-1).clamp_(max=probs.shape[-1] - 1)
            sample = F.one_hot(index, probs.shape[-1]).to(probs.dtype)
        # probs − sg(probs) is exactly 0 forward, so the value is an exact one-hot (as the official
        # `sample += probs - stop_gradient(probs)`); `sample + probs − sg(probs)` would round
        # 1 + p − p to 1 ± 1 ulp.
        return sample + (probs - probs.detach())

    def mode(self) -> torch.Tensor:
        """One-hot of the argmax, without gradient."""
        return F.one_hot(self.logits.argmax(-1), self.logits.shape[-1]).to(self.logits.dtype)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return _sum((value.float() * self.log_probs).sum(-1), self.event_dims)

    def entropy(self) -> torch.Tensor:
        return _sum(-(self.probs * self.log_probs).sum(-1), self.event_dims)


def kl_categorical(lhs_logits: torch.Tensor, rhs_logits: torch.Tensor, event_dims: int = 1):
    """KL(lhs ‖ rhs) of independent categoricals, summed over the `event_dims` latent axes."""
    lhs = torch.log_softmax(lhs_logits.float(), -1)
    rhs = torch.log_softmax(rhs_logits.float(), -1)
    return _sum((lhs.exp() * (lhs - rhs)).sum(-1), event_dims)


class MSEDist:
    """Normal with unit variance (the official `mse` dist): log-likelihood = −½(x−μ)² − log√(2π)."""

    def __init__(self, mean: torch.Tensor, event_dims: int = 0):
        self.mean = mean.float()
        self.event_dims = event_dims

    def mode(self) -> torch.Tensor:
        return self.mean

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return _sum(-0.5 * (value.float() - self.mean) ** 2 - _LOG_SQRT_2PI, self.event_dims)


class BernoulliDist:
    """Bernoulli from logits; `log_prob` accepts soft targets (the discount head's
    γ·(1−terminal))."""

    def __init__(self, logits: torch.Tensor, event_dims: int = 0):
        self.logits = logits.float()
        self.event_dims = event_dims

    @property
    def mean(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)

    def mode(self) -> torch.Tensor:
        return (self.logits > 0).float()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        # x·log σ(l) + (1−x)·log(1−σ(l)), the negative sigmoid cross-entropy with a soft label.
        value = value.float()
        return _sum(-(value * F.softplus(-self.logits) + (1 - value) * F.softplus(self.logits)),
                    self.event_dims)


GRAD_RULES = ("tf", "exact")


class TruncNormalDist:
    """Normal(loc, scale) truncated to [low, high], sampled by the inverse CDF (spec §2.8).

    x = loc + scale·Φ⁻¹(Φ(α) + u·(Φ(β) − Φ(α))) with u ~ U(0, 1). Samples are clipped to
    ±(1 − 1e-6) with a straight-through clip as in the official code. Independent over the last
    `event_dims` axes. The sample's gradient (`grad`):

    - `tf` (default): TensorFlow's registered gradient of `StatelessParameterizedTruncatedNormal`,
      which the official TFP sampler uses with constant bounds: ∂x/∂loc = 1 and
      ∂x/∂scale = (x − loc)/scale. The official DMC results were produced with it.
    - `exact`: differentiate the inverse CDF itself with u fixed (the exact reparameterisation
      gradient, which also moves the standardised bounds α, β with loc and scale).

    Both give the same sample value.
    """

    def __init__(self, loc, scale, low=-1.0, high=1.0, clip=1e-6, event_dims: int = 1,
                 grad: str = "tf"):
        if grad not in GRAD_RULES:
            raise ValueError(f"unknown truncated-normal gradient '{grad}' {GRAD_RULES}")
        self.loc, self.scale = loc.float(), scale.float()
        self.low, self.high, self.clip, self.event_dims = low, high, clip, event_dims
        self.grad = grad
        self.alpha = (low - self.loc) / self.scale
        self.beta = (high - self.loc) / self.scale
        self.cdf_alpha = torch.special.ndtr(self.alpha)
        self.z = (torch.special.ndtr(self.beta) - self.cdf_alpha).clamp_min(1e-12)

    def sample(self) -> torch.Tensor:
        if _DRAW:
            return self.with_value(_DRAW[-1](self))
        return self.sample_from(torch.rand_like(self.loc))

    def sample_from(self, u: torch.Tensor) -> torch.Tensor:
        """The sample for given uniforms u ∈ (0, 1) (the seam `sample` and the tests use)."""
        if self.grad == "exact":
            p = (self.cdf_alpha + u * self.z).clamp(1e-7, 1 - 1e-7)
            x = self.loc + self.scale * torch.special.ndtri(p)
        else:
            with torch.no_grad():
                p = (self.cdf_alpha + u * self.z).clamp(1e-7, 1 - 1e-7)
                value = self.loc + self.scale * torch.special.ndtri(p)
                xi = (value - self.loc) / self.scale  # the standardised sample, a constant
            # loc + scale·sg(xi) has TF's gradient; adding it as a zero keeps the value exact.
            x = value + (self.loc + self.scale * xi - (self.loc + self.scale * xi).detach())
        return self.clipped(x)

    def with_value(self, value: torch.Tensor) -> torch.Tensor:
        """A given (injected) sample value with this distribution's sample gradient."""
        value = value.float().detach()
        if self.grad == "exact":
            u = ((torch.special.ndtr((value - self.loc) / self.scale) - self.cdf_alpha)
                 / self.z).detach()
            x = self.loc + self.scale * torch.special.ndtri(self.cdf_alpha + u * self.z)
        else:
            xi = ((value - self.loc) / self.scale).detach()
            x = self.loc + self.scale * xi
        return self.clipped(value + (x - x.detach()))

    def clipped(self, x: torch.Tensor) -> torch.Tensor:
        """Straight-through clip to [low + clip, high − clip] (official `TruncNormalDist`)."""
        clipped = x.clamp(self.low + self.clip, self.high - self.clip)
        return x + (clipped - x).detach()

    def mode(self) -> torch.Tensor:
        return self.loc.clamp(self.low, self.high)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        xi = (value.float() - self.loc) / self.scale
        out = -0.5 * xi ** 2 - _LOG_SQRT_2PI - torch.log(self.scale) - torch.log(self.z)
        return _sum(out, self.event_dims)

    def entropy(self) -> torch.Tensor:
        phi = lambda x: torch.exp(-0.5 * x ** 2) / math.sqrt(2 * math.pi)
        out = (math.log(math.sqrt(2 * math.pi * math.e)) + torch.log(self.scale * self.z)
               + (self.alpha * phi(self.alpha) - self.beta * phi(self.beta)) / (2 * self.z))
        return _sum(out, self.event_dims)
