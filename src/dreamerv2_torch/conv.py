"""Observation encoder and decoder (spec §1.2, §1.6; official `common/nets.py` Encoder/Decoder).

Keys are routed by regex (`re.match`, as the official code) and rank: rank-3 keys matching
`cnn_keys` go through the CNN (concatenated along channels), rank-1 keys matching `mlp_keys` through
the MLP. Images arrive as (..., H, W, C) like the official NHWC code; the convolutions run on a
channels-last view, which is the same memory, so no transpose copy is made.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import dists
from .nets import ACTS, LN_EPS, MLP, DistHead, keras_init


def select_keys(shapes: Mapping[str, tuple], cnn_keys: str, mlp_keys: str):
    cnn = [k for k, s in shapes.items() if re.match(cnn_keys, k) and len(s) == 3]
    mlp = [k for k, s in shapes.items() if re.match(mlp_keys, k) and len(s) == 1]
    return cnn, mlp


class ChannelNorm(nn.Module):
    """LayerNorm over the channel axis of each pixel (the official conv `norm: layer`)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _conv_norm(kind: str, channels: int) -> nn.Module:
    return ChannelNorm(channels) if kind == "layer" else nn.Identity()


class _Patches(torch.autograd.Function):
    """(N, H, W, C) → (N·OH·OW, kh·kw·C) patches of a VALID strided convolution.

    The backward adds each of the kh·kw kernel taps back with one strided slice-add; autograd's
    generic backward of an overlapping `as_strided` view is a slow single-threaded index_add.
    """

    @staticmethod
    def forward(ctx, x, kernel, stride):
        (kh, kw), (sh, sw) = kernel, stride
        n, h, w, c = x.shape
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
        s = x.stride()
        ctx.geometry = (x.shape, kernel, stride, (oh, ow))
        patches = x.as_strided((n, oh, ow, kh, kw, c), (s[0], sh * s[1], sw * s[2], *s[1:]))
        return patches.reshape(n * oh * ow, kh * kw * c)

    @staticmethod
    def backward(ctx, grad):
        shape, (kh, kw), (sh, sw), (oh, ow) = ctx.geometry
        grad = grad.reshape(shape[0], oh, ow, kh, kw, shape[3])
        out = grad.new_zeros(shape)
        for i in range(kh):
            rows = slice(i, i + sh * (oh - 1) + 1, sh)
            for j in range(kw):
                out[:, rows, j:j + sw * (ow - 1) + 1:sw] += grad[:, :, :, i, j]
        return out, None, None


