"""Long-tailed class profiles and their tail: the held-out benchmark sets' imbalance, in one place.

The profile is the exponential one of the long-tail literature (CIFAR-LT, Cui et al. 2019):
class c keeps n_max * imbalance^(-c / (C - 1)) samples, so class 0 is the largest and class C-1 the
rarest, and largest / smallest = `imbalance`. The "tail" is the rarest TAIL_SHARE of the classes by
training count: the generators mark its samples `is_tail`, and classification's evaluate reports
their mean recall (`val_tail_recall`), from the counts of the labels it trained on.
"""
from __future__ import annotations

import math

import numpy as np

TAIL_SHARE = 0.3  # of the classes: the rarest ones whose recall selection must not starve
IMBALANCED_AT = 2.0  # largest / smallest training count from which a set counts as long-tailed


def long_tail_counts(total: int, classes: int, imbalance: float) -> np.ndarray:
    """Per-class counts (int64 [classes], summing to `total`) on the exponential profile."""
    profile = imbalance ** (-np.arange(classes) / max(classes - 1, 1))
    counts = np.maximum(np.floor(total * profile / profile.sum()).astype(np.int64), 1)
    counts[0] += total - counts.sum()  # the rounding remainder goes to the head class
    return counts


def long_tail_labels(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Labels holding counts[c] of class c, in a seeded random order."""
    labels = np.repeat(np.arange(len(counts)), counts)
    rng.shuffle(labels)
    return labels


def tail_classes(counts: np.ndarray, share: float = TAIL_SHARE) -> np.ndarray | None:
    """The rarest ceil(share * C) classes by count (ties: the higher class index is rarer, as in the
    profile), or None when the counts are not long-tailed (largest / smallest < IMBALANCED_AT)."""
    counts = np.asarray(counts)
    if len(counts) < 2 or counts.max() < IMBALANCED_AT * max(counts.min(), 1):
        return None
    order = np.lexsort((-np.arange(len(counts)), counts))  # by count, then higher index first
    return np.sort(order[:math.ceil(share * len(counts))])
