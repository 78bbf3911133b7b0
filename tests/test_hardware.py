"""CPU kind from /proc/cpuinfo flags; the `auto` fast paths and bf16 chosen from it (issue 11)."""

from __future__ import annotations

import pytest
import torch

from dreamerv2_torch import hardware
from dreamerv2_torch.agent import CPU_AUTO, fast_paths
from dreamerv2_torch.presets import resolve

KINDS = {  # flags -> kind, as on Sapphire Rapids, Zen 4, an AVX2-only CPU, an ARM CPU
    frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}): "amx",
    frozenset({"avx2", "avx512f", "avx512_bf16"}): "avx512_bf16",
    frozenset({"avx2", "fma"}): "avx2",
    frozenset({"fp", "asimd"}): "other",
}


@pytest.mark.parametrize("flags,kind", KINDS.items())
def test_cpu_kind_and_native_bf16(flags, kind):
    assert hardware.cpu_kind(flags) == kind
    assert hardware.native_bf16(flags) == (kind in ("amx", "avx512_bf16"))


def test_every_kind_has_auto_choices_with_their_source():
    assert set(CPU_AUTO) == set(KINDS.values())
    for kind, choices in CPU_AUTO.items():
        assert {"conv_matmul", "policy_fp32", "malloc_reuse", "source"} <= set(choices)
        fast = fast_paths(resolve(["debug"]), torch.device("cpu"), kind)
        assert fast.conv_matmul == choices["conv_matmul"]
        assert fast.policy_fp32 == choices["policy_fp32"]
    for measured in ("amx", "avx512_bf16", "avx2"):  # docs/performance.md, "One row per CPU kind"
        assert CPU_AUTO[measured]["source"].startswith("measured")


def test_cuda_auto_is_off_for_the_cpu_paths_and_explicit_values_win():
    fast = fast_paths(resolve(["debug"]), torch.device("cuda"))
    assert not fast.conv_matmul and not fast.policy_fp32 and fast.batched_grads
    fast = fast_paths(resolve(["debug"], {"conv_matmul": "off"}), torch.device("cpu"), "amx")
    assert not fast.conv_matmul


def test_describe_names_model_kind_and_isa():
    info = hardware.describe()
    assert info["cpu_model"] and info["cpu_kind"] in CPU_AUTO and info["isa"]


def test_cpuinfo_reads_the_first_processor_only(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\ncpu family\t: 6\n"
                    "flags\t\t: avx2 amx_bf16\n\nprocessor\t: 1\nmodel name\t: other\n"
                    "flags\t\t: sse2\n")
    fields = hardware.cpuinfo(str(path))
    assert fields["model name"] == "Intel(R) Xeon(R) Processor" and fields["cpu family"] == "6"
    assert fields["flags"] == "avx2 amx_bf16"
    assert hardware.cpuinfo(str(tmp_path / "missing")) == {}


def test_cpu_detail_tells_hosts_with_one_model_name_apart():
    xeon = {"cpu family": "6", "model": "167", "stepping": "8", "cpu MHz": "2000.000"}
    assert (hardware.cpu_detail(xeon, "107520K")
            == "family 6 model 167 stepping 8, L3 105 MiB, 2000 MHz")
    assert hardware.cpu_detail({"cpu family": "25", "model": "1"}, None) == (
        "family 25 model 1 stepping ?")
    assert hardware.cpu_detail({}, None) == "no /proc/cpuinfo"
    assert "cpu_detail" in hardware.describe()
