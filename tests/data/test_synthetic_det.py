"""The generated detection set's annotation noise, near-duplicates and ground truth (issue 29)."""
import hashlib

import numpy as np
import pytest

from raydata_agent.config import ConfigError, load_config
from raydata_agent.data.synthetic_det import KINDS, draw, folder_name, make_synthetic_detection, near_copy
from raydata_agent.data.yolo import load_yolo, read_labels
from raydata_agent.pool import SamplePool

N, V, SIZE = 60, 8, 64
# sha256 of the label files (relative path, then bytes) that the generator wrote before noise and
# duplicates existed (yolo.py at 6f7736a), for (24 train, 8 val, 64 px, seed 0).
CLEAN_LABELS_SHA256 = "89f87e43b072791f4f4c97ddd1d5389f6e1ee960689dd709f8c2037c304e194d"


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("det")
    clean = make_synthetic_detection(root, N, V, SIZE, seed=3).parent
    noisy = make_synthetic_detection(root, N, V, SIZE, seed=3, label_noise=0.5, duplicates=0.2).parent
    return clean, noisy


def _labels(root, split, i):
    return read_labels(root / "labels" / split / f"{i:05d}.txt", 4)


def test_clean_labels_are_the_old_generators(tmp_path):
    root = make_synthetic_detection(tmp_path, 24, 8, size=64, seed=0).parent
    digest = hashlib.sha256()
    for f in sorted(root.glob("labels/*/*.txt")):
        digest.update(f.relative_to(root).as_posix().encode())
        digest.update(f.read_bytes())
    assert digest.hexdigest() == CLEAN_LABELS_SHA256
    assert not (root / "truth.csv").exists()


def test_truth_has_the_requested_shares_and_reaches_the_pool(sets, tmp_path):
    clean, noisy = sets
    assert noisy.name == folder_name(SIZE, N, V, 3, 0.5, 0.2)  # every setting is in the folder's name
    assert len({folder_name(SIZE, N, V, 3, noise, dup) for noise in (0, 0.5, 0.3) for dup in (0, 0.2, 0.1)}) == 9
    cfg = load_config(None, ["task.name=detection", "data.name=synthetic_det", f"data.num_samples={N}",
                             f"data.val_samples={V}", f"data.image_size={SIZE}", "data.seed=3", "data.label_noise=0.5",
                             "data.duplicates=0.2", f"data.path={noisy.parent}"])
    from raydata_agent.tasks import build_task

    train, val = build_task(cfg).load_data()  # the runner's training data object
    truth = train.truth
    assert set(truth) == {"is_noisy", "is_duplicate", *(f"is_{k}" for k in KINDS)}
    assert truth["is_noisy"].sum() == round(0.5 * N) and truth["is_duplicate"].sum() == round(0.2 * N)
    kinds = np.stack([truth[f"is_{k}"] for k in KINDS])
    assert (kinds.sum(0) == truth["is_noisy"]).all()  # one kind per noisy image, none on the others
    assert val.truth is None and len(train.files) == len(truth["is_noisy"]) == N
    pool = SamplePool(train.labels, sources=train.sources, truth=truth)
    assert pool.truth["is_noisy"].sum() == round(0.5 * N)
    # Aligned with the files: an image untouched by the plan has the clean set's labels and pixels, a
    # noisy original does not; validation is the clean set's, byte for byte.
    untouched = ~truth["is_noisy"] & ~truth["is_duplicate"]
    for i in range(N):
        same = (noisy / f"labels/train/{i:05d}.txt").read_bytes() == (clean / f"labels/train/{i:05d}.txt").read_bytes()
        assert same == untouched[i] or truth["is_duplicate"][i]
        if not truth["is_duplicate"][i]:
            assert (noisy / f"images/train/{i:05d}.png").read_bytes() == (clean / f"images/train/{i:05d}.png").read_bytes()
    for f in sorted(clean.glob("*/val/*")):
        assert f.read_bytes() == (noisy / f.relative_to(clean)).read_bytes()


def test_each_corruption_does_what_it_says(sets):
    clean, noisy = sets
    train, _, _ = load_yolo(noisy / "data.yaml", SIZE)
    truth, seen = train.truth, set()
    for i in np.flatnonzero(train.truth["is_noisy"] & ~truth["is_duplicate"]):
        before, after = _labels(clean, "train", i), _labels(noisy, "train", i)
        kind = next(k for k in KINDS if truth[f"is_{k}"][i])
        seen.add(kind)
        if kind == "missing_box":
            assert len(before) >= 2 and len(after) == len(before) - 1
            assert all(any(np.array_equal(a, b) for b in before) for a in after)
            continue
        assert len(after) == len(before)
        changed = [j for j in range(len(before)) if not np.array_equal(before[j], after[j])]
        assert len(changed) == 1
        (j,) = changed
        if kind == "wrong_class":
            assert after[j, 0] != before[j, 0] and np.array_equal(after[j, 1:], before[j, 1:])
        else:  # loose: the same class, a larger box around the clean one, inside the image
            b, a = before[j], after[j]
            assert a[0] == b[0] and a[3] * a[4] > 1.3 * b[3] * b[4]
            assert a[1] - a[3] / 2 <= b[1] - b[3] / 2 + 1e-5 and a[1] + a[3] / 2 >= b[1] + b[3] / 2 - 1e-5
            assert a[2] - a[4] / 2 <= b[2] - b[4] / 2 + 1e-5 and a[2] + a[4] / 2 >= b[2] + b[4] / 2 - 1e-5
    assert seen == set(KINDS)


def test_a_near_copy_is_the_image_moved_with_its_boxes():
    rng = np.random.default_rng(1)
    img, boxes = draw(rng, SIZE)
    other, _ = draw(rng, SIZE)
    copy, moved = near_copy(img, boxes, np.random.default_rng(2), SIZE)
    errors = {(dx, dy): np.abs(copy[8:-8, 8:-8].astype(int) - img[8 - dy:SIZE - 8 - dy, 8 - dx:SIZE - 8 - dx]).mean()
              for dx in range(-4, 5) for dy in range(-4, 5)}
    (dx, dy), error = min(errors.items(), key=lambda kv: kv[1])
    assert (dx, dy) != (0, 0) and 0 < error < 15 < np.abs(copy.astype(int) - other).mean()  # near, not exact
    for (c, x0, y0, w, h), (c2, x2, y2, w2, h2) in zip(boxes, moved):
        assert c2 == c and x2 == pytest.approx(max(x0 + dx, 0)) and y2 == pytest.approx(max(y0 + dy, 0))
        assert x2 + w2 == pytest.approx(min(x0 + w + dx, SIZE)) and y2 + h2 == pytest.approx(min(y0 + h + dy, SIZE))


def test_same_seed_same_files(tmp_path, sets):
    _, noisy = sets
    again = make_synthetic_detection(tmp_path, N, V, SIZE, seed=3, label_noise=0.5, duplicates=0.2).parent
    files = sorted(p.relative_to(noisy) for p in noisy.rglob("*.*") if p.name != "data.yaml")
    assert len(files) == 2 * (N + V) + 1
    assert all((noisy / f).read_bytes() == (again / f).read_bytes() for f in files)


@pytest.mark.parametrize("override,message", [
    (["task.name=detection", "data.name=yolo", "data.path=/", "data.label_noise=0.2"], "data.label_noise corrupts"),
    (["data.duplicates=0.2"], "data.duplicates adds near-copies to a generated set"),
])
def test_noise_and_duplicates_only_on_generated_sets(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, override)
