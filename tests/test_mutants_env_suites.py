"""Tests written for mutants of the MinAtar, Crafter and DMC adapters that survived
tools/parity/mutation.sh (docs/parity.md, "Mutation testing", "env suites: MinAtar, DMC,
Crafter, Gym, the env factory"). Expected values come from the adapters' documented rules
(module docstrings, spec §5), the official code or the libraries, never from our output."""

from __future__ import annotations

import os
import sys
import warnings

import gymnasium
import numpy as np
import pytest

from dreamerv2_torch.envs import make_env
from dreamerv2_torch.envs.base import FLAG_SPACES, Space
from dreamerv2_torch.envs.contract import check_obs, check_spaces

# --------------------------------------------------------------------------------------- MinAtar

MINATAR_GAMES = "asterix, breakout, freeway, seaquest, space_invaders"


def test_minatar_unknown_game_messages() -> None:
    from dreamerv2_torch.envs.minatar import gym_id

    with pytest.raises(ValueError) as info:
        gym_id("breakway")  # close to two games (difflib ratio >= 0.6)
    assert str(info.value) == (
        "unknown MinAtar game 'breakway' (task minatar_breakway). Did you mean: minatar_freeway, "
        f"minatar_breakout? Valid games: {MINATAR_GAMES}"
    )
    with pytest.raises(ValueError) as info:
        gym_id("zzz")  # close to none
    assert str(info.value) == (
        f"unknown MinAtar game 'zzz' (task minatar_zzz). Valid games: {MINATAR_GAMES}"
    )


def test_minatar_missing_package_names_the_extra(monkeypatch) -> None:
    from dreamerv2_torch.envs.minatar import MinAtar

    monkeypatch.setitem(sys.modules, "minatar.gym", None)  # makes the import fail
    with pytest.raises(ImportError, match=r'pip install "dreamerv2-torch\[minatar\]"'):
        MinAtar("breakout", seed=0)


@pytest.fixture
def minatar_gym():
    """MinAtar's own gymnasium envs, registered as the adapter does."""
    minatar_gym = pytest.importorskip("minatar.gym")

    if "MinAtar/Breakout-v1" not in gymnasium.registry:
        minatar_gym.register_envs()
    return gymnasium


def test_minatar_registers_its_ids_once(minatar_gym, monkeypatch) -> None:
    """A fresh process has no MinAtar ids: the adapter registers them; when they are registered
    already it does not register them again (gymnasium would warn about overriding them)."""
    from dreamerv2_torch.envs.minatar import MinAtar

    for env_id in [k for k in minatar_gym.registry if k.startswith("MinAtar/")]:
        monkeypatch.delitem(minatar_gym.registry, env_id)
    MinAtar("breakout", seed=0)
    assert "MinAtar/Breakout-v1" in minatar_gym.registry
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MinAtar("breakout", seed=0)


def test_minatar_spaces_are_uint8_images_and_one_hot_actions(minatar_gym) -> None:
    env = make_env("minatar_breakout", seed=0)
    assert env.obs_space == {"image": Space((10, 10, 4), np.uint8, 0, 255), **FLAG_SPACES}
    assert env.act_space == {"action": Space((3,), np.float32, 0.0, 1.0, discrete=True)}


def test_minatar_seeds_the_first_reset_only(minatar_gym) -> None:
    """Module docstring: the first reset passes ``seed``, later resets continue that stream; the
    reference is MinAtar's own gymnasium env driven the same way."""
    env = make_env("minatar_breakout", seed=3)
    raw = minatar_gym.make("MinAtar/Breakout-v1").unwrapped
    actions = np.random.default_rng(0).integers(3, size=400)
    episodes = 0
    obs, (state, _) = env.reset(), raw.reset(seed=3)
    for a in actions:
        np.testing.assert_array_equal(obs["image"], state.astype(np.uint8) * 255)
        if episodes == 3:
            break
        obs = env.step({"action": np.eye(3, dtype=np.float32)[a]})
        state, reward, terminated, _, _ = raw.step(a)
        assert obs["reward"] == reward and obs["is_terminal"] == terminated
        if terminated:
            episodes += 1
            obs, (state, _) = env.reset(), raw.reset()
    assert episodes == 3, "the check needs three episodes"


# --------------------------------------------------------------------------------------- Crafter


def test_crafter_score_and_rates_messages_and_bounds() -> None:
    from dreamerv2_torch.envs.crafter import ACHIEVEMENTS, crafter_score, crafter_success_rates

    with pytest.raises(ValueError) as info:
        crafter_success_rates([])
    assert str(info.value) == "crafter_success_rates needs at least one episode"
    rates = dict.fromkeys(ACHIEVEMENTS[2:], 0.0)
    with pytest.raises(ValueError) as info:
        crafter_score(rates)
    assert str(info.value) == (
        "crafter_score needs all 22 achievements; missing: collect_coal, collect_diamond")
    with pytest.raises(ValueError) as info:
        crafter_score({"fly": 1.0})
    assert str(info.value) == "'fly' is not a Crafter achievement; valid: " + ", ".join(
        ACHIEVEMENTS)
    for bad in (100.5, -0.5):
        with pytest.raises(ValueError, match="percentage"):
            crafter_score(dict.fromkeys(ACHIEVEMENTS, 50.0) | {"wake_up": bad})
    # Plain names (no prefix) count too.
    assert crafter_success_rates([{"collect_wood": 1}, {"collect_wood": 0}])["collect_wood"] == 50


