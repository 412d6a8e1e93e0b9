"""The held-out benchmark sets' data: long-tailed profiles, symmetric and class-pair label noise, a
balanced clean validation split, ground truth per sample, and their JPEG-folder form."""
import numpy as np
import pytest

from raydata_agent.config import ConfigError, DataConfig, from_dict
from raydata_agent.data import load_dataset
from raydata_agent.data.jpeg_folder import TRUTH_FILE, write_data_folder
from raydata_agent.data.longtail import long_tail_counts, tail_classes


def load(**kw):
    return load_dataset(DataConfig(**{"num_samples": 1500, "val_samples": 500, "seed": 2, **kw}))


@pytest.mark.parametrize("name,imbalance", [("textures", 20), ("shapes", 50)])
def test_long_tail_profile_balanced_clean_val_and_tail_truth(name, imbalance):
    train, val, classes = load(name=name, imbalance=imbalance)
    counts = np.bincount(train.labels, minlength=classes)
    assert classes == 10 and counts.sum() == 1500 and (np.diff(counts) <= 0).all()  # class 0 largest
    assert counts[0] / counts[-1] == pytest.approx(imbalance, rel=0.15)
    assert np.bincount(val.labels).tolist() == [50] * 10 and val.truth is None  # balanced, no noise
    np.testing.assert_array_equal(train.truth["is_tail"], np.isin(train.labels, [7, 8, 9]))
    again, _, _ = load(name=name, imbalance=imbalance)
    np.testing.assert_array_equal(again.images, train.images)  # every worker regenerates the same set
    balanced, _, _ = load(name=name)
    assert np.bincount(balanced.labels).tolist() == [150] * 10 and "is_tail" not in (balanced.truth or {})


@pytest.mark.parametrize("kind", ["symmetric", "pair"])
def test_noise_kind_rate_and_is_noisy(kind):
    clean, clean_val, _ = load(name="textures", imbalance=20)
    noisy, noisy_val, _ = load(name="textures", imbalance=20, label_noise=0.3, noise_kind=kind)
    flipped = noisy.labels != clean.labels
    np.testing.assert_array_equal(noisy.truth["is_noisy"], flipped)
    np.testing.assert_array_equal(noisy.truth["is_tail"], clean.truth["is_tail"])  # by the true class
    assert 0.26 < flipped.mean() < 0.34
    np.testing.assert_array_equal(noisy_val.labels, clean_val.labels)  # the validation split stays clean
    partner = noisy.labels[flipped] == (clean.labels[flipped] + 1) % 10
    if kind == "pair":
        assert partner.all()
    else:  # a uniform other class: the partner only about 1 time in 9
        assert partner.mean() < 0.25 and len(np.unique(noisy.labels[flipped] - clean.labels[flipped])) > 10


def test_tail_is_the_rarest_share_of_classes_and_none_when_balanced():
    counts = long_tail_counts(3000, 10, 50)
    assert counts.sum() == 3000 and counts.max() / counts.min() == pytest.approx(50, rel=0.1)
    assert tail_classes(counts).tolist() == [7, 8, 9]
    assert tail_classes([100, 5, 100, 7, 60]).tolist() == [1, 3]  # ceil(0.3 * 5) = 2 rarest
    assert tail_classes([100] * 10) is None and tail_classes([100, 60, 80]) is None  # ratio < 2


def test_imbalance_on_a_set_without_a_profile_is_refused():
    with pytest.raises(ConfigError, match="data.imbalance=20.0 .* shapes or textures"):
        from_dict({"data": {"name": "mixture", "imbalance": 20}})


def test_written_folder_reads_back_with_its_ground_truth(tmp_path):
    spec = {"name": "shapes", "imbalance": 10, "label_noise": 0.3, "num_samples": 300, "val_samples": 100, "seed": 1}
    memory, _, _ = load_dataset(DataConfig(**spec))
    root = write_data_folder(tmp_path / "d", spec)
    assert (root / TRUTH_FILE).is_file()
    mtime = (root / TRUTH_FILE).stat().st_mtime_ns
    assert write_data_folder(tmp_path / "d", spec) == root and (root / TRUTH_FILE).stat().st_mtime_ns == mtime
    train, val, classes = load_dataset(DataConfig(name="imagefolder", path=str(root), image_size=32))
    assert classes == 10 and len(train) == 300 and np.bincount(val.labels).tolist() == [10] * 10
    index = np.array([int(f.rsplit("/", 1)[1][:-4]) for f in train.files])  # <index>.jpg: the in-memory id
    np.testing.assert_array_equal(train.labels, memory.labels[index])  # each file under its noisy label
    for name in ("is_noisy", "is_tail"):
        np.testing.assert_array_equal(train.truth[name], memory.truth[name][index])
    assert val.truth is None
