"""Run configuration: dataclasses loaded from YAML plus `key=value` overrides.

Every value is checked before Ray starts, so a typo costs a second, not a cluster start-up.
Errors name the dotted key and what is allowed.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A bad key or value in a run configuration."""


@dataclass
class TaskConfig:
    name: str = "classification"  # classification | detection | segmentation
    model: str = "small_cnn"  # classification: small_cnn | resnet18/34/50; detection: yolov8n/s/m/l/x;
    #                          segmentation: upernet (unset in a config: the task's first, see MODELS)
    cifar_stem: bool = True  # 3x3 stem, no max-pool: the usual ResNet for 32x32 images
    depth: int = 50  # segmentation: ResNet depth of the UperNet backbone (18 | 34 | 50 | 101 | 152)
    head_channels: int = 512  # segmentation: width of the UperNet decode head (mmseg: 512)
    aux_head: bool = True  # segmentation: auxiliary FCN head on backbone stage 3 (training only)
    aux_weight: float = 0.4  # segmentation: weight of the auxiliary head's loss


@dataclass
class DataConfig:
    name: str = "shapes"  # classification: shapes | mixture | digits | cifar10 | cifar100 | imagefolder;
    #                       detection: synthetic_det | yolo; segmentation: synthetic_seg | ade20k
    #                       (unset in a config: the task's first registered data set, see DATASETS)
    path: str | None = None  # cifar10/cifar100/imagefolder/ade20k: root folder; yolo: data set YAML;
    #                          synthetic_det/synthetic_seg: where the generated set goes (default ./data_cache)
    num_samples: int = 3000  # shapes, mixture, synthetic_det, synthetic_seg: training images generated
    val_samples: int = 600  # shapes, mixture, synthetic_det, synthetic_seg: validation images generated
    image_size: int = 32  # segmentation: images are resized (shorter side) and centre-cropped to this
    label_noise: float = 0.0  # fraction of training labels flipped (shapes, mixture, digits, cifar); is_noisy in the pool
    # Training augmentation; unset: the data set's standard (data/recipes.py). Classification: crop + flip
    # (cifar), RandomResizedCrop + flip (imagefolder), on for those, off for generated sets and digits.
    # Detection: per-image horizontal flips (no mosaic: it mixes images), on unless false.
    augment: bool | None = None
    normalize: bool | None = None  # classification: per-channel mean/std in the model; unset: cifar, imagefolder
    decode_threads: int = 4  # imagefolder: files decoded side by side per batch, while the last batch trains
    # classification: how each epoch's subset reaches the workers. in_memory: every worker holds the set
    # (arrays, or the file list) and reads its share in its own thread; ray_data: the selected ids and
    # sources stream through a Ray Data dataset, decoded and augmented in map_batches on CPU tasks,
    # each worker reading its shard (data/streaming.py)
    pipeline: str = "in_memory"
    stream_cpus: float = 1.0  # ray_data: CPUs each decode task reserves (< 1 shares CPUs on a small cluster)
    prefetch_batches: int = 2  # ray_data: batches each worker has decoded ahead of the step
    num_classes: int | None = None  # ade20k: classes after reduce_zero_label (None: ADE20K's 150)
    reduce_zero_label: bool = True  # segmentation: mask value 0 -> 255 (ignored), the others -1 (ADE20K)
    seed: int = 0


