"""The names a config may choose from: tasks, their models and data sets, reward variants.

Config keeps its own lists rather than importing the registries that import config (selectors) or
torch (signals): tests/config/test_config.py checks that each list matches its registry.
"""
from __future__ import annotations

# Per task: the models and data sets it accepts. A new task registers its names here.
# The first name of each is the task's default when a config leaves task.model / data.name unset.
MODELS = {"classification": ("small_cnn", "resnet18", "resnet34", "resnet50"),
          "detection": ("yolov8n", "yolov8s", "yolov8m", "yolov8l", "yolov8x"),
          "segmentation": ("upernet",)}
DATASETS = {"classification": ("shapes", "mixture", "digits", "textures", "cifar10", "cifar100", "imagefolder"),
            "detection": ("synthetic_det", "yolo"),
            "segmentation": ("synthetic_seg", "ade20k")}
TASKS = tuple(MODELS)
RESNET_DEPTHS = (18, 34, 50, 101, 152)  # segmentation backbones (mmseg ResNetV1c)
IGNORE_INDEX = 255  # segmentation: mask value that no loss or metric counts
STANDARD_RECIPE = ("cifar10", "cifar100", "imagefolder")  # augment + normalise when unset (data/recipes.py)
DATA_ON_DISK = ("cifar10", "cifar100", "imagefolder", "ade20k")  # data.path: a folder that must exist

# signals.REWARD_VARIANTS (batch scores), then signals.HISTORY_VARIANTS (scored by the pool's owner).
BATCH_REWARD_VARIANTS = ("adaptive", "difficulty", "fixed_half", "uncertainty")
HISTORY_VARIANTS = ("idu",)
REWARD_VARIANTS = BATCH_REWARD_VARIANTS + HISTORY_VARIANTS

# Selectors that keep samples by weight (selectors.base.take_by_weight): selection.sampling applies.
WEIGHT_TAKERS = ("data_agent", "greedy", "ucb")