# ------------------------------------------------------------------------------------------- DMC

GL_HINT = ("Pixel DMC needs headless OpenGL: `sudo apt-get install -y libegl1 libgl1-mesa-dri` "
           "(MUJOCO_GL=egl), or MUJOCO_GL=osmesa with libosmesa6; proprio-only runs can set "
           "MUJOCO_GL=disabled")


@pytest.fixture
def dmc(monkeypatch):
    os.environ.setdefault("MUJOCO_GL", "egl")  # before dm_control's first import, as in the adapter
    pytest.importorskip("dm_control")
    from dreamerv2_torch.envs import dmc

    return dmc


def test_dmc_gl_error_names_the_backend_and_the_first_line(dmc, monkeypatch) -> None:
    monkeypatch.setenv("MUJOCO_GL", "egl")
    error = dmc._gl_error(RuntimeError("no EGL display\nmore detail"))
    assert isinstance(error, dmc.RenderingError)
    assert str(error) == (
        "dm_control could not load its OpenGL backend MUJOCO_GL='egl' (RuntimeError: no EGL "
        f"display). {GL_HINT}")
    assert "(OSError: OSError)" in str(dmc._gl_error(OSError()))  # an empty message


def test_dmc_suite_import_errors(dmc, monkeypatch) -> None:
    monkeypatch.delenv("MUJOCO_GL")
    dmc._suite()
    assert os.environ["MUJOCO_GL"] == "egl"  # chosen when unset
    for error in (ImportError("libEGL.so.1"), RuntimeError("x"), AttributeError("x"),
                  OSError("x")):
        def fail(module, extra, error=error):
            raise error

        monkeypatch.setattr(dmc, "require", fail)
        with pytest.raises(dmc.RenderingError, match=type(error).__name__):
            dmc._suite()
    monkeypatch.undo()
    for module in ("mujoco", "dm_control"):
        monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
        with pytest.raises(ImportError, match=r'pip install "dreamerv2-torch\[dmc\]"'):
            dmc._suite()
        monkeypatch.undo()


def test_dmc_unknown_task_messages(dmc) -> None:
    from dm_control import suite

    valid = ", ".join(sorted(f"{d}_{t}" for d, t in suite.ALL_TASKS))
    assert dmc.list_tasks() == sorted(f"{d}_{t}" for d, t in suite.ALL_TASKS)
    with pytest.raises(ValueError) as info:
        dmc.parse_task("zzz")
    assert str(info.value) == f"unknown DMC task 'zzz' (task dmc_zzz). Valid: {valid}"
    with pytest.raises(ValueError) as info:
        dmc.parse_task("cup_cath")
    message = str(info.value)
    assert message.startswith("unknown DMC task 'cup_cath' (task dmc_cup_cath). Did you mean: ")
    assert message.endswith(f"? Valid: {valid}")
    close = message.split("Did you mean: ")[1].split("?")[0].split(", ")
    assert "dmc_cup_catch" in close and len(close) >= 2
    assert all(name.startswith("dmc_") and name[4:] in valid for name in close[1:]), close


def test_dmc_action_repeat_one_is_one_control_step(dmc) -> None:
    from dm_control import suite

    with pytest.raises(ValueError, match="action_repeat must be >= 1, got 0"):
        dmc.DMC("cartpole_swingup", seed=0, action_repeat=0, pixels=False)
    for repeat in (1, 3):
        env = make_env("dmc_cartpole_swingup", seed=0, action_repeat=repeat, pixels=False)
        raw = suite.load("cartpole", "swingup", task_kwargs={"random": 0})
        env.reset(), raw.reset()
        for action in np.linspace(-1, 1, 4, dtype=np.float32)[:, None]:
            expected = sum(raw.step(action).reward for _ in range(repeat))
            assert float(env.step({"action": action})["reward"]) == pytest.approx(expected)


