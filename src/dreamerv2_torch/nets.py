"""Building blocks: Keras-initialised layers, MLP, the layer-normed GRU cell, distribution heads.

Spec §1.4 (GRU), §1.6 (heads), §1.9 (Keras defaults: Glorot-uniform kernels, zero biases, LayerNorm
ε 1e-3, VALID padding, ELU); official `common/nets.py`. The conv encoder/decoder live in `conv.py`.
"""

from __future__ import annotations

import dataclasses
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

    One Dense maps concat(x, h) to 3·D pre-activations, one LayerNorm (fp32, ε 1e-3) normalises all
    of them jointly, then reset r, candidate c, update u: c = tanh(σ(r)·c), u = σ(u − 1),
    h' = u·c + (1 − u)·h. The −1 bias keeps the old state at initialisation.
    """

    def __init__(self, inp: int, size: int):
        super().__init__()
        self.size = size
        self.layer = linear(inp + size, 3 * size)
        self.norm = nn.LayerNorm(3 * size, eps=LN_EPS)

    def forward(self, x: torch.Tensor, h: torch.Tensor, layer=None) -> torch.Tensor:
        """`layer` replaces `self.layer` (same weights), e.g. a `LoopLinears` entry."""
        parts = (layer or self.layer)(torch.cat([x, h.to(x.dtype)], -1))
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
                 init_std: float = 0.0, trunc_grad: str = "tf"):
        super().__init__()
        self.shape, self.dist = tuple(shape), dist
        self.min_std, self.init_std, self.trunc_grad = min_std, init_std, trunc_grad
        size = math.prod(self.shape)
        if dist not in ("mse", "binary", "onehot", "trunc_normal"):
            raise ValueError(f"unknown dist '{dist}' (mse, binary, onehot, trunc_normal)")
        if trunc_grad not in dists.GRAD_RULES:
            raise ValueError(f"unknown trunc_normal gradient '{trunc_grad}' {dists.GRAD_RULES}")
        self.out = linear(inp, size)
        if dist == "trunc_normal":
            # Its own Dense of width n, as the official `std` layer (Glorot fan-out n, not 2n).
            self.std = linear(inp, size)
            self._register_load_state_dict_pre_hook(_split_joint_actor_layer)

    def forward(self, x: torch.Tensor):
        out = self.out(x).float()
        if self.dist == "trunc_normal":
            std = self.std(x).float()
            loc = torch.tanh(out)
            scale = 2 * torch.sigmoid((std + self.init_std) / 2) + self.min_std
            return dists.TruncNormalDist(loc, scale, event_dims=len(self.shape),
                                         grad=self.trunc_grad)
        out = out.reshape(out.shape[:-1] + self.shape)
        if self.dist == "mse":
            return dists.MSEDist(out, event_dims=len(self.shape))
        if self.dist == "binary":
            return dists.BernoulliDist(out, event_dims=len(self.shape))
        return dists.OneHotDist(out, event_dims=len(self.shape) - 1)


def _split_joint_actor_layer(state_dict, prefix, *args) -> None:
    """Load checkpoints written before the actor head had two layers: one Dense of width 2n held
    (mean, std) in its two halves, which are exactly the weights of `out` and `std` now."""
    weight = state_dict.get(prefix + "out.weight")
    if weight is not None and prefix + "std.weight" not in state_dict:
        for name in ("weight", "bias"):
            mean, std = state_dict.pop(prefix + "out." + name).chunk(2, 0)
            state_dict[prefix + "out." + name], state_dict[prefix + "std." + name] = mean, std


class Head(nn.Module):
    """MLP trunk + DistHead: the reward, discount, actor and critic networks."""

    def __init__(self, inp: int, shape: Sequence[int], layers: int, units: int, act: str,
                 norm: str, dist: str, min_std: float = 0.1, init_std: float = 0.0,
                 trunc_grad: str = "tf"):
        super().__init__()
        self.trunk = MLP(inp, [units] * layers, act, norm)
        self.dist = DistHead(self.trunk.out_dim, shape, dist, min_std, init_std, trunc_grad)

    def forward(self, x: torch.Tensor):
        return self.dist(self.trunk(x))


def compute_dtype(device: torch.device | str, dtype: torch.dtype = torch.float32) -> torch.dtype:
    """The dtype autocast computes matmuls in on `device` right now (`dtype` when it is off)."""
    kind = torch.device(device).type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else dtype


class _Tape:
    """Inputs and output gradients of one layer at every loop step, keyed by step."""

    def __init__(self):
        self.inputs: dict[int, torch.Tensor] = {}
        self.grads: dict[int, torch.Tensor] = {}


class _Gather(torch.autograd.Function):
    """Identity on (weight, bias) in the compute dtype; its backward, which autograd runs after
    every step that used them, computes both gradients as one matmul over all steps."""

    @staticmethod
    def forward(ctx, weight, bias, tape, dtype):
        ctx.set_materialize_grads(False)
        ctx.tape, ctx.dtype, ctx.has_bias = tape, weight.dtype, bias is not None
        return weight.to(dtype), (bias.to(dtype) if bias is not None else None)

    @staticmethod
    def backward(ctx, grad_weight, grad_bias):  # both None: the steps return no weight grads
        tape = ctx.tape
        steps = sorted(tape.grads)  # a step whose output got no gradient contributes nothing
        if not steps:
            return None, None, None, None
        grad = torch.cat([tape.grads[t] for t in steps])  # (steps·B, out)
        inp = torch.cat([tape.inputs[t] for t in steps])  # (steps·B, in)
        tape.inputs.clear()
        tape.grads.clear()
        grad_bias = grad.sum(0, dtype=ctx.dtype) if ctx.has_bias else None
        return (grad.t() @ inp).to(ctx.dtype), grad_bias, None, None


class _Step(torch.autograd.Function):
    """y = x·Wᵀ + b whose backward returns only the input gradient and leaves the output gradient
    on the tape for `_Gather`."""

    @staticmethod
    def forward(ctx, x, weight, bias, tape, step):
        ctx.dtype = x.dtype
        x = x.to(weight.dtype)
        tape.inputs[step] = x
        ctx.save_for_backward(weight)
        ctx.tape, ctx.step = tape, step
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        (weight,) = ctx.saved_tensors
        ctx.tape.grads[ctx.step] = grad
        grad_x = (grad @ weight).to(ctx.dtype) if ctx.needs_input_grad[0] else None
        return grad_x, None, None, None, None


class LoopLinears:
    """Linear layers applied at every step of a recurrent loop, with batched weight gradients.

    Plain autograd computes a weight gradient per step and layer, a (B×out)ᵀ·(B×in) product with
    B = 16 rows that runs far below matmul speed, and accumulates them one by one (in bf16 under
    autocast). Here each step computes only its input gradient; the weight and bias gradients are
    one matmul over all T·B rows (fp32 accumulation inside the GEMM). Same maths, summed in a
    different order. Call `step(t)` once per loop iteration, then `layer(name)(x)`.
    """

    def __init__(self, layers: dict[str, tuple[torch.Tensor, torch.Tensor | None]],
                 dtype: torch.dtype):
        self._params = {}
        for name, (weight, bias) in layers.items():
            tape = _Tape()
            self._params[name] = (*_Gather.apply(weight, bias, tape, dtype), tape)
        self._step = 0

    def step(self, t: int) -> None:
        self._step = t

    def layer(self, name: str):
        weight, bias, tape = self._params[name]
        return lambda x: _Step.apply(x, weight, bias, tape, self._step)


@dataclasses.dataclass(frozen=True)
class FastPaths:
    """Resolved speed switches (config `conv_matmul`, `batched_grads`, `jit`, `policy_fp32`);
    none changes the maths of an update."""

    conv_matmul: bool = False
    batched_grads: bool = False
    jit: bool = False
    policy_fp32: bool = False
