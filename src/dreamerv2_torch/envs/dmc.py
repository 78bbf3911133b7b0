"""DeepMind Control Suite through dm_control (spec §5.2).

Official counterpart: ``DMC`` in ``danijar/dreamerv2:dreamerv2/common/envs.py``. As there:

* ``suite.load(domain, task)`` with ``cup`` → ``ball_in_cup``;
* the action is repeated ``action_repeat`` physics control steps, rewards are summed and the loop
  stops early at the last step; rendering happens once per policy step, after the loop;
* ``image`` = ``physics.render(height, width, camera_id)``, camera -1 → 2 for quadruped, else 0;
* every proprio entry becomes a float32 1-D key (float64 → float32; scalars become shape (1,),
  where the official code kept shape (); empty entries are skipped);
* ``is_last = time_step.last()`` (DMC's own 1000-step limit), ``is_terminal = discount == 0``;
* actions arrive in [-1, 1]; ``make_env`` wraps this env in ``NormalizeAction`` (affine map).

Deliberate differences (for docs/parity.md):

* ``task_kwargs={'random': seed}`` seeds the task's initial states (the official code left it
  unseeded), so runs are reproducible per seed.
* Cheap rendering: before the first render we set the offscreen buffer to the output size,
  disable multisampling (``offsamples = 0``) and shrink the shadow map to 256. Software rendering
  (Mesa llvmpipe) becomes about 4x faster; pixels differ very slightly from the defaults
  (environments.md §4).
* ``pixels=False`` skips rendering and the ``image`` key entirely, for proprio-only runs (the
  official code always rendered).
* Headless rendering: ``MUJOCO_GL`` is set to ``egl`` if unset, here before dm_control is first
  imported (the official code overwrote it at construction). EGL runs on CPUs via llvmpipe.
* The locomotion (``locom_*``) and manipulation (``manip_*``) variants are not supported.
"""

from __future__ import annotations

import difflib
import os
from types import ModuleType
from typing import Any

import numpy as np

from .base import FLAG_SPACES, Obs, Space, require, step_obs

_ALIASES = {"cup": "ball_in_cup"}


class RenderingError(RuntimeError):
    """No headless OpenGL backend: one line with the install hint (docs/environments.md)."""


def _gl_error(error: BaseException) -> RenderingError:
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return RenderingError(
        f"dm_control could not load its OpenGL backend MUJOCO_GL="
        f"{os.environ.get('MUJOCO_GL')!r} ({type(error).__name__}: {first}). Pixel DMC needs "
        "headless OpenGL: `sudo apt-get install -y libegl1 libgl1-mesa-dri` (MUJOCO_GL=egl), or "
        "MUJOCO_GL=osmesa with libosmesa6; proprio-only runs can set MUJOCO_GL=disabled")


def _suite() -> ModuleType:
    # EGL must be chosen before dm_control (and mujoco's GL bindings) are first imported.
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:  # importing the suite loads the OpenGL backend that MUJOCO_GL names
        require("mujoco", "dmc")
        require("dm_control", "dmc")
        from dm_control import suite
    except ImportError as error:
        if "pip install" in str(error):  # `require`'s hint for a missing extra
            raise
        raise _gl_error(error) from None
    except (RuntimeError, AttributeError, OSError) as error:
        raise _gl_error(error) from None
    return suite


def list_tasks() -> list[str]:
    """Every ``<domain>_<task>`` the installed dm_control suite knows."""
    return sorted(f"{domain}_{task}" for domain, task in _suite().ALL_TASKS)


