"""The submission files: the CSV (no header, no index, one integer label per target row, in the
order of X_val.npy) and `predictions.npz` (per-head probabilities). Both are written atomically
and an existing file is never replaced unless `overwrite` is set."""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from hackrobust.utils.errors import UserError, check_writable

_INTEGER = re.compile(r"[+-]?[0-9]+")
_PREDICTION_KEYS = ("probs", "label_values", "predicted")


class SubmissionExistsError(FileExistsError, UserError):
    """The output file is already there; it is only replaced when asked to."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        super().__init__(
            f"{path} already exists and a submission is never replaced silently: pass "
            "submission.overwrite=true to replace it, or choose another submission.path"
        )


def check_new_output(path: str | os.PathLike, what: str, overwrite: bool) -> None:
    """Before any work: `path` can be written (`check_writable`) and, unless `overwrite`, does
    not exist yet; the rule `write_atomically` applies when it writes."""
    check_writable(path, what)
    if Path(path).exists() and not overwrite:
        raise SubmissionExistsError(path)


def write_atomically(path: str | os.PathLike, data: bytes, overwrite: bool) -> Path:
    """Write `data` to `path` through a temporary file in the same folder, so a reader sees the
    old file or the whole new one, never half of it. Creates missing parent folders.

    Raises `SubmissionExistsError` if `path` exists and `overwrite` is false, also when another
    process creates it while this one writes.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise SubmissionExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private (0600); a submission is an ordinary file
        if overwrite:
            os.replace(tmp, path)
        else:
            _publish_new(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path


def save_atomically(obj, path: str | os.PathLike, overwrite: bool) -> Path:
    """`torch.save(obj)` to `path` the way `write_atomically` writes bytes."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_atomically(path, buffer.getvalue(), overwrite)


def _publish_new(tmp: str, path: Path) -> None:
    """Move `tmp` to `path` only if `path` does not exist: a hard link fails if it appeared
    meanwhile. Where hard links are not supported, fall back to check-then-replace."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise SubmissionExistsError(path) from None
    except OSError:
        if path.exists():
            raise SubmissionExistsError(path) from None
        os.replace(tmp, path)


def write_submission(
    labels: np.ndarray,
    path: str | os.PathLike,
    *,
    label_values: np.ndarray | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `labels` as the submission CSV: no header, no index, one integer per line ("\\n",
    with a trailing newline), in target-row order. The same labels always give the same bytes.

    `labels` must be a 1-D integer array; with `label_values`, every label must be one of them
    (labels are label values, not class indices). Raises `ValueError` otherwise, and
    `SubmissionExistsError` if `path` exists and `overwrite` is false.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be a 1-D integer array, got dtype {labels.dtype} and shape {labels.shape}"
        )
    if label_values is not None:
        allowed = np.asarray(label_values)
        unknown = np.setdiff1d(labels, allowed)
        if len(unknown):
            raise ValueError(
                f"labels {unknown.tolist()} are not label values {allowed.tolist()}: the CSV "
                "holds label values, not class indices"
            )
    text = "".join(f"{int(value)}\n" for value in labels)
    return write_atomically(path, text.encode("ascii"), overwrite)


def parse_labels(text: str, source: str = "the CSV") -> np.ndarray:
    """One integer label per line, no header, no index; errors name `source` and the line."""
    labels = []
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        if not _INTEGER.fullmatch(line.strip()):
            raise ValueError(
                f"{source}, line {number}: {line[:40]!r} is not one integer label (the CSV has "
                "no header, no index, one integer per line)"
            )
        labels.append(int(line))
    return np.asarray(labels, dtype=np.int64)


def read_submission(path: str | os.PathLike) -> np.ndarray:
    """The labels of a submission CSV as int64; `ValueError` names the first bad line."""
    return parse_labels(Path(path).read_text(encoding="utf-8"), str(path))


def save_predictions(
    path: str | os.PathLike,
    probs: np.ndarray,
    label_values: np.ndarray,
    *,
    overwrite: bool = False,
    **extra_arrays: np.ndarray,
) -> Path:
    """Save `predictions.npz` atomically, with `probs` (N, heads, classes) as float32,
    `label_values` (classes,), `predicted` (N, heads): each head's argmax as a label value, and
    any `extra_arrays`. Raises `SubmissionExistsError` if `path` exists and not `overwrite`."""
    probs = np.asarray(probs, dtype=np.float32)
    label_values = np.asarray(label_values)
    if label_values.ndim != 1:
        raise ValueError(f"label_values must be 1-D, got shape {label_values.shape}")
    if probs.ndim != 3 or probs.shape[2] != len(label_values):
        raise ValueError(
            f"probs must be (N, heads, {len(label_values)}) for label values "
            f"{label_values.tolist()}, got shape {probs.shape}"
        )
    clashes = sorted(set(extra_arrays) & set(_PREDICTION_KEYS))
    if clashes:
        raise ValueError(f"extra arrays may not be named {clashes}: those names are taken")
    buffer = io.BytesIO()
    np.savez(
        buffer,
        probs=probs,
        label_values=label_values,
        predicted=label_values[probs.argmax(axis=-1)],
        **extra_arrays,
    )
    return write_atomically(path, buffer.getvalue(), overwrite)
