"""One optimiser per module group (spec §1.8; official `common/tfutils.py` Optimizer).

Per step, in the official order: backward; the global gradient norm (logged before clipping);
clipping to `clip` by that norm; decoupled weight decay θ ← (1 − wd)·θ (not scaled by the learning
rate); then Keras Adam (β 0.9/0.999, ε added to sqrt(v) *before* bias correction).

Everything stays on the device, with no host synchronisation (issue 11): whether the step is
applied is a 0-d tensor `ok = isfinite(norm)` that scales the Adam update and masks the moment
updates, instead of a Python `if`. A non-finite step leaves the Adam moments, the step count and
the Adam update out, as the official fp16 loss-scale optimiser skips such steps; the weight decay
before it is still applied, as the official code applies it unconditionally (docs/parity.md).
The global norm is accumulated in float64 from per-tensor norms, so it neither overflows nor
loses the small tensors' share in float32.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .config import OptConfig

BETA1, BETA2 = 0.9, 0.999


class Optimizer:
    def __init__(self, name: str, params: Iterable[torch.nn.Parameter], config: OptConfig):
        self.name = name
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.clip, self.wd, self.eps = config.lr, config.clip, config.wd, config.eps
        device = self.params[0].device if self.params else torch.device("cpu")
        self.m = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.v = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        # Keras `iterations` (applied steps) and the skipped ones, as device counters.
        self._steps = torch.zeros((), dtype=torch.float64, device=device)
        self._skipped = torch.zeros((), dtype=torch.float64, device=device)

    @property
    def steps(self) -> int:
        """Applied updates (reads the device: not for use inside an update)."""
        return int(self._steps)

    @property
    def skipped(self) -> int:
        return int(self._skipped)

    def step(self, loss: torch.Tensor) -> dict[str, torch.Tensor]:
        """Backward into this group's parameters only, clip, decay, Adam. Returns metrics."""
        for p in self.params:
            p.grad = None
        # `inputs=` keeps gradients out of other groups' parameters (e.g. the world model under the
        # dynamics actor gradient), which their optimisers must never see (spec §9 item 15).
        loss.backward(inputs=self.params)
        # Like Keras and torch.optim, a parameter the loss does not reach (grad None) is left out
        # of the Adam step; the weight decay still reaches every parameter, as in the official code.
        used = [i for i, p in enumerate(self.params) if p.grad is not None]
        grads = [self.params[i].grad for i in used]
        if not grads:  # as Keras' "No gradients provided for any variable" (a caller's bug)
            raise ValueError(f"optimiser '{self.name}': the loss reaches none of its parameters")
        norms = torch._foreach_norm(grads)
        norm = torch.linalg.vector_norm(torch.stack(norms).double())
        ok = torch.isfinite(norm)
        with torch.no_grad():
            # TF's clip_by_global_norm: g·clip/max(norm, clip). A skipped step's gradients are
            # zeroed (nan_to_num, then scale 0) so the masked moment updates below stay finite.
            scale = torch.where(ok, self.clip / torch.clamp(norm, min=self.clip), 0.0) \
                if self.clip else ok.double()
            for g in grads:
                torch.nan_to_num_(g, nan=0.0, posinf=0.0, neginf=0.0)
            torch._foreach_mul_(grads, scale.float())
            if self.wd:
                torch._foreach_mul_(self.params, 1.0 - self.wd)
            self._adam(used, grads, ok)
        return {f"{self.name}_loss": loss.detach(), f"{self.name}_grad_norm": norm.float(),
                f"{self.name}_skipped": self._skipped.clone()}

    def _adam(self, used: list[int], grads: list[torch.Tensor], ok: torch.Tensor) -> None:
        """Keras Adam: m, v ← β·m + (1−β)·g, g²; θ ← θ − lr·sqrt(1−β2^t)/(1−β1^t)·m/(sqrt(v)+ε).

        On a skipped step (`ok` false) the gradients are already 0 and the decay factors β are
        replaced by 1, so m and v stay as they were, and the step size is 0.
        """
        self._steps += ok.double()
        self._skipped += (~ok).double()
        t = self._steps
        params, m, v = ([x[i] for i in used] for x in (self.params, self.m, self.v))
        torch._foreach_mul_(m, torch.where(ok, BETA1, 1.0).float())
        torch._foreach_add_(m, grads, alpha=1 - BETA1)
        torch._foreach_mul_(v, torch.where(ok, BETA2, 1.0).float())
        torch._foreach_addcmul_(v, grads, grads, value=1 - BETA2)
        lr_t = self.lr * torch.sqrt(1 - BETA2 ** t) / (1 - BETA1 ** t).clamp(min=1e-30)
        denom = torch._foreach_sqrt(v)
        torch._foreach_add_(denom, self.eps)
        # θ += m / (denom / −lr_t), one fused pass; a skipped step divides by −0 (θ += m/−inf).
        torch._foreach_div_(denom, torch.where(ok, -lr_t, -0.0).float())
        torch._foreach_addcdiv_(params, m, denom)

    def state_dict(self) -> dict:
        return {"m": [t.clone() for t in self.m], "v": [t.clone() for t in self.v],
                "steps": self._steps.clone(), "skipped": self._skipped.clone()}

    def load_state_dict(self, state: dict) -> None:
        if "opt" in state:  # written by the torch.optim.Adam version of this class
            moments = state["opt"]["state"]
            m = [moments[i]["exp_avg"] if i in moments else None for i in range(len(self.params))]
            v = [moments[i]["exp_avg_sq"] if i in moments else None
                 for i in range(len(self.params))]
        else:
            m, v = state["m"], state["v"]
        if len(m) != len(self.params):
            raise ValueError(f"optimiser '{self.name}': the checkpoint has {len(m)} moment "
                             f"tensors, the model {len(self.params)} parameters")
        for mine, theirs in zip(self.m + self.v, list(m) + list(v)):
            if theirs is None:
                mine.zero_()
            else:
                mine.copy_(theirs)
        self._steps.fill_(float(state["steps"]))
        self._skipped.fill_(float(state["skipped"]))
