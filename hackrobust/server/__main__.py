"""python -m hackrobust.server [serve|add-team|add-exercise]: a local hackathon42 server.

python -m hackrobust.server add-team my_team  # password: HACKROBUST_SERVER_PASSWORD or a prompt
python -m hackrobust.server add-exercise 3 DATASET_DIR  # a folder holding y_val.npy
python -m hackrobust.server serve --port 8000  # no command: serve on 127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from hackrobust.server.store import Store

DEFAULT_DB = "hackrobust_server.sqlite"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m hackrobust.server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--db", default=os.environ.get("HACKROBUST_SERVER_DB", DEFAULT_DB))
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--budget", type=int, default=5, help="labels per team and exercise")
    serve.add_argument(
        "--max-upload-mb", type=float, default=8, help="largest submission upload, in MiB"
    )
    team = commands.add_parser("add-team", help="add a team, or set its password")
    team.add_argument("username")
    exercise = commands.add_parser("add-exercise", help="register a dataset folder as an exercise")
    exercise.add_argument("exercise_id", type=int)
    exercise.add_argument("dataset_dir")
    exercise.add_argument("--name")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args([*argv, "serve"])

    if args.command == "serve":
        import uvicorn

        from hackrobust.server.app import create_app

        app = create_app(args.db, args.budget, max_upload=int(args.max_upload_mb * 2**20))
        uvicorn.run(app, host=args.host, port=args.port)
    elif args.command == "add-team":
        password = os.environ.get("HACKROBUST_SERVER_PASSWORD") or getpass.getpass(
            f"password for {args.username}: "
        )
        Store(args.db).add_team(args.username, password)
        print(f"team {args.username} saved in {args.db}")
    else:
        Store(args.db).add_exercise(args.exercise_id, args.dataset_dir, args.name)
        print(f"exercise {args.exercise_id} registered from {args.dataset_dir} in {args.db}")


if __name__ == "__main__":
    main()
