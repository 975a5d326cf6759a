"""Image sources, on small files written here: never the real data, never the network."""

from __future__ import annotations

import csv
import gzip
import io
import zipfile

import numpy as np
import pytest

from hackrobust.data import sources
from hackrobust.data.sources import SourceUnavailableError, cifar, faces, mnist
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
    assert pool.images.shape == (5, 1, 28, 28) and pool.images.dtype == np.float32
    np.testing.assert_allclose(pool.images[:, 0] * 255, images, atol=1e-4)
    assert pool.labels.tolist() == labels.tolist() and pool.labels.dtype == np.int64
    assert load_mnist_pool(tmp_path, "test") is pool  # parsed once, nothing to download
    assert not pool.images.flags.writeable  # so no caller can spoil the shared copy


def test_mnist_corrupt_files_are_named(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw, "train", np.zeros((2, 28, 28)), np.zeros(2), compress=False)
    (raw / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((2, 28, 28)), 9999))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte .*magic number 9999"):
        load_mnist_pool(tmp_path, "train", download=False)

    write_mnist(raw, "t10k", np.zeros((2, 28, 28)), np.zeros(2), compress=True)
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz"):
        load_mnist_pool(tmp_path, "test", download=False)


def test_mnist_absent_says_where_and_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(SourceUnavailableError) as error:
        load_mnist_pool(tmp_path / "nothing", "train", download=False)
    message = str(error.value)
    assert str(tmp_path / "nothing" / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message and "HACKROBUST_DATA_DIR" in message
    assert "paths.data_dir" in message and "dataset.source=digits" in message
    assert isinstance(error.value, FileNotFoundError)

    tried = []
    monkeypatch.setattr(mnist, "_download", lambda root, split: tried.append(root) or "offline")
    with pytest.raises(SourceUnavailableError, match="offline"):
        load_mnist_pool(tmp_path / "nothing", "test")
    assert tried == [tmp_path / "nothing"]


def _jpeg(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _no_decoding(*args):
    raise AssertionError("decoded the zip although the cache holds it")


CIFAR_ROWS = [("train/bird/0000.jpg", "train", "bird", 2), ("train/cat/0000.jpg", "train", "cat", 3),
              ("test/airplane/0000.jpg", "test", "airplane", 0)]  # fmt: skip


def write_cifar(data_dir, prefix=""):
    folder = data_dir / "cifar10_4class"
    folder.mkdir()
    with zipfile.ZipFile(folder / "cifar10_4class_jpg.zip", "w") as zf:
        for i, (path, *_) in enumerate(CIFAR_ROWS):
            zf.writestr(prefix + path, _jpeg(np.full((32, 32, 3), 60 * i, np.uint8)))
    with open(folder / "index.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "split", "class_name", "class_id", "cifar10_train_index"])
        writer.writerows([(*row, "") for row in CIFAR_ROWS])
    return folder / "cifar10_4class_jpg.zip"


def test_cifar_zip_is_decoded_once_then_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("HACKROBUST_CACHE_DIR", str(tmp_path / "cache"))
    archive = write_cifar(tmp_path)

    pool = sources.load_cifar4_pool(tmp_path, "train")
    assert pool.images.shape == (2, 3, 32, 32) and pool.images.dtype == np.float32
    assert pool.labels.tolist() == [2, 3] and pool.labels.dtype == np.int64
    assert abs(pool.images[1].mean() - 60 / 255) < 0.02
    assert sources.load_cifar4_pool(tmp_path, "test").labels.tolist() == [0]
    assert len(list((tmp_path / "cache" / "sources").glob("cifar4-train-*.npz"))) == 1

    with monkeypatch.context() as patch:
        patch.setattr(cifar, "decode_zip_images", _no_decoding)
        np.testing.assert_array_equal(
            sources.load_cifar4_pool(tmp_path, "train").images, pool.images
        )
    archive.write_bytes(b"")  # the cache no longer matches the zip, which is read again
    with pytest.raises(zipfile.BadZipFile):
        sources.load_cifar4_pool(tmp_path, "train")


def test_cifar_zip_with_a_top_level_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HACKROBUST_CACHE_DIR", str(tmp_path / "cache"))
    write_cifar(tmp_path, prefix="cifar10_4class/")
    assert sources.load_cifar4_pool(tmp_path, "train").labels.tolist() == [2, 3]


def test_cifar_absent_suggests_synthetic(tmp_path):
    with pytest.raises(SourceUnavailableError, match="dataset.source=synthetic") as error:
        sources.load_cifar4_pool(tmp_path, "train")
    assert str(tmp_path / "cifar10_4class") in str(error.value)
    with pytest.raises(ValueError, match="split"):
        sources.load_cifar4_pool(tmp_path, "val")


def test_smiles_split_is_fixed_disjoint_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("HACKROBUST_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "smiles_lfw"
    folder.mkdir()
    rows = [(f"SMILEs/x/{i}.jpg", i % 2) for i in range(20)]
    with zipfile.ZipFile(folder / "SMILEs.zip", "w") as zf:
        for i, (path, _) in enumerate(rows):
            size = 48 if i == 0 else 64  # resized to 64x64
            zf.writestr(path, _jpeg(np.full((size, size), 10 * i, np.uint8)))
    with open(folder / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("path", "smiling"), *rows])

    train, test = (sources.load_smiles_pool(tmp_path, s) for s in ("train", "test"))
    assert train.images.shape == (16, 1, 64, 64) and test.images.shape == (4, 1, 64, 64)
    assert np.bincount(train.labels).tolist() == [8, 8] and np.bincount(test.labels).tolist() == [
        2,
        2,
    ]
    means = [{round(float(m) * 25.5) for m in p.images.mean(axis=(1, 2, 3))} for p in (train, test)]
    assert not means[0] & means[1] and len(means[0] | means[1]) == 20  # each face exactly once
    assert len(list((tmp_path / "cache" / "sources").glob("smiles-*.npz"))) == 1

    with monkeypatch.context() as patch:
        patch.setattr(faces, "decode_zip_images", _no_decoding)
        again = sources.load_smiles_pool(tmp_path, "test")
    np.testing.assert_array_equal(again.images, test.images)
    np.testing.assert_array_equal(again.labels, test.labels)


@pytest.mark.parametrize(
    ("make", "shape", "classes"),
    [(sources.synthetic_objects_pool, (3, 32, 32), [0, 1, 2, 3]),
     (sources.synthetic_faces_pool, (1, 64, 64), [0, 1])],
)  # fmt: skip
def test_synthetic_pools(make, shape, classes):
    pool = make("train", n_per_class=20)
    assert pool.images.shape == (20 * len(classes), *shape) and pool.images.dtype == np.float32
    assert pool.images.min() >= 0 and pool.images.max() <= 1 and pool.labels.dtype == np.int64
    assert np.unique(pool.labels, return_counts=True)[1].tolist() == [20] * len(classes)
    assert np.unique(pool.labels).tolist() == classes
    np.testing.assert_array_equal(pool.images, make("train", n_per_class=20).images)
    assert not np.array_equal(pool.images, make("test", n_per_class=20).images)
    assert not np.array_equal(pool.images, make("train", n_per_class=20, seed=1).images)
    with pytest.raises(ValueError, match="split"):
        make("val")


def test_dispatchers_name_the_valid_sources():
    with pytest.raises(ValueError, match="'mnist', 'digits'"):
        sources.digit_pool("fashion", "data", "train")
    with pytest.raises(ValueError, match="'cifar', 'synthetic'"):
        sources.object_pool("imagenet", "data", "train")
    with pytest.raises(ValueError, match="'smiles', 'synthetic'"):
        sources.face_pool("celeba", "data", "train")
    with pytest.raises(SourceUnavailableError, match="dataset.source=synthetic"):
        sources.face_pool("smiles", "/nonexistent", "train")
    assert sources.object_pool("synthetic", "/nonexistent", "test").images.shape[1:] == (3, 32, 32)
