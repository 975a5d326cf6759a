"""Load and validate a dataset folder in the hackathon42 layout (see `hackrobust.data.layout`).

Every problem is a `DatasetError` that names the file (full path), what is wrong with it and how
to fix it, so a bad folder fails at load time rather than as a shape error deep inside training.
"""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path

import numpy as np

from hackrobust.data.layout import (
    FEATURES_TARGET,
    FEATURES_UNLABELED,
    METADATA,
    REQUIRED_FILES,
    X_LABELED,
    X_TARGET,
    X_UNLABELED,
    Y_LABELED,
    Y_TARGET,
    HackathonData,
)
from hackrobust.utils.errors import UserError

_INPUT_FILES = (X_LABELED, X_UNLABELED, X_TARGET)
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_LFS_POINTER = b"version https://git-lfs"


class DatasetError(ValueError, UserError):
    """A dataset folder that cannot be used as it is; the message says which file and why."""


def load_hackathon_dir(path: str | os.PathLike) -> HackathonData:
    """Load the hackathon42 folder at `path`, checking it before anything trains on it.

    Required: ``X_labeled.npy``, ``y_labeled.npy``, ``X_unlabeled.npy``, ``X_val.npy``. Optional:
    the answer key ``y_val.npy``, ``features_val.npy``, ``features_unlabeled.npy`` and
    ``metadata.json``. Arrays are read with ``allow_pickle=False``.

    - Inputs must be vectors (N, D) or images (N, C, H, W), with the same per-row shape in all
      three X files. Single-channel images saved as (N, H, W) are accepted and get a channel
      axis: (N, 1, H, W). Inputs come back as float32 (float64 and integer pixels are accepted),
      and must hold no NaN or inf.
    - Labels must be 1-D (N,) integers; a column (N, 1) is flattened. Float labels that are all
      integral (e.g. 0.0, 1.0) and booleans (as 0/1) are accepted. Labels come back as int64, in
      their original values ({0, 1}, {0, 2}, {4, 5, 6}...); y_labeled must hold at least two
      classes and y_val only values that y_labeled has.
    - features_* are (N, F) integer matrices with one row per row of their X file.

    Raises `DatasetError` for every problem found, naming the file.
    """
    folder = _check_folder(path)

    inputs = {name: _load_inputs(folder / name) for name in _INPUT_FILES}
    _check_same_row_shape(folder, inputs)

    y_labeled = _load_labels(folder / Y_LABELED)
    _check_rows(folder / Y_LABELED, y_labeled, folder / X_LABELED, inputs[X_LABELED])
    _check_classes(folder / Y_LABELED, y_labeled)

    y_target = None
    if (folder / Y_TARGET).is_file():
        y_target = _load_labels(folder / Y_TARGET)
        _check_rows(folder / Y_TARGET, y_target, folder / X_TARGET, inputs[X_TARGET])
        _check_known_values(folder / Y_TARGET, y_target, folder / Y_LABELED, y_labeled)

    features = {}
    for name, x_name in ((FEATURES_TARGET, X_TARGET), (FEATURES_UNLABELED, X_UNLABELED)):
        features[name] = None
        if (folder / name).is_file():
            features[name] = _load_features(folder / name)
            _check_rows(folder / name, features[name], folder / x_name, inputs[x_name])

    metadata = _load_metadata(folder / METADATA) if (folder / METADATA).is_file() else {}

    return HackathonData(
        x_labeled=inputs[X_LABELED],
        y_labeled=y_labeled,
        x_unlabeled=inputs[X_UNLABELED],
        x_target=inputs[X_TARGET],
        y_target=y_target,
        features_unlabeled=features[FEATURES_UNLABELED],
        features_target=features[FEATURES_TARGET],
        metadata=metadata,
    )


# --- the folder ---------------------------------------------------------------------------------


def _check_folder(path: str | os.PathLike) -> Path:
    folder = Path(path).expanduser().absolute()
    expected = ", ".join(REQUIRED_FILES)
    if not folder.exists():
        raise DatasetError(
            f"{folder} does not exist: dataset.path must be a folder holding {expected}"
        )
    if not folder.is_dir():
        raise DatasetError(
            f"{folder} is not a directory: dataset.path must be a folder holding {expected}"
        )
    for name in (*REQUIRED_FILES, Y_TARGET, FEATURES_TARGET, FEATURES_UNLABELED, METADATA):
        _check_not_a_folder_or_bad_link(folder / name)
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        present = [name for name in REQUIRED_FILES if (folder / name).is_file()]
        others = sorted(p.name for p in folder.iterdir() if p.name not in REQUIRED_FILES)
        listing = f"required files present: {', '.join(present) or 'none'}"
        if others:
            shown = others[:10] + (["..."] if len(others) > 10 else [])
            listing += f"; other files: {', '.join(shown)}"
        raise DatasetError(
            f"{folder} is missing {', '.join(str(folder / name) for name in missing)} "
            f"({listing}); a hackathon42 folder holds {expected}"
        )
    return folder


