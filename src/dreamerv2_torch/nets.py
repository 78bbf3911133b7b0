"""Building blocks: Keras-initialised layers, MLP, the layer-normed GRU cell, distribution heads.

Spec §1.4 (GRU), §1.6 (heads), §1.9 (Keras defaults: Glorot-uniform kernels, zero biases, LayerNorm
ε 1e-3, VALID padding, ELU); official `common/nets.py`. The conv encoder/decoder live in `conv.py`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import dists

ACTS = {"elu": nn.ELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}
LN_EPS = 1e-3  # Keras LayerNormalization default


def keras_init(module: nn.Module) -> nn.Module:
    """Glorot-uniform weights and zero biases for every Linear/Conv in `module` (spec §1.9)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def linear(inp: int, out: int, bias: bool = True) -> nn.Linear:
    return keras_init(nn.Linear(inp, out, bias=bias))


def norm_layer(kind: str, size: int) -> nn.Module:
    """`none` or a LayerNorm over the feature axis (ε 1e-3)."""
    if kind == "none":
        return nn.Identity()
    if kind == "layer":
        return nn.LayerNorm(size, eps=LN_EPS)
    raise ValueError(f"unknown norm '{kind}' (none, layer)")


class MLP(nn.Module):
    """`len(units)` × [Dense → norm → act]."""

    def __init__(self, inp: int, units: Sequence[int], act: str = "elu", norm: str = "none"):
        super().__init__()
        layers: list[nn.Module] = []
        for width in units:
            layers += [linear(inp, width), norm_layer(norm, width), ACTS[act]()]
            inp = width
        self.net = nn.Sequential(*layers)
        self.out_dim = inp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GRUCell(nn.Module):
    """The GRU variant of spec §1.4 (not `nn.GRUCell`).

    One Dense maps concat(x, h) to 3·D pre-activations, one LayerNorm (fp32, ε 1e-3) normalises all of
    them jointly, then reset r, candidate c, update u: c = tanh(σ(r)·c), u = σ(u − 1),
    h' = u·c + (1 − u)·h. The −1 bias keeps the old state at initialisation.
    """

    def __init__(self, inp: int, size: int):
        super().__init__()
        self.size = size
        self.layer = linear(inp + size, 3 * size)
        self.norm = nn.LayerNorm(3 * size, eps=LN_EPS)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        parts = self.layer(torch.cat([x, h.to(x.dtype)], -1))
        return self.gates(parts, h)

    def gates(self, parts: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Everything after the Dense layer, for callers that computed `parts` themselves."""
        # The norm and the gates run in float32 even under autocast: the recurrent state h is
        # carried in fp32 over 50 observe / 15 imagine steps, where bf16 rounding would accumulate.
        normed = F.layer_norm(parts.float(), (3 * self.size,), self.norm.weight.float(),
                              self.norm.bias.float(), LN_EPS)
        reset, cand, update = normed.split(self.size, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1.0)
        return update * cand + (1 - update) * h.float()


class DistHead(nn.Module):
    """Dense output layer + distribution (the official `DistLayer`); outputs in float32."""

    def __init__(self, inp: int, shape: Sequence[int], dist: str, min_std: float = 0.1,
                 init_std: float = 0.0):
        super().__init__()
        self.shape, self.dist = tuple(shape), dist
        self.min_std, self.init_std = min_std, init_std
        size = math.prod(self.shape)
        if dist not in ("mse", "binary", "onehot", "trunc_normal"):
            raise ValueError(f"unknown dist '{dist}' (mse, binary, onehot, trunc_normal)")
        self.out = linear(inp, size * (2 if dist == "trunc_normal" else 1))

    def forward(self, x: torch.Tensor):
        out = self.out(x).float()
        if self.dist == "trunc_normal":
            mean, std = out.chunk(2, -1)
            loc = torch.tanh(mean)
            scale = 2 * torch.sigmoid((std + self.init_std) / 2) + self.min_std
            return dists.TruncNormalDist(loc, scale, event_dims=len(self.shape))
        out = out.reshape(out.shape[:-1] + self.shape)
        if self.dist == "mse":
            return dists.MSEDist(out, event_dims=len(self.shape))
        if self.dist == "binary":
            return dists.BernoulliDist(out, event_dims=len(self.shape))
        return dists.OneHotDist(out, event_dims=len(self.shape) - 1)


class Head(nn.Module):
    """MLP trunk + DistHead: the reward, discount, actor and critic networks."""

    def __init__(self, inp: int, shape: Sequence[int], layers: int, units: int, act: str,
                 norm: str, dist: str, min_std: float = 0.1, init_std: float = 0.0):
        super().__init__()
        self.trunk = MLP(inp, [units] * layers, act, norm)
        self.dist = DistHead(self.trunk.out_dim, shape, dist, min_std, init_std)

    def forward(self, x: torch.Tensor):
        return self.dist(self.trunk(x))
