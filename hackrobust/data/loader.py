"""Load and validate a dataset folder in the hackathon42 layout.

Every problem is a `DatasetError` naming the file, what is wrong and how to fix it. Inputs come
back as float32 (float64 is accepted), labels as int64 in their original values. Images given
as (N, H, W) get a channel axis: (N, 1, H, W).
"""

from __future__ import annotations

import json
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


class DatasetError(ValueError):
    """A dataset folder that cannot be used as it is."""


def load_hackathon_dir(path: str | Path) -> HackathonData:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DatasetError(
            f"{folder} is not a directory: dataset.path must be a folder holding "
            f"{', '.join(REQUIRED_FILES)}"
        )
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        present = sorted(p.name for p in folder.glob("*.npy"))
        raise DatasetError(
            f"{folder} is missing {', '.join(missing)} (found: {', '.join(present) or 'no .npy'}); "
            f"a hackathon42 folder holds {', '.join(REQUIRED_FILES)}"
        )

    inputs = {name: _inputs(folder / name) for name in (X_LABELED, X_UNLABELED, X_TARGET)}
    _check_same_row_shape(folder, inputs)
    y_labeled = _labels(folder / Y_LABELED)
    _check_length(folder / Y_LABELED, y_labeled, folder / X_LABELED, inputs[X_LABELED])
    if len(np.unique(y_labeled)) < 2:
        raise DatasetError(
            f"{folder / Y_LABELED} holds only one class ({np.unique(y_labeled).tolist()}): "
            "a classifier needs at least two"
        )

    y_target = _optional(folder / Y_TARGET, _labels)
    if y_target is not None:
        _check_length(folder / Y_TARGET, y_target, folder / X_TARGET, inputs[X_TARGET])
        unknown = np.setdiff1d(y_target, y_labeled)
        if len(unknown):
            raise DatasetError(
                f"{folder / Y_TARGET} has label values {unknown.tolist()} that y_labeled.npy "
                f"does not have ({np.unique(y_labeled).tolist()})"
            )
    features = {}
    for name, x_name in ((FEATURES_TARGET, X_TARGET), (FEATURES_UNLABELED, X_UNLABELED)):
        features[name] = _optional(folder / name, _feature_matrix)
        if features[name] is not None:
            _check_length(folder / name, features[name], folder / x_name, inputs[x_name])

    return HackathonData(
        x_labeled=inputs[X_LABELED],
        y_labeled=y_labeled,
        x_unlabeled=inputs[X_UNLABELED],
        x_target=inputs[X_TARGET],
        y_target=y_target,
        features_unlabeled=features[FEATURES_UNLABELED],
        features_target=features[FEATURES_TARGET],
        metadata=_optional(folder / METADATA, _metadata) or {},
    )


def _optional(path: Path, load):
    return load(path) if path.is_file() else None


def _load_array(path: Path) -> np.ndarray:
    head = path.read_bytes()[:64]
    if head.startswith(b"version https://git-lfs"):
        raise DatasetError(
            f"{path} is a git-LFS pointer, not the data: run `git lfs install && git lfs pull`"
        )
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise DatasetError(
            f"{path} holds pickled objects, not a plain numeric array ({error}); save it with "
            "np.save on a numeric array"
        ) from error
    except Exception as error:
        raise DatasetError(f"{path} is not a readable .npy file: {error}") from error
    if array.size == 0:
        raise DatasetError(f"{path} is empty (shape {array.shape})")
    return array


def _inputs(path: Path) -> np.ndarray:
    array = _load_array(path)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise DatasetError(f"{path} has dtype {array.dtype}; inputs must be numbers")
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim not in (2, 4):
        raise DatasetError(
            f"{path} has shape {array.shape}: inputs must be vectors (N, D), images "
            "(N, C, H, W) or single-channel images (N, H, W)"
        )
    array = array.astype(np.float32)
    bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DatasetError(
            f"{path} has NaN or inf values in {len(rows)} rows (first: row {rows[0]}); "
            "clean or drop those rows"
        )
    return array


def _labels(path: Path) -> np.ndarray:
    array = _load_array(path)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise DatasetError(f"{path} has shape {array.shape}: labels must be one value per row (N,)")
    return _as_integers(path, array)


def _feature_matrix(path: Path) -> np.ndarray:
    array = _load_array(path)
    if array.ndim != 2:
        raise DatasetError(f"{path} has shape {array.shape}: expected (N, features)")
    return _as_integers(path, array)


def _as_integers(path: Path, array: np.ndarray) -> np.ndarray:
    if array.dtype == bool or np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int64)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise DatasetError(f"{path} has NaN or inf labels")
        if np.array_equal(array, np.round(array)):
            return array.astype(np.int64)
        example = array[array != np.round(array)][0]
        raise DatasetError(
            f"{path} has labels that are not integers (e.g. {example}); labels must be integer "
            "class values such as 0/1 or 4/5/6"
        )
    raise DatasetError(f"{path} has dtype {array.dtype}: labels must be integers")


def _check_length(path: Path, array: np.ndarray, other_path: Path, other: np.ndarray) -> None:
    if len(array) != len(other):
        raise DatasetError(
            f"{path} has {len(array)} rows but {other_path.name} has {len(other)}: "
            "they must have one row per example"
        )


def _check_same_row_shape(folder: Path, inputs: dict[str, np.ndarray]) -> None:
    shapes = {name: array.shape[1:] for name, array in inputs.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise DatasetError(f"{folder}: inputs differ in per-row shape ({listed}); they must match")


def _metadata(path: Path) -> dict:
    try:
        metadata = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DatasetError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(metadata, dict):
        raise DatasetError(f"{path} must hold a JSON object, got {type(metadata).__name__}")
    return metadata
