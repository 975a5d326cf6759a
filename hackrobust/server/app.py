"""The HTTP face of the store: the hackathon42 reveal protocol, submissions, the leaderboard."""

from __future__ import annotations

import os

from fastapi import FastAPI, Form, HTTPException, UploadFile

from hackrobust.server.store import Store, StoreError
from hackrobust.submission import parse_labels

DEFAULT_BUDGET = 5


def _refuse(error: StoreError) -> HTTPException:
    return HTTPException(status_code=error.status, detail=str(error))


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
            labels = parse_labels(file.file.read().decode(errors="replace")).tolist()
            score = store.submit(username, password, exercise_id, labels)
        except ValueError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None
        except StoreError as error:
            raise _refuse(error) from None
        return {"exercise_id": exercise_id, "score": score}

    @app.get("/leaderboard/")
    def leaderboard() -> dict:
        return store.leaderboard()

    return app
