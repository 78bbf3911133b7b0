"""What the machine can do fast: the CPU model and its matrix ISA, and the CPU kind that picks
the `auto` fast paths (issue 11; docs/performance.md has one row per kind measured).

Kinds, best first: `amx` (AMX-BF16 tiles, e.g. Intel Sapphire Rapids), `avx512_bf16` (bf16 dot
products without tiles, e.g. AMD Zen 4), `avx2` (no native bf16: bf16 autocast is emulated and
slower than fp32), `other` (non-x86 or unknown).
"""

from __future__ import annotations

import functools
import platform

ISA_FLAGS = ("amx_bf16", "avx512_bf16", "avx512f", "avx2")


@functools.lru_cache(maxsize=1)
def cpuinfo(path: str = "/proc/cpuinfo") -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    fields: dict[str, str] = {}
    try:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    break  # the end of the first processor's block
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_flags() -> frozenset[str]:
    """The `flags` of /proc/cpuinfo (empty where there is none)."""
    return frozenset(cpuinfo().get("flags", "").split())


def cpu_model() -> str:
    return cpuinfo().get("model name") or platform.processor() or platform.machine()


def l3_size(path: str = "/sys/devices/system/cpu/cpu0/cache/index3/size") -> str | None:
    """The L3 size the kernel reports for cpu0 (e.g. `107520K`), or None."""
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


def cpu_detail(fields: dict[str, str] | None = None, l3: str | None = None) -> str:
    """What tells two hosts with the same model name apart (cloud VMs often report a generic
    "Intel(R) Xeon(R) Processor"): family/model/stepping, L3 and the clock the kernel saw.
    Two Sapphire Rapids VMs of this project differed 2x in fp32 and 4x in AMX GEMM speed."""
    if fields is None:
        fields, l3 = cpuinfo(), l3_size()
    parts = []
    if "cpu family" in fields:
        parts.append(f"family {fields['cpu family']} model {fields.get('model', '?')} "
                     f"stepping {fields.get('stepping', '?')}")
    if l3:
        kib = int(l3[:-1]) if l3[-1] in "Kk" and l3[:-1].isdigit() else None
        parts.append(f"L3 {kib / 1024:g} MiB" if kib else f"L3 {l3}")
    if fields.get("cpu MHz"):
        parts.append(f"{float(fields['cpu MHz']):.0f} MHz")
    return ", ".join(parts) or "no /proc/cpuinfo"


def cpu_kind(flags: frozenset[str] | None = None) -> str:
    """`amx`, `avx512_bf16`, `avx2` or `other` (see the module docstring)."""
    flags = cpu_flags() if flags is None else flags
    for kind, flag in (("amx", "amx_bf16"), ("avx512_bf16", "avx512_bf16"), ("avx2", "avx2")):
        if flag in flags:
            return kind
    return "other"


def native_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU computes bf16 natively (AMX-BF16 or AVX512-BF16)."""
    return cpu_kind(flags) in ("amx", "avx512_bf16")


def describe() -> dict[str, str]:
    """CPU model, the kind, which of the ISA flags that matter here are present, and the
    details that tell hosts apart (`cpu_detail`)."""
    flags = cpu_flags()
    present = [f for f in ISA_FLAGS if f in flags]
    return {"cpu_model": cpu_model(), "cpu_kind": cpu_kind(flags),
            "isa": ", ".join(present) if present else "none of " + ", ".join(ISA_FLAGS),
            "cpu_detail": cpu_detail()}
