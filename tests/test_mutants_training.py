"""Tests for mutants of training.py that survived tools/parity/mutation.sh (docs/parity.md,
"training loop: loop, training, overlap"): the wiring of a run (`training.train`,
`training._train`): the env factory, the stop flag, a fresh run and a resume built from the
config, checkpoint and stored episodes. Each method is called on stand-ins that record what they
are asked; expected values are written out by hand from the spec and the official `train.py`. No
training run."""

from __future__ import annotations

import dataclasses
import pickle
import signal
import threading
import types

import numpy as np
import pytest
import torch

from dreamerv2_torch import presets, training
from dreamerv2_torch.driver import stream_seed
from dreamerv2_torch.rundir import RunError
from dreamerv2_torch.training import StopRequested

NS = types.SimpleNamespace


def _config(**overrides):
    return presets.resolve(["debug"], {"task": "dummy_discrete", "logdir": "", **overrides})




# ---- training.py: the env factory and the stop flag -------------------------------------------


def test_the_task_env_gets_every_env_setting_of_the_config(tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(training, "make_env", lambda task, **kwargs: made.append(
        (task, kwargs)) or "env")
    config = _config(task="atari_pong", action_repeat=3, time_limit=77, render_size=[48, 40],
                     atari_grayscale=False, atari_all_actions=False, dmc_camera=2)
    factory = training.default_env_factory(config, tmp_path)
    assert pickle.loads(pickle.dumps(factory)).args[0] == config  # envs > 1 pickles it
    assert factory(123, "eval") == "env"
    assert made == [("atari_pong", {
        "seed": 123, "mode": "eval", "action_repeat": 3, "time_limit": 77, "size": (48, 40),
        "grayscale": False, "all_actions": False, "camera": 2, "logdir": tmp_path,
        "pixels": True})]
    vector = _config(task="atari_pong", **{"encoder.cnn_keys": "$^"})  # no image encoder
    training.default_env_factory(vector, tmp_path)(0, "train")
    assert made[-1][1]["pixels"] is False


@pytest.mark.skipif(not hasattr(signal, "raise_signal"), reason="signals")
def test_a_stop_request_sets_the_flag_once_and_restores_the_handlers(capsys):
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with StopRequested() as stop:
        assert stop.flag is False
        assert signal.getsignal(signal.SIGINT) == signal.getsignal(signal.SIGTERM) == stop._handle
        signal.raise_signal(signal.SIGTERM)
        assert stop.flag is True
        # The first signal restores the old handlers: a second Ctrl-C aborts without saving.
        assert {sig: signal.getsignal(sig) for sig in before} == before
    assert capsys.readouterr().out == ("\nStopping after the current step and saving a "
                                       "checkpoint (interrupt again to abort without saving).\n")
    with StopRequested() as stop:
        pass
    assert not stop.flag and {sig: signal.getsignal(sig) for sig in before} == before
    in_thread = []  # not the main thread (e.g. a Ray worker): no handler, no error
    thread = threading.Thread(target=lambda: in_thread.append(StopRequested().__enter__()._old))
    thread.start()
    thread.join()
    assert in_thread == [{}]


# ---- loop._train: the wiring -----------------------------------------------------------------


class _Recorder:
    """Stands in for a class `_train` builds: records its arguments and the calls made on it."""

    def __init__(self, log, name, **attributes):
        self.log, self.name = log, name
        self.__dict__.update(attributes)

    def __call__(self, *args, **kwargs):
        self.log.append((self.name, args, kwargs))
        made = _Recorder(self.log, f"{self.name}()", **self.__dict__.get("made", {}))
        made.args, made.kwargs = args, kwargs
        return made

    def __getattr__(self, method):
        if method.startswith("__"):
            raise AttributeError(method)
        return lambda *args, **kwargs: self.log.append((f"{self.name}.{method}", args, kwargs))


def _wire(monkeypatch, tmp_path, checkpoint=None, run_raises=None):
    log = []
    monkeypatch.setattr(training, "open_rundir", lambda config: log.append(
        ("open_rundir", config)) or NS(logdir=tmp_path, checkpoint=checkpoint,
                                       commit=lambda: log.append("commit")))
    monkeypatch.setattr(training.torch, "set_num_threads", lambda n: log.append(("threads", n)))
    monkeypatch.setattr(training.torch, "manual_seed", lambda s: log.append(("torch seed", s)))
    spaces = {"obs_space": "obs", "act_space": "act"}
    for name in ("SerialEnvs", "ParallelEnvs", "EnvThread"):
        monkeypatch.setattr(training, name, _Recorder(log, name, made=spaces))
    monkeypatch.setattr(training.vector_atari, "from_config",
                        _Recorder(log, "from_config", made=spaces))
    monkeypatch.setattr(training, "truncate_logs", lambda logdir, sizes: log.append(
        ("truncate", logdir, sizes)) or sum(sizes.values()))
    monkeypatch.setattr(training, "Replay",
                        _Recorder(log, "Replay", made={"stats": {"total_steps": 33}}))
    nets = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(1_005_001)),
                                   torch.nn.Parameter(torch.zeros(9), requires_grad=False)])
    agent = NS(device=torch.device("cpu"), bf16=False, nets=nets)
    monkeypatch.setattr(training, "Agent", lambda *args: log.append(("Agent", args)) or agent)

    class Loop_(_Recorder):
        def __call__(self, *args):
            made = super().__call__(*args)
            made.step = 40 if checkpoint else None
            if run_raises:
                made.run = lambda: (_ for _ in ()).throw(run_raises)
            return made

    monkeypatch.setattr(training, "Loop", Loop_(log, "Loop"))
    monkeypatch.setattr(training, "Logger", _Recorder(log, "Logger"))
    monkeypatch.setattr(training, "Progress",
                        _Recorder(log, "Progress", made={"restart_rate": "the bar's restart"}))
    monkeypatch.setattr(training, "Forecast", _Recorder(log, "Forecast"))
    monkeypatch.setattr(training.tracking, "make_trackers", lambda config, logdir: (
        "trackers", config, logdir))
    return log, agent


