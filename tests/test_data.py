"""The data loader: shapes, ranges, splits, binarization, batching on the device, errors."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
import torch

from course_lib import data
from course_lib.data import DatasetCorruptError, DatasetNotFoundError, DeviceLoader, load

pytestmark = pytest.mark.usefixtures("data_available")


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "binarized_mnist", "dynamic_mnist"])
@pytest.mark.parametrize("split,size", [("train", 50_000), ("valid", 10_000), ("test", 10_000)])
def test_shapes_ranges_and_sizes(name: str, split: str, size: int) -> None:
    d = load(name, split)
    assert d.x.shape == (size, 1, 28, 28) and d.x.dtype == torch.float32
    assert float(d.x.min()) == 0.0 and float(d.x.max()) == 1.0
    if name == "binarized_mnist":
        assert d.y is None
        assert set(d.x.unique().tolist()) == {0.0, 1.0}
    else:
        assert d.y.shape == (size,) and d.y.dtype == torch.int64
        assert set(d.y.unique().tolist()) == set(range(10))
        assert len(d.x.unique()) > 2, "grey levels expected"


def test_valid_is_the_tail_of_the_official_training_set() -> None:
    train, valid = load("mnist", "train"), load("mnist", "valid")
    official = data._read_idx(data.locate("mnist") / "MNIST/raw/train-images-idx3-ubyte.gz")
    assert torch.equal(valid.x[:, 0] * 255, torch.from_numpy(official[-10_000:].astype("float32")))
    assert torch.equal(train.x[:, 0] * 255, torch.from_numpy(official[:50_000].astype("float32")))


def test_limit_and_unknown_names() -> None:
    assert len(load("fashion_mnist", "test", limit=123)) == 123
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        load("cifar")
    with pytest.raises(ValueError, match="unknown split"):
        load("mnist", "validation")


def test_device_loader_batches_cover_the_data_once() -> None:
    d = load("mnist", "test", limit=1000)
    loader = DeviceLoader(d, batch_size=300, labels=True)
    batches = list(loader)
    assert len(loader) == len(batches) == 4
    assert [b[0].shape[0] for b in batches] == [300, 300, 300, 100]
    seen = torch.cat([b[1] for b in batches])
    assert torch.equal(seen.sort().values, d.y.sort().values)  # a permutation of the labels
    assert len(DeviceLoader(d, 300, drop_last=True)) == 3
    unshuffled = next(iter(DeviceLoader(d, 10, shuffle=False)))
    assert torch.equal(unshuffled, d.x[:10])


def test_dynamic_binarization_draws_fresh_pixels() -> None:
    d = load("dynamic_mnist", "test", limit=2000)
    loader = DeviceLoader(d, batch_size=2000, shuffle=False)
    a, b = next(iter(loader)), next(iter(loader))
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(a, b)
    # E[x_b] = grey level: the binarized mean matches the grey mean closely
    assert abs(float(a.mean()) - float(d.x.mean())) < 5e-3


def test_labels_requested_where_none_exist() -> None:
    with pytest.raises(ValueError, match="has no labels"):
        DeviceLoader(load("binarized_mnist", "test", limit=10), labels=True)


def test_missing_dataset_error_says_what_to_do(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VAE_COURSE_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("VAE_COURSE_CACHE", str(tmp_path / "cache"))

    def offline(name: str, root: Path) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(data, "_download", offline)
    data._load_cpu.cache_clear()
    try:
        with pytest.raises(DatasetNotFoundError) as info:
            load("fashion_mnist", "train")
    finally:
        data._load_cpu.cache_clear()
    message = str(info.value)
    assert "FashionMNIST/raw/train-images-idx3-ubyte.gz" in message
    assert "VAE_COURSE_DATA" in message and "network is unreachable" in message
    assert str(tmp_path / "nowhere") in message


def test_corrupt_file_is_reported(tmp_path: Path, monkeypatch) -> None:
    source = data.locate("mnist") / "MNIST/raw"
    target = tmp_path / "MNIST/raw"
    target.mkdir(parents=True)
    for f in source.iterdir():
        shutil.copy(f, target / f.name)
    images = target / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(gzip.decompress(images.read_bytes())[:-100]))  # truncated
    monkeypatch.setenv("VAE_COURSE_DATA", str(tmp_path))
    data._load_cpu.cache_clear()
    try:
        with pytest.raises(DatasetCorruptError, match="truncated or wrong file"):
            load("mnist", "test")
    finally:
        data._load_cpu.cache_clear()


def test_load_returns_tensors_the_caller_owns() -> None:
    """Item 4: an in-place edit of one load must not reach the cache or a later load."""
    first = load("mnist", "test", limit=100)
    pristine = first.x.clone()
    first.x.mul_(0).add_(7)
    first.y.zero_()
    again = load("mnist", "test", limit=100)
    assert torch.equal(again.x, pristine) and int(again.y.sum()) > 0


def _copy_mnist(tmp_path: Path) -> Path:
    source = data.locate("mnist") / "MNIST/raw"
    target = tmp_path / "MNIST/raw"
    target.mkdir(parents=True)
    for f in source.iterdir():
        shutil.copy(f, target / f.name)
    return target


def _idx(dims: list[int], payload: bytes) -> bytes:
    header = b"\x00\x00\x08" + bytes([len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    return gzip.compress(header + payload)


@pytest.mark.parametrize("damage,pattern", [
    (lambda t: (t / "t10k-labels-idx1-ubyte.gz").write_bytes(_idx([9999], bytes(9999))), "mismatched"),
    (lambda t: (t / "t10k-images-idx3-ubyte.gz").write_bytes(_idx([10, 32, 32], bytes(10 * 32 * 32))),
     "N x 28 x 28"),
])
def test_idx_files_are_checked_for_size_and_counts(tmp_path: Path, monkeypatch, damage, pattern) -> None:
    """Item 8: a truncated label file or images of another size give a clear error, not a silent result."""
    damage(_copy_mnist(tmp_path))
    monkeypatch.setenv("VAE_COURSE_DATA", str(tmp_path))
    data._load_cpu.cache_clear()
    try:
        with pytest.raises(DatasetCorruptError, match=pattern):
            load("mnist", "test")
    finally:
        data._load_cpu.cache_clear()


def test_a_read_only_home_is_fine_when_the_data_folder_serves_everything(tmp_path: Path, monkeypatch) -> None:
    """Item 8: the cache folder is not created just to look in it."""
    cache = tmp_path / "readonly" / "cache"
    (tmp_path / "readonly").mkdir()
    (tmp_path / "readonly").chmod(0o500)
    monkeypatch.setenv("VAE_COURSE_CACHE", str(cache))
    data._load_cpu.cache_clear()
    try:
        assert len(load("mnist", "test", limit=10)) == 10
        assert not cache.exists()
    finally:
        (tmp_path / "readonly").chmod(0o700)
        data._load_cpu.cache_clear()


def test_the_binarized_mnist_download_is_checksummed(tmp_path: Path, monkeypatch) -> None:
    """Item 8: a proxy page or a truncated download is refused (sha256 of the original files)."""
    import urllib.request

    class Page:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return b"<html>captive portal</html>"

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Page())
    with pytest.raises(DatasetCorruptError, match="sha256"):
        data._download("binarized_mnist", tmp_path)
    assert not list((tmp_path / "BinarizedMNIST").glob("*.amat.gz"))
