"""Resume continues the official optimisation trajectory (tests/parity/optim.npz).

An agent that saves its state after the first official update and is restored into a fresh agent
must make the second update exactly as the official code did: every optimiser's Adam moments and
step count, the slow critic and its counter are part of the state. Dropping any of them (e.g. not
restoring the world model's optimiser) moves the second update away from the official one.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from parity_support import Draws, Golden, our_weights, rel_l2_beyond_ulp

from dreamerv2_torch import dists


def _train(agent, golden, update):
    batch = {k[len(f"u{update}/batch/"):]: v for k, v in golden.arrays.items()
             if k.startswith(f"u{update}/batch/")}
    with dists.injected_samples(Draws(golden, update)):
        agent.train(batch)


def _second_update_error(agent, golden) -> float:
    _train(agent, golden, 1)
    ours = our_weights(agent)
    start = {n: golden[f"u0/w/{n}"].astype(np.float64) for n in ours}
    mine = np.concatenate([np.ravel(ours[n] - start[n]) for n in ours])
    new = np.concatenate([np.ravel(golden[f"u1/w/{n}"]) for n in ours])
    return rel_l2_beyond_ulp(mine, new - np.concatenate([np.ravel(start[n]) for n in ours]), new)


def _restored(golden, state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    fresh = golden.agent()
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    return fresh


def test_restored_agent_makes_the_official_second_update():
    golden = Golden("optim")
    agent = golden.agent()
    _train(agent, golden, 0)
    fresh = _restored(golden, agent.state_dict())
    assert _second_update_error(fresh, golden) < 1e-5  # the parity test's bound


@pytest.mark.parametrize("drop", ["model_opt", "actor_opt", "critic_opt"])
def test_an_unrestored_optimiser_moves_the_second_update(drop):
    golden = Golden("optim")
    agent = golden.agent()
    _train(agent, golden, 0)
    state = agent.state_dict()
    fresh = golden.agent()
    state[drop] = fresh.__dict__[drop].state_dict()  # as if that optimiser were not restored
    assert _second_update_error(_restored(golden, state), golden) > 1e-3
