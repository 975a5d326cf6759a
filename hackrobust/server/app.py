"""The HTTP face of the store: the hackathon42 reveal protocol, submissions, the leaderboard.

Abuse is cheap to refuse: the slow password hash runs on a small pool of its own, outside any
database lock and off the threads that serve the leaderboard; `/submit/` takes the team's
credentials in an HTTP Basic `Authorization` header and refuses a missing one (401) or an
upload beyond `max_upload` bytes (413, from its `Content-Length`) before reading the body.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

from fastapi import FastAPI, Form, HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from hackrobust.server.store import ID_MAX, ID_MIN, Credential, Store, StoreError, check_id
from hackrobust.submission import parse_labels

DEFAULT_BUDGET = 5
DEFAULT_MAX_UPLOAD = 8 * 2**20  # bytes: a CSV of over a million labels
BASIC_AUTH = {"WWW-Authenticate": 'Basic realm="hackrobust"'}

# An id SQLite can store (a signed 64-bit integer); beyond it a 422, not a 500.
Id = Annotated[int, Form(ge=ID_MIN, le=ID_MAX)]


def _refuse(error: StoreError) -> HTTPException:
    headers = BASIC_AUTH if error.status == 401 else None
    return HTTPException(status_code=error.status, detail=str(error), headers=headers)


def basic_credentials(request: Request) -> tuple[str, str]:
    """The username and password of an `Authorization: Basic` header (UTF-8, else Latin-1)."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    try:
        if scheme.lower() != "basic":
            raise ValueError
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (ValueError, binascii.Error):
        raise HTTPException(
            401,
            "send the team's username and password as HTTP Basic authentication (an "
            "Authorization header), as `python -m hackrobust.leaderboard submit` does",
            headers=BASIC_AUTH,
        ) from None
    try:
        text = decoded.decode()
    except UnicodeDecodeError:
        text = decoded.decode("latin-1")
    username, _, password = text.partition(":")
    return username, password


def check_upload_size(request: Request, max_upload: int) -> None:
    """411 without a Content-Length (a chunked upload would have to be read to be measured),
    413 beyond `max_upload` bytes: before the body is read."""
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        raise HTTPException(411, "send the upload with its Content-Length")
    if int(length) > max_upload:
        raise HTTPException(
            413, f"the upload has {int(length)} bytes, more than the {max_upload} allowed"
        )


async def read_submission(request: Request) -> tuple[int, str]:
    """The multipart form's `exercise_id` and the text of its `file` (the CSV)."""
    async with request.form(max_files=1, max_fields=8) as form:
        upload, exercise = form.get("file"), form.get("exercise_id")
        if not isinstance(upload, UploadFile):
            raise HTTPException(422, "the form has no file: send the CSV as `file`")
        try:
            exercise_id = check_id(int(str(exercise)), "exercise_id")
        except (TypeError, ValueError):
            raise HTTPException(
                422, f"exercise_id {str(exercise)[:40]!r} is not an integer"
            ) from None
        return exercise_id, (await upload.read()).decode(errors="replace")


def create_app(
    db_path: str | os.PathLike,
    budget: int = DEFAULT_BUDGET,
    max_upload: int = DEFAULT_MAX_UPLOAD,
    hash_workers: int | None = None,
) -> FastAPI:
    """`hash_workers`: threads that hash passwords (default: one a CPU core, at most 4; each
    hash holds 16 MiB); requests beyond them wait their turn without holding anything else."""
    store, workers = Store(db_path), hash_workers or min(4, os.cpu_count() or 1)
    hashing = ThreadPoolExecutor(workers, thread_name_prefix="password-hash")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        hashing.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="hackrobust reveal and leaderboard server", lifespan=lifespan)

    async def verify(username: str, password: str) -> Credential:
        return await asyncio.get_running_loop().run_in_executor(
            hashing, store.verify, username, password
        )

    @app.post("/reveal/")
    async def reveal(
        username: Annotated[str, Form()],
        password: Annotated[str, Form()],
        exercise_id: Id,
        datum_id: Id,
    ) -> dict:
        try:
            credential = await verify(username, password)
            return await run_in_threadpool(
                store.reveal_as, credential, exercise_id, datum_id, budget
            )
        except StoreError as error:
            raise _refuse(error) from None

    @app.post("/submit/")
    async def submit(request: Request) -> dict:
        """Multipart form: `file` (the CSV) and `exercise_id`; the credentials in the header."""
        username, password = basic_credentials(request)  # 401 before the body is read
        check_upload_size(request, max_upload)
        try:
            credential = await verify(username, password)
            exercise_id, text = await read_submission(request)  # only now is the body read
            labels = (await run_in_threadpool(parse_labels, text)).tolist()
            score = await run_in_threadpool(store.submit_as, credential, exercise_id, labels)
        except ValueError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None
        except StoreError as error:
            raise _refuse(error) from None
        return {"exercise_id": exercise_id, "score": score}

    @app.get("/leaderboard/")
    def leaderboard() -> dict:
        return store.leaderboard()

    return app
