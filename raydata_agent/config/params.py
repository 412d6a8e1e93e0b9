"""Which config keys a run reads: its MLflow params, so a greedy classification run does not list
UperNet's depth or LEAD's bandit settings. A key set away from its default is always listed.
Checked by tests/test_tracking.py::test_params_are_those_the_task_and_selector_read."""
from __future__ import annotations

from typing import Any, Callable

from raydata_agent.config.agent import AgentConfig
from raydata_agent.config.names import STANDARD_RECIPE, WEIGHT_TAKERS
from raydata_agent.config.selection import SELECTOR_KNOBS

_SEGMENTATION = lambda c: c.task.name == "segmentation"  # noqa: E731
_GENERATED = ("shapes", "textures", "synthetic_det", "synthetic_seg")


def _selector_is(name: str) -> Callable[[Any], bool]:
    return lambda c: c.selection.selector == name


# key -> when it applies; keys not listed always apply.
APPLIES: dict[str, Callable[[Any], bool]] = {
    "task.cifar_stem": lambda c: c.task.model.startswith("resnet"),
    **{f"task.{k}": _SEGMENTATION for k in ("depth", "head_channels", "aux_head", "aux_weight")},
    "data.path": lambda c: c.data.path is not None,
    "data.num_samples": lambda c: c.data.name in _GENERATED,
    "data.val_samples": lambda c: c.data.name in _GENERATED,
    "data.image_size": lambda c: c.task.name != "classification" or c.data.name == "imagefolder",
    "data.label_noise": lambda c: c.data.name in ("shapes", "digits", "textures"),
    "data.duplicates": lambda c: False,  # listed when set (synthetic_det, synthetic_seg)
    "data.noise_kind": lambda c: c.data.label_noise > 0 and c.task.name == "classification",
    "data.imbalance": lambda c: c.data.name in ("shapes", "textures"),
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
    "selection.sampling": lambda c: c.selection.selector in WEIGHT_TAKERS,
    "selection.temperature": lambda c: c.selection.selector in WEIGHT_TAKERS and c.selection.sampling == "proportional",
    "selection.max_staleness": lambda c: c.selection.selector in WEIGHT_TAKERS and c.selection.sampling == "topk",
    "selection.max_forced_share": lambda c: c.selection.selector in WEIGHT_TAKERS and c.selection.sampling == "topk",
    **{f"selection.{name}.{key}": _selector_is(name)  # each selector's knobs: that selector's runs only
       for name, knobs in SELECTOR_KNOBS.items() if knobs is not None for key in knobs.model_fields},
    "reward.variant": lambda c: c.selection.selector in ("data_agent", "greedy"),
    "reward.clip_quantile": lambda c: c.selection.selector in ("data_agent", "greedy"),
    **{f"agent.{key}": _selector_is("data_agent") for key in AgentConfig.model_fields},
    "train.momentum": lambda c: c.train.optimizer == "sgd",
    "train.resume_from": lambda c: c.train.resume_from is not None,
    "train.checkpoints_to_keep": lambda c: False,  # retention changes no result: listed only when set
    "ray.address": lambda c: c.ray.address is not None,
    "ray.num_cpus": lambda c: c.ray.num_cpus is not None,
}


def run_params(cfg, defaults: dict[str, Any]) -> dict[str, Any]:
    """cfg.flat() cut to the keys this run reads, plus those that differ from `defaults` (Config().flat())."""
    return {k: v for k, v in cfg.flat().items() if APPLIES.get(k, lambda c: True)(cfg) or v != defaults.get(k)}