@dataclass
class SelectionConfig:
    selector: str = "infobatch"
    ratio: float = 0.5  # kept fraction of the pool per epoch, in (0, 1]
    delta: float = 0.875  # selection runs for the first delta of epochs, then all data (annealing)
    warmup_epochs: int = 1  # full-data epochs at the start for EVERY non-full selector (random too): equal cost
    sampling: str = "topk"  # topk | proportional (Gumbel top-k without replacement)
    temperature: float = 1.0  # proportional: sample in proportion to weight ** (1 / temperature); -> 0 is top-k
    # auto (each selector's own: infobatch 1/(1-r), data_agent 1/ratio, else 1) | none | inverse_ratio | infobatch
    loss_weighting: str = "auto"
    max_staleness: int = 5  # topk: a sample unseen this many epochs is taken first, so none starves
    ucb_c: float = 1.0  # ucb exploration constant
    epsilon: float = 0.1  # eps_greedy exploration fraction
    infobatch_max_prune: float = 0.7  # infobatch: cap on the prune probability r (rescale 1/(1-r))
    lead_clusters: int = 7  # lead: k-means clusters of the IDU difficulty score (EXP3 arms)
    lead_gamma: float = 0.07  # lead: EXP3 exploration g, p_k = (1-g) w_k / sum w + g / K


@dataclass
class RewardConfig:
    variant: str = "adaptive"  # difficulty | uncertainty | fixed_half | adaptive | idu
    clip_quantile: float = 0.95  # losses are clipped at this batch quantile (docs/design.md#signals)
    idu_smoothing: float = 0.1  # LEAD's b: IDU_t = (1-b) L_t + dL'_t + b IDU_{t-1}


# What `agent.preset` sets for the keys a config leaves unset (None). "v2" is the default agent;
# "paper" is the formulation of arXiv 2603.07433 (reward a * score, features-only state, GAE along
# each sample's visits, no warm start, plain top-k). docs/concepts/data-agent.md lists each deviation.
AGENT_PRESETS = {
    "v2": {"hidden": 64, "reward": "agreement", "state": "full", "payoff": "rank", "gamma": 0.0, "lr": 1e-3,
           "warm_start_passes": 64, "replay_passes": 4, "class_balanced": True,
           "max_concentration": 40.0, "baseline": "self_critical"},
    "paper": {"hidden": 128, "reward": "score", "state": "features", "payoff": "linear", "gamma": 0.99, "lr": 3e-4,
              "warm_start_passes": 0, "replay_passes": 0, "class_balanced": False,
              "max_concentration": 0.0, "baseline": "critic"},
}


@dataclass
class AgentConfig:
    """The Data Agent (docs/concepts/data-agent.md). Keys left None take the value of `preset`."""

    preset: str = "v2"  # v2 | paper
    # v2: 64 (the same quality as 128 at 5 paired seeds on (a)-(c); at 128 the actor's MLP was a third of
    # a worker's time in bench_store.py: RESULTS.md); paper: 128 (docs/design.md#ppo)
    hidden: int | None = None
    lr: float | None = None  # v2: 1e-3 (3e-3 swung the policy; 3e-4 learned too slowly: RESULTS.md); paper: 3e-4
    clip: float = 0.2
    gamma: float | None = None  # v2: 0 (each visit's reward is immediate); paper: 0.99, GAE over visits
    gae_lambda: float = 0.95
    num_epochs: int = 4
    minibatch_size: int = 256
    entropy_coeff: float = 0.0
    vf_coeff: float = 0.5
    reward_scale: str = "per_sample"  # per_sample (divide by the running std of per-sample rewards) | none
    reward: str | None = None  # agreement: score * label agreement | score: the paper's composite score
    # What an action earns from its sample's reward target t (acting.training_reward). rank: -(a - y)^2,
    # y = t's percentile among the pool's latest targets | margin: a * (t - the pool's (1-ratio) target
    # quantile) | linear: a * t (the paper's eq. 6)
    payoff: str | None = None
    # An advantage's baseline: critic (a learned value function, GAE) | self_critical (the payoff of the
    # policy's mean action; needs gamma 0: a visit's reward is the whole return)
    baseline: str | None = None
    state: str | None = None  # full: features + loss, signals, agreement, staleness | features: features only
    # Bound on the Beta's alpha + beta (v2: 40, a spread of at least ~0.08 at a = 0.5); 0: unbounded (paper).
    max_concentration: float | None = None
    # ppo: RLlib's PPO Learner | regression: the ablation that fits the policy mean to the rank target y
    # by least squares on the same transitions and state (payoff=rank only; no exploration credit)
    learner: str = "ppo"
    warm_start_passes: int | None = None  # PPO passes over the first epoch's transitions at its end (0: off)
    replay_passes: int | None = None  # after each later epoch: PPO passes over each panel sample's latest transition
    class_balanced: bool | None = None  # each class gets its share of the budget
    agreement_decay: float = 0.7  # EMA of the given label's probability: a <- d a + (1 - d) p_y
    panel_size: int = 4096  # samples whose transitions reach the learner (a fixed hashed subset)
    update_every: int = 256  # the learner runs a PPO update once this many transitions arrived
    send_every: int = 8  # a worker sends its panel transitions to the learner every this many batches
    # deterministic: calls at fixed batch counts, each answer's weights waited for at the next call (one
    # worker: same seed, same selections) | async: act with whatever weights have arrived (docs/design.md)
    schedule: str = "deterministic"
    learner_cpus: float = 0.0  # CPUs the learner actor reserves (and its torch threads, at least 1)

    def __post_init__(self):
        if self.preset not in AGENT_PRESETS:
            raise ConfigError(f"agent.preset={self.preset!r} is not allowed; choose one of: "
                              f"{', '.join(AGENT_PRESETS)}")
        for key, value in AGENT_PRESETS[self.preset].items():
            if getattr(self, key) is None:
                setattr(self, key, value)


