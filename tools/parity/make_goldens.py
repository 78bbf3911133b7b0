"""Write the parity golden files: what the official DreamerV2 computes for one tiny agent.

Run in the parity virtualenv (tools/parity/setup_venv.sh; see docs/parity.md):

    /work/parity-venv/bin/python tools/parity/make_goldens.py [--out tests/parity] [--only NAME]

For each configuration in `CONFIGS` it builds the official agent (official.py applies the shims),
creates its variables, records them, and runs `Agent.train` (the real order: world model step,
imagination with the updated world model, actor step, critic step, slow-critic update) on a fixed
raw batch, once per entry of `steps`. Recorded per update (prefix `u<i>/`): every sampler draw
(posterior and prior latents, actions), the preprocessing outputs, every intermediate value
(embedding, posterior/prior logits, deterministic states, log-likelihoods, KL, imagined features,
rewards, discounts, weights, λ-returns), the losses and metrics, the gradient of every variable
before clipping, and every variable after the update. Writes one compressed .npz per configuration
(float32 arrays, plus a JSON `meta` with the official config, the versions and the variable names).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np
import official
from official import common, official_agent, tf

TINY = {
    "precision": 32, "rssm.hidden": 16, "rssm.deter": 16, "rssm.stoch": 4, "rssm.discrete": 4,
    "encoder.cnn_depth": 2, "decoder.cnn_depth": 2, "encoder.mlp_layers": [16, 16],
    "decoder.mlp_layers": [16, 16], "reward_head.layers": 2, "reward_head.units": 16,
    "discount_head.layers": 2, "discount_head.units": 16, "actor.layers": 2, "actor.units": 16,
    "critic.layers": 2, "critic.units": 16, "imag_horizon": 15,
}

# name: (official preset, overrides, observation kind, updates, schedule step)
CONFIGS = {
    # (1) Atari: discrete actions, reinforce, discount head, kl scale 0.1, free nats on the batch
    # mean (0.05: below the mean KL of the tiny model, above some elements, so the clamp acts).
    "atari": ("atari", {"kl.free": 0.05}, "image", 1, 0),
    # (2) Crafter: layer norm in every network.
    "crafter": ("crafter", {}, "image", 1, 0),
    # (3) DMC proprio: MLP encoder/decoder, truncated normal, dynamics, no discount head, free 1.
    "dmc_proprio": ("dmc_proprio", {}, "proprio", 1, 0),
    # (4) The `both` actor gradient with a schedule of its mix (at step 3000 of 1e4).
    "both": ("dmc_proprio", {"actor_grad": "both", "actor_grad_mix": "linear(0.1,0.9,1e4)",
                             "actor_ent": "linear(1e-3,1e-4,1e4)"}, "proprio", 1, 3000),
    # (5) Three updates of all three optimisers through Agent.train, clipping at norm 1 (the
    # gradients are larger) and the slow critic mixed every 2 updates with fraction 0.5.
    "optim": ("dmc_proprio", {"kl.free": 0.1, "model_opt.clip": 1.0, "actor_opt.clip": 1.0,
                              "critic_opt.clip": 1.0, "slow_target_update": 2,
                              "slow_target_fraction": 0.5}, "proprio", 3, 0),
}
BATCH, LENGTH, ACTIONS = 2, 10, 3


def spaces(kind: str):
    import gym

    obs = {"reward": gym.spaces.Box(-np.inf, np.inf, (), np.float32),
           "is_first": gym.spaces.Box(0, 1, (), bool), "is_last": gym.spaces.Box(0, 1, (), bool),
           "is_terminal": gym.spaces.Box(0, 1, (), bool)}
    if kind == "image":
        obs["image"] = gym.spaces.Box(0, 255, (64, 64, 1), np.uint8)
        act = gym.spaces.Box(0, 1, (ACTIONS,), np.float32)
        act.n = ACTIONS  # the official OneHotAction space carries `n`
    else:
        obs["position"] = gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)
        obs["velocity"] = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
        act = gym.spaces.Box(-1, 1, (2,), np.float32)
    return obs, {"action": act}


def raw_batch(kind: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A raw replay batch: uint8 images or float vectors, raw rewards, a reset mid-sequence."""
    shape = (BATCH, LENGTH)
    data = {"reward": rng.uniform(-3, 3, shape).astype(np.float32)}
    is_first = np.zeros(shape, bool)
    is_first[:, 0] = True
    is_first[1, 6] = True  # row 1: an episode ends at t = 5, the next starts at t = 6
    is_terminal = np.zeros(shape, bool)
    is_terminal[1, 5] = True
    is_terminal[0, 3] = True  # a terminal start state for imagination in row 0
    data.update(is_first=is_first, is_last=is_terminal.copy(), is_terminal=is_terminal)
    if kind == "image":
        data["image"] = rng.integers(0, 256, shape + (64, 64, 1), dtype=np.uint8)
        data["action"] = np.eye(ACTIONS, dtype=np.float32)[rng.integers(0, ACTIONS, shape)]
    else:
        data["position"] = rng.normal(0, 1, shape + (5,)).astype(np.float32)
        data["velocity"] = rng.normal(0, 2, shape + (4,)).astype(np.float32)
        data["action"] = rng.uniform(-1, 1, shape + (2,)).astype(np.float32)
    data["action"][is_first] = 0.0
    return data


