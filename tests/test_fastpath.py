"""The speed switches change no maths: fast and plain paths give the same losses and gradients.

Each fast path (`conv_matmul`, `batched_grads`, `jit`; docs/performance.md) is compared with the
plain eager path on a fixed batch from the same weights and the same seed, in float32, to a
floating-point-reordering tolerance. Also the two building blocks on their own: `PatchConv2d`
against `nn.Conv2d` and `LoopLinears` against per-step autograd.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamerv2_torch.agent import Agent
from dreamerv2_torch.conv import PatchConv2d
from dreamerv2_torch.envs.base import FLAG_SPACES, Space
from dreamerv2_torch.nets import LoopLinears
from dreamerv2_torch.presets import resolve

pytestmark = pytest.mark.usefixtures("one_thread")

OBS = {"image": Space((64, 64, 3), np.uint8), **FLAG_SPACES}
ACT = {"action": Space((4,), np.float32, 0.0, 1.0, discrete=True)}
PLAIN = {"conv_matmul": "off", "batched_grads": "off", "jit": False}
TOL = dict(rtol=1e-4, atol=1e-5)


def make_agent(**switches) -> Agent:
    config = resolve(["debug"], {"device": "cpu", "precision": 32, **switches})
    torch.manual_seed(0)
    return Agent(OBS, ACT, config)


def make_batch(batch: int = 3, length: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    first = np.zeros((batch, length), bool)
    first[:, 0] = first[1, 5] = True  # one reset inside a sequence
    return {
        "image": rng.integers(0, 256, (batch, length, 64, 64, 3), dtype=np.uint8),
        "reward": rng.normal(size=(batch, length)).astype(np.float32),
        "is_first": first, "is_last": np.zeros_like(first),
        "is_terminal": rng.random((batch, length)) < 0.2,
        "action": np.eye(4, dtype=np.float32)[rng.integers(0, 4, (batch, length))],
    }


def run_update(agent: Agent, batch: dict) -> tuple[dict, dict]:
    """World-model and actor/critic losses and gradients of one update, without the steps."""
    data = agent.wm.preprocess(agent._tensors(batch))
    torch.manual_seed(1)
    with agent.autocast():
        model_loss, post, metrics = agent.wm.loss(data)
    model_loss.backward()
    with agent.autocast():
        actor_loss, critic_loss, mets = agent.behavior.losses(
            agent.wm, post, data["is_terminal"], step=0)
    actor_loss.backward(inputs=list(agent.behavior.actor.parameters()))
    critic_loss.backward(inputs=list(agent.behavior.critic.parameters()))
    values = {**metrics, **mets, "actor_loss": actor_loss, "critic_loss": critic_loss}
    grads = {n: p.grad.clone() for n, p in agent.nets.named_parameters() if p.grad is not None}
    return {k: v.detach().float() for k, v in values.items()}, grads


def assert_same(fast: tuple[dict, dict], plain: tuple[dict, dict]) -> None:
    for got, want in zip(fast, plain):
        assert got.keys() == want.keys()
        for key in want:
            torch.testing.assert_close(got[key], want[key], **TOL, msg=key)


@pytest.mark.parametrize("switch", ["conv_matmul", "batched_grads"])
def test_each_fast_path_gives_the_plain_losses_and_gradients(switch):
    batch = make_batch()
    plain = make_agent(**PLAIN)
    fast = make_agent(**{**PLAIN, switch: "on"})
    fast.nets.load_state_dict(plain.nets.state_dict())
    assert_same(run_update(fast, batch), run_update(plain, batch))


def test_all_fast_paths_together_and_the_parameters_are_the_same():
    plain, fast = make_agent(**PLAIN), make_agent(conv_matmul="on", batched_grads="on")
    assert isinstance(fast.wm.encoder.cnn[-3], PatchConv2d)  # the last conv (2x2 output)
    assert plain.nets.state_dict().keys() == fast.nets.state_dict().keys()
    fast.nets.load_state_dict(plain.nets.state_dict())
    batch = make_batch()
    assert_same(run_update(fast, batch), run_update(plain, batch))


@pytest.mark.slow  # torch.compile takes about a minute on 2 CPU cores, even for the debug model
def test_jit_gives_the_plain_losses_and_gradients():
    torch._inductor.config.fallback_random = True  # eager's RNG stream, so samples match
    try:
        batch = make_batch()
        plain, fast = make_agent(**PLAIN), make_agent(**{**PLAIN, "jit": True})
        fast.nets.load_state_dict(plain.nets.state_dict())
        assert_same(run_update(fast, batch), run_update(plain, batch))
    finally:
        torch._inductor.config.fallback_random = False


def test_patch_conv_equals_conv2d():
    torch.manual_seed(0)
    conv, patch = torch.nn.Conv2d(5, 7, 4, 2), PatchConv2d(5, 7, 4, 2)
    patch.load_state_dict(conv.state_dict())
    x = torch.randn(3, 5, 6, 6).to(memory_format=torch.channels_last).requires_grad_()
    out = conv(x)
    torch.testing.assert_close(patch(x), out, **TOL)
    want = torch.autograd.grad(out.square().sum(), [x, conv.weight, conv.bias])
    got = torch.autograd.grad(patch(x).square().sum(), [x, patch.weight, patch.bias])
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, **TOL)


def test_loop_linears_equal_per_step_autograd():
    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 6)
    h0 = torch.randn(4, 6)

    def run(batched: bool):
        loop = LoopLinears({"l": (layer.weight, layer.bias)}, torch.float32) if batched else None
        h, out = h0, 0.0
        for t in range(5):
            if loop:
                loop.step(t)
            h = torch.tanh(loop.layer("l")(h) if loop else layer(h))
            out = out + (t + 1) * h.sum()
        return torch.autograd.grad(out, [layer.weight, layer.bias])

    for got, want in zip(run(True), run(False)):
        torch.testing.assert_close(got, want, **TOL)


def test_policy_accepts_flipped_views():
    """A user's env may return a flipped view (negative strides), as MuJoCo's renderer does."""
    agent = make_agent()
    image = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    flags = {k: np.array([k == "is_first"]) for k in FLAG_SPACES}
    torch.manual_seed(2)
    flipped, _ = agent.policy({"image": image[:, ::-1], **flags}, mode="eval")
    torch.manual_seed(2)
    copied, _ = agent.policy({"image": image[:, ::-1].copy(), **flags}, mode="eval")
    np.testing.assert_array_equal(flipped["action"], copied["action"])


@pytest.mark.slow  # compiling the unrolled loops takes minutes on 2 CPU cores
def test_compiled_loops_give_the_plain_losses_and_gradients():
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    torch._inductor.config.fallback_random = True  # eager's RNG stream, so samples match
    try:
        batch = make_batch()
        plain, fast = make_agent(**PLAIN), make_agent(**{**PLAIN, "compile_loops": "on"})
        fast.nets.load_state_dict(plain.nets.state_dict())
        assert_same(run_update(fast, batch), run_update(plain, batch))
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 2  # both loops
    finally:
        torch._inductor.config.fallback_random = False
