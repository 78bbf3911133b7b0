"""Tests written for surviving mutants of nets.py and conv.py (issue 10).

Expected values come from the official layers' behaviour (`common/nets.py`: DistLayer, Encoder,
Decoder; Keras mixed precision casts a layer's bias to the compute dtype and adds it there) or are
computed by hand; none is taken from this package's own output. docs/parity.md ("nets, optimiser
and run state") lists the mutants these tests kill and the ones that are equivalent.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dreamerv2_torch.conv import Decoder, Encoder, OneByOneConvTranspose, num_params
from dreamerv2_torch.nets import DistHead, LoopLinears, norm_layer

# ---- nets.py -----------------------------------------------------------------------------------


def test_unknown_norm_dist_and_gradient_rule_are_named():
    with pytest.raises(ValueError, match=r"^unknown norm 'batch' \(none, layer\)$"):
        norm_layer("batch", 3)
    with pytest.raises(ValueError, match=r"^unknown dist 'gauss' \(mse, binary, onehot, "
                                         r"trunc_normal\)$"):
        DistHead(4, (2,), "gauss")
    with pytest.raises(ValueError, match="^unknown trunc_normal gradient 'x' "):
        DistHead(4, (2,), "trunc_normal", trunc_grad="x")


def test_init_std_is_added_to_the_std_pre_activation():
    # Official DistLayer: std = 2·sigmoid((raw + init_std)/2) + min_std.
    head = DistHead(4, (2,), "trunc_normal", min_std=0.1, init_std=1.0)
    with torch.no_grad():
        head.std.weight.zero_()
        head.std.bias.fill_(0.5)
    scale = head(torch.zeros(3, 4)).scale
    want = 2 / (1 + math.exp(-(0.5 + 1.0) / 2)) + 0.1
    assert torch.allclose(scale, torch.full((3, 2), want))


def test_binary_head_with_a_vector_shape_is_independent_over_it():
    # Official: Independent(Bernoulli(logits), len(shape)); log_prob sums the 3 bits by hand.
    head = DistHead(4, (3,), "binary")
    x, bits = torch.randn(5, 4), torch.tensor([1.0, 0.0, 1.0]).expand(5, 3)
    logits = head.out(x).detach()
    want = (bits * F.logsigmoid(logits) + (1 - bits) * F.logsigmoid(-logits)).sum(-1)
    got = head(x).log_prob(bits)
    assert got.shape == (5,) and torch.allclose(got, want, atol=1e-6)


def test_old_joint_actor_layer_loads_into_the_mean_and_std_layers():
    head = DistHead(4, (3,), "trunc_normal")
    weight, bias = torch.randn(6, 4), torch.randn(6)
    head.load_state_dict({"out.weight": weight, "out.bias": bias})
    assert torch.equal(head.out.weight, weight[:3]) and torch.equal(head.std.weight, weight[3:])
    assert torch.equal(head.out.bias, bias[:3]) and torch.equal(head.std.bias, bias[3:])


def test_loop_linears_give_the_input_gradient_of_a_frozen_layer():
    # A weight that needs no gradient must still pass the gradient on to its input: xWᵀ → Σ_o W.
    weight = torch.randn(3, 2)
    x = torch.randn(4, 2, requires_grad=True)
    loop = LoopLinears({"l": (weight, None)}, torch.float32)
    loop.step(0)
    loop.layer("l")(x).sum().backward()
    assert torch.allclose(x.grad, weight.sum(0).expand(4, 2))


def test_loop_linears_sum_the_bias_gradient_in_float32_under_bf16():
    # Output gradients 1 and 2⁻⁸ at two steps (one row each): their float32 sum 1 + 2⁻⁸ is a bf16
    # tie that rounds to 1. The bias gradient is the float32 sum (official: per-step gradients of
    # the cast bias, summed over reads in float32).
    weight = nn.Parameter(torch.ones(1, 1))
    bias = nn.Parameter(torch.zeros(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loop = LoopLinears({"l": (weight, bias)}, torch.bfloat16)
        outs = []
        for t in range(2):
            loop.step(t)
            outs.append(loop.layer("l")(torch.ones(1, 1)))
        loss = (outs[0] * 1.0 + outs[1] * 2.0 ** -8).sum()
    loss.backward()
    assert bias.grad.dtype == torch.float32 and bias.grad.item() == 1 + 2.0 ** -8


# ---- conv.py -----------------------------------------------------------------------------------


def _encoder(shapes, **kw):
    args = {"cnn_keys": "image|depth", "mlp_keys": "vec", "act": "elu", "norm": "layer",
            "cnn_depth": 2, "cnn_kernels": (4, 2), "mlp_layers": (5,)}
    return Encoder(shapes, **{**args, **kw})


def test_encoder_concatenates_image_channels_then_cnn_and_mlp_outputs():
    # Official Encoder: concat the image keys along channels, then concat the CNN's flattened
    # output and the MLP's output along the last axis. 6×6 → 2×2 → 1×1 (a 1×1 map is valid).
    shapes = {"image": (6, 6, 2), "depth": (6, 6, 1), "vec": (3,)}
    enc = _encoder(shapes)
    assert enc.embed_dim == 4 * 1 * 1 + 5
    assert sum(isinstance(m, nn.LayerNorm) for m in enc.mlp.modules()) == 1  # norm reaches MLP
    obs = {"image": torch.randn(2, 3, 6, 6, 2), "depth": torch.randn(2, 3, 6, 6, 1),
           "vec": torch.randn(2, 3, 3)}
    out = enc(obs)
    pixels = torch.cat([obs["image"], obs["depth"]], -1).reshape(6, 6, 6, 3).permute(0, 3, 1, 2)
    cnn = enc.cnn(pixels).permute(0, 2, 3, 1).reshape(2, 3, 4)
    assert out.shape == (2, 3, 9)
    assert torch.allclose(out[..., :4], cnn) and torch.allclose(out[..., 4:], enc.mlp(obs["vec"]))


def test_encoder_errors_name_keys_kernels_and_image_size():
    with pytest.raises(ValueError, match=r"^encoder: no observation key matches "
                                         r"cnn_keys='x' or mlp_keys='y'; keys and shapes: "
                                         r"\{'image': \(8, 8, 3\)\}$"):
        _encoder({"image": (8, 8, 3)}, cnn_keys="x", mlp_keys="y")
    with pytest.raises(ValueError, match=r"^encoder.cnn_kernels \(4, 4, 4\) are too many or too "
                                         r"large for \(8, 8\) images$"):
        _encoder({"image": (8, 8, 3)}, cnn_kernels=(4, 4, 4))


def _decoder(shapes, **kw):
    args = {"feat_dim": 7, "cnn_keys": "image", "mlp_keys": "vec", "act": "elu", "norm": "layer",
            "cnn_depth": 2, "cnn_kernels": (2, 2), "mlp_layers": (5, 5)}
    return Decoder(shapes, **{**args, **kw})


def test_decoder_errors_name_kernels_and_both_sizes():
    with pytest.raises(ValueError, match=r"^decoder.cnn_kernels \(2, 2\) produce 4x4 images but "
                                         r"the observation is 6x8$"):
        _decoder({"image": (6, 8, 3)})


def test_decoder_mlp_gets_the_norm():
    dec = _decoder({"vec": (3,)})
    assert sum(isinstance(m, nn.LayerNorm) for m in dec.mlp.modules()) == 2


def test_one_by_one_transpose_adds_the_bias_in_the_compute_dtype():
    # Keras mixed precision: the bias is cast to the compute dtype and added there, so
    # 1 + bf16(2⁻⁸ + 2⁻¹⁶) = 1 + 2⁻⁸, a bf16 tie that rounds to 1 (adding the float32 bias first
    # would give 1 + 2⁻⁸ + 2⁻¹⁶, rounding up to 1 + 2⁻⁷ or staying unrounded).
    layer = OneByOneConvTranspose(1, 1, 1)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.fill_(2.0 ** -8 + 2.0 ** -16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(torch.ones(1, 1, dtype=torch.bfloat16))
    assert out.float().item() == 1.0


def test_num_params_counts_every_parameter():
    assert num_params(nn.Linear(3, 2)) == 3 * 2 + 2