def named_variables(agent) -> dict[str, tf.Variable]:
    """Every variable under a path of official module names (`get` names, `cell` for the GRU)."""
    out: dict[str, tf.Variable] = {}

    def walk(obj, prefix):
        if isinstance(obj, common.GRUCell):
            walk(obj._layer, prefix + "/cell")
            walk(obj._norm, prefix + "/cell_norm")
            return
        if isinstance(obj, tf.keras.layers.Layer):
            for attr in ("kernel", "bias", "gamma", "beta"):
                var = getattr(obj, attr, None)
                if isinstance(var, tf.Variable):
                    out[f"{prefix}/{attr}"] = var
            return
        if isinstance(obj, common.NormLayer):
            if obj._layer is not None:
                walk(obj._layer, prefix)
            return
        if isinstance(obj, common.EnsembleRSSM):
            walk(obj._cell, prefix)
        for name, sub in getattr(obj, "_modules", {}).items():
            walk(sub, f"{prefix}/{name}")

    walk(agent.wm.encoder, "wm/encoder")
    walk(agent.wm.rssm, "wm/rssm")
    for name, head in agent.wm.heads.items():
        walk(head, f"wm/heads/{name}")
    behavior = agent._task_behavior
    walk(behavior.actor, "ac/actor")
    walk(behavior.critic, "ac/critic")
    walk(behavior._target_critic, "ac/target_critic")
    every = {v.ref() for m in (agent.wm.encoder, agent.wm.rssm, *agent.wm.heads.values(),
                               behavior.actor, behavior.critic, behavior._target_critic)
             for v in m.variables}
    named = {v.ref() for v in out.values()}
    assert every == named, f"unnamed variables: {len(every - named)}"
    return out


def _squeeze(value: np.ndarray, dist) -> np.ndarray:
    """`Independent.sample()` asks the inner distribution for a sample of shape [1]."""
    want = tuple(dist.batch_shape) + tuple(dist.event_shape)
    return value.reshape(want) if value.shape != want else value