def _calls(log, name):
    return [entry[1:] for entry in log if isinstance(entry, tuple) and entry[0] == name]


def _make(log):
    return lambda seed, mode: log.append(("make", seed, mode)) or f"{mode} env {seed}"


def test_a_fresh_run_is_wired_from_the_config(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    config = _config(seed=7, threads=2, action_repeat=2, steps=500, log_every=50, precision=32,
                     train_every=5, train_steps=3, **{
                         "replay.capacity": 1005, "replay.minlen": 10, "replay.maxlen": 50,
                         "replay.prioritize_ends": True, "dataset.length": 20})
    log, agent = _wire(monkeypatch, tmp_path)
    result = training._train(config, _make(log), progress=True)
    order = [e if isinstance(e, str) else e[0] for e in log]
    assert log[0] == ("open_rundir", config)
    # The envs are built (the task checked) before the logdir is written, then seeding.
    assert order[1:7] == ["threads", "make", "SerialEnvs", "make", "SerialEnvs", "commit"]
    assert order[7] == "torch seed"
    assert _calls(log, "threads") == [(2,)] and _calls(log, "torch seed") == [(7,)]
    # A fresh run: env i gets seed + i, the eval env seed + 10000 (driver.stream_seed).
    assert _calls(log, "make") == [(10007, "eval"), (7, "train")]
    assert _calls(log, "SerialEnvs") == [((["eval env 10007"],), {}), ((["train env 7"],), {})]
    assert _calls(log, "truncate") == [(tmp_path, {"metrics.jsonl": 0, "scores.jsonl": 0})]
    assert _calls(log, "Replay") == [
        ((tmp_path / "train_episodes", 1005, 10, 50, True), {"seed": 7}),
        ((tmp_path / "eval_episodes", 100, 20, 20, False), {"seed": 8})]  # capacity // 10
    assert len(_calls(log, "Replay().load")) == 2
    (agent_args,) = _calls(log, "Agent")
    assert agent_args == (("obs", "act", config),)
    ((loop_args, _),) = _calls(log, "Loop")
    assert loop_args[0] is config and loop_args[1] is agent and loop_args[7] == tmp_path
    assert loop_args[2].args == (["train env 7"],)
    assert loop_args[3].args == (["eval env 10007"],)
    assert [r.args[0].name for r in loop_args[4:6]] == ["train_episodes", "eval_episodes"]
    assert loop_args[6].random() == np.random.default_rng(7 + 10**6).random()  # random policy
    assert _calls(log, "Loop().restore") == []
    assert _calls(log, "Logger") == [((tmp_path,), {"tensorboard_videos":
                                                    config.tensorboard_videos,
                                                    "trackers": ("trackers", config,
                                                                 tmp_path)})]
    # Progress in frames: steps × action_repeat, from the loaded steps, a line per log_every.
    (progress,) = _calls(log, "Progress")
    assert progress == ((1000, 66), {"disable": None, "every": 100})
    ((forecast_args, forecast_kwargs),) = _calls(log, "Forecast")
    assert forecast_args == (500, 2, "cpu", torch.get_num_threads())
    assert forecast_kwargs["small_model"] is False
    assert (forecast_kwargs["train_every"], forecast_kwargs["train_steps"]) == (5, 3)
    assert forecast_kwargs["on_start"] == "the bar's restart"  # the bar's rate restarts
    assert [e[0] for e in log if isinstance(e, tuple)][-5:] == [
        "Loop().attach", "Loop().run", "Loop().close", "Progress().close", "Logger().close"]
    ((attach, _),) = _calls(log, "Loop().attach")
    assert attach[0].name == "Logger()" and attach[1].name == "Progress()"
    assert attach[2].flag is False
    out = capsys.readouterr().out
    assert "Log lines written after" not in out
    assert (f"Task dummy_discrete, device cpu, float32, threads {torch.get_num_threads()} "
            "(OpenMP wait policy passive), ") in out
    # 1 005 001 trainable parameters (the frozen 9 are not counted): 1.005001M, to 2 places.
    assert f"1.01M trainable parameters, logdir {tmp_path}.\n" in out
    assert result == {"step": 33, "frames": 66, "stopped": False}


def test_a_resume_is_wired_from_its_checkpoint_and_the_stored_episodes(tmp_path, monkeypatch,
                                                                      capsys):
    for name in ("train_episodes/a.npz", "train_episodes/b.npz", "eval_episodes/c.npz",
                 "train_episodes/notes.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    ckpt = {"restarts": 2, "logs": {"metrics.jsonl": 5}}
    config = _config(seed=7, threads=0, eval_eps=0, envs=2, action_repeat=2,
                     **{"replay.capacity": 5})
    log, _ = _wire(monkeypatch, tmp_path, checkpoint=ckpt)
    result = training._train(config, _make(log), progress=False)
    assert _calls(log, "threads") == []  # 0: torch's default
    # Restart 3 with 3 episode files: no stream of an earlier start repeats (driver.stream_seed).
    seeds = [stream_seed(7, i, 3, 3) for i in (0, 1)]
    ((make, envs, name), _), = _calls(log, "ParallelEnvs")
    assert (envs, name) == (seeds, "train") and make(1, "x") == "x env 1"
    assert _calls(log, "SerialEnvs") == []  # eval_eps 0: no eval env
    ((loop_args, _),) = _calls(log, "Loop")
    assert loop_args[3] is None
    assert loop_args[6].random() == np.random.default_rng(stream_seed(7, 10**6, 3, 3)).random()
    assert _calls(log, "truncate") == [(tmp_path, {"metrics.jsonl": 5})]
    assert _calls(log, "Replay")[1][0][1] == 1  # max(1, capacity // 10)
    assert _calls(log, "Loop().restore") == [((ckpt,), {})]
    assert _calls(log, "Progress")[0] == ((config.steps * 2, 80),
                                          {"disable": True, "every": config.log_every * 2})
    assert result == {"step": 40, "frames": 80, "stopped": False}
    assert capsys.readouterr().out.startswith(
        "Log lines written after the last checkpoint were dropped (a kill lost that work).\n")
    log, _ = _wire(monkeypatch, tmp_path, checkpoint={"step": 40})  # written before issue 9
    training._train(config, _make(log), progress=False)
    ((_, envs, _), _), = _calls(log, "ParallelEnvs")
    assert envs == [stream_seed(7, i, 1, 3) for i in (0, 1)]  # its restart counter was 0
    assert _calls(log, "truncate") == [(tmp_path, {})]  # no log sizes kept: nothing cut


def test_the_train_envs_follow_atari_vector_and_overlap(tmp_path, monkeypatch):
    log, _ = _wire(monkeypatch, tmp_path)
    config = dataclasses.replace(_config(seed=7, eval_eps=0), atari_vector=True, envs=2)
    training._train(config, _make(log), progress=True)
    assert _calls(log, "from_config") == [((config, 7), {})]
    assert _calls(log, "ParallelEnvs") == []
    log.clear()
    training._train(_config(seed=7, eval_eps=0, overlap=True), _make(log), progress=True)
    ((build,), _), = _calls(log, "EnvThread")
    assert _calls(log, "make") == []  # made in the env thread, by `build`
    build()
    assert _calls(log, "make") == [(7, "train")]
    assert _calls(log, "SerialEnvs") == [((["train env 7"],), {})]


def test_the_run_is_closed_when_it_fails_and_a_big_atari_model_is_forecast_as_such(
        tmp_path, monkeypatch, capsys):
    log, agent = _wire(monkeypatch, tmp_path, run_raises=FloatingPointError("update failed"))
    agent.bf16 = False
    config = dataclasses.replace(_config(seed=7, eval_eps=0, precision=16), task="atari_pong")
    config.rssm = dataclasses.replace(config.rssm, deter=257)
    with pytest.raises(FloatingPointError, match="update failed"):
        training._train(config, _make(log), progress=True)
    assert [e[0] for e in log if isinstance(e, tuple)][-3:] == [
        "Loop().close", "Progress().close", "Logger().close"]
    assert _calls(log, "Forecast")[0][1]["small_model"] is True
    assert ", float32 (no native bf16 here), " in capsys.readouterr().out
    agent.bf16 = True
    config.rssm = dataclasses.replace(config.rssm, deter=256)
    log.clear()
    monkeypatch.setattr(training, "Loop", _Recorder(log, "Loop", made={"step": 0}))
    training._train(config, _make(log), progress=True)
    assert _calls(log, "Forecast")[0][1]["small_model"] is False
    assert ", bfloat16 autocast, threads" in capsys.readouterr().out


def test_without_a_factory_the_task_env_is_made_from_the_config(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    log, _ = _wire(monkeypatch, tmp_path)
    monkeypatch.setattr(training, "make_env", lambda task, **kwargs: log.append(
        ("make_env", task, kwargs["seed"], kwargs["mode"], kwargs["logdir"])) or "env")
    training._train(_config(seed=7), None, progress=True)
    assert _calls(log, "make_env") == [("dummy_discrete", 10007, "eval", tmp_path),
                                       ("dummy_discrete", 7, "train", tmp_path)]
    assert "(OpenMP wait policy default), " in capsys.readouterr().out  # OMP_WAIT_POLICY unset


def test_train_validates_first_and_turns_an_os_error_into_one_line(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(training, "_train", lambda config, factory, progress: calls.append(
        (config, factory, progress)) or "result")
    monkeypatch.setattr(training.tracking, "check_available",
                        lambda config: calls.append(("tracking", config)))
    config = _config(logdir=str(tmp_path))
    assert training.train(config, "factory") == "result"
    assert calls == [("tracking", config), (config, "factory", True)]
    with pytest.raises(presets.ConfigError):  # refused before anything else
        training.train(dataclasses.replace(config, steps=0))
    assert len(calls) == 2
    (tmp_path / "checkpoint.pt.tmp").write_text("partial")

    def disk_full(config, factory, progress):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(training, "_train", disk_full)
    with pytest.raises(RunError) as error:
        training.train(config, progress=False)
    assert str(error.value) == (f"[Errno 28] No space left on device (run in {tmp_path}; its "
                                "last checkpoint is intact)")
    assert error.value.__cause__ is None and error.value.__suppress_context__
    assert not (tmp_path / "checkpoint.pt.tmp").exists()  # the failed write's file is removed
