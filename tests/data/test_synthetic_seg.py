"""The generated segmentation set's annotation noise, near-duplicates and ground truth (issue 29)."""
import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from raydata_agent.config import DataConfig, load_config
from raydata_agent.data import DataError
from raydata_agent.data.ade20k import load_segmentation
from raydata_agent.data.synthetic_seg import KINDS, MARKER, NUM_CLASSES, draw, ensure_synthetic_seg, near_copy
from raydata_agent.pool import SamplePool

N, V, SIZE = 60, 6, 48
# sha256 of the decoded masks (file name, then pixels) that the generator wrote before noise and
# duplicates existed (synthetic_seg.py at 6f7736a), for (12 train, 4 val, 32 px, seed 0).
CLEAN_MASKS_SHA256 = "cecaa97207c05d4861742ea6f02c12cfcdc1e489da7e3b18bc343cc2be7f5175"


def _cfg(tmp, **kw):
    return DataConfig(**{"name": "synthetic_seg", "num_samples": N, "val_samples": V, "image_size": SIZE, "seed": 5,
                         "path": str(tmp), **kw})


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    return ensure_synthetic_seg(_cfg(root / "clean")), ensure_synthetic_seg(_cfg(root / "noisy", label_noise=0.5,
                                                                                    duplicates=0.2))


def _mask(root, i, split="training"):
    return np.asarray(Image.open(root / "annotations" / split / f"synthetic_{split}_{i:06d}.png"))


def test_clean_masks_are_the_old_generators(tmp_path):
    root = ensure_synthetic_seg(DataConfig(name="synthetic_seg", path=str(tmp_path), num_samples=12, val_samples=4,
                                           image_size=32, seed=0))
    digest = hashlib.sha256()
    for f in sorted(root.glob("annotations/*/*.png")):
        digest.update(f.name.encode())
        digest.update(np.asarray(Image.open(f)).tobytes())
    assert digest.hexdigest() == CLEAN_MASKS_SHA256
    assert not (root / "truth.csv").exists()


def test_truth_has_the_requested_shares_and_reaches_the_pool(sets):
    clean, noisy = sets
    train, val, _ = load_segmentation(_cfg(noisy, label_noise=0.5, duplicates=0.2))  # what the task's load_data returns
    truth = train.truth
    assert set(truth) == {"is_noisy", "is_duplicate", *(f"is_{k}" for k in KINDS)}
    assert truth["is_noisy"].sum() == round(0.5 * N) and truth["is_duplicate"].sum() == round(0.2 * N)
    assert (np.stack([truth[f"is_{k}"] for k in KINDS]).sum(0) == truth["is_noisy"]).all()
    assert val.truth is None and len(train.images) == N
    assert SamplePool(train.labels, sources=train.sources, truth=truth).truth["is_duplicate"].sum() == round(0.2 * N)
    # Aligned with the files: untouched images equal the clean set's, noisy originals do not; validation is clean.
    for i in range(N):
        if not truth["is_duplicate"][i]:
            assert np.array_equal(_mask(noisy, i), _mask(clean, i)) != truth["is_noisy"][i]
    for f in sorted(clean.glob("*/validation/*")):
        assert f.read_bytes() == (noisy / f.relative_to(clean)).read_bytes()


def test_each_corruption_does_what_it_says(sets):
    clean, noisy = sets
    truth = load_segmentation(_cfg(noisy, label_noise=0.5, duplicates=0.2))[0].truth
    shape_values = set(range(2, NUM_CLASSES + 1))  # raw mask: 0 unlabelled, 1 background, 2.. shapes
    seen = set()
    for i in np.flatnonzero(truth["is_noisy"] & ~truth["is_duplicate"]):
        before, after = _mask(clean, i), _mask(noisy, i)
        kind = next(k for k in KINDS if truth[f"is_{k}"][i])
        seen.add(kind)
        changed = before != after
        old, new = set(np.unique(before[changed])), set(np.unique(after[changed]))
        shapes_before, shapes_after = (before >= 2).sum(), (after >= 2).sum()
        if kind == "class_swap":  # one shape's pixels, all to one other shape class
            assert len(old) == len(new) == 1 and old | new <= shape_values and old != new
            assert shapes_after == shapes_before
        elif kind == "coarse":  # background and unlabelled pixels become one shape's
            assert old <= {0, 1} and len(new) == 1 and new <= shape_values and shapes_after > shapes_before
        else:  # eroded: one shape loses a ring to background
            assert len(old) == 1 and old <= shape_values and new == {1} and shapes_after < shapes_before
    assert seen == set(KINDS)


def test_a_near_copy_is_the_image_and_mask_moved():
    image, mask, shapes = draw(np.random.default_rng(1), SIZE)
    copy, moved, moved_shapes = near_copy(image, mask, shapes, np.random.default_rng(2), SIZE)
    inner = slice(6, -6)
    for dx in range(-4, 5):
        for dy in range(-4, 5):
            if np.array_equal(moved[inner, inner], mask[6 - dy:SIZE - 6 - dy, 6 - dx:SIZE - 6 - dx]):
                break
        else:
            continue
        break
    assert (dx, dy) != (0, 0) and np.array_equal(moved[inner, inner], mask[6 - dy:SIZE - 6 - dy, 6 - dx:SIZE - 6 - dx])
    error = np.abs(copy[inner, inner].astype(int) - image[6 - dy:SIZE - 6 - dy, 6 - dx:SIZE - 6 - dx]).mean()
    assert 0 < error < 15  # near, not exact
    assert all(np.array_equal(r2[inner, inner], r[6 - dy:SIZE - 6 - dy, 6 - dx:SIZE - 6 - dx])
               for (_, r), (_, r2) in zip(shapes, moved_shapes))


def test_same_seed_same_files_and_settings_in_the_marker(tmp_path, sets):
    _, noisy = sets
    again = ensure_synthetic_seg(_cfg(tmp_path / "again", label_noise=0.5, duplicates=0.2))
    files = sorted(p.relative_to(noisy) for p in noisy.rglob("*.*"))
    assert len(files) == 2 * (N + V) + 2  # images, masks, the marker and truth.csv
    assert all((noisy / f).read_bytes() == (again / f).read_bytes() for f in files)
    marker = json.loads((noisy / MARKER).read_text())
    assert (marker["label_noise"], marker["duplicates"]) == (0.5, 0.2)
    with pytest.raises(DataError, match="made with"):  # a clean config never reads a noisy folder
        ensure_synthetic_seg(_cfg(noisy))


def test_default_folders_of_clean_and_noisy_sets_differ(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paths = {load_config(None, ["task.name=segmentation", *extra]).data.path
             for extra in ([], ["data.label_noise=0.3"], ["data.duplicates=0.2"],
                           ["data.label_noise=0.3", "data.duplicates=0.2"])}
    assert len(paths) == 4
