"""The server's state in SQLite: teams (hashed passwords), exercises, reveals, submissions.

Every change runs in a `BEGIN IMMEDIATE` transaction, so concurrent requests (threads or
processes) are serialised by SQLite itself: the label budget can never be exceeded, and a
restart loses nothing that was answered.

The slow password hash runs before that transaction, never inside it (`verify`): a flood of
wrong passwords costs CPU, but holds no lock that the leaderboard or an honest reveal waits
for; the budget's check-and-spend stays one transaction. Reads (the leaderboard) take no write
lock at all (WAL).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hackrobust.data.exercises import default_score

SCHEMA = """
CREATE TABLE IF NOT EXISTS teams (username TEXT PRIMARY KEY, salt BLOB NOT NULL, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS exercises (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, labels TEXT NOT NULL, default_score REAL NOT NULL);
CREATE TABLE IF NOT EXISTS reveals (
    username TEXT NOT NULL, exercise_id INTEGER NOT NULL, datum_id INTEGER NOT NULL,
    seq INTEGER NOT NULL, PRIMARY KEY (username, exercise_id, datum_id));
CREATE TABLE IF NOT EXISTS submissions (
    username TEXT NOT NULL, exercise_id INTEGER NOT NULL, score REAL NOT NULL,
    PRIMARY KEY (username, exercise_id));
"""


class StoreError(Exception):
    """A refused request; `status` is the HTTP status that says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)


# An unknown username is hashed too, with this salt, so that it costs the time of a wrong
# password: the answer's timing does not tell which teams exist.
_DUMMY_SALT = os.urandom(16)
_DUMMY_HASH = os.urandom(64)  # scrypt's 64 bytes are compared with this: never equal

# SQLite stores signed 64-bit integers: an id beyond them is a bad request, not a crash.
ID_MIN, ID_MAX = -(2**63), 2**63 - 1


def check_id(value: int, name: str) -> int:
    if not ID_MIN <= value <= ID_MAX:
        raise StoreError(422, f"{name} is out of range (a signed 64-bit integer)")
    return value


@dataclass(frozen=True)
class Credential:
    """A team whose password `Store.verify` checked. `hash` is the stored hash it matched; the
    transaction that acts for the team checks it again, so a password changed meanwhile fails."""

    username: str
    hash: bytes = field(repr=False)