@dataclass
class TrainConfig:
    epochs: int = 8
    batch_size: int = 64
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: int = 1
    resume_from: str | None = None  # checkpoint directory of an earlier run
    max_failures: int = 2  # Ray Train restarts the workers from the last checkpoint this many times
    precision: str = "fp32"  # fp32 | bf16 | fp16: autocast for forward and loss (fp16 with a grad scaler)
    label_smoothing: float = 0.0  # classification: cross-entropy label smoothing, in [0, 1)


@dataclass
class TrackingConfig:
    uri: str | None = None  # None: sqlite:///<cwd>/mlflow.db
    experiment: str = "raydata_agent"
    run_name: str | None = None
    log_snapshots: bool = True  # log the pool Parquet snapshots as artifacts (else they stay on disk only)
    snapshot_every: int = 5  # snapshot the pool every k epochs, and after the last; 0: the last only
    snapshot_columns: str = "scores"  # scores: every column but `source` (file paths) | all
    parent_run_id: str | None = None  # nest this run under a sweep's parent run (set by `raydata-agent tune`)


@dataclass
class RayConfig:
    address: str | None = None  # None: RAY_ADDRESS if set, else a local cluster
    num_cpus: int | None = None  # for a local cluster
    # Ray Train checkpoints, pool snapshots, Tune's sweep state. Absolute by default: a job runs in a
    # temporary copy of its working_dir, where a relative path would be wiped with the session. On a
    # cluster of several nodes: a path every node mounts (NFS, EFS) or a pyarrow.fs URI (s3://, gs://).
    storage_path: str = "~/ray_results/raydata_agent"


