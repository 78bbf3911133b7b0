"""Tests written for surviving mutants of optim.py, schedules.py and run_state.py (issue 10).

Expected values are the Keras Adam update written out by hand (spec §1.8), the official
`common.other.schedule` formulas (spec §2.7) and, for `run_state`, what a resume must bring back
(docs/parity.md "Loop, resume and seeding"), checked on a stub loop; none is taken from this
package's own output. docs/parity.md ("nets, optimiser and run state") lists the
mutants these tests kill and the ones that are equivalent.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dreamerv2_torch import checkpoint, run_state
from dreamerv2_torch.config import OptConfig
from dreamerv2_torch.optim import Optimizer
from dreamerv2_torch.schedules import parse

B1, B2 = 0.9, 0.999


def _param(value=2.0):
    return torch.nn.Parameter(torch.tensor([value]))


def _keras_adam(grads, theta, lr, eps=1e-5, wd=0.0):
    """θ after Keras Adam steps on scalar gradients `grads` (None: a skipped step), decay first."""
    m = v = 0.0
    t = 0
    for g in grads:
        theta *= 1 - wd
        if g is None:
            continue
        t += 1
        m, v = B1 * m + (1 - B1) * g, B2 * v + (1 - B2) * g * g
        theta -= lr * math.sqrt(1 - B2 ** t) / (1 - B1 ** t) * m / (math.sqrt(v) + eps)
    return theta


# ---- optim.py ----------------------------------------------------------------------------------


def test_several_keras_adam_steps_with_a_skipped_one_in_between():
    p = _param()
    opt = Optimizer("m", [p], OptConfig(lr=0.1, eps=1e-5, wd=0.01, clip=100.0))
    grads = [1.0, -3.0, None, 0.5]
    for g in grads:
        opt.step(p.sum() * (float("nan") if g is None else g))
    assert p.item() == pytest.approx(_keras_adam(grads, 2.0, 0.1, wd=0.01), abs=1e-6)
    assert (opt.steps, opt.skipped) == (3, 1)


def test_a_skipped_step_leaves_moments_and_weights_alone_after_real_steps():
    # After real steps m, v are non-zero: a skip must neither decay them (β → 1 on a skip), nor
    # move θ with them (step size exactly 0), nor reset the skip counter.
    p = _param()
    opt = Optimizer("m", [p], OptConfig(lr=0.1, wd=0.0, clip=100.0))
    opt.step(p.sum() * 2.0)
    before = (float(opt.m[0]), float(opt.v[0]), p.item())
    for _ in range(2):
        metrics = opt.step(p.sum() * float("inf"))
    assert (float(opt.m[0]), float(opt.v[0]), p.item()) == before
    assert opt.skipped == 2 and float(metrics["m_skipped"]) == 2 and opt.steps == 1


def test_a_skip_ignores_the_finite_gradients_of_other_parameters():
    # One tensor non-finite skips the whole step: the finite one's moments stay 0 too.
    a, b = _param(), _param()
    opt = Optimizer("m", [a, b], OptConfig(lr=0.1, wd=0.0, clip=100.0))
    opt.step(a.sum() * float("inf") + 3.0 * b.sum())
    assert [float(x) for x in opt.m + opt.v] == [0.0] * 4
    assert (a.item(), b.item()) == (2.0, 2.0)


def test_clip_zero_means_no_clipping():
    # Official: `if self._clip:` — 0 turns clipping off; the step is Adam's with the raw gradient.
    p = _param()
    opt = Optimizer("m", [p], OptConfig(lr=0.1, wd=0.0, clip=0.0))
    metrics = opt.step(p.sum() * 5000.0)
    assert float(metrics["m_grad_norm"]) == 5000.0 and float(p.grad) == 5000.0
    assert p.item() == pytest.approx(_keras_adam([5000.0], 2.0, 0.1), abs=1e-6)


def test_a_loss_that_reaches_none_of_the_parameters_is_one_clear_error():
    # Keras (official) raises "No gradients provided for any variable"; before the fix this
    # crashed inside a foreach op ("Tensor list must have at least one tensor").
    p, other = _param(), _param()
    opt = Optimizer("model", [p], OptConfig(lr=0.1, wd=0.5, clip=100.0))
    with pytest.raises(ValueError, match="'model': the loss reaches none of its parameters"):
        opt.step((other * 2.0).sum())
    assert p.item() == 2.0 and opt.steps == 0


def test_no_trainable_parameters_keeps_cpu_counters():
    frozen = torch.nn.Parameter(torch.ones(1), requires_grad=False)
    opt = Optimizer("m", [frozen], OptConfig())
    state = opt.state_dict()
    assert state["m"] == [] and state["steps"].device == torch.device("cpu")
    assert (opt.steps, opt.skipped) == (0, 0)


def test_counters_live_on_the_parameters_device():
    p = torch.nn.Parameter(torch.ones(3, device="meta"))
    state = Optimizer("m", [p], OptConfig()).state_dict()
    assert state["steps"].device.type == "meta" and state["skipped"].device.type == "meta"
    assert state["m"][0].device.type == "meta"


def test_counters_stay_exact_beyond_float32():
    p = _param()
    opt = Optimizer("m", [p], OptConfig())
    opt.load_state_dict({"m": [torch.zeros(1)], "v": [torch.zeros(1)],
                         "steps": 2 ** 24 + 1, "skipped": 2 ** 24 + 1})
    assert (opt.steps, opt.skipped) == (2 ** 24 + 1, 2 ** 24 + 1)


def test_old_torch_adam_state_with_a_parameter_it_never_saw():
    a, b = _param(), _param()
    opt = Optimizer("m", [a, b], OptConfig())
    opt.m[1].fill_(7.0)
    opt.v[1].fill_(7.0)
    old = {"opt": {"state": {0: {"exp_avg": torch.tensor([0.5]),
                                 "exp_avg_sq": torch.tensor([0.25])}}},
           "steps": 3, "skipped": 0}
    opt.load_state_dict(old)  # index 1 is absent: torch.optim had no state for it yet
    assert [float(x) for x in opt.m + opt.v] == [0.5, 0.0, 0.25, 0.0]


def test_moment_count_mismatch_names_both_counts():
    opt = Optimizer("model", [_param()], OptConfig())
    state = {"m": [torch.zeros(1)] * 2, "v": [torch.zeros(1)] * 2, "steps": 0, "skipped": 0}
    with pytest.raises(ValueError, match="'model': the checkpoint has 2 moment tensors, the "
                                         "model 1 parameters"):
        opt.load_state_dict(state)


# ---- schedules.py ------------------------------------------------------------------------------


def test_exp_schedule_decays_towards_its_final_value():
    # Official: (initial − final)·0.5^(step/halflife) + final.
    exp = parse("exp(3, 1, 10)")
    assert exp(0) == pytest.approx(3.0) and exp(20) == pytest.approx(1.5)


def test_horizon_schedule_interpolates_the_horizon_not_the_discount():
    # Official: horizon = (1 − mix)·initial + mix·final, mix = clip(step/n, 0, 1); 1 − 1/horizon.
    horizon = parse("horizon(10, 100, 10)")
    assert horizon(5) == pytest.approx(1 - 1 / 55) and horizon(20) == pytest.approx(1 - 1 / 100)


def test_schedule_string_with_a_trailing_space():
    # The official `re.match` is not anchored at the end, so trailing text such as a space passes.
    assert parse("linear(3, 1, 10) ")(5) == pytest.approx(2.0)


def test_unknown_schedule_lists_the_known_forms():
    with pytest.raises(ValueError, match=r"schedule \(linear\(a,b,n\), warmup\(n,v\), "
                                         r"exp\(a,b,halflife\), horizon\(a,b,n\)\)$"):
        parse("cosine(1, 2)")


# ---- run_state.py ------------------------------------------------------------------------------


def _stub_loop():
    """The parts of a `loop.Loop` that `restore` touches when the env streams are not continued
    (its `stored` count differs from the checkpoint's)."""
    replay = SimpleNamespace(load_state_dict=lambda state: None, stats={"total_episodes": 0})
    return SimpleNamespace(every={}, agent=SimpleNamespace(load_state_dict=lambda state: None),
                           train_replay=replay, eval_replay=replay, frames=0,
                           train_driver=SimpleNamespace(dropped=0), crafter="untouched",
                           overlap=None)  # the official order: no collector


def _checkpoint(**extra):
    return {"step": 8, "updates": 2, "pretrained": True, "every": {}, "agent": {},
            "train_replay": {}, "eval_replay": {}, "rng": checkpoint.rng_state(), **extra}


def test_restore_brings_back_the_crafter_achievement_counts(capsys):
    # The Crafter score is over every episode of the run, so a resume continues its counts.
    loop = _stub_loop()
    run_state.restore(loop, _checkpoint(crafter={"episodes": 3, "counts": {"collect_wood": 2}},
                                        restarts=4, last_eval=150, eval_done=2, dropped=3))
    assert loop.crafter == {"episodes": 3, "counts": {"collect_wood": 2}}
    assert (loop.step, loop.updates, loop.restarts) == (8, 2, 5)
    assert (loop.last_eval, loop.eval_done, loop.train_driver.dropped) == (150, 2, 3)
    assert loop.last_write[1] == 0 and loop.skipped_mark == ({}, 2)
    older = _stub_loop()  # a checkpoint written before these keys were kept
    run_state.restore(older, _checkpoint())
    assert older.crafter == "untouched" and older.restarts == 1
    assert (older.last_eval, older.eval_done, older.train_driver.dropped) == (None, 0, 0)
    assert capsys.readouterr().out.splitlines()[-1] == (
        "Resumed from step 8 (0 frames; restart 1, fresh env streams).")


def test_restore_continues_the_env_streams_when_no_episode_was_stored_since(capsys):
    loop, calls = _stub_loop(), {}
    loop.rng, loop.agent.device = np.random.default_rng(0), "meta"  # the policy state moves
    loop.train_envs = SimpleNamespace(set_states=lambda s: calls.update(train=s))
    loop.eval_env = SimpleNamespace(num_envs=1, set_states=lambda s: calls.update(eval=s))
    loop.train_driver.load_state_dict = lambda d, p: calls.update(driver=d, policy=p)
    t = torch.tensor
    state = _checkpoint(stored=0, loop_rng=np.random.default_rng(5).bit_generator.state,
                        env_states={"train": [None, {"x": t([1.0])}, {"x": t([1.5])}],
                                    "eval": [{"y": t([2.0])}]},
                        driver=[{"d": t([3.0])}, {"d": t([4.0])}, None],
                        policy_state={"h": t([5.0])})
    run_state.restore(loop, state)
    assert loop.rng.random() == np.random.default_rng(5).random()
    assert calls["train"][0] is None and calls["train"][1]["x"].tolist() == [1.0]
    assert calls["eval"][0]["y"].tolist() == [2.0]
    # Env 0 could not save its state, so its unfinished episode is not continued either.
    assert calls["driver"][0] is None and calls["driver"][1]["d"].tolist() == [4.0]
    assert calls["driver"][2] is None and calls["policy"]["h"].device.type == "meta"
    assert capsys.readouterr().out.splitlines()[-1] == (
        "Resumed from step 8 (0 frames; restart 1, 2 of 3 env streams continued, "
        "1 unfinished episode(s)).")
    del calls["eval"]
    loop.eval_env.num_envs = 2  # a different eval env count starts fresh eval streams
    run_state.restore(loop, state)
    assert "eval" not in calls
    calls.clear()  # an episode stored since the checkpoint: its streams would repeat it
    run_state.restore(loop, {**state, "stored": 1})
    assert calls == {} and capsys.readouterr().out.endswith("fresh env streams).\n")


def test_save_by_the_clock_every_checkpoint_every_minutes(monkeypatch):
    saves = []
    loop = SimpleNamespace(config=SimpleNamespace(checkpoint_every=2), last_save=100.0,
                           save=lambda: saves.append(now[0]))
    now = [0.0]
    monkeypatch.setattr(run_state.time, "monotonic", lambda: now[0])
    for now[0] in (100.0 + 119.5, 100.0 + 120.0):  # 2 minutes = 120 s after the last save
        run_state.save_by_the_clock(loop)
    assert saves == [220.0]
    loop.config.checkpoint_every = 0  # 0 turns the clock off
    now[0] = 1e9
    run_state.save_by_the_clock(loop)
    assert saves == [220.0]


def test_stored_counts_train_and_eval_episodes():
    loop = SimpleNamespace(train_replay=SimpleNamespace(stats={"total_episodes": 3}),
                           eval_replay=SimpleNamespace(stats={"total_episodes": 4}))
    assert run_state.stored(loop) == 7