class Store:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Writers of this process queue here rather than in SQLite's busy-wait (which sleeps up
        # to 100 ms a try); other processes are still kept out by BEGIN IMMEDIATE.
        self._write_lock = threading.Lock()
        db = sqlite3.connect(self.path, timeout=60)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
        finally:
            db.close()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60, isolation_level=None)

    @contextlib.contextmanager
    def _transaction(self):
        """A write transaction: one at a time, across threads and processes."""
        with self._write_lock:
            db = self._connect()
            try:
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            finally:
                db.close()

    @contextlib.contextmanager
    def _read(self):
        """A consistent snapshot for reading; in WAL mode it neither waits for nor blocks writers."""
        db = self._connect()
        try:
            db.execute("BEGIN")
            yield db
            db.execute("COMMIT")
        finally:
            db.close()

    # ---- registration --------------------------------------------------------------------------

    def add_team(self, username: str, password: str) -> None:
        salt = os.urandom(16)
        hashed = _hash(password, salt)  # before the transaction: the hash is slow
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO teams VALUES (?, ?, ?)", (username, salt, hashed))

    def add_exercise(
        self, exercise_id: int, dataset_dir: str | os.PathLike, name: str | None = None
    ) -> None:
        """Register a dataset folder's answer key (y_val.npy) and default score (metadata.json's,
        else the hackathon's rule for `exercise_id`)."""
        check_id(exercise_id, "exercise_id")
        folder = Path(dataset_dir)
        if not (folder / "y_val.npy").is_file():
            raise FileNotFoundError(f"{folder} has no y_val.npy: an exercise needs its answer key")
        labels = np.load(folder / "y_val.npy", allow_pickle=False).astype(int).tolist()
        metadata = folder / "metadata.json"
        meta = json.loads(metadata.read_text()) if metadata.is_file() else {}
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO exercises VALUES (?, ?, ?, ?)",
                (
                    exercise_id,
                    name or meta.get("name", folder.name),
                    json.dumps(labels),
                    default_score(exercise_id, meta),
                ),
            )

    # ---- requests ------------------------------------------------------------------------------

    def verify(self, username: str, password: str) -> Credential:
        """The slow part of every request, outside any transaction or lock. An unknown username
        is hashed as well (against a dummy), so it takes the time of a wrong password."""
        db = self._connect()
        try:
            row = db.execute(
                "SELECT salt, hash FROM teams WHERE username = ?", (username,)
            ).fetchone()
        finally:
            db.close()
        salt, stored = row if row is not None else (_DUMMY_SALT, _DUMMY_HASH)
        if not hmac.compare_digest(stored, _hash(password, salt)) or row is None:
            raise StoreError(401, "bad username or password")
        return Credential(username, stored)

    def _check_still_valid(self, db, credential: Credential) -> None:
        row = db.execute(
            "SELECT hash FROM teams WHERE username = ?", (credential.username,)
        ).fetchone()
        if row is None or not hmac.compare_digest(row[0], credential.hash):
            raise StoreError(401, "bad username or password")

    def _labels(self, db, exercise_id: int) -> list[int]:
        row = db.execute("SELECT labels FROM exercises WHERE id = ?", (exercise_id,)).fetchone()
        if row is None:
            raise StoreError(404, f"unknown exercise {exercise_id}")
        return json.loads(row[0])

    def reveal(
        self, username: str, password: str, exercise_id: int, datum_id: int, budget: int
    ) -> dict:
        check_id(exercise_id, "exercise_id")
        check_id(datum_id, "datum_id")
        return self.reveal_as(self.verify(username, password), exercise_id, datum_id, budget)

    def reveal_as(
        self, credential: Credential, exercise_id: int, datum_id: int, budget: int
    ) -> dict:
        """Reveal a label for a verified team: the budget's check and spend in one transaction.
        A datum the team already revealed is answered again, free, with `already_revealed`."""
        check_id(exercise_id, "exercise_id")
        check_id(datum_id, "datum_id")
        username = credential.username
        with self._transaction() as db:
            self._check_still_valid(db, credential)
            labels = self._labels(db, exercise_id)
            if not 0 <= datum_id < len(labels):
                raise StoreError(
                    404, f"unknown datum {datum_id}: exercise {exercise_id} has {len(labels)} rows"
                )
            seen = [
                d for (d,) in db.execute(
                    "SELECT datum_id FROM reveals WHERE username = ? AND exercise_id = ? ORDER BY seq",
                    (username, exercise_id),
                )
            ]  # fmt: skip
            already = datum_id in seen
            if not already:
                if len(seen) >= budget:
                    raise StoreError(
                        403, f"the budget of {budget} labels is spent for exercise {exercise_id}"
                    )
                db.execute(
                    "INSERT INTO reveals VALUES (?, ?, ?, ?)",
                    (username, exercise_id, datum_id, len(seen)),
                )
            previously = [d for d in seen if d != datum_id]
        return {
            "exercise_id": exercise_id,
            "datum_id": datum_id,
            "label": labels[datum_id],
            "previously revealed": previously,
            "already_revealed": already,
        }

    def submit(self, username: str, password: str, exercise_id: int, labels: list[int]) -> float:
        check_id(exercise_id, "exercise_id")
        return self.submit_as(self.verify(username, password), exercise_id, labels)

    def submit_as(self, credential: Credential, exercise_id: int, labels: list[int]) -> float:
        check_id(exercise_id, "exercise_id")
        username = credential.username
        with self._transaction() as db:
            self._check_still_valid(db, credential)
            truth = self._labels(db, exercise_id)
            if len(labels) != len(truth):
                raise StoreError(
                    400, f"the CSV has {len(labels)} rows; exercise {exercise_id} has {len(truth)}"
                )
            unknown = sorted(set(labels) - set(truth))
            if unknown:
                raise StoreError(
                    400,
                    f"labels {unknown} are not among the exercise's labels {sorted(set(truth))}",
                )
            done = db.execute(
                "SELECT 1 FROM submissions WHERE username = ? AND exercise_id = ?",
                (username, exercise_id),
            ).fetchone()
            if done:
                raise StoreError(
                    409, f"{username} already submitted exercise {exercise_id}: one submission only"
                )
            score = float(np.mean(np.asarray(labels) == np.asarray(truth)))
            db.execute("INSERT INTO submissions VALUES (?, ?, ?)", (username, exercise_id, score))
        return score

    def leaderboard(self) -> dict:
        with self._read() as db:
            exercises = db.execute(
                "SELECT id, name, default_score FROM exercises ORDER BY id"
            ).fetchall()
            teams = [u for (u,) in db.execute("SELECT username FROM teams ORDER BY username")]
            scores = {(u, e): s for u, e, s in db.execute("SELECT * FROM submissions")}
        rows = []
        for team in teams:
            per = {
                str(e): {"score": scores.get((team, e), default), "submitted": (team, e) in scores}
                for e, _, default in exercises
            }
            rows.append(
                {"team": team, "exercises": per, "total": sum(v["score"] for v in per.values())}
            )
        rows.sort(key=lambda r: -r["total"])
        return {
            "exercises": [{"id": e, "name": n, "default_score": d} for e, n, d in exercises],
            "teams": rows,
        }