@dataclass
class Config:
    task: TaskConfig = field(default_factory=TaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """`section.key -> value`, the form MLflow params and overrides use."""
        return {f"{s}.{k}": v for s, sec in self.to_dict().items() for k, v in sec.items()}

    def run_params(self) -> dict[str, Any]:
        """The flat keys this run's task, data set and selector read, and any key set away from its
        default: MLflow's params for the run, so a greedy classification run does not list UperNet's
        depth or LEAD's bandit settings."""
        defaults = Config().flat()
        return {k: v for k, v in self.flat().items()
                if _PARAM_APPLIES.get(k, lambda c: True)(self) or v != defaults.get(k)}

    def run_name(self) -> str:
        """`data_agent r0.5 s0`: what tells runs apart in MLflow's table (the default when
        tracking.run_name is unset)."""
        return f"{self.selection.selector} r{self.selection.ratio:g} s{self.train.seed}"

    @property
    def tracking_uri(self) -> str:
        """tracking.uri, else a SQLite store in the working dir; a Ray job's working dir is a temporary copy
        that Ray deletes, so a job's store goes beside its (local) ray.storage_path instead."""
        import os

        if self.tracking.uri:
            return self.tracking.uri
        in_ray_job = "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ  # set by Ray's job supervisor
        folder = Path(self.ray.storage_path).expanduser().resolve() if in_ray_job and not is_uri(
            self.ray.storage_path) else Path.cwd()
        return f"sqlite:///{folder / 'mlflow.db'}"


# Per task: the models and data sets it accepts. A new task registers its names here.
# The first name of each is the task's default when a config leaves task.model / data.name unset.
MODELS = {"classification": ("small_cnn", "resnet18", "resnet34", "resnet50"),
          "detection": ("yolov8n", "yolov8s", "yolov8m", "yolov8l", "yolov8x"),
          "segmentation": ("upernet",)}
DATASETS = {"classification": ("shapes", "mixture", "digits", "cifar10", "cifar100", "imagefolder"),
            "detection": ("synthetic_det", "yolo"),
            "segmentation": ("synthetic_seg", "ade20k")}
TASKS = tuple(MODELS)
RESNET_DEPTHS = (18, 34, 50, 101, 152)  # segmentation backbones (mmseg ResNetV1c)
IGNORE_INDEX = 255  # segmentation: mask value that no loss or metric counts
SAMPLINGS = ("topk", "proportional")
LOSS_WEIGHTINGS = ("auto", "none", "inverse_ratio", "infobatch")
OPTIMIZERS = ("sgd", "adamw")
PRECISIONS = ("fp32", "bf16", "fp16")
PIPELINES = ("in_memory", "ray_data")
STANDARD_RECIPE = ("cifar10", "cifar100", "imagefolder")  # augment + normalise when unset (data/recipes.py)
REWARD_SCALES = ("per_sample", "none")
PAYOFFS = ("rank", "margin", "linear")
ADVANTAGE_BASELINES = ("critic", "self_critical")
AGENT_LEARNERS = ("ppo", "regression")
AGENT_SCHEDULES = ("deterministic", "async")
AGENT_REWARDS = ("agreement", "score")
AGENT_STATES = ("full", "features")
SNAPSHOT_COLUMNS = ("scores", "all")


def did_you_mean(word: Any, candidates: typing.Iterable[str], prefix: str = "") -> str:
    """" (did you mean `x`?)" for the closest candidate a letter or two away, as argparse and git say."""
    close = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=0.6)
    return f" (did you mean `{prefix}{close[0]}`?)" if close else ""