def test_dmc_pixels_render_once_per_step_with_the_cheap_settings(dmc, monkeypatch) -> None:
    """Module docstring: one render per policy step (and one in the constructor, to fail early),
    of the output size, with the offscreen buffer set to that size, no multisampling and a 256
    shadow map; camera -1 = 2 for quadruped, else 0; the flipped view is stored as a plain array.
    MuJoCo's renderer is replaced by a recorder (no OpenGL needed)."""
    from dm_control import mujoco

    calls = []

    def render(physics, height=240, width=320, camera_id=-1, **kwargs):
        vis = physics.model.vis
        calls.append((height, width, camera_id, vis.global_.offheight, vis.global_.offwidth,
                      vis.quality.offsamples, vis.quality.shadowsize))
        return np.full((height, width, 3), len(calls), np.uint8)[::-1]  # a flipped view

    monkeypatch.setattr(mujoco.Physics, "render", render)
    env = make_env("dmc_walker_walk", seed=0, action_repeat=2, size=(48, 64), camera=1)
    assert env.obs_space["image"] == Space((48, 64, 3), np.uint8, 0, 255)
    first = env.reset()
    obs = env.step({"action": np.zeros(6, np.float32)})
    assert calls == [(48, 64, 1, 48, 64, 0, 256)] * 3
    assert (first["image"][0, 0, 0], obs["image"][0, 0, 0]) == (2, 3)
    check_obs(obs, env.obs_space)  # shape, dtype, no negative strides
    calls.clear()
    make_env("dmc_walker_walk", seed=0, action_repeat=2, size=(48, 64)).reset()
    make_env("dmc_quadruped_walk", seed=0, action_repeat=2, size=(48, 64)).reset()
    assert [call[2] for call in calls] == [0, 0, 2, 2]


def test_dmc_render_failure_is_a_rendering_error(dmc, monkeypatch) -> None:
    from dm_control import mujoco

    def render(physics, *args, **kwargs):
        raise RuntimeError("no display")

    monkeypatch.setattr(mujoco.Physics, "render", render)
    with pytest.raises(dmc.RenderingError, match=r"\(RuntimeError: no display\)"):
        make_env("dmc_walker_walk", seed=0, action_repeat=2)


def test_dmc_raw_adapter_spaces_camera_and_action_check(dmc) -> None:
    """The adapter before ``NormalizeAction``: float32 action bounds as the official code's
    ``gym.spaces.Box(minimum, maximum, dtype=np.float32)``, an explicit camera kept, non-finite
    actions refused."""
    from dm_control import suite

    walker = dmc.DMC("walker_walk", seed=0, pixels=False, camera=1)
    check_spaces(walker)  # walker's bounds are [-1, 1] already
    assert walker._camera == 1
    quadruped = dmc.DMC("quadruped_walk", seed=0, pixels=False)
    spec = suite.load("quadruped", "walk").action_spec()
    space = quadruped.act_space["action"]
    assert space.low.dtype == space.high.dtype == np.float32
    np.testing.assert_array_equal(space.low, spec.minimum.astype(np.float32))
    np.testing.assert_array_equal(space.high, spec.maximum.astype(np.float32))
    walker.reset()
    with pytest.raises(ValueError, match="action has non-finite entries"):
        walker.step({"action": np.full(6, np.inf, np.float32)})


def test_dmc_termination_is_terminal(dmc) -> None:
    """Official rule: ``is_terminal = discount == 0``; dm_control ends an episode with the discount
    that the task's ``get_termination`` returns (only LQR does in the suite), here forced."""
    env = make_env("dmc_cartpole_swingup", seed=0, action_repeat=2, pixels=False)
    env.reset()
    assert not env.step({"action": np.zeros(1, np.float32)})["is_terminal"]
    env._env._task.get_termination = lambda physics: 0.0
    obs = env.step({"action": np.zeros(1, np.float32)})
    assert obs["is_last"] and obs["is_terminal"]


def test_crafter_spaces_reset_values_and_image_size() -> None:
    pytest.importorskip("crafter")
    from dreamerv2_torch.envs.crafter import ACHIEVEMENTS

    env = make_env("crafter_reward", seed=0, size=(48, 64))
    counters = {f"log_achievement_{k}": Space((), np.int32, 0) for k in ACHIEVEMENTS}
    assert env.obs_space == {"image": Space((48, 64, 3), np.uint8, 0, 255),
                             "log_reward": Space((), np.float32), **counters, **FLAG_SPACES}
    assert env.act_space == {"action": Space((17,), np.float32, 0.0, 1.0, discrete=True)}
    obs = env.reset()
    assert obs["image"].shape == (48, 64, 3)
    assert obs["log_reward"] == 0 and not any(obs[k] for k in counters)


def test_crafter_records_stats_only(tmp_path) -> None:
    """Train envs with a logdir write stats.jsonl, no videos and no episode files."""
    pytest.importorskip("crafter")
    env = make_env("crafter_reward", seed=0, logdir=tmp_path)
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(2000):  # a random agent dies within a few hundred steps
        if env.step({"action": env.act_space["action"].sample(rng)})["is_last"]:
            break
    assert sorted(p.name for p in (tmp_path / "crafter").iterdir()) == ["stats.jsonl"]


def test_crafter_missing_package_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "crafter", None)  # makes the import fail
    with pytest.raises(ImportError, match=r'pip install "dreamerv2-torch\[crafter\]"'):
        make_env("crafter_reward", seed=0)
