"""Tests written for mutants of `agent.py` that survived tools/parity/mutation.sh (docs/parity.md,
"agent.py"), part 1: the device, precision and speed-switch wiring of `Agent.__init__` (glibc's
`malloc.h` for `reuse_freed_memory`), autocast, and the arrays handed to the device. Part 2,
acting, is tests/test_mutants_agent_acting.py. Most tests call one method on a bare
`Agent.__new__(Agent)` with only the attributes it reads."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from agent_support import OBS, bare, make_agent

from dreamerv2_torch import agent as agent_module
from dreamerv2_torch import hardware
from dreamerv2_torch.agent import (
    CPU_AUTO,
    _switch,
    bf16_supported,
    compile_loops,
    fast_paths,
    pick_device,
    reuse_freed_memory,
)
from dreamerv2_torch.envs.base import Space
from dreamerv2_torch.nets import FastPaths
from dreamerv2_torch.presets import resolve
from dreamerv2_torch.rssm import RSSM

pytestmark = pytest.mark.usefixtures("one_thread")

NS = types.SimpleNamespace



# ---- pick_device, bf16_supported, fast_paths, _switch ----------------------------------------

def test_pick_device_auto_is_cuda_where_available_else_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("cuda")
    assert pick_device("cuda:1") == torch.device("cuda", 1)


def test_pick_device_cuda_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"^device 'cuda:1' requested but CUDA is not available$"):
        pick_device("cuda:1")


def test_bf16_supported_asks_cuda_on_cuda_and_the_cpu_flags_on_a_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: "cuda's answer")
    monkeypatch.setattr(hardware, "native_bf16", lambda: "the cpu's answer")
    assert bf16_supported(torch.device("cuda")) == "cuda's answer"
    assert bf16_supported(torch.device("cpu")) == "the cpu's answer"


def test_switch_on_off_auto():
    assert _switch("on", False) is True and _switch("off", True) is False
    assert _switch("auto", True) is True and _switch("auto", False) is False


@pytest.mark.parametrize("jit", [True, False])
def test_fast_paths_pass_the_jit_flag_through(jit):
    config = resolve(["debug"], {"jit": jit})
    assert fast_paths(config, torch.device("cpu"), kind="amx").jit is jit


# ---- reuse_freed_memory: glibc mallopt (malloc.h: M_TRIM_THRESHOLD = -1, M_MMAP_MAX = -4) ----

class FakeLibc:
    def __init__(self, calls, result=1):
        self.calls, self.result = calls, result

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return self.result


def fake_cdll(monkeypatch, result=1, error=None):
    calls = []

    def cdll(name):
        calls.append(name)
        if error:
            raise error
        return FakeLibc(calls, result)
    monkeypatch.setattr(agent_module.ctypes, "CDLL", cdll)
    return calls


def test_reuse_freed_memory_turns_off_mmap_and_trimming_in_glibc(monkeypatch):
    monkeypatch.setattr(agent_module, "sys", NS(platform="linux"))
    calls = fake_cdll(monkeypatch)
    assert reuse_freed_memory() is True
    # never mmap (M_MMAP_MAX = 0), never trim (M_TRIM_THRESHOLD = the largest int)
    assert calls == ["libc.so.6", (-4, 0), (-1, 2**31 - 1)]


@pytest.mark.parametrize("failing", [0, 1])
def test_reuse_freed_memory_reports_a_refused_mallopt(monkeypatch, failing):
    monkeypatch.setattr(agent_module, "sys", NS(platform="linux"))
    calls = []

    class Refusing(FakeLibc):
        def mallopt(self, param, value):
            super().mallopt(param, value)
            return 0 if len(self.calls) - 1 == failing else 1
    monkeypatch.setattr(agent_module.ctypes, "CDLL", lambda name: Refusing(calls))
    assert reuse_freed_memory() is False


@pytest.mark.parametrize("error", [OSError("no libc.so.6 (musl)"), AttributeError("mallopt")])
def test_reuse_freed_memory_is_false_without_glibc(monkeypatch, error):
    monkeypatch.setattr(agent_module, "sys", NS(platform="linux"))
    fake_cdll(monkeypatch, error=error)
    assert reuse_freed_memory() is False


def test_reuse_freed_memory_is_false_and_touches_nothing_off_linux(monkeypatch):
    monkeypatch.setattr(agent_module, "sys", NS(platform="darwin"))
    calls = fake_cdll(monkeypatch)
    assert reuse_freed_memory() is False and calls == []


# ---- compile_loops ----------------------------------------------------------------------------

def fake_compile(monkeypatch):
    def compile_(fn, *, mode="unset", dynamic="unset"):
        return ("compiled", fn, mode, dynamic)
    monkeypatch.setattr(torch, "compile", compile_)


@pytest.mark.parametrize("device, mode", [("cpu", None), ("cuda", "reduce-overhead")])
def test_compile_loops_compiles_both_loops_static_and_with_cuda_graphs_on_cuda(
        monkeypatch, device, mode):
    fake_compile(monkeypatch)
    rssm = NS(observe="observe loop", imagine="imagine loop", img_step="step")
    compile_loops(rssm, torch.device(device))
    assert rssm == NS(observe=("compiled", "observe loop", mode, False),
                      imagine=("compiled", "imagine loop", mode, False), img_step="step")


@pytest.mark.parametrize("switch", ["on", "auto", "off"])
def test_agent_compiles_the_loops_only_when_switched_on(monkeypatch, switch):
    fake_compile(monkeypatch)
    agent = make_agent(compile_loops=switch)
    rssm = agent.wm.rssm
    if switch != "on":  # auto = off until measured (config.compile_loops)
        assert "observe" not in rssm.__dict__ and "imagine" not in rssm.__dict__
        return
    for name in ("observe", "imagine"):
        tag, fn, mode, dynamic = rssm.__dict__[name]
        assert (tag, fn.__self__, fn.__func__, mode, dynamic) == (
            "compiled", rssm, getattr(RSSM, name), None, False)


# ---- Agent.__init__ wiring --------------------------------------------------------------------

@pytest.mark.parametrize("precision, native, bf16", [(16, True, True), (16, False, False),
                                                     (32, True, False), (32, False, False)])
def test_bf16_only_for_precision_16_on_native_hardware(monkeypatch, precision, native, bf16):
    monkeypatch.setattr(hardware, "native_bf16", lambda: native)
    assert make_agent(precision=precision).bf16 is bf16


@pytest.mark.parametrize("device, switch, table, called", [
    ("cpu", "auto", True, True), ("cpu", "auto", False, False), ("cpu", "on", False, True),
    ("cpu", "off", True, False), ("meta", "auto", True, False), ("meta", "on", False, True)])
def test_malloc_reuse_follows_the_switch_and_on_a_cpu_its_kind(monkeypatch, device, switch,
                                                                table, called):
    """auto = the CPU kind's measured choice (CPU_AUTO) on a CPU, off on other devices."""
    monkeypatch.setitem(CPU_AUTO, "test kind", {"conv_matmul": True, "policy_fp32": True,
                                                "malloc_reuse": table, "source": "test"})
    monkeypatch.setattr(hardware, "cpu_kind", lambda: "test kind")
    calls = []
    monkeypatch.setattr(agent_module, "reuse_freed_memory", lambda: calls.append("mallopt"))
    make_agent(device=device, malloc_reuse=switch)
    assert calls == (["mallopt"] if called else [])


