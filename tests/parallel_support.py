"""The tiny env that tests/test_mutants_parallel*.py hand to `parallel.py` (module level, so
that it pickles by reference into a worker loop)."""

from __future__ import annotations

import numpy as np

from dreamerv2_torch.envs.base import FLAG_SPACES, Space, step_obs

BUILT: list = []  # every Recorder env built by a worker loop run in this process


class Recorder:
    """A tiny env that records what it is asked (picklable by reference: module level)."""

    obs_space = {"vector": Space((2,), np.float32), **FLAG_SPACES}
    act_space = {"action": Space((3,), np.float32, -1.0, 1.0)}

    def __init__(self, seed: int, mode: str, fail: str = ""):
        self.seed, self.mode, self.fail, self.calls = seed, mode, fail, []
        BUILT.append(self)
        if fail == "build":
            raise ValueError(f"cannot build env {seed}")

    def reset(self):
        self.calls.append("reset")
        return {"vector": np.full(2, self.seed, np.float32),
                **step_obs(0.0, is_first=True, is_last=False, is_terminal=False)}

    def step(self, action):
        self.calls.append(("step", action))
        if self.fail == "step":
            raise KeyError("broken step")
        return {"vector": np.asarray(action["action"][:2], np.float32),
                **step_obs(1.0, is_first=False, is_last=False, is_terminal=False)}

    def get_state(self):
        return {"calls": len(self.calls)}

    def set_state(self, state):
        self.calls.append(("set_state", state))

    def close(self):
        self.calls.append("close")


def failing_recorder(seed: int, mode: str, fail: str) -> Recorder:
    return Recorder(seed, mode, fail)
