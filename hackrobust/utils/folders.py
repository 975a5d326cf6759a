"""A new folder written whole or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def new_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to fill; when the block ends without error it is
    renamed to `path`, otherwise removed, so a reader never sees a half-written folder.

    Raises `FileExistsError` if `path` appeared meanwhile (another process wrote it first).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        try:
            os.replace(tmp, path)
        except OSError as error:  # "directory not empty": a parallel writer got there first
            if path.exists():
                raise FileExistsError(f"{path} was written by another process meanwhile") from error
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