_SEGMENTATION = lambda c: c.task.name == "segmentation"  # noqa: E731
_GENERATED = ("shapes", "synthetic_det", "synthetic_seg")
_WEIGHT_TAKERS = ("data_agent", "greedy", "ucb")  # selectors that keep samples by weight (take_by_weight)
# key -> when it applies; keys not listed always apply. Checked by tests/test_tracking_params.py.
_PARAM_APPLIES: dict[str, typing.Callable[["Config"], bool]] = {
    "task.cifar_stem": lambda c: c.task.model.startswith("resnet"),
    **{f"task.{k}": _SEGMENTATION for k in ("depth", "head_channels", "aux_head", "aux_weight")},
    "data.path": lambda c: c.data.path is not None,
    "data.num_samples": lambda c: c.data.name in _GENERATED,
    "data.val_samples": lambda c: c.data.name in _GENERATED,
    "data.image_size": lambda c: c.task.name != "classification" or c.data.name == "imagefolder",
    "data.label_noise": lambda c: c.data.name in ("shapes", "digits"),
    "data.augment": lambda c: c.task.name == "detection" or c.data.augment is not None
    or c.data.name in STANDARD_RECIPE,
    "data.normalize": lambda c: c.task.name == "classification" and (
        c.data.normalize is not None or c.data.name in STANDARD_RECIPE),
    "data.decode_threads": lambda c: c.data.name == "imagefolder",
    "data.pipeline": lambda c: c.task.name == "classification",
    "data.stream_cpus": lambda c: c.data.pipeline == "ray_data",
    "data.prefetch_batches": lambda c: c.data.pipeline == "ray_data",
    "train.label_smoothing": lambda c: c.task.name == "classification",
    "data.num_classes": lambda c: c.data.name == "ade20k",
    "data.reduce_zero_label": _SEGMENTATION,
    "selection.sampling": lambda c: c.selection.selector in _WEIGHT_TAKERS,
    "selection.temperature": lambda c: c.selection.selector in _WEIGHT_TAKERS and c.selection.sampling == "proportional",
    "selection.max_staleness": lambda c: c.selection.selector in _WEIGHT_TAKERS and c.selection.sampling == "topk",
    "selection.ucb_c": lambda c: c.selection.selector == "ucb",
    "selection.epsilon": lambda c: c.selection.selector == "eps_greedy",
    "selection.infobatch_max_prune": lambda c: c.selection.selector == "infobatch",
    "selection.lead_clusters": lambda c: c.selection.selector == "lead",
    "selection.lead_gamma": lambda c: c.selection.selector == "lead",
    "reward.variant": lambda c: c.selection.selector in ("data_agent", "greedy"),
    "reward.clip_quantile": lambda c: c.selection.selector in ("data_agent", "greedy"),
    **{f"agent.{f.name}": (lambda c: c.selection.selector == "data_agent") for f in dataclasses.fields(AgentConfig)},
    "train.momentum": lambda c: c.train.optimizer == "sgd",
    "train.resume_from": lambda c: c.train.resume_from is not None,
    "ray.address": lambda c: c.ray.address is not None,
    "ray.num_cpus": lambda c: c.ray.num_cpus is not None,
}


def _check_choice(key: str, value: Any, allowed: typing.Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed{did_you_mean(value, allowed)}; "
                          f"choose one of: {', '.join(allowed)}")


def _check_range(key: str, value: float, lo: float, hi: float, lo_open=False, hi_open=False) -> None:
    ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        lb, rb = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ConfigError(f"{key}={value!r} is out of range; allowed: {lb}{lo}, {hi}{rb}")


