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
def cpu_flags() -> frozenset[str]:
    """The `flags` of /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
    """CPU model, the kind, and which of the ISA flags that matter here are present."""
    flags = cpu_flags()
    present = [f for f in ISA_FLAGS if f in flags]
    return {"cpu_model": cpu_model(), "cpu_kind": cpu_kind(flags),
            "isa": ", ".join(present) if present else "none of " + ", ".join(ISA_FLAGS)}
