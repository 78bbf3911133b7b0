"""CUDA-only checks (marker `gpu`; deselected by default, run by benchmarks/gpu_check.sh).

Each is skipped where CUDA is missing. The CPU-vs-CUDA loss and gradient comparison lives in
benchmarks/gpu_correctness.py (it needs both devices and reports figures).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_fastpath import ACT, OBS, make_batch

from dreamerv2_torch.agent import Agent
from dreamerv2_torch.presets import resolve
from dreamerv2_torch.sync_guard import no_host_sync

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def cuda_agent(precision: int) -> Agent:
    torch.manual_seed(0)
    return Agent(OBS, ACT, resolve(["debug"], {"device": "cuda", "precision": precision}))


@pytest.mark.parametrize("precision", [32, 16])
def test_cuda_update_has_no_host_sync(precision):
    agent = cuda_agent(precision)
    batch = {k: torch.as_tensor(v).cuda() for k, v in make_batch().items()}
    agent.train(batch)
    torch.cuda.synchronize()
    with no_host_sync(cuda=True):  # also CUDA's sync debug mode: blocking copies, nonzero, ...
        metrics = agent.train(batch)
    assert torch.isfinite(torch.stack([v.float().cuda() for v in metrics.values()])).all()


def test_cuda_bf16_keeps_the_fp32_islands():
    agent = cuda_agent(16)
    assert agent.bf16 == torch.cuda.is_bf16_supported()
    data = agent.wm.preprocess(agent._tensors(make_batch()))
    with agent.autocast():
        loss, post, metrics = agent.wm.loss(data)
    assert loss.dtype == torch.float32 and post["logit"].dtype == torch.float32
    assert post["deter"].dtype == torch.float32  # the GRU state is carried in fp32


def test_cuda_policy_acts_on_numpy_and_keeps_state_on_device():
    agent = cuda_agent(16)
    obs = {k: v[:, 0] for k, v in make_batch(batch=4).items() if k != "action"}
    out, (latent, action) = agent.policy(obs)
    assert isinstance(out["action"], np.ndarray) and out["action"].shape == (4, 4)
    assert action.device.type == "cuda" and latent["deter"].device.type == "cuda"
    out, _ = agent.policy(obs, (latent, action), mode="eval")
    assert np.allclose(out["action"].sum(-1), 1.0)


def test_cuda_state_dict_loads_on_cpu():
    agent = cuda_agent(32)
    agent.train(make_batch())
    state = agent.state_dict()
    cpu = Agent(OBS, ACT, resolve(["debug"], {"device": "cpu", "precision": 32}))
    cpu.load_state_dict(state)
    for a, b in zip(agent.nets.parameters(), cpu.nets.parameters()):
        assert torch.equal(a.detach().cpu(), b.detach())
    assert cpu.model_opt.steps == agent.model_opt.steps == 1
