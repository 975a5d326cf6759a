"""The on-disk truth of a label budget: which target rows were revealed, and their labels.

One JSON file per (URL, user, exercise). A reveal is recorded in two steps: the datum is
marked *pending* before the request goes out, and its label is written when the answer comes
back. After a crash between the two, the next run asks for the pending datum again (the
server does not charge twice for a datum already revealed) instead of spending a new label.
Writes are atomic (temporary file, fsync, rename; a writer killed before its rename leaves a
temporary file that the next holder of the lock removes) and an advisory lock keeps two
processes from spending the same budget at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from pathlib import Path


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

    def __init__(self, path: str | os.PathLike, description: dict | None = None):
        self.path = Path(path)
        self.description = description or {}

    @contextlib.contextmanager
    def locked(self):
        """Hold the ledger's lock; yields the current state, saved again on `save`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._remove_stale_temporaries()
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

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
