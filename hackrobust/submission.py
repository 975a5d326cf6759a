"""The submission files: the CSV (no header, no index, one label per target row) and the
per-head probabilities. Both are written atomically and never replace a file silently."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np


class SubmissionExistsError(FileExistsError):
    def __init__(self, path: str | os.PathLike):
        super().__init__(
            f"{path} already exists and a submission is never replaced silently: pass "
            "submission.overwrite=true to replace it, or choose another submission.path"
        )


def write_atomically(path: Path, data: bytes, overwrite: bool) -> Path:
    if path.exists() and not overwrite:
        raise SubmissionExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if a file appeared meanwhile: still no silent replace
            os.unlink(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_submission(
    labels: np.ndarray,
    path: str | os.PathLike,
    *,
    label_values: np.ndarray | None = None,
    overwrite: bool = False,
) -> Path:
    """Write one integer label per line, in target order; labels must be among `label_values`."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if label_values is not None:
        unknown = np.setdiff1d(labels, label_values)
        if len(unknown):
            raise ValueError(f"labels {unknown.tolist()} are not label values {list(label_values)}")
    text = "".join(f"{int(v)}\n" for v in labels)
    return write_atomically(Path(path), text.encode(), overwrite)


def parse_labels(text: str, source: str = "the CSV") -> np.ndarray:
    """One integer label per line, no header, no index; errors name `source` and the line."""
    labels = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            labels.append(int(line.strip()))
        except ValueError:
            raise ValueError(
                f"{source}, line {number}: {line[:40]!r} is not one integer label"
            ) from None
    return np.asarray(labels, dtype=np.int64)


def read_submission(path: str | os.PathLike) -> np.ndarray:
    return parse_labels(Path(path).read_text(), str(path))


def save_predictions(
    path: str | os.PathLike,
    probs: np.ndarray,
    label_values: np.ndarray,
    *,
    overwrite: bool = False,
    **extra_arrays: np.ndarray,
) -> Path:
    """Save `probs` (N, heads, classes), the label values and each head's predicted labels."""
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 3 or probs.shape[2] != len(label_values):
        raise ValueError(f"probs must be (N, heads, {len(label_values)}), got {probs.shape}")
    buffer = io.BytesIO()
    np.savez(
        buffer,
        probs=probs,
        label_values=np.asarray(label_values),
        predicted=np.asarray(label_values)[probs.argmax(axis=-1)],
        **extra_arrays,
    )
    return write_atomically(Path(path), buffer.getvalue(), overwrite)