class PatchConv2d(nn.Conv2d):
    """A VALID, unpadded Conv2d computed as one matmul over its input patches (identical maths).

    For tiny outputs (the encoder's last layer: 2×2 positions from 6×6×384 patches of 3072 values)
    oneDNN's direct convolution runs at a fraction of matmul speed on CPU (measured 2.5× slower
    forward and backward). The parameters are the Conv2d's, so checkpoints do not care which runs.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W), channels-last memory
        n, _, h, w = x.shape
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
        x = x.permute(0, 2, 3, 1).contiguous()  # NHWC; a no-op for channels-last input
        patches = _Patches.apply(x, self.kernel_size, self.stride)  # (N·OH·OW, kh·kw·C)
        weight = self.weight.permute(0, 2, 3, 1).reshape(self.out_channels, -1)  # (O, kh·kw·C)
        out = F.linear(patches, weight, self.bias)
        return out.reshape(n, oh, ow, -1).permute(0, 3, 1, 2)  # NCHW view of NHWC memory


class Encoder(nn.Module):
    """CNN over images + MLP over vectors → one embedding per time step."""

    def __init__(self, shapes: Mapping[str, tuple], cnn_keys: str, mlp_keys: str, act: str,
                 norm: str, cnn_depth: int, cnn_kernels: Sequence[int],
                 mlp_layers: Sequence[int], conv_matmul: bool = False):
        super().__init__()
        self.cnn_keys, self.mlp_keys = select_keys(shapes, cnn_keys, mlp_keys)
        if not self.cnn_keys and not self.mlp_keys:
            raise ValueError(f"encoder: no observation key matches cnn_keys={cnn_keys!r} or "
                             f"mlp_keys={mlp_keys!r}; keys and shapes: {dict(shapes)}")
        self.embed_dim = 0
        if self.cnn_keys:
            height, width = shapes[self.cnn_keys[0]][:2]
            channels = sum(shapes[k][-1] for k in self.cnn_keys)
            layers: list[nn.Module] = []
            for i, kernel in enumerate(cnn_kernels):
                depth = 2 ** i * cnn_depth
                height, width = (height - kernel) // 2 + 1, (width - kernel) // 2 + 1
                if min(height, width) < 1:
                    raise ValueError(f"encoder.cnn_kernels {tuple(cnn_kernels)} are too many or "
                                     f"too large for {shapes[self.cnn_keys[0]][:2]} images")
                conv = PatchConv2d if conv_matmul and height * width <= 4 else nn.Conv2d
                layers += [conv(channels, depth, kernel, 2), _conv_norm(norm, depth), ACTS[act]()]
                channels = depth
            self.cnn = keras_init(nn.Sequential(*layers)).to(memory_format=torch.channels_last)
            self.embed_dim += channels * height * width
        if self.mlp_keys:
            self.mlp = MLP(sum(shapes[k][0] for k in self.mlp_keys), mlp_layers, act, norm)
            self.embed_dim += self.mlp.out_dim

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        outs = []
        if self.cnn_keys:
            x = torch.cat([obs[k] for k in self.cnn_keys], -1)  # (..., H, W, C)
            lead = x.shape[:-3]
            x = x.reshape((-1,) + x.shape[-3:]).permute(0, 3, 1, 2)  # NCHW view, NHWC memory
            x = self.cnn(x).permute(0, 2, 3, 1)  # flatten in (H, W, C) order like TF
            outs.append(x.reshape(lead + (-1,)))
        if self.mlp_keys:
            outs.append(self.mlp(torch.cat([obs[k] for k in self.mlp_keys], -1)))
        return torch.cat(outs, -1) if len(outs) > 1 else outs[0]


class OneByOneConvTranspose(nn.Module):
    """A ConvTranspose2d applied to a 1×1 input, computed as one matmul (identical maths).

    On a 1×1 input, output[n, c, i, j] = Σ_k x[n, k]·W[k, c, i, j] + b[c]. The parameters keep the
    ConvTranspose2d shapes and Glorot fans; only the kernel launch changes (it was the single most
    expensive op of the update as a real transposed convolution on CPU).
    """

    def __init__(self, inp: int, out: int, kernel: int):
        super().__init__()
        ref = keras_init(nn.ConvTranspose2d(inp, out, kernel, 2))
        self.weight, self.bias, self.kernel = ref.weight, ref.bias, kernel  # (inp, out, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, inp) -> (N, out, k, k)
        y = x @ self.weight.reshape(self.weight.shape[0], -1).to(x.dtype)
        y = y.reshape(x.shape[0], -1, self.kernel, self.kernel)
        y = y + self.bias.to(y.dtype)[:, None, None]
        return y.contiguous(memory_format=torch.channels_last)


class Decoder(nn.Module):
    """feat → unit-variance Normal over every image key (CNN) and vector key (MLP)."""

    def __init__(self, shapes: Mapping[str, tuple], feat_dim: int, cnn_keys: str, mlp_keys: str,
                 act: str, norm: str, cnn_depth: int, cnn_kernels: Sequence[int],
                 mlp_layers: Sequence[int]):
        super().__init__()
        self.shapes = dict(shapes)
        self.cnn_keys, self.mlp_keys = select_keys(shapes, cnn_keys, mlp_keys)
        if self.cnn_keys:
            self.channels = [shapes[k][-1] for k in self.cnn_keys]
            n = len(cnn_kernels)
            self.convin = keras_init(nn.Linear(feat_dim, 32 * cnn_depth))
            layers: list[nn.Module] = []
            channels, size = 32 * cnn_depth, 1
            for i, kernel in enumerate(cnn_kernels):
                last = i == n - 1
                depth = sum(self.channels) if last else 2 ** (n - i - 2) * cnn_depth
                conv = (OneByOneConvTranspose(channels, depth, kernel) if i == 0
                        else keras_init(nn.ConvTranspose2d(channels, depth, kernel, 2)))
                layers += [conv] + ([] if last else [_conv_norm(norm, depth), ACTS[act]()])
                channels, size = depth, (size - 1) * 2 + kernel
            self.cnn = nn.Sequential(*layers).to(memory_format=torch.channels_last)
            want = tuple(shapes[self.cnn_keys[0]][:2])
            if want != (size, size):
                raise ValueError(f"decoder.cnn_kernels {tuple(cnn_kernels)} produce {size}x{size} "
                                 f"images but the observation is {want[0]}x{want[1]}")
        if self.mlp_keys:
            self.mlp = MLP(feat_dim, mlp_layers, act, norm)
            self.mlp_out = nn.ModuleDict(
                {k: DistHead(self.mlp.out_dim, shapes[k], "mse") for k in self.mlp_keys})

    def forward(self, feat: torch.Tensor) -> dict[str, dists.MSEDist]:
        out = {}
        lead = feat.shape[:-1]
        if self.cnn_keys:
            x = self.convin(feat.reshape(-1, feat.shape[-1]))
            x = self.cnn(x).permute(0, 2, 3, 1)  # (N, H, W, C)
            x = x.reshape(lead + x.shape[1:])
            for key, mean in zip(self.cnn_keys, x.split(self.channels, -1)):
                out[key] = dists.MSEDist(mean, event_dims=3)
        if self.mlp_keys:
            hidden = self.mlp(feat)
            out.update({k: head(hidden) for k, head in self.mlp_out.items()})
        return out


def num_params(module: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in module.parameters())
