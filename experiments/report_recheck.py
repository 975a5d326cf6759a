"""Run again, under today's code, every recorded run whose report said "submit" below the default.

    python experiments/report_recheck.py [--results experiments/results] [--dry-run]

The records in `experiments/results/*.jsonl` were written by the report code of their commit.
Those whose report said "submit" while the CSV scored below the default (a bad submission: worse
than none) cannot be scored again by today's rule: they keep no probabilities. So each is run
again with its recorded overrides, one at a time, and recorded in `report_recheck.jsonl` beside
what its report said then; `make study NAME=report-calibration` counts the new records with
today's rule. The table sets the two verdicts side by side. Resumable: a run already in the
store under today's report rule (`rule_version`) is not run again; one made under an earlier rule
is, and its new record replaces the old.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hackathon_suite import commit_id, environment, load_records

from hackrobust.query.report import RULE_VERSION

RESULTS = Path(__file__).parent / "results"
STORE = "report_recheck"


def bad_submits(results: Path) -> list[dict]:
    """Every record (but the recheck's own) whose report said submit below the default."""
    found = []
    for store in sorted(results.glob("*.jsonl")):
        if store.stem == STORE:
            continue
        for line in store.read_text().splitlines():
            record = json.loads(line)
            report, metrics = record.get("report") or {}, record.get("metrics", {})
            accuracy = metrics.get("target/final_acc", metrics.get("target/acc"))
            if report.get("recommendation") == "submit" and accuracy < report["default_score"]:
                found.append({"study": store.stem, **record, "accuracy": accuracy})
    return found


def rerun(old: dict, run_dir: Path) -> dict:
    """`old`'s overrides trained again; its record, with what `old` said beside it."""
    overrides = shlex.split(old["overrides"])
    command = [sys.executable, "-m", "hackrobust.train", *overrides, f"hydra.run.dir={run_dir}"]
    start = time.time()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise RuntimeError(f"{old['overrides']} failed:\n{done.stderr[-3000:]}")
    then = old["report"]
    return {
        "method": old.get("method"),
        "dataset": old["dataset"],
        "seed": old["seed"],
        "overrides": old["overrides"],
        "seconds": time.time() - start,
        "metrics": json.loads((run_dir / "metrics.json").read_text()),
        "report": json.loads((run_dir / "submission.report.json").read_text()),
        "then": {
            "study": old["study"],
            "commit": old.get("commit"),
            "accuracy": old["accuracy"],
            "interval": then["estimate_interval_90"],
            "recommendation": then["recommendation"],
        },  # fmt: skip
        "commit": commit_id(),
        "machine": environment(),
    }


def replace_record(store: Path, record: dict) -> None:
    """Write `record` to `store` in place of any record of the same overrides (whole file
    rewritten through a temporary one, so an interruption loses nothing)."""
    kept = [r for r in load_records(store) if r["overrides"] != record["overrides"]]
    temporary = store.with_suffix(".jsonl.tmp")
    temporary.write_text("".join(json.dumps(r) + "\n" for r in [*kept, record]))
    temporary.replace(store)


def verdict(recommendation: str) -> str:
    return "submit" if recommendation == "submit" else "keep the default"


def table(records: list[dict]) -> str:
    lines = [
        "| run (overrides) | then: commit | accuracy | interval | said | today: accuracy "
        "| interval | said | bad submit today |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for record in records:
        then, report = record["then"], record["report"]
        accuracy = record["metrics"]["target/final_acc"]
        said = verdict(report["recommendation"])
        bad = said == "submit" and accuracy < report["default_score"]
        lines.append(
            f"| `{record['overrides']}` | {then['commit']} | {then['accuracy']:.3f} "
            f"| {then['interval']} | {verdict(then['recommendation'])} | {accuracy:.3f} "
            f"| {report['estimate_interval_90']} | {said} | {'yes' if bad else 'no'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--dry-run", action="store_true", help="list the runs, train nothing")
    args = parser.parse_args()
    store = args.results / f"{STORE}.jsonl"
    done = {
        r["overrides"]
        for r in load_records(store)
        if r["report"].get("rule_version") == RULE_VERSION
    }
    todo = [old for old in bad_submits(args.results) if old["overrides"] not in done]
    for old in todo:
        print(f"{'would run' if args.dry_run else 'running'}: {old['overrides']}", flush=True)
        if not args.dry_run:
            with tempfile.TemporaryDirectory() as run_dir:
                replace_record(store, rerun(old, Path(run_dir) / "run"))
    records = load_records(store)
    if records:
        text = (
            "# The bad submissions on record, run again under today's code\n\n"
            f"{__doc__.split(chr(10) * 2, 2)[2].strip()}\n\n"
            "Regenerate: `python experiments/report_recheck.py` (one run at a time).\n\n"
            f"{table(records)}\n"
        )
        store.with_suffix(".md").write_text(text)
        print(f"wrote {store.with_suffix('.md')}")


if __name__ == "__main__":
    main()
