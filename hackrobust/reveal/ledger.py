"""The on-disk truth of a label budget: which target rows were revealed, and their labels.

One JSON file per (URL, user, exercise). A reveal is recorded in two steps: the datum is
marked *pending* before the request goes out, and its label is written when the answer comes
back. After a crash between the two, the next run asks for the pending datum again (the
server does not charge twice for a datum already revealed) instead of spending a new label.
Writes are atomic (temporary file, fsync, rename; a writer killed before its rename leaves a
temporary file that the next holder of the lock removes) and an advisory lock (`filelock`, an
flock on `<ledger>.lock`, released by the system when its holder dies) keeps two processes from
spending the same budget at once. A run waits for that lock at most `lock_timeout` seconds,
then stops with `LedgerBusyError` rather than hang behind another run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

from filelock import FileLock, Timeout

DEFAULT_LOCK_TIMEOUT = 60.0


class LedgerBusyError(TimeoutError):
    """Another run held the ledger's lock (it is spending the same budget) past the timeout."""


def state_dir() -> Path:
    """`$HACKROBUST_STATE_DIR`, else `$XDG_STATE_HOME/hackrobust`, else ~/.local/state/hackrobust."""
    if "HACKROBUST_STATE_DIR" in os.environ:
        return Path(os.environ["HACKROBUST_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "hackrobust"


def ledger_path(source: str, username: str, exercise_id: int | str) -> Path:
    """The ledger of one exercise for one user at one server (or answer key)."""
    key = hashlib.sha256(f"{source}\n{username}\n{exercise_id}".encode()).hexdigest()[:16]
    return state_dir() / "reveal" / f"exercise-{exercise_id}-{key}.json"


class Ledger:
    """Revealed labels {datum_id: label} and at most one pending datum, persisted at `path`."""

    def __init__(
        self,
        path: str | os.PathLike,
        description: dict | None = None,
        lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT,
    ):
        """`lock_timeout`: seconds to wait for another run's hold on the ledger (None: forever)."""
        if lock_timeout is not None and not lock_timeout >= 0:
            raise ValueError(f"lock_timeout must be non-negative or None, got {lock_timeout}")
        self.path = Path(path)
        self.description = description or {}
        self.lock_timeout = lock_timeout
        # Reentrant within a thread; threads (and processes) exclude each other.
        self._lock = FileLock(self.lock_path, timeout=-1 if lock_timeout is None else lock_timeout)

    @property
    def lock_path(self) -> Path:
        """The lock file beside the ledger (the name earlier versions flocked too)."""
        return self.path.with_suffix(".lock")

    @contextlib.contextmanager
    def locked(self):
        """Hold the ledger's lock, waiting at most `lock_timeout` seconds for another holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            raise LedgerBusyError(
                f"another run is spending this exercise's label budget: it has held the lock "
                f"{self.lock_path} of the ledger {self.path} for over {self.lock_timeout:g}s. "
                "Wait for that run to finish (or stop it), then run again; a lock whose holder "
                "died is released by the system, so never delete the lock file."
            ) from None
        try:
            self._remove_stale_temporaries()
            yield
        finally:
            self._lock.release()

    @property
    def fingerprint(self) -> str:
        """Names what the ledger records (server, user and exercise; or answer key) without
        saying it: a label kept elsewhere (a checkpoint) is only used where this matches."""
        text = json.dumps(self.description, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of writers killed before their rename: every write holds the lock,
        so under it none is in progress."""
        for stale in self.path.parent.glob(f".{self.path.name}.*"):
            stale.unlink(missing_ok=True)

    def read(self) -> dict:
        if not self.path.exists():
            return {"description": self.description, "revealed": {}, "pending": None}
        state = json.loads(self.path.read_text())
        state["revealed"] = {int(k): int(v) for k, v in state["revealed"].items()}
        return state

    def write(self, state: dict) -> None:
        text = json.dumps(state, indent=2, sort_keys=True) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @property
    def revealed(self) -> dict[int, int]:
        return dict(self.read()["revealed"])
