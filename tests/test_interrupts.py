"""Ctrl-C while the `train` command builds its run is noted, not raised where it lands, and ends
the command as "interrupted", exit code 130, before training starts. CI saw a Ctrl-C raised there
abort the process (a KeyboardInterrupt inside torch's pybind11 code: SIGABRT, exit code -6) and,
earlier, one dropped in a weakref callback during `import torch` (the run trained on)."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from dreamerv2_torch import cli, interrupts

pytestmark = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                reason="signal handlers can only be set in the main thread")


def ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)  # Python runs the handler before the next line


@pytest.fixture
def own_handler(monkeypatch):
    """A SIGINT handler of the caller's that must be there again afterwards."""
    monkeypatch.setattr(interrupts, "_pending", False)
    monkeypatch.setattr(interrupts, "_previous", None)
    seen = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    yield seen
    signal.signal(signal.SIGINT, previous)


def test_a_first_ctrl_c_is_noted_and_raised_at_the_next_safe_point_once(own_handler, capfd):
    interrupts.defer()
    ctrl_c()
    went_on = True  # not interrupted where the signal landed
    assert went_on and "Ctrl-C" in capfd.readouterr().err
    with pytest.raises(KeyboardInterrupt):
        interrupts.release()
    interrupts.raise_pending()  # handed over: not raised twice
    ctrl_c()  # SIGINT is the caller's handler's again
    assert own_handler == [signal.SIGINT]


def test_a_second_ctrl_c_stops_at_once(own_handler):
    interrupts.defer()
    ctrl_c()
    with pytest.raises(KeyboardInterrupt):
        ctrl_c()
    interrupts.restore()
    assert own_handler == []


def test_without_defer_nothing_changes(own_handler):
    """The Python API never defers: `release` (where `StopRequested` starts) leaves SIGINT alone."""
    interrupts.release()
    ctrl_c()
    assert own_handler == [signal.SIGINT]


def test_ctrl_c_while_the_run_is_built_ends_the_command_before_training(own_handler, monkeypatch,
                                                                         tmp_path, capsys):
    from dreamerv2_torch import training

    went_on = []
    open_rundir = training.open_rundir

    def ctrl_c_while_building(config):  # as if pressed while torch or an env loads
        ctrl_c()
        went_on.append(True)
        return open_rundir(config)

    monkeypatch.setattr(training, "open_rundir", ctrl_c_while_building)
    logdir = tmp_path / "run"
    code = cli.main(["train", "--preset", "debug", "--task", "dummy_vector",
                     "--logdir", str(logdir)])
    assert (code, went_on) == (130, [True])
    assert capsys.readouterr().err.strip().endswith("interrupted")
    assert not (logdir / "checkpoint.pt").exists()
    ctrl_c()  # the caller's handler is back
    assert own_handler == [signal.SIGINT]


def test_a_failed_build_gives_sigint_back(own_handler, monkeypatch):
    def broken(argv):
        raise cli.presets.ConfigError("bad value")

    monkeypatch.setattr(cli, "parse_train_args", broken)
    assert cli.main(["train"]) == 2
    ctrl_c()
    assert own_handler == [signal.SIGINT]


def test_other_commands_import_torch_with_ctrl_c_deferred(own_handler):
    went_on = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            ctrl_c()  # as if pressed while `import torch` runs
            went_on.append(True)
    assert went_on == [True]
    ctrl_c()
    assert own_handler == [signal.SIGINT]


def test_the_eval_command_ends_interrupted_when_ctrl_c_came_during_its_imports(own_handler,
                                                                              monkeypatch, capsys):
    import dreamerv2_torch.evaluation as evaluation

    def must_not_run(argv):
        pytest.fail("evaluated although Ctrl-C was pressed while importing")

    monkeypatch.setattr(evaluation, "eval_main", must_not_run)
    real_defer = interrupts.defer

    def defer_then_ctrl_c():
        real_defer()
        ctrl_c()

    monkeypatch.setattr(interrupts, "defer", defer_then_ctrl_c)
    assert cli.main(["eval", "--logdir", "x"]) == 130
    assert capsys.readouterr().err.strip().endswith("interrupted")


def test_a_command_run_outside_the_main_thread_still_runs(monkeypatch):
    """Python sets signal handlers only in the main thread: `defer` there is a no-op, no error."""
    def broken(argv):
        raise cli.presets.ConfigError("bad value")

    monkeypatch.setattr(cli, "parse_train_args", broken)
    codes = []
    worker = threading.Thread(target=lambda: codes.append(cli.main(["train"])))
    worker.start()
    worker.join(60)
    assert codes == [2]