class Recorder:
    """Wraps official functions (from outside) to keep their draws, values and gradients."""

    def __init__(self):
        self.values: dict[str, np.ndarray] = {}
        self.draws: dict[str, list[np.ndarray]] = {"observe": [], "imagine": []}
        self.phase = None
        self.active = False
        self.grads: dict[str, list] = {}
        self._opt = None

    def put(self, name, value):
        if not self.active:
            return
        value = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
        assert name not in self.values, name
        self.values[name] = value

    def install(self):
        rec = self
        wm_cls, ac_cls = official_agent.WorldModel, official_agent.ActorCritic

        onehot_sample = common.OneHotDist.sample

        def onehot(self, *args, **kwargs):
            out = onehot_sample(self, *args, **kwargs)
            if rec.active and rec.phase:
                rec.draws[rec.phase].append(("onehot", _squeeze(out.numpy(), self)))
            return out

        common.OneHotDist.sample = onehot
        trunc_sample = common.TruncNormalDist.sample

        def trunc(self, *args, **kwargs):
            out = trunc_sample(self, *args, **kwargs)
            if rec.active and rec.phase:
                rec.draws[rec.phase].append(("trunc", _squeeze(out.numpy(), self)))
            return out

        common.TruncNormalDist.sample = trunc

        preprocess = wm_cls.preprocess

        def wrapped_preprocess(self, obs):
            out = preprocess(self, obs)
            if rec.phase == "observe":
                for key in ("image", "position", "velocity", "reward", "discount"):
                    if key in out:  # images: the first two steps (the files stay small)
                        rec.put(f"pre/{key}", out[key][:, :2] if key == "image" else out[key])
            return out

        wm_cls.preprocess = wrapped_preprocess
        loss = wm_cls.loss

        def wrapped_loss(self, data, state=None):
            model_loss, last, outs, metrics = loss(self, data, state)
            rec.put("wm/loss", model_loss)
            for key in ("embed", "feat", "kl"):
                rec.put(f"wm/{key}", outs[key])
            for key in ("logit", "deter", "stoch"):
                rec.put(f"wm/post_{key}", outs["post"][key])
            rec.put("wm/prior_logit", outs["prior"]["logit"])
            for key, like in outs["likes"].items():
                rec.put(f"wm/like_{key}", like)
            for key, value in metrics.items():
                rec.put(f"metric/{key}", value)
            rec.phase = "imagine"
            return model_loss, last, outs, metrics

        wm_cls.loss = wrapped_loss
        imagine = wm_cls.imagine

        def wrapped_imagine(self, policy, start, is_terminal, horizon):
            seq = imagine(self, policy, start, is_terminal, horizon)
            for key in ("feat", "action", "discount", "weight", "deter", "logit"):
                rec.put(f"imag/{key}", seq[key])
            rec.phase = None
            return seq

        wm_cls.imagine = wrapped_imagine
        target = ac_cls.target

        def wrapped_target(self, seq):
            out, metrics = target(self, seq)
            rec.put("imag/reward", seq["reward"])
            rec.put("imag/target", out)
            return out, metrics

        ac_cls.target = wrapped_target
        for name in ("actor_loss", "critic_loss"):
            def make(fn, name):
                def wrapped(self, seq, target):
                    value, metrics = fn(self, seq, target)
                    rec.put(f"ac/{name}", value)
                    return value, metrics
                return wrapped
            setattr(ac_cls, name, make(getattr(ac_cls, name), name))

        call = common.Optimizer.__call__

        def wrapped_call(self, tape, loss, modules):
            rec._opt = self._name
            out = call(self, tape, loss, modules)
            rec._opt = None
            return out

        common.Optimizer.__call__ = wrapped_call
        global_norm = tf.linalg.global_norm

        def wrapped_norm(tensors, *args, **kwargs):
            if rec.active and rec._opt is not None and rec._opt not in rec.grads:
                rec.grads[rec._opt] = list(tensors)
            return global_norm(tensors, *args, **kwargs)

        tf.linalg.global_norm = wrapped_norm
        varibs = common.Optimizer.__call__

        def keep_vars(self, tape, loss, modules):
            mods = modules if hasattr(modules, "__len__") else (modules,)
            if rec.active:
                rec.grads[f"{self._name}/vars"] = tf.nest.flatten([m.variables for m in mods])
            return varibs(self, tape, loss, modules)

        common.Optimizer.__call__ = keep_vars