def _check_not_a_folder_or_bad_link(path: Path) -> None:
    """A data file's name held by a folder, a broken link or a link loop is reported as what
    it is (not as a missing file)."""
    if path.is_symlink():
        try:
            path.stat()
        except OSError as error:
            target = os.readlink(path)
            problem = "a link that loops" if error.errno == errno.ELOOP else "a broken link"
            raise DatasetError(
                f"{path} is {problem} (to {target}), not a file: replace it with the data file"
            ) from None
    if path.is_dir():
        raise DatasetError(f"{path} is a folder, not a file: put the .npy array there instead")
    if path.exists() and not path.is_file():
        raise DatasetError(f"{path} is not a regular file: put the data file there instead")


# --- one .npy file ------------------------------------------------------------------------------


def _load_array(path: Path) -> np.ndarray:
    """`np.load(path, allow_pickle=False)`, with a useful message for each way it can fail."""
    with path.open("rb") as handle:
        head = handle.read(64)
    if head.startswith(_LFS_POINTER):
        raise DatasetError(
            f"{path} is a git-LFS pointer (a small text file), not the data: fetch the real file "
            "with `git lfs install && git lfs pull`"
        )
    if head.startswith(_ZIP_MAGIC):
        raise DatasetError(
            f"{path} is an .npz archive (np.savez), not a .npy array: save each array with np.save"
        )
    _check_declared_size(path)
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as error:
        if not head.startswith(_NPY_MAGIC):
            raise DatasetError(
                f"{path} is not a .npy file (a pickle or another format?): save it with np.save "
                f"on a numeric array (numpy said: {error})"
            ) from error
        if _header_has_objects(path):
            raise DatasetError(
                f"{path} holds pickled Python objects (dtype object), which are not loaded "
                "(allow_pickle=False): was it saved with allow_pickle, or from a list of "
                "ragged rows? Save a plain numeric array instead"
            ) from error
        raise DatasetError(
            f"{path} is not loadable, it looks truncated or corrupt ({error}): write it again, "
            "or if it came from git, check it is not a git-LFS pointer"
        ) from error
    except (OSError, EOFError) as error:
        raise DatasetError(
            f"{path} is not loadable ({error or type(error).__name__}): an empty or truncated "
            "file? Write it again with np.save, or fetch it with `git lfs pull`"
        ) from error
    if array.size == 0:
        raise DatasetError(
            f"{path} is empty (shape {array.shape}): every file needs at least one row"
        )
    return array


def _check_declared_size(path: Path) -> None:
    """Refuse a .npy whose header declares more data than the file holds (a truncated file,
    or a header claiming an impossible shape), before numpy tries to allocate it."""
    header = _npy_header(path)
    if header is None:
        return  # not a readable .npy header: np.load says what it is
    shape, dtype, offset = header
    if dtype.hasobject:
        return
    declared = math.prod(shape) * dtype.itemsize
    held = path.stat().st_size - offset
    if declared > held:
        raise DatasetError(
            f"{path} declares shape {shape} of {dtype} ({declared:,} bytes) but holds "
            f"{held:,} bytes of data: the file is truncated or its header is corrupt; write it "
            "again with np.save"
        )


