"""Typed configuration: every field of the official `configs.yaml` that this package reads
(spec §6).

Field names are the official ones; nested sections map to dotted keys (`--rssm.deter 600`,
`--model_opt.lr 2e-4`). Presets are ordered deltas over these defaults (`presets.py`). Units: every
step count here is in **policy steps** (one `env.step`); logs and plots use frames.
Fields the official code has but never reads (`slow_baseline`), exploration-only fields and the
identity `reward_norm` are left out; `docs/parity.md` lists them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

Act = Literal["elu", "relu", "silu", "tanh"]
Norm = Literal["none", "layer"]
Switch = Literal["auto", "on", "off"]  # a fast path: auto = the measured best for the device


@dataclass
class ReplayConfig:
    capacity: int = 2_000_000
    """Replay capacity in policy steps (FIFO over whole episodes; files are never deleted)."""
    minlen: int = 50
    """Shortest stored episode and shortest sampled sequence (policy steps)."""
    maxlen: int = 50
    """Longest sampled sequence (policy steps)."""
    prioritize_ends: bool = True
    """Give the window that ends at the episode end extra sampling mass (spec §4)."""


@dataclass
class DatasetConfig:
    batch: int = 16
    """Sequences per training batch (B). The paper and the released curves use 50."""
    length: int = 50
    """Sequence length (T) of each training chunk."""


@dataclass
class RSSMConfig:
    hidden: int = 1024
    """Width of the dense layers around the GRU."""
    deter: int = 1024
    """Size of the deterministic GRU state h."""
    stoch: int = 32
    """Number of categorical latent variables."""
    discrete: int = 32
    """Classes per categorical latent (0 would mean Gaussian latents, not supported)."""
    act: Act = "elu"
    """Activation of the dense layers."""
    norm: Norm = "none"
    """Normalisation after each dense layer (the GRU always has its own LayerNorm)."""
    ensemble: int = 1
    """Number of prior heads (only 1 is supported: no preset uses more)."""


@dataclass
class EncoderConfig:
    mlp_keys: str = ".*"
    """Regex of 1-D observation keys for the MLP encoder."""
    cnn_keys: str = ".*"
    """Regex of 3-D (image) observation keys for the CNN encoder."""
    act: Act = "elu"
    norm: Norm = "none"
    cnn_depth: int = 48
    """Channels of the first convolution; doubled at each of the following ones."""
    cnn_kernels: tuple[int, ...] = (4, 4, 4, 4)
    """Kernel sizes of the stride-2 VALID convolutions."""
    mlp_layers: tuple[int, ...] = (400, 400, 400, 400)
    """Units of each dense layer of the vector encoder."""


@dataclass
class DecoderConfig:
    mlp_keys: str = ".*"
    """Regex of 1-D observation keys that are reconstructed."""
    cnn_keys: str = ".*"
    """Regex of image keys that are reconstructed."""
    act: Act = "elu"
    norm: Norm = "none"
    cnn_depth: int = 48
    """Base channel count of the transposed convolutions."""
    cnn_kernels: tuple[int, ...] = (5, 5, 6, 6)
    """Kernel sizes of the stride-2 VALID transposed convolutions."""
    mlp_layers: tuple[int, ...] = (400, 400, 400, 400)


@dataclass
class HeadConfig:
    layers: int = 4
    """Number of hidden dense layers."""
    units: int = 400
    """Units per hidden layer."""
    act: Act = "elu"
    norm: Norm = "none"
    dist: str = "mse"
    """Output distribution: mse (unit Normal), binary (Bernoulli), onehot, trunc_normal, auto."""
    min_std: float = 0.1
    """Lower bound of the standard deviation (continuous actor only)."""
    init_std: float = 0.0
    """Offset added before the std squashing (continuous actor only)."""


@dataclass
class LossScales:
    kl: float = 1.0
    """Scale β of the balanced KL term."""
    reward: float = 1.0
    discount: float = 1.0
    image: float = 1.0
    """Scale of every image reconstruction term."""
    proprio: float = 1.0
    """Scale of every vector reconstruction term (unused by the official code; see parity)."""


@dataclass
class KLConfig:
    free: float = 0.0
    """Free nats: each KL term is clamped from below at this value."""
    forward: bool = False
    """Use KL(prior || post) instead of KL(post || prior)."""
    balance: float = 0.8
    """KL balancing α: weight of the term that trains the prior."""
    free_avg: bool = True
    """Clamp the batch-mean KL (True) instead of each element (False)."""


@dataclass
class OptConfig:
    lr: float = 1e-4
    """Adam learning rate."""
    eps: float = 1e-5
    """Adam epsilon (Keras convention: applied to the uncorrected second moment)."""
    clip: float = 100.0
    """Global-norm gradient clipping threshold."""
    wd: float = 1e-6
    """Decoupled weight decay: θ ← (1 − wd)·θ before each step, not scaled by lr."""


@dataclass
class Config:
    """DreamerV2 configuration. Step counts are policy steps; logs use frames."""

    # ---- run ----
    logdir: str = ""
    """Run directory. Rerunning with the same logdir resumes from its last checkpoint."""
    seed: int = 0
    """Seeds torch, numpy, replay sampling and every env (env i: seed + i; a restarted run derives
    new env seeds from it, see docs/parity.md)."""
    task: str = "dmc_walker_walk"
    """Environment: atari_<game>, dmc_<domain>_<task>, crafter_reward, minatar_<game>, gym:<id>."""
    device: str = "auto"
    """'auto' (CUDA if available, else CPU), 'cpu', 'cuda' or 'cuda:N'."""
    precision: Literal[16, 32] = 16
    """16: bfloat16 autocast where the device supports it (fp32 islands as the spec says);
    32: fp32."""
    jit: bool = False
    """torch.compile the imagination step (a ~5% faster update on CPU after a ~16 s compile;
    needs a C++ compiler; other parts measured no faster). Off by default."""
    threads: int = 0
    """torch intra-op threads (0 = torch's default, the number of cores; OpenMP threads sleep
    while waiting unless OMP_WAIT_POLICY is set, see the README)."""
    malloc_reuse: Switch = "auto"
    """Keep freed heap memory for reuse (glibc mallopt) instead of unmapping big blocks, so the
    update's large CPU tensors do not page-fault afresh every step. auto = on for CPU on Linux.
    Process-wide; the peak RSS is unchanged but freed memory is not returned to the OS."""
    conv_matmul: Switch = "auto"
    """Encoder convolutions with at most 2x2 output positions (the last) as one matmul over
    patches (same parameters, same maths). auto = on for CPU, where oneDNN runs them slowly."""
    policy_fp32: Switch = "auto"
    """Act (one observation per env) in float32 even when training in bf16: at batch 1 autocast
    re-casts and re-lays-out every weight per call (Atari model on CPU: 5.6 vs 2.8 ms a step).
    The update is unaffected. auto = on for CPU."""
    batched_grads: Switch = "auto"
    """Weight gradients of the observe loop's Dense layers as one matmul over all time steps
    instead of one per step (same maths, another summation order). auto = on."""
    # issue 11: the GPU path.
    prefetch: Switch = "auto"
    """Copy each replay batch to the device in a background thread (pinned memory, non-blocking
    copy on a side stream) while the previous update runs. auto = on for CUDA; a no-op on CPU."""
    atari_vector: bool = False
    """Step the `envs` Atari training games in ale-py's C++ vector env (one process, threads)
    instead of one env per subprocess. Same frames (tested); no `ram` key; off by default."""
    compile_loops: Switch = "auto"
    """torch.compile the whole 50-step observe loop and 15-step imagination (on CUDA with CUDA
    graphs, mode reduce-overhead). Same maths; minutes of compile on a CPU. auto = off until a GPU
    measurement says otherwise (docs/performance.md)."""
    # issue 11: collection overlapped with training.
    overlap: bool = False
    """Play the training envs in a collector thread, acting on a snapshot of the policy one update
    round behind, while the due updates run (`overlap.py`). Same replay ratio, exactly; off = the
    official synchronous order (docs/parity.md)."""

    # ---- environment ----
    envs: int = 1
    """Number of training environments stepped together (in subprocesses when > 1)."""
    render_size: tuple[int, int] = (64, 64)
    """Image observation size (height, width)."""
    dmc_camera: int = -1
    """DMC camera id (-1: the suite's usual camera)."""
    atari_grayscale: bool = True
    """Grayscale Atari frames (1 channel) instead of RGB."""
    atari_all_actions: bool = False
    """Use the full 18-action set (the paper) instead of the game's minimal set."""
    time_limit: int = 0
    """Episode limit in policy steps (0 = off); sets is_last but not is_terminal."""
    action_repeat: int = 1
    """Frames per policy step (Atari 4, DMC 2)."""

    # ---- loop ----
    steps: int = 100_000_000
    """Total training-env policy steps."""
    log_every: int = 10_000
    """Policy steps between metric writes (and open-loop videos)."""
    eval_every: int = 100_000
    """Policy steps between evaluation phases (and checkpoints)."""
    eval_eps: int = 1
    """Evaluation episodes per evaluation phase (mode policy)."""
    prefill: int = 10_000
    """Policy steps of uniform random data collected before training."""
    pretrain: int = 1
    """Extra updates after the first one, before acting."""
    train_every: int = 5
    """Policy steps between training phases."""
    train_steps: int = 1
    """Updates per training phase."""
    # issue 9: checkpoints by the clock, what bad data does, when skipped updates stop a run.
    checkpoint_every: float = 10.0
    """Minutes between checkpoints in prefill, pretrain, training and evaluation (after a finished
    eval episode), besides the one after every evaluation phase (0 = only those). A `kill -9`
    loses at most this much work, plus an unfinished eval episode (docs/parity.md)."""
    nonfinite: Literal["error", "drop"] = "error"
    """A NaN/inf reward or observation from an env: 'error' stops the run naming env, key and step;
    'drop' discards that episode with a warning (counted as `dropped_episodes`). Never stored."""
    skip_limit: float = 0.5
    """Stop with an error when more than this fraction of the updates between two metric writes
    were skipped for non-finite gradients (a warning names any skipped ones; 1 = never stop)."""

    # ---- data ----
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    clip_rewards: Literal["tanh", "identity", "sign"] = "tanh"
    """Reward transform applied inside the agent (the stored rewards stay raw)."""
    log_keys_video: tuple[str, ...] = ("image",)
    """Observation keys written as policy and open-loop videos."""
    # issue 8: outputs (docs/metrics.md)
    tensorboard_videos: bool = False
    """Also write every video into TensorBoard as an animated GIF (large: a debug Pong run wrote
    15 MB of events in 75 s); the mp4 files in videos/ are always written."""
    wandb: Literal["off", "online", "offline"] = "off"
    """Mirror scalars and videos to Weights & Biases (needs `pip install wandb`); offline
    writes a local run that `wandb sync` uploads later."""

    # ---- world model ----
    eval_state_mean: bool = False
    """Use the posterior mode instead of a sample when acting in evaluation."""
    grad_heads: tuple[str, ...] = ("decoder", "reward", "discount")
    """Heads whose loss shapes the representation; the others see sg(feat)."""
    pred_discount: bool = True
    """Learn a discount (continuation) head."""
    rssm: RSSMConfig = field(default_factory=RSSMConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    reward_head: HeadConfig = field(default_factory=lambda: HeadConfig(dist="mse"))
    discount_head: HeadConfig = field(default_factory=lambda: HeadConfig(dist="binary"))
    loss_scales: LossScales = field(default_factory=LossScales)
    kl: KLConfig = field(default_factory=KLConfig)
    model_opt: OptConfig = field(default_factory=lambda: OptConfig(lr=1e-4))

    # ---- actor-critic ----
    actor: HeadConfig = field(default_factory=lambda: HeadConfig(dist="auto"))
    critic: HeadConfig = field(default_factory=lambda: HeadConfig(dist="mse"))
    actor_opt: OptConfig = field(default_factory=lambda: OptConfig(lr=8e-5))
    critic_opt: OptConfig = field(default_factory=lambda: OptConfig(lr=2e-4))
    discount: float = 0.99
    """γ. The discount head learns γ·(1 − is_terminal)."""
    discount_lambda: float = 0.95
    """λ of the λ-returns."""
    imag_horizon: int = 15
    """Imagination horizon H."""
    actor_grad: Literal["auto", "reinforce", "dynamics", "both"] = "auto"
    """Actor gradient: auto = reinforce for discrete actions, dynamics for continuous."""
    actor_grad_mix: float | str = 0.1
    """Weight of the dynamics term with actor_grad=both; a number or a schedule string."""
    # issue 10: gradient rule of the continuous actor's truncated-normal sample (docs/parity.md).
    actor_trunc_grad: Literal["tf", "exact"] = "tf"
    """tf: TensorFlow's rule (d x/d loc = 1, d x/d scale = (x − loc)/scale), with which the
    official DMC results were produced; exact: the exact inverse-CDF reparameterisation gradient."""
    actor_ent: float | str = 2e-3
    """Entropy bonus η; a number or a schedule such as 'linear(3e-3,3e-4,2.5e6)'."""
    slow_target: bool = True
    """Use a slow (target) critic for the λ-returns and the REINFORCE baseline."""
    slow_target_update: int = 100
    """Updates between slow-critic updates."""
    slow_target_fraction: float = 1.0
    """Mixing fraction of each slow-critic update (1 = hard copy)."""
    expl_noise: float = 0.0
    """Action noise when acting in training (ε for discrete, std for continuous)."""
    eval_noise: float = 0.0
    """Action noise when acting in evaluation."""


def to_dict(config: Config) -> dict:
    """Plain nested dict (tuples as lists), e.g. for YAML."""
    def convert(value):
        if dataclasses.is_dataclass(value):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple):
            return [convert(v) for v in value]
        return value

    return convert(config)


def flatten(config: Config) -> dict[str, object]:
    """Dotted key → value for every leaf field."""
    out: dict[str, object] = {}

    def walk(value, prefix):
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if dataclasses.is_dataclass(item):
                walk(item, prefix + f.name + ".")
            else:
                out[prefix + f.name] = item

    walk(config, "")
    return out