RECORDER = Recorder()
RECORDER.install()


def generate(name: str, out_dir: pathlib.Path) -> pathlib.Path:
    preset, overrides, kind, updates, step = CONFIGS[name]
    config = official.make_config(preset, {**TINY, **overrides})
    tf.keras.utils.set_random_seed(0)  # python, numpy, TF and the Keras initialisers
    obs_space, act_space = spaces(kind)
    agent = official_agent.Agent(config, obs_space, act_space, common.Counter(step))
    rng = np.random.default_rng(0)
    batches = [raw_batch(kind, rng) for _ in range(updates)]
    data = {k: tf.convert_to_tensor(v) for k, v in batches[0].items()}
    # Create every variable without training: a world-model loss and each behaviour network.
    _, _, outs, _ = agent.wm.loss(data)
    feat = outs["feat"][:, 0]
    behavior = agent._task_behavior
    for net in (behavior.actor, behavior.critic, behavior._target_critic):
        net(feat)
    names = named_variables(agent)
    arrays = {f"w0/{k}": v.numpy() for k, v in names.items()}
    by_ref = {v.ref(): k for k, v in names.items()}
    rec = RECORDER
    metrics_all = {}
    for i, raw in enumerate(batches):
        rec.values, rec.grads = {}, {}
        rec.draws = {"observe": [], "imagine": []}
        rec.phase = "observe"
        for key, value in raw.items():
            arrays[f"u{i}/batch/{key}"] = value
        rec.active = True
        metrics = agent.train({k: tf.convert_to_tensor(v) for k, v in raw.items()})
        rec.active = False
        metrics = metrics[1] if isinstance(metrics, tuple) else metrics
        for key, value in rec.values.items():
            arrays[f"u{i}/{key}"] = value
        for key, value in metrics.items():
            value = value.numpy() if hasattr(value, "numpy") else value
            arrays[f"u{i}/metric/{key}"] = np.asarray(value, np.float32)
        metrics_all[i] = sorted(metrics)
        # Draws: observe alternates prior, posterior per step (the posterior is used);
        # imagine alternates action, prior.
        obs = [v for _, v in rec.draws["observe"]]
        assert len(obs) == 2 * LENGTH, len(obs)
        arrays[f"u{i}/draw/post"] = np.stack(obs[1::2], 1)  # (B, T, S, K)
        img = rec.draws["imagine"]
        arrays[f"u{i}/draw/action"] = np.stack([v for _, v in img[0::2]], 0)  # (H, N, A)
        arrays[f"u{i}/draw/prior"] = np.stack([v for _, v in img[1::2]], 0)  # (H, N, S, K)
        for opt in ("model", "actor", "critic"):
            grads, varibs = rec.grads[opt], rec.grads[f"{opt}/vars"]
            for var, grad in zip(varibs, grads):
                arrays[f"u{i}/grad/{by_ref[var.ref()]}"] = grad.numpy()
        for key, var in names.items():
            arrays[f"u{i}/w/{key}"] = var.numpy()
    flat = dict(config.flat)
    meta = {"name": name, "preset": preset, "overrides": {**TINY, **overrides}, "kind": kind,
            "updates": updates, "step": step, "versions": official.versions(),
            "config": json.loads(json.dumps(flat, default=str)),
            "variables": sorted(names), "metrics": metrics_all,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    arrays = {k: (v.astype(np.float32) if v.dtype == np.float64 else v)
              for k, v in arrays.items()}
    path = out_dir / f"{name}.npz"
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parents[2] / "tests/parity"))
    parser.add_argument("--only", nargs="*", default=list(CONFIGS))
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.only:
        start = time.time()
        path = generate(name, out)
        print(f"{path}: {path.stat().st_size / 1e3:.0f} kB in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
