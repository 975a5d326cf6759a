"""The HTTP face of the store: the hackathon42 reveal protocol, submissions, the leaderboard."""

from __future__ import annotations

import os

from fastapi import FastAPI, Form, HTTPException, UploadFile

from hackrobust.server.store import Store, StoreError

DEFAULT_BUDGET = 5


def _refuse(error: StoreError) -> HTTPException:
    return HTTPException(status_code=error.status, detail=str(error))


def parse_csv(content: bytes) -> list[int]:
    """One integer per line, no header, no index."""
    labels = []
    for number, line in enumerate(content.decode().splitlines(), start=1):
        try:
            labels.append(int(line.strip()))
        except ValueError:
            raise StoreError(
                400, f"line {number}: {line[:40]!r} is not one integer label"
            ) from None
    return labels


def create_app(db_path: str | os.PathLike, budget: int = DEFAULT_BUDGET) -> FastAPI:
    store = Store(db_path)
    app = FastAPI(title="hackrobust reveal and leaderboard server")

    @app.post("/reveal/")
    def reveal(
        username: str = Form(),
        password: str = Form(),
        exercise_id: int = Form(),
        datum_id: int = Form(),
    ) -> dict:
        try:
            return store.reveal(username, password, exercise_id, datum_id, budget)
        except StoreError as error:
            raise _refuse(error) from None

    @app.post("/submit/")
    def submit(
        file: UploadFile, username: str = Form(), password: str = Form(), exercise_id: int = Form()
    ) -> dict:
        try:
            score = store.submit(username, password, exercise_id, parse_csv(file.file.read()))
        except StoreError as error:
            raise _refuse(error) from None
        return {"exercise_id": exercise_id, "score": score}

    @app.get("/leaderboard/")
    def leaderboard() -> dict:
        return store.leaderboard()

    return app