def validate(cfg: Config) -> Config:
    """Semantic checks that types alone cannot express."""
    from raydata_agent.selectors import SELECTORS
    from raydata_agent.signals import HISTORY_VARIANTS, REWARD_VARIANTS

    _check_choice("task.name", cfg.task.name, TASKS)
    _check_choice("task.model", cfg.task.model, MODELS[cfg.task.name])
    _check_choice("data.name", cfg.data.name, DATASETS[cfg.task.name])
    _check_choice("selection.selector", cfg.selection.selector, sorted(SELECTORS))
    _check_choice("selection.sampling", cfg.selection.sampling, SAMPLINGS)
    _check_choice("selection.loss_weighting", cfg.selection.loss_weighting, LOSS_WEIGHTINGS)
    _check_choice("reward.variant", cfg.reward.variant, sorted(REWARD_VARIANTS) + list(HISTORY_VARIANTS))
    _check_choice("train.optimizer", cfg.train.optimizer, OPTIMIZERS)
    _check_choice("train.precision", cfg.train.precision, PRECISIONS)
    _check_range("train.label_smoothing", cfg.train.label_smoothing, 0.0, 1.0, hi_open=True)
    if cfg.data.decode_threads < 1:
        raise ConfigError(f"data.decode_threads={cfg.data.decode_threads} must be at least 1")
    _check_choice("data.pipeline", cfg.data.pipeline, PIPELINES)
    if cfg.data.pipeline == "ray_data" and cfg.task.name != "classification":
        raise ConfigError(f"data.pipeline=ray_data streams classification sets; task.name={cfg.task.name} "
                          f"keeps its own data path (data.pipeline=in_memory)")
    _check_range("data.stream_cpus", cfg.data.stream_cpus, 0.0, 64.0, lo_open=True)
    if cfg.data.prefetch_batches < 0:
        raise ConfigError(f"data.prefetch_batches={cfg.data.prefetch_batches} must be >= 0")
    _check_choice("agent.reward_scale", cfg.agent.reward_scale, REWARD_SCALES)
    _check_choice("agent.payoff", cfg.agent.payoff, PAYOFFS)
    _check_choice("agent.baseline", cfg.agent.baseline, ADVANTAGE_BASELINES)
    if cfg.agent.baseline == "self_critical" and cfg.agent.gamma != 0.0:
        raise ConfigError(f"agent.baseline=self_critical needs agent.gamma=0 (got {cfg.agent.gamma}): "
                          "it prices one visit's action, not a return over visits")
    _check_choice("agent.learner", cfg.agent.learner, AGENT_LEARNERS)
    if cfg.agent.learner == "regression" and cfg.agent.payoff != "rank":
        raise ConfigError(f"agent.learner=regression fits the rank payoff's target percentile; it needs "
                          f"agent.payoff=rank (got {cfg.agent.payoff})")
    _check_choice("agent.reward", cfg.agent.reward, AGENT_REWARDS)
    _check_choice("agent.state", cfg.agent.state, AGENT_STATES)
    _check_range("agent.agreement_decay", cfg.agent.agreement_decay, 0.0, 1.0, hi_open=True)
    if cfg.selection.selector == "data_agent" and cfg.reward.variant in HISTORY_VARIANTS:
        raise ConfigError(f"reward.variant={cfg.reward.variant} needs the pool's history, but the Data Agent's "
                          f"workers score each batch themselves: choose a batch variant for selection.selector=data_agent")
    if cfg.agent.max_concentration and cfg.agent.max_concentration <= 2.0:
        raise ConfigError(f"agent.max_concentration={cfg.agent.max_concentration!r} must be 0 (unbounded) or > 2")
    _check_choice("agent.schedule", cfg.agent.schedule, AGENT_SCHEDULES)
    for key in ("warm_start_passes", "replay_passes", "learner_cpus"):
        if getattr(cfg.agent, key) < 0:
            raise ConfigError(f"agent.{key}={getattr(cfg.agent, key)!r} must be >= 0")
    _check_choice("tracking.snapshot_columns", cfg.tracking.snapshot_columns, SNAPSHOT_COLUMNS)
    for key in ("tracking.snapshot_every", "train.max_failures"):
        section, name = key.split(".")
        if getattr(getattr(cfg, section), name) < 0:
            raise ConfigError(f"{key}={getattr(getattr(cfg, section), name)!r} must be >= 0")
    _check_range("selection.ratio", cfg.selection.ratio, 0.0, 1.0, lo_open=True)
    _check_range("selection.delta", cfg.selection.delta, 0.0, 1.0)
    _check_range("selection.epsilon", cfg.selection.epsilon, 0.0, 1.0)
    _check_range("selection.infobatch_max_prune", cfg.selection.infobatch_max_prune, 0.0, 1.0, hi_open=True)
    _check_range("reward.clip_quantile", cfg.reward.clip_quantile, 0.0, 1.0, lo_open=True)
    _check_range("reward.idu_smoothing", cfg.reward.idu_smoothing, 0.0, 1.0, hi_open=True)
    _check_range("selection.lead_gamma", cfg.selection.lead_gamma, 0.0, 1.0, lo_open=True)
    _check_range("data.label_noise", cfg.data.label_noise, 0.0, 1.0, hi_open=True)
    _check_range("agent.clip", cfg.agent.clip, 0.0, 1.0, lo_open=True)
    _check_range("agent.gamma", cfg.agent.gamma, 0.0, 1.0)
    _check_range("agent.gae_lambda", cfg.agent.gae_lambda, 0.0, 1.0)
    for key in ("train.epochs", "train.batch_size", "train.num_workers", "train.cpus_per_worker",
                "data.num_samples", "data.val_samples", "data.image_size", "agent.hidden",
                "agent.num_epochs", "agent.minibatch_size", "selection.lead_clusters", "agent.panel_size",
                "agent.update_every", "agent.send_every"):
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value < 1:
            raise ConfigError(f"{key}={value!r} must be at least 1")
    for key in ("train.lr", "agent.lr", "selection.temperature"):
        section, name = key.split(".")
        if not getattr(getattr(cfg, section), name) > 0:
            raise ConfigError(f"{key} must be > 0")
    if cfg.selection.warmup_epochs < 0:
        raise ConfigError(f"selection.warmup_epochs={cfg.selection.warmup_epochs!r} must be >= 0")
    if cfg.selection.max_staleness < 1:
        raise ConfigError("selection.max_staleness must be at least 1")
    if cfg.task.name == "segmentation":
        _validate_segmentation(cfg)
    if cfg.data.name in ("cifar10", "cifar100", "imagefolder", "ade20k"):
        if not cfg.data.path:
            raise ConfigError(f"data.path is required for data.name={cfg.data.name}")
        if not Path(cfg.data.path).expanduser().is_dir():
            raise ConfigError(f"data.path={cfg.data.path!r} is not a directory")
    if cfg.data.name == "yolo":
        if not cfg.data.path:
            raise ConfigError("data.path is required for data.name=yolo: the ultralytics data set YAML")
        if not Path(cfg.data.path).expanduser().is_file():
            raise ConfigError(f"data.path={cfg.data.path!r} is not a file (expected a data set YAML)")
    if cfg.train.resume_from and not is_uri(cfg.train.resume_from) and not Path(cfg.train.resume_from).is_dir():
        raise ConfigError(f"train.resume_from={cfg.train.resume_from!r} is not a directory")
    return cfg


