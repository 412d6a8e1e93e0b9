"""Classification data readers: generated, bundled and on-disk sets, and their errors."""
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
    with pytest.raises(DataError, match=f"cannot read cifar10 from {tmp_path}"):
        load_dataset(DataConfig(name="cifar10", path=str(tmp_path)))


def test_image_folder_reads_on_demand_and_names_a_corrupt_file(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (40, 30), (i * 40, 10, 10)).save(folder / f"{i}.png")
    (tmp_path / "train" / "dog" / "broken.png").write_bytes(b"not an image")
    train, val, classes = load_dataset(DataConfig(name="imagefolder", path=str(tmp_path), image_size=16))
    assert classes == 2 and len(val) == 6 and train.labels.tolist().count(1) == 4
    x, y = train.batch(np.array([0, 4]))
    assert x.shape == (2, 3, 16, 16)
    broken = train.files.index(str(tmp_path / "train" / "dog" / "broken.png"))
    with pytest.raises(DataError, match="broken.png"):
        train.batch(np.array([broken]))


def test_image_folder_layout_errors(tmp_path):
    with pytest.raises(DataError, match="needs"):
        load_dataset(DataConfig(name="imagefolder", path=str(tmp_path)))
