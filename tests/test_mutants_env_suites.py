"""Tests written for mutants of the MinAtar, DMC, Crafter and Gymnasium adapters, the env
factory and the contract checker that survived tools/parity/mutation.sh (docs/parity.md,
"Mutation testing", "env suites: MinAtar, DMC, Crafter, Gym, the env factory"). Expected values
come from the adapters' documented rules (module docstrings, spec §5), the official code or the
libraries, never from our output."""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from dreamerv2_torch.envs import make_env
from dreamerv2_torch.envs.base import FLAG_SPACES, Space, step_obs
from dreamerv2_torch.envs.contract import check_env, check_obs, check_spaces
from dreamerv2_torch.envs.gym import Gymnasium, from_gymnasium, make_gymnasium

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
    import gymnasium

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


# ------------------------------------------------------------------------------------- Gymnasium


class Scripted(gymnasium.Env):
    """Shows ``frames[t]`` after t steps (the last one from then on), rewards 1 per step,
    terminates at step ``terminate_at`` (0: never) and records the actions it receives."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, observation_space, action_space, frames=(), *, render_mode=None,
                 terminate_at=0):
        self.observation_space, self.action_space = observation_space, action_space
        self.frames, self.render_mode, self.terminate_at = list(frames), render_mode, terminate_at
        self.t, self.actions = 0, []

    def _obs(self):
        if not self.frames:
            return self.observation_space.sample()
        return self.frames[min(self.t, len(self.frames) - 1)]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.actions.append(action)
        self.t += 1
        return self._obs(), 1.0, self.t == self.terminate_at, False, {}

    def render(self):
        return np.full((20, 30, 3), 10 + self.t, np.uint8)


def box(low, high, shape, dtype=np.float32):
    return spaces.Box(low, high, shape, dtype)


def first_image(space, frame, size):
    env = from_gymnasium(Scripted(space, spaces.Discrete(2), [frame]), seed=0, size=size)
    obs = env.reset()
    check_obs(obs, env.obs_space)
    return obs["image"]


def test_gym_image_values_follow_the_space() -> None:
    """Module docstring: float images with ``high <= 1`` are scaled by 255, other float images
    clipped to [0, 255], bool images become {0, 255}; rounding to the nearest integer."""
    unit = first_image(box(0, 1, (2, 2)), np.array([[0.75, 0.2], [1.0, 0.0]], np.float32), (2, 2))
    np.testing.assert_array_equal(unit[..., 0], [[191, 51], [255, 0]])  # 191.25, 51
    two = first_image(box(0, 2, (2, 2)), np.array([[1.5, 0.4], [2.0, 0.0]], np.float32), (2, 2))
    np.testing.assert_array_equal(two[..., 0], [[2, 0], [2, 0]])  # not scaled: high is 2
    wide = first_image(
        box(-10, 1000, (2, 2)), np.array([[-3, 300], [254.6, 7]], np.float32), (2, 2))
    np.testing.assert_array_equal(wide[..., 0], [[0, 255], [255, 7]])
    # Scaled in float64: 0.6098039 (float32) * 255 = 155.49999..., 155.5 if multiplied in float32.
    exact = first_image(box(0, 1, (1, 1)), np.full((1, 1), 0.6098039, np.float32), (1, 1))
    assert exact[0, 0, 0] == 155
    ints = first_image(box(0, 1, (2, 2), np.int32), np.array([[0, 1], [1, 0]], np.int32), (2, 2))
    np.testing.assert_array_equal(ints[..., 0], [[0, 1], [1, 0]])  # not float: not scaled
    flags = first_image(box(0, 1, (2, 2), bool), np.array([[1, 0], [0, 1]], bool), (2, 2))
    assert flags.dtype == np.uint8 and flags.shape == (2, 2, 1)
    np.testing.assert_array_equal(flags[..., 0], [[255, 0], [0, 255]])


def test_gym_resizes_with_area_averaging() -> None:
    """cv2 INTER_AREA at a factor of 3 averages each 3 x 3 block; the pattern added to each block
    sums to 0 but is +8 at the centre, where bilinear or nearest resizing would sample it."""
    rng = np.random.default_rng(0)
    base = rng.integers(20, 230, (16, 24, 3)).astype(np.uint8)
    pattern = np.array([[-2, 0, -2], [0, 8, 0], [-2, 0, -2]])
    frame = np.kron(base, np.ones((3, 3, 1), np.int64)) + np.tile(pattern, (16, 24))[..., None]
    image = first_image(box(0, 255, (48, 72, 3), np.uint8), frame.astype(np.uint8), (16, 24))
    np.testing.assert_array_equal(image, base)


def test_gym_single_discrete_observation_is_a_one_hot_vector() -> None:
    env = from_gymnasium(Scripted(spaces.Discrete(5, start=2), spaces.Discrete(2), [4]), seed=0)
    assert env.obs_space["vector"] == Space((5,), np.float32)
    np.testing.assert_array_equal(env.reset()["vector"], [0, 0, 1, 0, 0])


def test_gym_discrete_action_with_a_start_and_box_actions_in_the_space_dtype() -> None:
    inner = Scripted(box(0, 1, (3,)), spaces.Discrete(3, start=-1))
    env = from_gymnasium(inner, seed=0)
    env.reset()
    env.step({"action": np.eye(3, dtype=np.float32)[0]})
    assert inner.actions == [-1]
    assert env.act_space["action"] == Space((3,), np.float32, 0.0, 1.0, discrete=True)
    inner = Scripted(box(0, 1, (3,)), box(0.0, 4.0, (2,)))
    env = from_gymnasium(inner, seed=0)
    env.reset()
    env.step({"action": np.array([0.0, 1.0], np.float32)})
    assert inner.actions[-1].dtype == np.float32
    np.testing.assert_array_equal(inner.actions[-1], [2.0, 4.0])
    raw = Gymnasium(Scripted(box(0, 1, (3,)), box(-1.0, 1.0, (2,))), seed=0)
    check_spaces(raw)  # float32 actions in [-1, 1]
    raw = Gymnasium(Scripted(box(0, 1, (3,)), box(0.0, 0.1, (2,), np.float64)), seed=0)
    space = raw.act_space["action"]
    assert space.low.dtype == space.high.dtype == np.float32  # the Space's dtype
    np.testing.assert_array_equal(space.high, np.float32(0.1))


def test_gym_scalar_box_observation_is_a_vector_of_one() -> None:
    env = from_gymnasium(Scripted(box(0, 5, ()), spaces.Discrete(2), [np.float32(2.5)]), seed=0)
    obs = env.reset()
    check_obs(obs, env.obs_space)
    np.testing.assert_array_equal(obs["vector"], [2.5])


def test_gym_render_image_replaces_the_image_entries() -> None:
    space = spaces.Dict({"camera": box(0, 255, (8, 8, 3), np.uint8), "joints": box(0, 1, (3,))})
    inner = Scripted(space, spaces.Discrete(2), render_mode="rgb_array")
    env = from_gymnasium(inner, seed=0, size=(20, 30), render_image=True)
    assert set(env.obs_space) == {"image", "joints", *FLAG_SPACES}
    assert env.obs_space["image"] == Space((20, 30, 3), np.uint8, 0, 255)
    env.reset()
    np.testing.assert_array_equal(env.step({"action": np.eye(2, dtype=np.float32)[0]})["image"],
                                  np.full((20, 30, 3), 11, np.uint8))


class Duck:
    """Not a gymnasium.Env (no render_mode attribute), only the two spaces."""

    observation_space = spaces.Box(0, 1, (3,), np.float32)
    action_space = spaces.Discrete(2)


def test_gym_render_image_needs_rgb_array_rendering() -> None:
    for env in (Duck(), Scripted(box(0, 1, (3,)), spaces.Discrete(2))):
        with pytest.raises(ValueError, match="render_mode='rgb_array'"):
            from_gymnasium(env, seed=0, render_image=True)


def test_gym_clashing_observation_keys() -> None:
    with pytest.raises(ValueError, match="clash"):  # a flag's name
        from_gymnasium(Scripted(spaces.Dict({"reward": box(0, 1, (3,))}), spaces.Discrete(2)),
                       seed=0)
    inner = Scripted(spaces.Dict({"image": box(0, 1, (3,))}), spaces.Discrete(2),
                     render_mode="rgb_array")
    with pytest.raises(ValueError, match="clash"):  # the rendered frame's name
        from_gymnasium(inner, seed=0, render_image=True)


def test_gym_unsupported_space_messages() -> None:
    supported = "Supported: Box of rank 0-3, Discrete, and a Dict of those."
    multi = spaces.MultiDiscrete([2, 3])
    with pytest.raises(ValueError) as info:
        from_gymnasium(Scripted(multi, spaces.Discrete(2)), seed=0)
    assert str(info.value) == f"unsupported observation space: {multi}. {supported}"
    with pytest.raises(ValueError) as info:
        from_gymnasium(Scripted(spaces.Dict({"m": multi}), spaces.Discrete(2)), seed=0)
    assert str(info.value) == (
        f"unsupported observation space (observation key 'm'): {multi}. {supported}")
    with pytest.raises(ValueError) as info:
        from_gymnasium(Scripted(box(0, 1, (3,)), multi), seed=0)
    assert str(info.value) == (
        f"unsupported action space: {multi}. Supported: Discrete and a bounded 1-D Box.")
    half = box(np.array([0.0, -1.0]), np.array([np.inf, 1.0]), (2,))  # unbounded above only
    with pytest.raises(ValueError) as info:
        from_gymnasium(Scripted(box(0, 1, (3,)), half), seed=0)
    assert str(info.value) == (
        f"unsupported action space: {half} has unbounded dimensions; the actor acts in [-1, 1] "
        "and needs finite bounds to map to")


def test_gym_unknown_id_and_bad_argument_messages() -> None:
    tail = (" An id from a package that registers on import can be written gym:<module>:<id>, e.g. "
            "gym:ale_py:ALE/Pong-v5.")
    with pytest.raises(ValueError) as info:
        make_gymnasium("CartPol-v1")
    message = str(info.value)
    assert message.startswith("unknown Gymnasium id 'CartPol-v1' (task gym:CartPol-v1): ")
    assert message.endswith(". Did you mean: gym:CartPole-v1, gym:CartPole-v0, "
                            "gym:phys2d/CartPole-v1, gym:phys2d/CartPole-v0?" + tail)
    with pytest.raises(ValueError) as info:
        make_gymnasium("Zzzzzzzz-v9")
    assert "Did you mean" not in str(info.value) and str(info.value).endswith("." + tail)
    with pytest.raises(ValueError) as info:
        from_gymnasium(Scripted(box(0, 1, (3,)), spaces.Discrete(2)), seed=0, action_repeat=0)
    assert str(info.value) == "action_repeat must be >= 1, got 0"
    with pytest.raises(ValueError) as info:
        from_gymnasium(Duck(), seed=0, render_image=True)
    assert str(info.value) == "render_image needs an env made with render_mode='rgb_array'"


def test_gym_resizing_needs_cv2_and_names_its_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` fail
    image = box(0, 255, (32, 48, 3), np.uint8)
    with pytest.raises(ImportError, match=r'pip install "dreamerv2-torch\[atari\]"'):
        from_gymnasium(Scripted(image, spaces.Discrete(2)), seed=0, size=(16, 24))
    from_gymnasium(Scripted(image, spaces.Discrete(2)), seed=0, size=(32, 48)).reset()  # no resize
    from_gymnasium(Scripted(box(0, 1, (3,)), spaces.Discrete(2)), seed=0)  # no image


def test_gym_defaults() -> None:
    """64 x 64 images, no action repeat, no rendering, no time limit."""
    for wrap in (Gymnasium, from_gymnasium):
        inner = Scripted(box(0, 255, (32, 32, 3), np.uint8), spaces.Discrete(2))  # no render mode
        env = wrap(inner, seed=0)
        assert env.reset()["image"].shape == (64, 64, 3)
        steps = [env.step({"action": np.eye(2, dtype=np.float32)[0]}) for _ in range(3)]
        assert [float(obs["reward"]) for obs in steps] == [1.0, 1.0, 1.0] and inner.t == 3
        assert not any(obs["is_last"] for obs in steps)


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


# ------------------------------------------------------------------------------------- contract


class Faulty:
    """A discrete env of 3 actions whose episodes last 2 steps, with one mistake switched on."""

    def __init__(self, fault: str = "", act_space=None, obs_space=None):
        self.fault, self.t, self.actions = fault, 0, []
        self.obs_space = obs_space or {"vector": Space((2,), np.float32), **FLAG_SPACES}
        self.act_space = act_space or {"action": Space((3,), np.float32, 0, 1, discrete=True)}

    def _obs(self, reward, first, last, terminal):
        vector = np.zeros(2, np.float32)
        if self.fault == "nan" and self.t == 1:
            vector[1] = np.nan
        if self.fault == "flipped":
            vector = np.zeros((2, 2), np.float32)[::-1, 0]
        return {"vector": vector, **step_obs(reward, is_first=first, is_last=last,
                                               is_terminal=terminal)}

    def reset(self):
        self.t = 0
        reward = 1.0 if self.fault == "reset_reward" else 0.0
        return self._obs(reward, True, self.fault == "reset_last", False)

    def step(self, action):
        self.t += 1
        self.actions.append(action["action"])
        last = self.t == 2
        first = self.fault == "first"
        terminal = last or (self.fault == "terminal" and self.t == 1)
        return self._obs(0.0, first, last, terminal)


def test_contract_checker_steps_random_actions_and_resets_after_the_last_step() -> None:
    env = Faulty()
    history = check_env(env, steps=5)
    # Steps 2 and 4 end an episode and are followed by a reset: 1 + 5 + 2 observations.
    assert [bool(obs["is_first"]) for obs in history] == [1, 0, 0, 1, 0, 0, 1, 0]
    space, rng = env.act_space["action"], np.random.default_rng(0)  # the default seed
    np.testing.assert_array_equal(env.actions, [space.sample(rng) for _ in range(5)])


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("nan", "step 1: 'vector' has non-finite entries"),
        ("flipped", "negative strides"),
        ("reset_reward", "reset reward must be 0"),
        ("reset_last", "reset flags"),
        ("first", "step 1: is_first is set on a step"),
        ("terminal", "step 1: is_terminal without is_last"),
    ],
)
def test_contract_checker_catches_each_mistake(fault, message) -> None:
    with pytest.raises(AssertionError, match=message):
        check_env(Faulty(fault), steps=4)


@pytest.mark.parametrize(
    ("act_space", "obs_space", "message"),
    [
        ({"action": Space((3,), np.float32, 0, 1)}, None, r"\[-1, 1\]"),
        ({"action": Space((3,), np.float64, -1, 1)}, None, "float32"),
        ({"action": Space((3, 1), np.float32, -1, 1)}, None, "vectors"),
        ({"act": Space((3,), np.float32, -1, 1)}, None, "act_space keys"),
        (None, {"image": Space((4, 4, 3), np.float32), **FLAG_SPACES}, "uint8"),
        (None, {**FLAG_SPACES, "reward": Space((), np.float64)}, r"obs_space\['reward'\]"),
    ],
)
def test_contract_checker_catches_wrong_spaces(act_space, obs_space, message) -> None:
    with pytest.raises(AssertionError, match=message):
        check_spaces(Faulty(act_space=act_space, obs_space=obs_space))


def test_contract_checker_accepts_bounded_continuous_actions_and_non_float32_entries() -> None:
    obs_space = {"count": Space((), np.int32), "vector": Space((2,), np.float32), **FLAG_SPACES}
    env = Faulty(act_space={"action": Space((3,), np.float32, -1.0, 1.0)}, obs_space=obs_space)
    check_spaces(env)
    obs = {"count": np.int32(3), "vector": np.zeros(2, np.float32),
           **step_obs(0.0, is_first=True, is_last=False, is_terminal=False)}
    check_obs(obs, obs_space)
    with pytest.raises(AssertionError, match="'count' is a int, not a numpy array"):
        check_obs({**obs, "count": 3}, obs_space, where="")


# ----------------------------------------------------------------------------- the env factory

PREFIXES = "atari_, dmc_, crafter_, minatar_, dummy_, gym:"


def factory_error(task: str, **kwargs) -> str:
    with pytest.raises(ValueError) as info:
        make_env(task, seed=0, **kwargs)
    return str(info.value)


def test_factory_task_syntax_errors() -> None:
    syntax = (f"a task starts with one of {PREFIXES} followed by a name (e.g. atari_pong, "
              "dmc_walker_walk, gym:CartPole-v1).")
    assert factory_error("aftar_x") == (  # close to three suites: two are named
        f"unknown task 'aftar_x': {syntax} Did you mean the suite atari or minatar?")
    assert factory_error("zzz_x") == f"unknown task 'zzz_x': {syntax}"
    for task in ("dummy", "dummy_", "gym:", "gym_CartPole-v1", "dummy:reveal", "dmc:walker_walk"):
        assert factory_error(task).startswith(f"unknown task {task!r}: a task starts with")


def test_factory_unknown_names_within_a_suite() -> None:
    assert factory_error("dummy_zzz") == (
        "unknown dummy env 'dummy_zzz'. Valid: dummy_discrete, dummy_continuous, dummy_vector, "
        "dummy_reveal")
    assert factory_error("dummy_c") == (  # close to all four: up to five are suggested
        "unknown dummy env 'dummy_c'. Did you mean: dummy_vector, dummy_discrete, dummy_reveal, "
        "dummy_continuous? Valid: dummy_discrete, dummy_continuous, dummy_vector, dummy_reveal")
    assert factory_error("crafter_rewar") == (
        "unknown Crafter task 'crafter_rewar'. Did you mean: crafter_reward, crafter_noreward? "
        "Valid: crafter_reward, crafter_noreward")
    assert factory_error("dummy_discrete", mode="test") == (
        "mode must be one of ('train', 'eval'), got 'test'")
    assert factory_error("dummy_discrete", action_repeat=0) == "action_repeat must be >= 1, got 0"
    make_env("dummy_discrete", seed=0, action_repeat=1)  # 1 is allowed


def test_factory_crafter_reward_is_rewarded_in_train_mode() -> None:
    pytest.importorskip("crafter")
    env = make_env("crafter_reward", seed=1)
    rng = np.random.default_rng(0)
    env.reset()
    history = [env.step({"action": env.act_space["action"].sample(rng)}) for _ in range(100)]
    rewards = np.array([obs["reward"] for obs in history])
    assert np.any(rewards != 0), "the check needs some reward in 100 random steps"
    np.testing.assert_array_equal(rewards, [obs["log_reward"] for obs in history])


def test_factory_forwards_size_and_action_repeat_to_atari() -> None:
    if any(importlib.util.find_spec(m) is None for m in ("ale_py", "cv2")):
        pytest.skip("needs the atari extra")
    env = make_env("atari_pong", seed=0, action_repeat=2, size=(48, 64))
    assert env.reset()["image"].shape == (48, 64, 1)
    before = env.ale.getEpisodeFrameNumber()
    env.step({"action": np.eye(env.act_space["action"].n, dtype=np.float32)[0]})
    assert env.ale.getEpisodeFrameNumber() - before == 2  # one policy step = action_repeat frames


def test_factory_lists_the_tasks_of_each_suite() -> None:
    from dreamerv2_torch.envs import list_tasks

    assert list_tasks("crafter") == ["crafter_reward", "crafter_noreward"]
    assert list_tasks("minatar") == [
        "minatar_asterix", "minatar_breakout", "minatar_freeway", "minatar_seaquest",
        "minatar_space_invaders"]
    assert list_tasks("dummy") == ["dummy_discrete", "dummy_continuous", "dummy_vector",
                                   "dummy_reveal"]
    assert "gym:CartPole-v1" in list_tasks("gym")
    if importlib.util.find_spec("dm_control") is not None:
        assert "dmc_walker_walk" in list_tasks("dmc")
    if importlib.util.find_spec("ale_py") is not None:
        assert "atari_pong" in list_tasks("atari") and "atari_james_bond" in list_tasks("atari")
    with pytest.raises(ValueError) as info:
        list_tasks("atary")
    assert str(info.value) == (
        "unknown suite 'atary'. Did you mean: atari, minatar? Valid: atari, dmc, crafter, "
        "minatar, gym, dummy")


def test_factory_forwards_size_and_action_repeat_to_gymnasium() -> None:
    gymnasium.register("DV2TestImage-v0", entry_point=lambda: Scripted(
        box(0, 255, (32, 48, 3), np.uint8), spaces.Discrete(2)))
    try:
        env = make_env("gym:DV2TestImage-v0", seed=0, size=(16, 24), action_repeat=3)
        assert env.reset()["image"].shape == (16, 24, 3)
        assert float(env.step({"action": np.eye(2, dtype=np.float32)[0]})["reward"]) == 3.0
    finally:
        del gymnasium.registry["DV2TestImage-v0"]


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
