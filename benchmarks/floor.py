"""FLOPs of one update and its compute floor = FLOPs / the machine's measured matmul FLOP/s.

`capture_gemms` records every matmul and convolution that one call runs (forward and backward) as
the GEMM it amounts to: (M, K, N, dtype). `floor` then times each distinct GEMM on its own and sums
FLOPs / rate over the update: the time if every matmul and convolution ran at the speed the BLAS
reaches for exactly that shape and precision, and everything else (elementwise ops, the Python
loop, the optimiser) were free. `peak_rate` is the classic single number (a 2048³ GEMM).
A convolution counts as its im2col GEMM (M = N·OH·OW, K = C·kh·kw, N = O; transposed: M = N·IH·IW,
K = C_in, N = O·kh·kw); its backward as the same GEMM once per computed gradient (input, weight).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
Gemm = tuple[int, int, int, torch.dtype]


class Recorder(TorchDispatchMode):
    """Counts the GEMMs of everything run inside it into `gemms` (a dict shape -> count)."""

    def __init__(self, gemms: dict | None = None):
        super().__init__()
        self.gemms = Counter() if gemms is None else gemms

    def _add(self, gemm: Gemm, count: int = 1) -> None:
        self.gemms[gemm] = self.gemms.get(gemm, 0) + count

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        packet = getattr(func, "overloadpacket", None)
        if packet in (aten.mm, aten.addmm, aten.bmm, aten.baddbmm):
            a, b = (args[1], args[2]) if packet in (aten.addmm, aten.baddbmm) else args[:2]
            batch = a.shape[0] if a.dim() == 3 else 1
            self._add((batch * a.shape[-2], a.shape[-1], b.shape[-1], a.dtype))
        elif packet is aten.convolution:
            x, w, transposed = args[0], args[1], args[6]
            self._add(self._conv(x, w, out if not transposed else None, transposed))
        elif packet is aten.convolution_backward:
            grad, x, w, transposed, mask = args[0], args[1], args[2], args[7], args[10]
            gemm = self._conv(x, w, grad if not transposed else None, transposed)
            self._add(gemm, int(mask[0]) + int(mask[1]))
        return out

    @staticmethod
    def _conv(x, w, out, transposed: bool) -> Gemm:
        if transposed:  # weight (C_in, O, kh, kw): each input pixel scatters C_in → O·kh·kw
            return x.shape[0] * math.prod(x.shape[2:]), w.shape[0], math.prod(w.shape[1:]), x.dtype
        return x.shape[0] * math.prod(out.shape[2:]), math.prod(w.shape[1:]), w.shape[0], x.dtype


def capture_gemms(fn: Callable[[], object]) -> Counter[Gemm]:
    """Every GEMM-like op of `fn()` (forward and backward) with its count."""
    with Recorder() as recorder:
        fn()
    return recorder.gemms


def gemm_rate(m: int, k: int, n: int, dtype: torch.dtype, device: str = "cpu",
              seconds: float = 0.3) -> float:
    """Median FLOP/s of `a @ b` for (m×k)·(k×n) in `dtype`, timed for about `seconds`."""
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(k, n, device=device).to(dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(2):
        a @ b
    sync()
    start = time.perf_counter()
    a @ b
    sync()
    once = max(time.perf_counter() - start, 1e-6)
    reps = max(1, int(seconds / 5 / once))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync()
        times.append((time.perf_counter() - start) / reps)
    return 2 * m * k * n / sorted(times)[2]


def peak_rate(dtype: torch.dtype, device: str = "cpu") -> float:
    """FLOP/s of a 2048³ GEMM: the number usually quoted for a machine."""
    return gemm_rate(2048, 2048, 2048, dtype, device)


def floor(gemms: Counter[Gemm], device: str = "cpu") -> dict:
    """FLOPs, per-shape floor seconds, and the FLOP-weighted rate of the update's own GEMMs."""
    total = sum(2 * m * k * n * c for (m, k, n, _), c in gemms.items())
    if not total:
        return {"gflop": 0.0, "shapes": 0, "floor_s": 0.0, "rate_gflops": 0.0}
    seconds = 0.0
    for (m, k, n, dtype), count in gemms.items():
        if 2 * m * k * n * count < 1e-4 * total:  # negligible shapes run at the mean rate
            continue
        seconds += 2 * m * k * n * count / gemm_rate(m, k, n, dtype, device, seconds=0.15)
    covered = sum(2 * m * k * n * c for (m, k, n, _), c in gemms.items()
                  if 2 * m * k * n * c >= 1e-4 * total)
    seconds *= total / max(covered, 1)
    return {"gflop": total / 1e9, "shapes": len(gemms), "floor_s": seconds,
            "rate_gflops": total / seconds / 1e9}