def _validate_segmentation(cfg: Config) -> None:
    if cfg.task.depth not in RESNET_DEPTHS:
        raise ConfigError(f"task.depth={cfg.task.depth!r} is not allowed; choose one of: "
                          f"{', '.join(map(str, RESNET_DEPTHS))}")
    if cfg.task.head_channels < 1:
        raise ConfigError(f"task.head_channels={cfg.task.head_channels!r} must be at least 1")
    if cfg.task.aux_weight < 0:
        raise ConfigError(f"task.aux_weight={cfg.task.aux_weight!r} must be >= 0")
    if cfg.data.label_noise > 0:
        raise ConfigError("data.label_noise applies to classification only; segmentation masks are not flipped")
    if cfg.data.num_classes is not None:
        if cfg.data.name != "ade20k":
            raise ConfigError(f"data.num_classes applies to data.name=ade20k only; {cfg.data.name} "
                              f"has a fixed number of classes")
        _check_range("data.num_classes", cfg.data.num_classes, 2, IGNORE_INDEX - 1)


def _task_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """Fill task.model and data.name with the task's first registered names when a config leaves them
    unset, so `task.name=segmentation` alone means UperNet on the synthetic set."""
    name = (raw.get("task") or {}).get("name", TaskConfig.name)
    if name not in MODELS:
        return raw  # validate() names the bad task
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for section, key, table in (("task", "model", MODELS), ("data", "name", DATASETS)):
        values = raw.setdefault(section, {})
        if isinstance(values, dict) and key not in values:
            values[key] = table[name][0]
    return raw


def generated_data_folder(data: DataConfig) -> Path:
    """Where a generated on-disk data set (synthetic_seg) goes when data.path is unset: one folder
    per settings under ./data_cache in the working directory."""
    return Path.cwd() / "data_cache" / (f"{data.name}-n{data.num_samples}-v{data.val_samples}"
                                        f"-s{data.image_size}-seed{data.seed}")


