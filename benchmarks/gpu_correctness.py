"""gpu_check's correctness section: one fixed batch on the CPU in fp32, on the device in fp32 and
in bf16 (same weights, same random draws); and one update on the device under `no_host_sync`.
"""

from __future__ import annotations

import contextlib
import dataclasses

import bench_update
import torch

from dreamerv2_torch import presets
from dreamerv2_torch.agent import Agent
from dreamerv2_torch.sync_guard import no_host_sync

TOLERANCE = 1e-4  # relative, fp32 device vs fp32 CPU


@contextlib.contextmanager
def cpu_random(seed: int):
    """`torch.rand`/`rand_like`/`randn_like` drawn from one CPU generator, then moved: the same
    draws on every device (the package samples only through these)."""
    gen = torch.Generator().manual_seed(seed)
    rand, randn = torch.rand, torch.randn
    originals = torch.rand, torch.rand_like, torch.randn_like

    def rand_(*size, device=None, dtype=None, **_):
        size = tuple(size[0]) if len(size) == 1 and not isinstance(size[0], int) else size
        return rand(size, generator=gen, dtype=dtype or torch.float32).to(device or "cpu")

    def like(draw):
        return lambda t, **_: draw(t.shape, generator=gen, dtype=t.dtype).to(t.device)

    torch.rand, torch.rand_like, torch.randn_like = rand_, like(rand), like(randn)
    try:
        yield
    finally:
        torch.rand, torch.rand_like, torch.randn_like = originals


def losses_and_grads(agent: Agent, batch: dict, seed: int = 0) -> dict:
    """World-model, actor and critic losses and gradients (float64, CPU) without a step."""
    groups = {"model": list(agent.wm.parameters()),
              "actor": list(agent.behavior.actor.parameters()),
              "critic": list(agent.behavior.critic.parameters())}
    with cpu_random(seed):
        data = agent.wm.preprocess(agent._tensors(batch))
        with agent.autocast():
            model_loss, post, _ = agent.wm.loss(data)
        grads = {"model": torch.autograd.grad(model_loss, groups["model"], allow_unused=True)}
        with agent.autocast():
            feat, action, reward, disc, needs = agent.behavior.rollout(
                agent.wm, post, data["is_terminal"])
            actor_loss, critic_loss, _ = agent.behavior.loss_terms(feat, action, reward, disc,
                                                                   0, needs)
        grads["actor"] = torch.autograd.grad(actor_loss, groups["actor"], retain_graph=True,
                                             allow_unused=True)
        grads["critic"] = torch.autograd.grad(critic_loss, groups["critic"], allow_unused=True)
    flat = {k: torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).double().cpu()
                          for g, p in zip(grads[k], groups[k])]) for k in groups}
    losses = {"model": model_loss, "actor": actor_loss, "critic": critic_loss}
    return {"losses": {k: float(v.detach()) for k, v in losses.items()}, "grads": flat}


def rel(a, b) -> float:
    if isinstance(a, torch.Tensor):
        return float((a - b).norm() / b.norm().clamp_min(1e-30))
    return abs(a - b) / max(abs(b), 1e-30)


def run(device: str, preset_names: list[str], threads: int = 0, batch: int = 4,
        length: int = 16) -> dict:
    """Compare; True `ok` when every fp32 relative error is ≤ TOLERANCE and the update is sync-free.
    """
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 here (cuDNN's default is TF32)
    torch.backends.cudnn.allow_tf32 = False
    length = min(length, 10) if "debug" in preset_names else length
    config = presets.resolve(preset_names, {"device": "cpu", "precision": 32, "threads": threads,
                                            "dataset.batch": batch, "dataset.length": length})
    obs_space, act_space = bench_update.spaces(None, config)
    data = bench_update.synthetic_batch(obs_space, act_space, batch, length)
    torch.manual_seed(0)
    ref = Agent(obs_space, act_space, config)
    weights = ref.nets.state_dict()
    runs = {"cpu_fp32": losses_and_grads(ref, data)}
    agents = {}
    for name, precision in (("fp32", 32), ("bf16", 16)):
        agent = Agent(obs_space, act_space,
                      dataclasses.replace(config, device=device, precision=precision))
        agent.nets.load_state_dict(weights)
        agents[name] = agent
        runs[name] = losses_and_grads(agent, data)
    out = {"device": device, "batch": f"{batch}x{length}", "tolerance": TOLERANCE,
           "bf16_native": agents["bf16"].bf16}
    for name in ("fp32", "bf16"):
        a, b = runs[name], runs["cpu_fp32"]
        out[name] = {**{f"{k}_loss": rel(a["losses"][k], b["losses"][k]) for k in a["losses"]},
                     **{f"{k}_grad": rel(a["grads"][k], b["grads"][k]) for k in a["grads"]}}
    out["losses"] = {name: r["losses"] for name, r in runs.items()}
    out["fp32_ok"] = max(out["fp32"].values()) <= TOLERANCE
    out["sync_free"] = sync_free_update(agents["bf16"], data)
    out["ok"] = out["fp32_ok"] and out["sync_free"] is True
    return out


def sync_free_update(agent: Agent, batch: dict):
    """True if one `Agent.train` (after a warm-up one) reads no tensor on the host; else the error.
    """
    tensors = {k: torch.as_tensor(v).to(agent.device) for k, v in batch.items()}
    agent.train(tensors)
    if agent.device.type == "cuda":
        torch.cuda.synchronize()
    try:
        with no_host_sync():
            agent.train(tensors)
    except Exception as error:  # noqa: BLE001 - HostSyncError, or CUDA's sync-debug RuntimeError
        return f"{type(error).__name__}: {error}"[:500]
    return True


def markdown(result: dict) -> list[str]:
    if "fp32" not in result:
        return []
    lines = [f"batch {result['batch']}, relative error vs CPU fp32 (fp32 must be ≤ "
             f"{result['tolerance']:g}); bf16 native: {result['bf16_native']}", "",
             "| run | " + " | ".join(result["fp32"]) + " |",
             "|---|" + "---|" * len(result["fp32"])]
    for name in ("fp32", "bf16"):
        lines.append(f"| {result['device']} {name} | "
                     + " | ".join(f"{v:.2e}" for v in result[name].values()) + " |")
    lines += ["", f"losses: {result['losses']}",
              f"update free of host syncs: {result['sync_free']}"]
    return lines
