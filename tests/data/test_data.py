"""Classification data readers: generated, bundled and on-disk sets, and their errors."""
import os
from pathlib import Path

import numpy as np
import pytest

from raydata_agent.config import DataConfig
from raydata_agent.data import DataError, load_dataset


def test_shapes_are_seeded_balanced_and_noisy_labels_flip():
    cfg = DataConfig(name="shapes", num_samples=200, val_samples=50, seed=3)
    a, va, classes = load_dataset(cfg)
    b, _, _ = load_dataset(cfg)
    assert classes == 10 and len(a) == 200 and len(va) == 50
    np.testing.assert_array_equal(a.images, b.images)  # every worker regenerates the same set
    assert np.bincount(a.labels).tolist() == [20] * 10
    noisy, _, _ = load_dataset(DataConfig(name="shapes", num_samples=200, val_samples=50, seed=3, label_noise=0.3))
    flipped = (noisy.labels != a.labels).mean()
    assert 0.15 < flipped < 0.45
    x, y = a.batch(np.array([0, 5]))
    assert x.shape == (2, 3, 32, 32) and 0 <= x.min() and x.max() <= 1 and y.tolist() == a.labels[[0, 5]].tolist()


def test_digits_come_from_scikit_learn():
    train, val, classes = load_dataset(DataConfig(name="digits"))
    assert classes == 10 and len(train) + len(val) == 1797 and train.images.shape[1:] == (1, 8, 8)


def test_cifar_not_on_disk_names_the_path(tmp_path):
    with pytest.raises(DataError, match=f"cannot read cifar10 from {tmp_path}: .*cifar-10-batches-py does not") as err:
        load_dataset(DataConfig(name="cifar10", path=str(tmp_path)))
    assert "download=True" not in str(err.value)  # torchvision's hint does not apply: nothing is downloaded
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(name="cifar10", path=str(tmp_path)))
    assert "cifar-10-batches-py" in str(err.value) and "download=True" not in str(err.value)


def test_image_folder_reads_on_demand_and_names_a_corrupt_file(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (40, 30), (i * 40, 10, 10)).save(folder / f"{i}.png")
    (tmp_path / "train" / "dog" / "broken.png").write_bytes(b"not an image")
    (tmp_path / "train" / "dog" / "empty.jpg").write_bytes(b"")
    whole = (tmp_path / "train" / "cat" / "0.png").read_bytes()
    (tmp_path / "train" / "cat" / "cut.png").write_bytes(whole[: len(whole) // 2])  # header intact, pixels cut
    train, val, classes = load_dataset(DataConfig(name="imagefolder", path=str(tmp_path), image_size=16))
    # Garbage and zero-byte files are skipped at load, counted, with the reason; the rest is kept.
    assert classes == 2 and len(val) == 6 and train.labels.tolist().count(1) == 3
    assert sorted((Path(f).name, r.split(":")[0]) for f, r in train.skipped) == [
        ("broken.png", "unreadable"), ("empty.jpg", "zero-byte file")]
    x, y = train.batch(np.array([0, 4]))
    assert x.shape == (2, 3, 16, 16)
    cut = train.files.index(str(tmp_path / "train" / "cat" / "cut.png"))
    # Found only when decoded mid-run: skipped and counted with its name, not fatal; the ids read say so.
    ids, x, y = train.read(np.array([0, cut, 4]))
    assert ids.tolist() == [0, 4] and x.shape == (2, 3, 16, 16) and len(y) == 2
    assert Path(train.skipped[-1][0]).name == "cut.png" and train.skipped[-1][1].startswith("mid-run: ")
    train.read(np.array([cut]))
    assert len(train.skipped) == 3  # counted once


def test_image_folder_skips_a_file_whose_name_is_not_utf8(tmp_path, caplog):
    import pyarrow as pa
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tmp_path / split / cls / "0.png")
    fd = os.open(bytes(tmp_path / "train" / "cat") + b"/\xff.png", os.O_WRONLY | os.O_CREAT)
    with open(fd, "wb") as f:  # a sound image: only its name is wrong (a pool source must be UTF-8)
        f.write((tmp_path / "train" / "cat" / "0.png").read_bytes())
    train, _, _ = load_dataset(DataConfig(name="imagefolder", path=str(tmp_path)))
    bad = f"{tmp_path}/train/cat/\\xff.png"  # its bytes, printable
    assert train.skipped == [(bad, "file name is not valid UTF-8 (rename the file)")]
    assert bad in caplog.text and len(pa.array(train.files)) == 2  # what the score store builds its pool from


def test_image_folder_class_with_no_image_is_an_error(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            if cls == "cat" or split == "val":
                Image.new("RGB", (8, 8)).save(tmp_path / split / cls / "0.png")
    (tmp_path / "train" / "dog" / "sub").mkdir()  # only an empty subfolder
    (tmp_path / "train" / "dog" / "bad.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"class folder .*train/dog has no readable image \(1 skipped\)"):
        load_dataset(DataConfig(name="imagefolder", path=str(tmp_path)))


def test_image_folder_layout_errors(tmp_path):
    with pytest.raises(DataError, match="needs"):
        load_dataset(DataConfig(name="imagefolder", path=str(tmp_path)))


def test_mixture_records_duplicates_hard_and_flipped_samples_as_ground_truth():
    cfg = DataConfig(name="mixture", num_samples=400, val_samples=100, label_noise=0.2, seed=1)
    train, val, classes = load_dataset(cfg)
    again, _, _ = load_dataset(cfg)
    np.testing.assert_array_equal(train.images, again.images)  # seeded: every worker regenerates it
    truth = train.truth
    assert classes == 10 and set(truth) == {"is_duplicate", "is_hard", "is_noisy"}
    assert truth["is_duplicate"].mean() == 0.5 and truth["is_hard"].mean() == 0.15
    assert not (truth["is_duplicate"] & truth["is_hard"]).any()
    assert 0.1 < truth["is_noisy"].mean() < 0.3
    clean, _, _ = load_dataset(DataConfig(name="mixture", num_samples=400, val_samples=100, seed=1))
    np.testing.assert_array_equal(clean.labels != train.labels, truth["is_noisy"])  # exactly the flipped ones
    assert not clean.truth["is_noisy"].any()
    # Near-duplicates are near: a duplicate's closest other duplicate is far closer than two ordinary images.
    x = train.images.reshape(len(train), -1).astype(np.float64)
    sq = (x**2).sum(1)
    dist = sq[:, None] + sq[None] - 2 * x @ x.T
    np.fill_diagonal(dist, np.inf)
    nearest = dist.min(1)
    ordinary = ~truth["is_duplicate"] & ~truth["is_hard"]
    assert np.median(nearest[truth["is_duplicate"]]) * 3 < np.median(nearest[ordinary])
    assert val.truth is None and len(val) == 100  # clean validation labels, no duplicates


def test_label_noise_is_recorded_as_is_noisy_for_digits_and_shapes():
    train, _, _ = load_dataset(DataConfig(name="digits", label_noise=0.3))
    clean, _, _ = load_dataset(DataConfig(name="digits"))
    np.testing.assert_array_equal(train.truth["is_noisy"], train.labels != clean.labels)
    assert 0.2 < train.truth["is_noisy"].mean() < 0.4 and clean.truth is None
    shapes, _, _ = load_dataset(DataConfig(name="shapes", num_samples=100, val_samples=10, label_noise=0.3))
    assert shapes.truth["is_noisy"].any()