def resolve_paths(cfg: Config) -> Config:
    """A copy with every path absolute, made in the driver: Ray Train workers run in their own
    working directory (Ray Train 2.60: the run's folder under /tmp/ray/session_*), where a relative
    path, or a generated set's default under ./data_cache, would point somewhere else."""
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data), ray=dataclasses.replace(cfg.ray),
                              train=dataclasses.replace(cfg.train), tracking=dataclasses.replace(cfg.tracking))
    cfg.tracking.uri = cfg.tracking_uri  # the default SQLite store is under the driver's cwd
    if cfg.data.path is None and cfg.data.name == "synthetic_seg":
        cfg.data.path = str(generated_data_folder(cfg.data))
    if cfg.data.path is None and cfg.data.name == "synthetic_det":
        cfg.data.path = "data_cache"  # the generator names its own sub-folder after the settings
    if cfg.data.path is not None:
        cfg.data.path = str(Path(cfg.data.path).expanduser().resolve())
    if not is_uri(cfg.ray.storage_path):
        cfg.ray.storage_path = str(Path(cfg.ray.storage_path).expanduser().resolve())
    if cfg.train.resume_from and not is_uri(cfg.train.resume_from):
        cfg.train.resume_from = str(Path(cfg.train.resume_from).expanduser().resolve())
    return cfg


def is_uri(path: str) -> bool:
    """A pyarrow.fs URI (s3://bucket/dir, gs://..., file:///...) rather than a path on this machine."""
    return "://" in path


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check one value against its dataclass annotation (str, int, float, bool, or `X | None`)."""
    args = typing.get_args(hint)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"{key} may not be null")
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif base is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    raise ConfigError(f"{key}={value!r} has the wrong type; expected {getattr(base, '__name__', base)}")


def from_dict(raw: dict[str, Any]) -> Config:
    """Build a Config from a nested dict, rejecting unknown sections and keys by name."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("a config must be a mapping of sections (task, data, selection, ...)")
    built = {}
    for section, values in raw.items():
        values = _section_values(section, values)
        cls = typing.get_type_hints(Config)[section]
        hints = typing.get_type_hints(cls)
        for key in values:
            if key not in hints:
                hint = did_you_mean(key, hints, prefix=f"{section}.") or _other_section(key, section)
                raise ConfigError(f"unknown config key {section}.{key}{hint}; "
                                  f"allowed keys of {section}: {', '.join(hints)}")
        built[section] = cls(**{k: _coerce(f"{section}.{k}", v, hints[k]) for k, v in values.items()})
    return Config(**built)


def _section_values(section: Any, values: Any) -> dict:
    """A section's keys; `train:` with nothing under it is empty, but `train: 0` is a mistake."""
    sections = [f.name for f in dataclasses.fields(Config)]
    if section not in sections:
        raise ConfigError(f"unknown config section {section!r}"
                          f"{_other_section(section) or did_you_mean(section, sections)}; "
                          f"allowed: {', '.join(sections)}")
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"config section {section!r} must be a mapping of its keys, "
                          f"got {type(values).__name__} {values!r}")
    return values


def _other_section(key: Any, section: str | None = None) -> str:
    """A key written at the top level or under the wrong section: point at the section that has it."""
    owners = [f"{f.name}.{key}" for f in dataclasses.fields(Config) if f.name != section
              and key in {g.name for g in dataclasses.fields(f.default_factory())}]
    return f" (did you mean `{owners[0]}`?)" if owners else ""


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` overrides; values are parsed as YAML scalars."""
    raw = {k: dict(_section_values(k, v)) for k, v in (raw or {}).items()}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) != 2:
            raise ConfigError(f"override key {key!r} must be section.key, e.g. selection.ratio")
        raw.setdefault(parts[0], {})[parts[1]] = yaml.safe_load(text) if text != "" else None
    return raw


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> Config:
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: "
                              f"{' '.join(str(err).split())}") from err
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file {str(path)!r} cannot be read: {err}") from err
        if raw is None:  # an empty file: the defaults
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections (task, data, "
                              f"selection, ...), got {type(raw).__name__} {str(raw)[:60]!r}")
    return resolve_paths(validate(from_dict(_task_defaults(apply_overrides(raw, overrides or [])))))
