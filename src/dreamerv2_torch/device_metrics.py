"""Update metrics summed on the device and read on the host once per log write (issue 11).

Reading a metric after every update (`float(tensor)`) makes the host wait for the device each
time; `DeviceMetrics.add` only queues additions, and `pop` reads all sums with one transfer when
the loop writes its logs. The means are those of the per-update values, as the logger's own
averaging of per-update floats gave.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


class DeviceMetrics:
    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, metrics: Mapping[str, torch.Tensor | float]) -> None:
        for key, value in metrics.items():
            value = value.detach().float() if isinstance(value, torch.Tensor) else float(value)
            self.sums[key] = self.sums[key] + value if key in self.sums else value
            self.counts[key] = self.counts.get(key, 0) + 1

    def pop(self) -> dict[str, float]:
        """Means since the last pop, as floats (one device-to-host copy per device)."""
        out: dict[str, float] = {}
        by_device: dict[torch.device, list[str]] = {}
        for key, value in self.sums.items():
            if isinstance(value, torch.Tensor):
                by_device.setdefault(value.device, []).append(key)
            else:
                out[key] = value / self.counts[key]
        for keys in by_device.values():
            values = torch.stack([self.sums[k].reshape(()) for k in keys]).cpu().tolist()
            out.update({k: v / self.counts[k] for k, v in zip(keys, values)})
        self.sums, self.counts = {}, {}
        return out
