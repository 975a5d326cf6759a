"""User errors: problems the user can fix, which a run reports in one line before it trains."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


class UserError(Exception):
    """A problem with the input or the config that the message says how to fix; the command
    line prints it alone, without a traceback (HYDRA_FULL_ERROR=1 shows one)."""


def check_writable(path: str | os.PathLike, what: str) -> None:
    """Refuse, before any work, an output `path` that could not be written: its nearest
    existing folder must be a folder that takes a new file (tried, then removed)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder: give a file name")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{what} {path} cannot be written: {parent} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as error:
        raise UserError(
            f"{what} {path} cannot be written ({error.strerror} in {parent}): "
            "choose a path in a folder you can write"
        ) from None


@contextlib.contextmanager
def user_errors_in_one_line() -> Iterator[None]:
    """A user error (`UserError`, a refused or impossible reveal, a missing data source) ends
    the command with its message on one line and exit status 2, no traceback; with
    HYDRA_FULL_ERROR=1 it propagates whole."""
    from hackrobust.data.sources.errors import SourceUnavailableError
    from hackrobust.reveal import RevealError

    try:
        yield
    except (UserError, RevealError, SourceUnavailableError) as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("%s", error)  # into the run's log file too
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
