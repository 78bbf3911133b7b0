"""A Ctrl-C that Python drops (raised inside a weakref callback or `__del__` before the training
loop's handler exists) still ends the command as "interrupted", exit code 130, without a
traceback. CI saw one dropped in importlib's module-lock callback during `import torch`: the run
printed "Exception ignored in ..." with a traceback and trained to the end."""

from __future__ import annotations

import gc
import sys

import pytest

from dreamerv2_torch import cli, interrupts


class InterruptedInDel:
    def __del__(self):
        raise KeyboardInterrupt  # where Python cannot raise it: it goes to sys.unraisablehook


class FailsInDel:
    def __del__(self):
        raise ValueError("an ordinary error in __del__")


def drop(obj_type) -> None:
    obj = obj_type()
    del obj
    gc.collect()


@pytest.fixture
def hooked(monkeypatch):
    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
    monkeypatch.setattr(interrupts, "_pending", False)
    interrupts.install()
    yield


def test_a_dropped_interrupt_is_raised_at_the_next_safe_point_once(hooked, capsys):
    drop(InterruptedInDel)
    assert capsys.readouterr().err == ""  # no "Exception ignored ... Traceback"
    with pytest.raises(KeyboardInterrupt):
        interrupts.raise_pending()
    interrupts.raise_pending()  # handed over: not raised twice


def test_other_dropped_errors_still_reach_the_previous_hook(monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_type))
    monkeypatch.setattr(interrupts, "_pending", False)
    interrupts.install()
    interrupts.install()  # idempotent: still one hook in front of the previous one
    drop(FailsInDel)
    assert seen == [ValueError]
    interrupts.raise_pending()  # nothing pending


def test_the_train_command_ends_interrupted_when_ctrl_c_was_dropped(hooked, monkeypatch, capsys):
    def parse_and_drop_a_ctrl_c(argv):  # as if it landed in a callback while importing
        drop(InterruptedInDel)
        return cli.presets.resolve(["debug"], {"task": "dummy_vector"})

    def must_not_train(config, **kwargs):
        pytest.fail("trained although Ctrl-C was pressed")

    monkeypatch.setattr(cli, "parse_train_args", parse_and_drop_a_ctrl_c)
    monkeypatch.setattr("dreamerv2_torch.training.train", must_not_train)
    assert cli.main(["train"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"


def test_stop_requested_raises_a_ctrl_c_dropped_while_the_run_was_built(hooked):
    from dreamerv2_torch.training import StopRequested

    drop(InterruptedInDel)
    with pytest.raises(KeyboardInterrupt):
        with StopRequested():
            pytest.fail("entered the loop's handler although Ctrl-C was pressed")
