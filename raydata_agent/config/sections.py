"""The run config's plain sections: task, data, reward, train, tracking, ray.

A field's description is what the generated reference (docs/reference/config.md) shows for its key.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from raydata_agent.config.fields import Bool, Float, Int, Section
from raydata_agent.config.names import REWARD_VARIANTS, TASKS

PIPELINES = ("in_memory", "ray_data")
OPTIMIZERS = ("sgd", "adamw")
PRECISIONS = ("fp32", "bf16", "fp16")
SNAPSHOT_COLUMNS = ("scores", "all")


class TaskConfig(Section):
    dotted = "task"
    name: Literal[TASKS] = Field("classification", description="the task: it decides which models and data sets apply")
    model: str = Field("small_cnn", description=(
        "classification: small_cnn | resnet18/34/50; detection: yolov8n/s/m/l/x; segmentation: upernet "
        "(unset in a config: the task's first)"))
    cifar_stem: Bool = Field(True, description="3x3 stem, no max-pool: the usual ResNet for 32x32 images")
    depth: Int = Field(50, description="segmentation: ResNet depth of the UperNet backbone (18 | 34 | 50 | 101 | 152)")
    head_channels: Int = Field(512, description="segmentation: width of the UperNet decode head (mmseg: 512), >= 1")
    aux_head: Bool = Field(True, description="segmentation: auxiliary FCN head on backbone stage 3 (training only)")
    aux_weight: Float = Field(0.4, description="segmentation: weight of the auxiliary head's loss, >= 0")


class DataConfig(Section):
    dotted = "data"
    name: str = Field("shapes", description=(
        "classification: shapes | mixture | digits | textures | cifar10 | cifar100 | imagefolder; detection: "
        "synthetic_det | yolo; segmentation: synthetic_seg | ade20k (unset in a config: the task's first)"))
    path: str | None = Field(None, description=(
        "cifar10/cifar100/imagefolder/ade20k: root folder; yolo: data set YAML; synthetic_det/synthetic_seg: "
        "where the generated set goes (default ./data_cache)"))
    num_samples: Int = Field(3000, ge=1, description="shapes, mixture, textures, synthetic_det, synthetic_seg: "
                                                     "training images generated")
    val_samples: Int = Field(600, ge=1, description="shapes, mixture, textures, synthetic_det, synthetic_seg: "
                                                    "validation images generated")
    image_size: Int = Field(32, ge=1, description="segmentation: images are resized (shorter side) and "
                                                  "centre-cropped to this")
    label_noise: Float = Field(0.0, ge=0.0, lt=1.0, description=(
        "fraction of training labels flipped (shapes, mixture, digits, textures, cifar); is_noisy in the pool. "
        "synthetic_det, synthetic_seg: fraction of training images with one annotation error (detection: "
        "wrong class, missing box, loose box; segmentation: class-swapped region, coarse mask, eroded mask)"))
    duplicates: Float = Field(0.0, ge=0.0, lt=1.0, description=(
        "synthetic_det, synthetic_seg: fraction of training images that are near-copies of another "
        "(moved a few pixels, brightness and pixel noise), with its clean labels; is_duplicate in the pool"))
    noise_kind: Literal["symmetric", "pair"] = Field("symmetric", description=(
        "label_noise: symmetric (a uniform other class) or pair (class c -> c+1 mod C, asymmetric)"))
    imbalance: Float = Field(1.0, ge=1.0, le=1000.0, description=(
        "shapes, textures: largest / smallest training class, exponential long-tail profile (1: balanced); "
        "the validation split stays balanced. The rarest 30% of classes are is_tail in the pool"))
    augment: Bool | None = Field(None, description=(
        "training augmentation; unset: the data set's standard (data/recipes.py). Classification: crop + flip "
        "(cifar), RandomResizedCrop + flip (imagefolder), on for those, off for generated sets and digits. "
        "Detection: per-image horizontal flips (no mosaic: it mixes images), on unless false"))
    normalize: Bool | None = Field(None, description=(
        "classification: per-channel mean/std in the model; unset: on for cifar, imagefolder"))
    decode_threads: Int = Field(4, ge=1, description="imagefolder: files decoded side by side per batch, while "
                                                     "the last batch trains")
    pipeline: Literal[PIPELINES] = Field("in_memory", description=(
        "classification: how each epoch's subset reaches the workers. in_memory: every worker holds the set "
        "(arrays, or the file list) and reads its share in its own thread; ray_data: the selected ids and "
        "sources stream through a Ray Data dataset, decoded and augmented in map_batches on CPU tasks, each "
        "worker reading its shard (data/streaming.py)"))
    stream_cpus: Float = Field(1.0, gt=0.0, le=64.0, description=(
        "ray_data: CPUs each decode task reserves (< 1 shares CPUs on a small cluster)"))
    prefetch_batches: Int = Field(2, ge=0, description="ray_data: batches each worker has decoded ahead of the step")
    num_classes: Int | None = Field(None, description=(
        "ade20k: classes after reduce_zero_label, 2 to 254 (None: ADE20K's 150)"))
    reduce_zero_label: Bool = Field(True, description=(
        "segmentation: mask value 0 -> 255 (ignored), the others -1 (ADE20K)"))
    seed: Int = Field(0, description="seed of generated sets and label noise")


class RewardConfig(Section):
    dotted = "reward"
    variant: Literal[REWARD_VARIANTS] = Field("adaptive", description=(
        "the per-sample score (signals.py); idu needs the pool's history"))
    clip_quantile: Float = Field(0.95, gt=0.0, le=1.0, description="losses are clipped at this batch quantile")
    idu_smoothing: Float = Field(0.1, ge=0.0, lt=1.0, description=(
        "LEAD's b: IDU_t = (1-b) L_t + dL'_t + b IDU_{t-1}"))


class TrainConfig(Section):
    dotted = "train"
    epochs: Int = Field(8, ge=1, description="training epochs")
    batch_size: Int = Field(64, ge=1, description="per worker")
    optimizer: Literal[OPTIMIZERS] = Field("sgd", description="the model's optimizer")
    lr: Float = Field(0.05, gt=0.0, description="the model's learning rate")
    momentum: Float = Field(0.9, description="sgd only")
    weight_decay: Float = Field(5e-4, description="the optimizer's weight decay")
    seed: Int = Field(0, description="seed of the model, the selectors and the agent")
    num_workers: Int = Field(1, ge=1, description="Ray Train workers")
    use_gpu: Bool = Field(False, description="one GPU per worker")
    cpus_per_worker: Int = Field(1, ge=1, description="CPUs each worker reserves")
    resume_from: str | None = Field(None, description="checkpoint directory of an earlier run")
    max_failures: Int = Field(2, ge=0, description=(
        "Ray Train restarts the workers from the last checkpoint this many times"))
    checkpoints_to_keep: Int = Field(2, ge=1, description=(
        "Ray Train keeps the latest this many checkpoints (CheckpointConfig num_to_keep), pool included"))
    precision: Literal[PRECISIONS] = Field("fp32", description=(
        "autocast for forward and loss (fp16 with a grad scaler)"))
    label_smoothing: Float = Field(0.0, ge=0.0, lt=1.0, description="classification: cross-entropy label smoothing")


class TrackingConfig(Section):
    dotted = "tracking"
    uri: str | None = Field(None, description="MLflow tracking URI; None: sqlite:///<cwd>/mlflow.db")
    experiment: str = Field("raydata_agent", description="MLflow experiment")
    run_name: str | None = Field(None, description="None: `<selector> r<ratio> s<seed>`")
    log_snapshots: Bool = Field(True, description=(
        "log the pool Parquet snapshots as artifacts (else they stay on disk only)"))
    snapshot_every: Int = Field(5, ge=0, description="snapshot the pool every k epochs, and after the last; "
                                                     "0: the last only")
    snapshot_columns: Literal[SNAPSHOT_COLUMNS] = Field("scores", description=(
        "scores: every column but `source` (file paths) | all"))
    parent_run_id: str | None = Field(None, description=(
        "nest this run under a sweep's parent run (set by `raydata-agent tune`)"))


class RayConfig(Section):
    dotted = "ray"
    address: str | None = Field(None, description="None: RAY_ADDRESS if set, else the head `raydata-agent up` "
                                                  "started, if up, else a new local cluster")
    num_cpus: Int | None = Field(None, description="for a local cluster")
    storage_path: str = Field("~/ray_results/raydata_agent", description=(
        "Ray Train checkpoints, pool snapshots, Tune's sweep state. Absolute by default: a job runs in a "
        "temporary copy of its working_dir, where a relative path would be wiped with the session. On a "
        "cluster of several nodes: a path every node mounts (NFS, EFS) or a pyarrow.fs URI (s3://, gs://)"))
