"""Loading a hackathon42 folder: a valid folder loads; every bad input names the file and the
problem."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from hackrobust.data.layout import (
    FEATURES_TARGET,
    FEATURES_UNLABELED,
    METADATA,
    X_LABELED,
    X_TARGET,
    X_UNLABELED,
    Y_LABELED,
    Y_TARGET,
)
from hackrobust.data.loader import DatasetError, load_hackathon_dir

N_LABELED, N_UNLABELED, N_TARGET = 20, 30, 10
SHAPE = (1, 4, 6)


def write_folder(path, *, x_shape=SHAPE, labels=(0, 1), answer_key=False, **replace):
    """A valid float64 folder at `path`. `replace` maps a file name (dots as "__", e.g.
    X_val__npy) to the array to save there instead, or to None to leave that file out."""
    rng = np.random.default_rng(0)
    arrays = {
        X_LABELED: rng.random((N_LABELED, *x_shape)),
        Y_LABELED: np.resize(np.asarray(labels), N_LABELED),
        X_UNLABELED: rng.random((N_UNLABELED, *x_shape)),
        X_TARGET: rng.random((N_TARGET, *x_shape)),
    }
    if answer_key:
        arrays[Y_TARGET] = np.resize(np.asarray(labels)[::-1], N_TARGET)
        arrays[FEATURES_TARGET] = rng.integers(0, 2, (N_TARGET, 3))
        arrays[FEATURES_UNLABELED] = rng.integers(0, 2, (N_UNLABELED, 3))
    arrays.update({name.replace("__", "."): array for name, array in replace.items()})
    path.mkdir()
    for name, array in arrays.items():
        if array is not None:
            np.save(path / name, array, allow_pickle=array.dtype.hasobject)
    if answer_key:
        (path / METADATA).write_text(json.dumps({"features": ["a", "b", "c"], "true": "a"}))
    return path


def load_error(folder) -> str:
    with pytest.raises(DatasetError) as error:
        load_hackathon_dir(folder)
    return str(error.value)


# --- what loads ---------------------------------------------------------------------------------


def test_float64_images_load_as_float32_with_their_label_values(tmp_path):
    folder = write_folder(tmp_path / "d", labels=(4, 5, 6))
    data = load_hackathon_dir(folder)
    assert data.x_labeled.dtype == np.float32 and data.x_target.dtype == np.float32
    assert data.y_labeled.dtype == np.int64
    assert data.label_values.tolist() == [4, 5, 6]
    assert data.x_labeled.shape == (N_LABELED, *SHAPE) and data.input_shape == SHAPE
    np.testing.assert_allclose(data.x_unlabeled, np.load(folder / X_UNLABELED), rtol=1e-6)
    assert not data.has_answer_key and data.features_target is None and data.metadata == {}


def test_vectors(tmp_path):
    data = load_hackathon_dir(write_folder(tmp_path / "d", x_shape=(7,)))
    assert data.input_shape == (7,) and data.x_target.shape == (N_TARGET, 7)


def test_single_channel_images_get_a_channel_axis(tmp_path):
    folder = write_folder(tmp_path / "d", x_shape=(5, 5))
    data = load_hackathon_dir(folder)
    assert data.input_shape == (1, 5, 5) and data.x_unlabeled.shape == (N_UNLABELED, 1, 5, 5)
    np.testing.assert_allclose(data.x_labeled[:, 0], np.load(folder / X_LABELED), rtol=1e-6)


def test_integer_pixels_are_accepted(tmp_path):
    pixels = np.full((N_LABELED, *SHAPE), 255, np.uint8)
    data = load_hackathon_dir(write_folder(tmp_path / "d", X_labeled__npy=pixels))
    assert data.x_labeled.dtype == np.float32 and data.x_labeled.max() == 255


def test_answer_key_features_and_metadata_are_loaded(tmp_path):
    folder = write_folder(tmp_path / "d", labels=(0, 2), answer_key=True)
    data = load_hackathon_dir(folder)
    assert data.has_answer_key and data.y_target.dtype == np.int64
    assert data.y_target.tolist() == np.load(folder / Y_TARGET).tolist()
    assert set(data.y_target.tolist()) == {0, 2}
    assert data.features_target.shape == (N_TARGET, 3)
    assert data.features_unlabeled.shape == (N_UNLABELED, 3)
    assert data.metadata == {"features": ["a", "b", "c"], "true": "a"}


@pytest.mark.parametrize(
    "labels, values",
    [
        (np.resize([0.0, 2.0], N_LABELED), [0, 2]),
        (np.resize([True, False], N_LABELED), [0, 1]),
        (np.resize([4, 6], N_LABELED).astype(np.uint8), [4, 6]),
        (np.resize([1, 0], (N_LABELED, 1)), [0, 1]),
    ],
    ids=["integral floats", "bools", "uint8", "column"],
)
def test_label_encodings_that_are_accepted(tmp_path, labels, values):
    data = load_hackathon_dir(write_folder(tmp_path / "d", y_labeled__npy=labels))
    assert data.y_labeled.dtype == np.int64 and data.y_labeled.shape == (N_LABELED,)
    assert data.label_values.tolist() == values


def test_a_relative_path_is_reported_in_full(tmp_path, monkeypatch):
    write_folder(tmp_path / "d", X_val__npy=None)
    monkeypatch.chdir(tmp_path)
    assert str(tmp_path / "d" / X_TARGET) in load_error("d")


# --- what does not, and says why ----------------------------------------------------------------


def test_missing_folder(tmp_path):
    message = load_error(tmp_path / "absent")
    assert str(tmp_path / "absent") in message and "does not exist" in message


def test_a_file_is_not_a_folder(tmp_path):
    (tmp_path / "f").write_text("")
    message = load_error(tmp_path / "f")
    assert str(tmp_path / "f") in message and "not a directory" in message


@pytest.mark.parametrize("name", [X_LABELED, Y_LABELED, X_UNLABELED, X_TARGET])
def test_missing_required_file_lists_those_present(tmp_path, name):
    folder = write_folder(tmp_path / "d", **{name.replace(".", "__"): None})
    message = load_error(folder)
    assert str(folder / name) in message and "missing" in message
    present = message.split("required files present:")[1].split(";")[0]
    assert name not in present
    others = {X_LABELED, Y_LABELED, X_UNLABELED, X_TARGET} - {name}
    assert all(other in present for other in others)


BAD_INPUTS = {
    # id: (files to replace, file named in the message, words describing the problem)
    "NaN": ({"X_val__npy": np.full((N_TARGET, *SHAPE), np.nan)}, X_TARGET, "NaN or inf"),
    "inf": ({"X_labeled__npy": np.full((N_LABELED, *SHAPE), np.inf)}, X_LABELED, "NaN or inf"),
    "float32 overflow": (
        {"X_unlabeled__npy": np.full((N_UNLABELED, *SHAPE), 1e300)},
        X_UNLABELED,
        "too large for float32",
    ),
    "text inputs": ({"X_val__npy": np.full((N_TARGET, 3), "a")}, X_TARGET, "real numbers"),
    "X_labeled vs y_labeled": (
        {"y_labeled__npy": np.resize([0, 1], N_LABELED - 1)},
        Y_LABELED,
        "mismatched lengths",
    ),
    "5-D inputs": ({"X_val__npy": np.zeros((N_TARGET, 1, 1, 4, 6))}, X_TARGET, "dimensions"),
    "1-D inputs": ({"X_unlabeled__npy": np.zeros(N_UNLABELED)}, X_UNLABELED, "dimensions"),
    "2-D labels": ({"y_labeled__npy": np.zeros((N_LABELED, 2), int)}, Y_LABELED, "1-D"),
    "empty inputs": ({"X_unlabeled__npy": np.zeros((0, *SHAPE))}, X_UNLABELED, "empty"),
    "empty labels": ({"y_labeled__npy": np.zeros(0, int)}, Y_LABELED, "empty"),
    "one class": ({"y_labeled__npy": np.ones(N_LABELED, int)}, Y_LABELED, "only one class"),
    "fractional labels": (
        {"y_labeled__npy": np.resize([0.5, 1.0], N_LABELED)},
        Y_LABELED,
        "not integers",
    ),
    "NaN labels": ({"y_labeled__npy": np.resize([0.0, np.nan], N_LABELED)}, Y_LABELED, "NaN"),
    "text labels": ({"y_labeled__npy": np.resize(["a", "b"], N_LABELED)}, Y_LABELED, "integers"),
    "complex labels": (
        {"y_labeled__npy": np.resize([0j, 1j], N_LABELED)},
        Y_LABELED,
        "integers",
    ),
    "object labels": (
        {"y_labeled__npy": np.resize(np.array([0, "a"], dtype=object), N_LABELED)},
        Y_LABELED,
        "pickled",
    ),
    "object inputs": (
        {"X_val__npy": np.array([[1.0], [2.0, 3.0]] * 5, dtype=object)},
        X_TARGET,
        "allow_pickle",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_required_file(tmp_path, case):
    replace, name, problem = BAD_INPUTS[case]
    folder = write_folder(tmp_path / "d", **replace)
    message = load_error(folder)
    assert str(folder / name) in message and problem in message


BAD_ANSWER_KEY = {
    "X_val vs y_val": ({"y_val__npy": np.zeros(N_TARGET - 1, int)}, Y_TARGET, "mismatched"),
    "y_val values": ({"y_val__npy": np.full(N_TARGET, 3)}, Y_TARGET, "does not have"),
    "2-D y_val": ({"y_val__npy": np.zeros((N_TARGET, 3), int)}, Y_TARGET, "1-D"),
    "features_val rows": (
        {"features_val__npy": np.zeros((N_TARGET + 1, 3), int)},
        FEATURES_TARGET,
        "mismatched",
    ),
    "features_unlabeled rows": (
        {"features_unlabeled__npy": np.zeros((N_UNLABELED - 2, 3), int)},
        FEATURES_UNLABELED,
        "mismatched",
    ),
    "1-D features": (
        {"features_val__npy": np.zeros(N_TARGET, int)},
        FEATURES_TARGET,
        "dimensions",
    ),
}


@pytest.mark.parametrize("case", BAD_ANSWER_KEY, ids=list(BAD_ANSWER_KEY))
def test_bad_answer_key(tmp_path, case):
    replace, name, problem = BAD_ANSWER_KEY[case]
    folder = write_folder(tmp_path / "d", answer_key=True, **replace)
    message = load_error(folder)
    assert str(folder / name) in message and problem in message


def test_nan_reports_the_count_and_the_first_row(tmp_path):
    x = np.zeros((N_UNLABELED, *SHAPE))
    x[7, 0, 1, 2] = x[7, 0, 0, 0] = x[12, 0, 3, 5] = np.nan
    folder = write_folder(tmp_path / "d", X_unlabeled__npy=x)
    message = load_error(folder)
    assert str(folder / X_UNLABELED) in message
    assert "3 of them in 2 rows" in message and "first at row 7" in message


def test_different_row_shapes_name_both_files_and_shapes(tmp_path):
    folder = write_folder(tmp_path / "d", X_val__npy=np.zeros((N_TARGET, 1, 4, 7)))
    message = load_error(folder)
    assert str(folder / X_TARGET) in message and str(folder / X_LABELED) in message
    assert "(1, 4, 7)" in message and "(1, 4, 6)" in message and "per-row shape" in message


def test_vectors_and_images_do_not_mix(tmp_path):
    folder = write_folder(tmp_path / "d", X_unlabeled__npy=np.zeros((N_UNLABELED, 24)))
    message = load_error(folder)
    assert str(folder / X_UNLABELED) in message and "per-row shape" in message


def _git_lfs_pointer(path):
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 123\n")


def _truncated(path):
    path.write_bytes(path.read_bytes()[:200])


def _a_pickle(path):
    path.write_bytes(pickle.dumps([[0.0] * 24] * 20))


def _an_npz(path):
    with path.open("wb") as handle:
        np.savez(handle, x=np.zeros((20, 24)))


def _empty_file(path):
    path.write_bytes(b"")


def _impossible_shape(path):
    """A valid header claiming 10**12 rows over the same 24 floats per row."""
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**12, 1, 4, 6)}
    with path.open("wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(np.zeros(24).tobytes())


@pytest.mark.parametrize(
    "damage, problem",
    [
        (_git_lfs_pointer, "git-LFS pointer"),
        (_truncated, "truncated"),
        (_a_pickle, "not a .npy file"),
        (_an_npz, ".npz archive"),
        (_empty_file, "not loadable"),
        (_impossible_shape, "declares shape (1000000000000, 1, 4, 6)"),
    ],
    ids=["git lfs pointer", "truncated", "pickle", "npz", "empty file", "impossible shape"],
)
def test_file_that_is_not_loadable(tmp_path, damage, problem):
    folder = write_folder(tmp_path / "d")
    damage(folder / X_LABELED)
    message = load_error(folder)
    assert str(folder / X_LABELED) in message and problem in message


@pytest.mark.parametrize(
    "text, problem",
    [("{not json", "not valid JSON"), ("[1, 2]", "JSON object")],
    ids=["invalid", "not an object"],
)
def test_bad_metadata(tmp_path, text, problem):
    folder = write_folder(tmp_path / "d")
    (folder / METADATA).write_text(text)
    message = load_error(folder)
    assert str(folder / METADATA) in message and problem in message


@pytest.mark.parametrize("name", [X_LABELED, Y_LABELED, Y_TARGET, METADATA])
def test_a_folder_or_a_bad_link_named_like_a_data_file_is_reported_as_what_it_is(tmp_path, name):
    folder = write_folder(tmp_path / "d")
    path = folder / name
    path.unlink(missing_ok=True)
    path.mkdir()
    assert load_error(folder) == f"{path} is a folder, not a file: put the .npy array there instead"
    path.rmdir()
    path.symlink_to(path)
    message = load_error(folder)
    assert message.startswith(f"{path} is a link that loops (to {path})")
    path.unlink()
    path.symlink_to(tmp_path / "gone.npy")
    assert load_error(folder).startswith(f"{path} is a broken link (to {tmp_path / 'gone.npy'})")
