"""Image sources, on small files written here: never the real data, never the network."""

from __future__ import annotations

import csv
import gzip
import io
import zipfile

import numpy as np
import pytest

from hackrobust.data import sources
from hackrobust.data.sources import SourceUnavailableError
from hackrobust.data.sources.mnist import load_mnist_pool


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(raw, split_prefix, images, labels, compress):
    raw.mkdir(parents=True, exist_ok=True)
    for kind, array, magic in (("images-idx3", images, 2051), ("labels-idx1", labels, 2049)):
        data = idx_bytes(array, magic)
        name = raw / f"{split_prefix}-{kind}-ubyte"
        if compress:
            name.with_name(name.name + ".gz").write_bytes(gzip.compress(data))
        else:
            name.write_bytes(data)


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_idx_files_read_exactly(tmp_path, compress):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (5, 28, 28)), np.array([3, 1, 4, 1, 5])
    write_mnist(tmp_path / "MNIST" / "raw", "t10k", images, labels, compress)
    pool = load_mnist_pool(tmp_path, "test", download=False)
    np.testing.assert_allclose(pool.images[:, 0] * 255, images, atol=1e-4)
    assert pool.labels.tolist() == labels.tolist() and pool.images.dtype == np.float32


def test_mnist_corrupt_and_absent(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw, "train", np.zeros((2, 28, 28)), np.zeros(2), compress=False)
    (raw / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((2, 28, 28)), 9999))
    with pytest.raises(ValueError, match="magic number 9999"):
        load_mnist_pool(tmp_path, "train", download=False)

    with pytest.raises(SourceUnavailableError) as error:
        load_mnist_pool(tmp_path / "nothing", "train", download=False)
    assert str(tmp_path / "nothing" / "MNIST" / "raw") in str(error.value)
    assert "dataset.source=digits" in str(error.value)


def _jpeg(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def test_cifar_zip_is_decoded_once_then_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("HACKROBUST_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "cifar10_4class"
    folder.mkdir()
    rows = [("train/bird/0000.jpg", "train", "bird", 2), ("train/cat/0000.jpg", "train", "cat", 3),
            ("test/airplane/0000.jpg", "test", "airplane", 0)]  # fmt: skip
    with zipfile.ZipFile(folder / "cifar10_4class_jpg.zip", "w") as zf:
        for i, (path, *_) in enumerate(rows):
            zf.writestr(path, _jpeg(np.full((32, 32, 3), 60 * i, np.uint8)))
    with open(folder / "index.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "split", "class_name", "class_id"])
        writer.writerows(rows)

    pool = sources.load_cifar4_pool(tmp_path, "train")
    assert pool.images.shape == (2, 3, 32, 32) and pool.labels.tolist() == [2, 3]
    assert abs(pool.images[1].mean() - 60 / 255) < 0.02
    assert len(list((tmp_path / "cache" / "sources").glob("cifar4-train-*.npz"))) == 1
    (folder / "cifar10_4class_jpg.zip").write_bytes(b"")  # the cache no longer matches the zip
    with pytest.raises(zipfile.BadZipFile):
        sources.load_cifar4_pool(tmp_path, "train")


def test_smiles_split_is_fixed_and_disjoint(tmp_path, monkeypatch):
    monkeypatch.setenv("HACKROBUST_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "smiles_lfw"
    folder.mkdir()
    rows = [(f"SMILEs/x/{i}.jpg", i % 2) for i in range(20)]
    with zipfile.ZipFile(folder / "SMILEs.zip", "w") as zf:
        for i, (path, _) in enumerate(rows):
            zf.writestr(path, _jpeg(np.full((64, 64), 10 * i, np.uint8)))
    with open(folder / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("path", "smiling"), *rows])
    train, test = (sources.load_smiles_pool(tmp_path, s) for s in ("train", "test"))
    assert train.images.shape[1:] == (1, 64, 64) and len(train.labels) + len(test.labels) == 20
    train_means = {round(float(m), 2) for m in train.images.mean(axis=(1, 2, 3))}
    assert not train_means & {round(float(m), 2) for m in test.images.mean(axis=(1, 2, 3))}


@pytest.mark.parametrize(
    ("make", "shape", "classes"),
    [(sources.synthetic_objects_pool, (3, 32, 32), [0, 1, 2, 3]),
     (sources.synthetic_faces_pool, (1, 64, 64), [0, 1])],
)  # fmt: skip
def test_synthetic_pools(make, shape, classes):
    pool = make("train", n_per_class=20)
    assert pool.images.shape == (20 * len(classes), *shape) and pool.images.dtype == np.float32
    assert pool.images.min() >= 0 and pool.images.max() <= 1
    assert np.unique(pool.labels, return_counts=True)[1].tolist() == [20] * len(classes)
    np.testing.assert_array_equal(pool.images, make("train", n_per_class=20).images)
    assert not np.array_equal(pool.images, make("test", n_per_class=20).images)


def test_dispatchers_name_the_valid_sources():
    with pytest.raises(ValueError, match="mnist"):
        sources.digit_pool("fashion", "data", "train")
    with pytest.raises(ValueError, match="synthetic"):
        sources.object_pool("imagenet", "data", "train")
    with pytest.raises(SourceUnavailableError, match="dataset.source=synthetic"):
        sources.face_pool("smiles", "/nonexistent", "train")