def test_the_speed_switches_reach_the_world_model_and_the_actor_critic():
    agent = make_agent(batched_grads="on", jit=True)
    assert agent.wm.rssm.batched_grads is True and agent.behavior.jit is True
    agent = make_agent(batched_grads="off", jit=False)
    assert agent.wm.rssm.batched_grads is False and agent.behavior.jit is False


def test_the_networks_live_on_the_device_under_the_checkpoint_names():
    agent = make_agent(device="meta")
    assert {p.device.type for p in agent.nets.parameters()} == {"meta"}
    # state_dict()["nets"] keys start with these names: checkpoints written earlier rely on them
    assert list(agent.nets.items()) == [("wm", agent.wm), ("behavior", agent.behavior)]


def test_a_new_agent_starts_at_step_0_and_films_only_its_image_keys():
    obs = {"image": Space((64, 64, 3), np.uint8), **OBS}
    agent = make_agent(obs, log_keys_video=("vector", "image", "absent"))
    assert agent.step == 0 and agent.video_keys == ["image"]


def test_load_state_dict_restores_the_step_as_an_int():
    loaded = []
    part = NS(load_state_dict=loaded.append)
    agent = bare(nets=part, model_opt=part, actor_opt=part, critic_opt=part, step=0)
    agent.load_state_dict({"nets": "n", "model_opt": "m", "actor_opt": "a", "critic_opt": "c",
                           "step": np.int64(1234)})
    assert loaded == ["n", "m", "a", "c"] and agent.step == 1234 and type(agent.step) is int


# ---- autocast ---------------------------------------------------------------------------------

@pytest.mark.parametrize("bf16, policy_fp32, update, acting", [
    (True, True, True, False), (True, False, True, True), (False, True, False, False),
    (False, False, False, False)])
def test_autocast_is_bf16_for_the_update_and_for_acting_unless_policy_fp32(
        bf16, policy_fp32, update, acting):
    agent = bare(bf16=bf16, fast=FastPaths(policy_fp32=policy_fp32), device=torch.device("cpu"))
    default = torch.get_autocast_dtype("cpu")
    torch.set_autocast_dtype("cpu", torch.float16)  # so that only an explicit bf16 passes
    try:
        for context, enabled in ((agent.autocast(), update), (agent.autocast(acting=True), acting)):
            with context:
                assert torch.is_autocast_enabled("cpu") is enabled
                assert not enabled or torch.get_autocast_dtype("cpu") == torch.bfloat16
    finally:
        torch.set_autocast_dtype("cpu", default)


# ---- _tensors ---------------------------------------------------------------------------------

def test_tensors_skip_log_keys_and_object_arrays():
    data = {"log_frames": np.ones(2), "image": np.arange(6, dtype=np.uint8).reshape(2, 3),
            "reward": torch.tensor([1.0, 2.0]), "log_text": np.array(["a", None], object),
            "info": np.array([{}, {}], object), "is_first": np.array([True, False])}
    out = bare(device=torch.device("cpu"))._tensors(data)
    assert list(out) == ["image", "reward", "is_first"]
    assert out["image"].dtype == torch.uint8 and out["image"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert out["reward"].tolist() == [1.0, 2.0] and out["is_first"].tolist() == [True, False]


def test_tensors_are_moved_to_the_agents_device():
    data = {"image": np.zeros((2, 3), np.uint8), "reward": torch.zeros(2)}
    out = bare(device=torch.device("meta"))._tensors(data)
    assert {k: (v.device.type, v.dtype) for k, v in out.items()} == {
        "image": ("meta", torch.uint8), "reward": ("meta", torch.float32)}