def parse_task(name: str) -> tuple[str, str]:
    """Splits ``walker_walk`` → (walker, walk), ``cup_catch`` → (ball_in_cup, catch)."""
    suite = _suite()
    known = set(suite.ALL_TASKS)
    prefixes = sorted({*(d for d, _ in known), *_ALIASES}, key=len, reverse=True)
    for prefix in prefixes:  # longest first, so point_mass_easy is not read as point + mass_easy
        if name.startswith(prefix + "_"):
            domain, task = _ALIASES.get(prefix, prefix), name[len(prefix) + 1 :]
            if (domain, task) in known:
                return domain, task
    tasks = list_tasks()
    aliases = [f"cup_{t}" for d, t in known if d == "ball_in_cup"]
    close = difflib.get_close_matches(name, tasks + aliases)
    hint = f" Did you mean: {', '.join('dmc_' + c for c in close)}?" if close else ""
    raise ValueError(
        f"unknown DMC task {name!r} (task dmc_{name}).{hint} Valid: {', '.join(tasks)}"
    )


class DMC:
    """One DMC task with pixel and/or proprio observations and actions in the spec's bounds."""

    def __init__(
        self,
        name: str,
        *,
        seed: int,
        action_repeat: int = 2,
        size: tuple[int, int] = (64, 64),
        camera: int = -1,
        pixels: bool = True,
    ):
        domain, task = parse_task(name)
        if action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
        self._env = _suite().load(domain, task, task_kwargs={"random": seed})
        self._repeat = int(action_repeat)
        self._size = (int(size[0]), int(size[1]))
        self._camera = (2 if domain == "quadruped" else 0) if camera == -1 else int(camera)
        self._pixels = pixels
        spec = self._env.observation_spec()
        self._keys = [k for k, v in spec.items() if int(np.prod(v.shape)) > 0]
        self._shapes = {k: (int(np.prod(spec[k].shape)),) for k in self._keys}
        if pixels:
            if "image" in self._shapes:
                raise ValueError(f"DMC task {name!r} already has an observation named 'image'")
            visual = self._env.physics.model.vis
            visual.global_.offheight, visual.global_.offwidth = self._size
            visual.quality.offsamples = 0
            visual.quality.shadowsize = 256
            try:  # issue 8: fail here, before the training loop writes anything to the logdir
                self._env.physics.render(*self._size, camera_id=self._camera)
            except Exception as error:  # noqa: BLE001 - mujoco/OpenGL raise many types
                raise _gl_error(error) from None
        action = self._env.action_spec()
        self._action_space = Space(
            tuple(action.shape),
            np.float32,
            action.minimum.astype(np.float32),
            action.maximum.astype(np.float32),
        )

    @property
    def obs_space(self) -> dict[str, Space]:
        spaces = {k: Space(shape, np.float32) for k, shape in self._shapes.items()}
        if self._pixels:
            spaces["image"] = Space((*self._size, 3), np.uint8, 0, 255)
        return {**spaces, **FLAG_SPACES}

    @property
    def act_space(self) -> dict[str, Space]:
        """The raw bounds; ``make_env`` exposes them as [-1, 1] through ``NormalizeAction``."""
        return {"action": self._action_space}

    def reset(self) -> Obs:
        time_step = self._env.reset()
        flags = step_obs(0.0, is_first=True, is_last=False, is_terminal=False)
        return {**self._observe(time_step), **flags}

    def step(self, action: dict[str, np.ndarray]) -> Obs:
        value = np.asarray(action["action"], np.float64)
        if not np.isfinite(value).all():
            raise ValueError(f"action has non-finite entries: {value}")
        reward = 0.0
        for _ in range(self._repeat):
            time_step = self._env.step(value)
            reward += time_step.reward or 0.0
            if time_step.last():
                break
        flags = step_obs(
            reward,
            is_first=False,
            is_last=time_step.last(),
            is_terminal=time_step.discount == 0,
        )
        return {**self._observe(time_step), **flags}

    def close(self) -> None:
        self._env.close()

    def _observe(self, time_step: Any) -> Obs:  # time_step: a dm_env.TimeStep
        obs = {
            k: np.array(time_step.observation[k], np.float32).reshape(self._shapes[k])
            for k in self._keys
        }
        if self._pixels:
            # MuJoCo returns a vertically flipped view (negative strides); store a plain array.
            obs["image"] = np.ascontiguousarray(
                self._env.physics.render(*self._size, camera_id=self._camera)
            )
        return obs