def _npy_header(path: Path) -> tuple[tuple, np.dtype, int] | None:
    """(shape, dtype, offset of the data) from a .npy header; None if it cannot be read."""
    try:
        with path.open("rb") as handle:
            major, _ = np.lib.format.read_magic(handle)
            read = (
                np.lib.format.read_array_header_1_0
                if major == 1
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read(handle)
            return tuple(shape), dtype, handle.tell()
    except Exception:
        return None


def _header_has_objects(path: Path) -> bool:
    header = _npy_header(path)
    return header is not None and header[1].hasobject


# --- inputs -------------------------------------------------------------------------------------


def _load_inputs(path: Path) -> np.ndarray:
    array = _load_array(path)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool) or np.iscomplexobj(array):
        raise DatasetError(
            f"{path} has dtype {array.dtype}: inputs must be real numbers (float32 or float64)"
        )
    if array.ndim == 3:
        array = array[:, None]  # (N, H, W) -> (N, 1, H, W)
    if array.ndim not in (2, 4):
        raise DatasetError(
            f"{path} has shape {array.shape}, wrong number of dimensions: inputs must be vectors "
            "(N, D), images (N, C, H, W) or single-channel images (N, H, W)"
        )
    _check_finite(path, array)
    with np.errstate(over="ignore"):  # reported below, with the file name
        converted = array.astype(np.float32)
    if np.issubdtype(array.dtype, np.floating) and array.dtype.itemsize > 4:
        _check_finite(path, converted, problem="values too large for float32 (they become inf)")
    return converted


def _check_finite(path: Path, array: np.ndarray, problem: str = "NaN or inf values") -> None:
    if not np.issubdtype(array.dtype, np.floating):
        return
    bad = ~np.isfinite(array.reshape(len(array), -1))
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise DatasetError(
            f"{path} has {problem}: {int(bad.sum())} of them in {len(rows)} rows (first at row "
            f"{rows[0]}); clean or drop those rows"
        )


def _check_same_row_shape(folder: Path, inputs: dict[str, np.ndarray]) -> None:
    reference = inputs[X_LABELED].shape[1:]
    for name, array in inputs.items():
        if array.shape[1:] != reference:
            raise DatasetError(
                f"{folder / name} has rows of shape {array.shape[1:]} but "
                f"{folder / X_LABELED} has rows of shape {reference}: the per-row shape of all "
                "inputs must match (after (N, H, W) became (N, 1, H, W))"
            )


# --- labels and features ------------------------------------------------------------------------


def _load_labels(path: Path) -> np.ndarray:
    array = _load_array(path)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise DatasetError(
            f"{path} has shape {array.shape}, wrong number of dimensions: labels must be 1-D, "
            "one value per row (N,)"
        )
    return _check_labels(path, array)


def _load_features(path: Path) -> np.ndarray:
    array = _load_array(path)
    if array.ndim != 2:
        raise DatasetError(
            f"{path} has shape {array.shape}, wrong number of dimensions: expected (N, features), "
            "the label each candidate feature implies for each row"
        )
    return _check_labels(path, array)


def _check_labels(path: Path, array: np.ndarray) -> np.ndarray:
    """Integer labels as int64; bools as 0/1; floats only when every value is integral."""
    if array.dtype == bool or np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int64)
    if np.issubdtype(array.dtype, np.floating):
        _check_finite(path, array.reshape(len(array), -1))
        fractional = array != np.round(array)
        if fractional.any():
            raise DatasetError(
                f"{path} has labels that are not integers ({int(fractional.sum())} values, e.g. "
                f"{array[fractional][0]}): labels must be integer class values such as 0/1 or "
                "4/5/6"
            )
        return array.astype(np.int64)
    raise DatasetError(
        f"{path} has dtype {array.dtype}: labels must be integers such as 0/1 or 4/5/6 (map "
        "class names to integer values first)"
    )


def _check_rows(path: Path, array: np.ndarray, x_path: Path, x: np.ndarray) -> None:
    if len(array) != len(x):
        raise DatasetError(
            f"{path} has {len(array)} rows but {x_path} has {len(x)}: mismatched lengths, they "
            "must have one row per example, in the same order"
        )


def _check_classes(path: Path, labels: np.ndarray) -> None:
    values = np.unique(labels)
    if len(values) < 2:
        raise DatasetError(
            f"{path} holds only one class ({values.tolist()}): a classifier needs labeled "
            "examples of at least two classes"
        )


def _check_known_values(path: Path, labels: np.ndarray, known_path: Path, known: np.ndarray):
    unknown = np.setdiff1d(labels, known)
    if len(unknown):
        raise DatasetError(
            f"{path} has label values {unknown.tolist()} that {known_path} does not have "
            f"({np.unique(known).tolist()}): unknown label values cannot be predicted"
        )


# --- metadata -----------------------------------------------------------------------------------


def _load_metadata(path: Path) -> dict:
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path} is not valid JSON ({error}): fix or remove it") from error
    if not isinstance(metadata, dict):
        raise DatasetError(
            f"{path} must hold a JSON object ({{...}}), got {type(metadata).__name__}"
        )
    return metadata
