"""One optimiser per module group (spec §1.8; official `common/tfutils.py` Optimizer).

Adam (β 0.9/0.999) with the Keras ε convention, global-norm clipping, and decoupled weight decay
θ ← (1 − wd)·θ applied before the Adam step and not scaled by the learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from .config import OptConfig


class Optimizer:
    def __init__(self, name: str, params: Iterable[torch.nn.Parameter], config: OptConfig):
        self.name = name
        self.params = [p for p in params if p.requires_grad]
        self.clip, self.wd, self.eps = config.clip, config.wd, config.eps
        self.opt = torch.optim.Adam(self.params, lr=config.lr, betas=(0.9, 0.999), eps=config.eps)
        self.steps = 0  # Keras `iterations`: applied updates
        self.skipped = 0

    def step(self, loss: torch.Tensor) -> dict[str, torch.Tensor]:
        """Backward into this group's parameters only, clip, decay, Adam. Returns metrics."""
        self.opt.zero_grad(set_to_none=True)
        # `inputs=` keeps gradients out of other groups' parameters (e.g. the world model under the
        # dynamics actor gradient), which their optimisers must never see (spec §9 item 15).
        loss.backward(inputs=self.params)
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip if self.clip else math.inf)
        metrics = {f"{self.name}_loss": loss.detach(), f"{self.name}_grad_norm": norm.detach()}
        if not torch.isfinite(norm):
            # The official fp16 loss-scale optimiser skips such steps; without loss scaling we do
            # the same rather than write NaNs into the weights (docs/parity.md).
            self.skipped += 1
            metrics[f"{self.name}_skipped"] = torch.tensor(float(self.skipped))
            return metrics
        if self.wd:
            with torch.no_grad():
                torch._foreach_mul_(self.params, 1.0 - self.wd)
        self.steps += 1
        # Keras adds ε to sqrt(v) before bias correction; PyTorch after. ε/sqrt(1 − β2^t) in
        # PyTorch's formula gives exactly the Keras update.
        for group in self.opt.param_groups:
            group["eps"] = self.eps / math.sqrt(1.0 - 0.999 ** self.steps)
        self.opt.step()
        return metrics

    def state_dict(self) -> dict:
        return {"opt": self.opt.state_dict(), "steps": self.steps, "skipped": self.skipped}

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state["opt"])
        self.steps, self.skipped = int(state["steps"]), int(state["skipped"])
