"""Presets, typed overrides, errors, YAML round trip and schedules (spec §6, §9 item 21)."""

import pytest

from dreamerv2_torch import presets
from dreamerv2_torch.cli import parse_train_args
from dreamerv2_torch.config import flatten
from dreamerv2_torch.schedules import parse


def test_atari_preset_is_the_paper():
    c = presets.resolve(["atari"])
    assert (c.dataset.batch, c.dataset.length) == (50, 50)
    assert c.atari_all_actions and c.train_every == 16 and c.discount == 0.999
    assert (c.rssm.deter, c.rssm.hidden, c.rssm.stoch, c.rssm.discrete) == (600, 600, 32, 32)
    assert (c.loss_scales.kl, c.loss_scales.discount, c.kl.balance, c.kl.free) == (0.1, 5.0, 0.8, 0)
    assert (c.model_opt.lr, c.actor_opt.lr, c.critic_opt.lr) == (2e-4, 4e-5, 1e-4)
    assert (c.actor_ent, c.imag_horizon, c.discount_lambda) == (1e-3, 15, 0.95)
    assert (c.action_repeat, c.time_limit, c.steps, c.prefill) == (4, 27000, 50_000_000, 50_000)
    assert c.model_opt.clip == 100 and c.model_opt.wd == 1e-6 and c.model_opt.eps == 1e-5
    assert c.slow_target_update == 100 and c.clip_rewards == "tanh"


def test_presets_compose_in_order():
    a = presets.resolve(["atari", "small"])
    b = presets.resolve(["small", "atari"])
    assert a.dataset.batch == 16 and b.dataset.batch == 50
    assert a.discount == 0.999  # from atari, untouched by small


def test_overrides_are_typed():
    c = presets.resolve(["atari"], {"rssm.deter": "300", "steps": 5e6, "jit": "true",
                                    "actor_ent": "linear(3e-3,3e-4,2.5e6)",
                                    "encoder.cnn_kernels": "4,4,4"})
    assert c.rssm.deter == 300 and isinstance(c.rssm.deter, int)
    assert c.steps == 5_000_000 and c.jit is True
    assert c.actor_ent == "linear(3e-3,3e-4,2.5e6)" and c.encoder.cnn_kernels == (4, 4, 4)
    assert presets.resolve([], {"loss_scales.kl": 1}).loss_scales.kl == 1.0


@pytest.mark.parametrize("overrides, message", [
    ({"rssm.detr": 3}, "did you mean rssm.deter"),
    ({"steps": 1.5}, "expects"),
    ({"clip_rewards": "clip"}, "must be one of"),
    ({"actor_ent": "cosine(1,2)"}, "neither a number nor a schedule"),
    ({"rssm.ensemble": 2}, "only 1 prior head"),
])
def test_bad_overrides_name_the_problem(overrides, message):
    with pytest.raises(presets.ConfigError, match=message):
        presets.resolve(["atari"], overrides)


def test_unknown_preset_suggests():
    with pytest.raises(presets.ConfigError, match="did you mean atari"):
        presets.resolve(["atary"])


def test_cli_parses_presets_and_dotted_flags():
    c = parse_train_args(["--preset", "atari,small", "--rssm.deter", "128", "--jit", "True",
                          "--task", "atari_boxing", "--logdir", "x"])
    assert (c.rssm.deter, c.jit, c.task, c.dataset.batch) == (128, True, "atari_boxing", 16)
    c = parse_train_args(["--preset", "atari", "small"])
    assert c.dataset.batch == 16


def test_cli_unknown_flag_exits(capsys):
    with pytest.raises(SystemExit):
        parse_train_args(["--preset", "atari", "--rssm.detr", "3"])
    assert "rssm.deter" in capsys.readouterr().err


def test_yaml_round_trip_and_differences(tmp_path):
    c = presets.resolve(["atari"], {"actor_ent": "linear(1,2,3)"})
    presets.save(c, tmp_path / "config.yaml")
    loaded = presets.load(tmp_path / "config.yaml")
    assert flatten(loaded) == flatten(c)
    other = presets.resolve(["atari"], {"rssm.deter": 100, "steps": 10})
    assert presets.differences(c, other) == [
        "rssm.deter: saved 600, given 100", "actor_ent: saved 'linear(1,2,3)', given 0.001"]


def test_schedules():
    assert parse(0.5)(10) == 0.5
    lin = parse("linear(3e-3, 3e-4, 2.5e6)")
    assert lin(0) == pytest.approx(3e-3) and lin(1.25e6) == pytest.approx(1.65e-3)
    assert lin(1e9) == pytest.approx(3e-4)
    assert parse("warmup(100, 2)")(50) == pytest.approx(1.0)
    assert parse("exp(1, 0, 10)")(10) == pytest.approx(0.5)
    assert parse("horizon(10, 100, 10)")(0) == pytest.approx(0.9)
