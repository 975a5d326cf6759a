"""Client of a leaderboard server: submit a CSV (once per exercise), read the leaderboard.

    python -m hackrobust.leaderboard submit URL EXERCISE_ID OUT.csv
    python -m hackrobust.leaderboard show URL

Credentials come from HACKROBUST_REVEAL_USERNAME and HACKROBUST_REVEAL_PASSWORD; a submission
sends them as HTTP Basic authentication, which the server checks before it reads the upload.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import requests

from hackrobust.reveal.client import PASSWORD_ENV, USERNAME_ENV, RevealError
from hackrobust.submission import read_submission


def submit_csv(
    url: str, exercise_id: int, csv_path: str | os.PathLike, timeout: float = 30
) -> dict:
    """Upload a submission CSV after checking its format locally; returns the server's answer."""
    path = Path(csv_path)
    read_submission(path)  # a malformed file fails here, before the one submission is used
    missing = [name for name in (USERNAME_ENV, PASSWORD_ENV) if not os.environ.get(name)]
    if missing:
        raise RevealError(f"set {' and '.join(missing)} in the environment to submit")
    username, password = os.environ[USERNAME_ENV], os.environ[PASSWORD_ENV]
    # In the header (UTF-8: requests would encode str as Latin-1), so that the server refuses
    # bad credentials before reading the upload; also in the form, for servers that read them
    # there (this project's server ignores them).
    auth = (username.encode(), password.encode())
    form = {"username": username, "password": password, "exercise_id": exercise_id}
    with open(path, "rb") as handle:
        response = requests.post(
            f"{url.rstrip('/')}/submit/",
            data=form,
            files={"file": (path.name, handle, "text/csv")},
            auth=auth,
            timeout=timeout,
        )
    if response.status_code >= 400:
        raise RevealError(f"submission refused: HTTP {response.status_code} {response.text[:300]}")
    return response.json()


def leaderboard(url: str, timeout: float = 30) -> dict:
    response = requests.get(f"{url.rstrip('/')}/leaderboard/", timeout=timeout)
    response.raise_for_status()
    return response.json()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m hackrobust.leaderboard",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    submit = commands.add_parser("submit")
    submit.add_argument("url")
    submit.add_argument("exercise_id", type=int)
    submit.add_argument("csv")
    show = commands.add_parser("show")
    show.add_argument("url")
    args = parser.parse_args(argv)
    try:
        if args.command == "submit":
            print(json.dumps(submit_csv(args.url, args.exercise_id, args.csv)))
        else:
            print(json.dumps(leaderboard(args.url), indent=2))
    except (RevealError, ValueError, OSError, requests.RequestException) as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")


if __name__ == "__main__":
    main()
