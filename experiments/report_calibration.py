"""How well the reports' verdicts and intervals held, over every study's records.

    python experiments/report_calibration.py [--out experiments/results/report_calibration]

Trains nothing. Reads every `experiments/results/*.jsonl` record that carries a report with an
interval, and compares the report with the accuracy the run's CSV scored against the generated
answer key (`target/final_acc`, the chosen head's `target/acc` before self-training existed).
Two counts per study and per estimate basis: the runs whose report said "submit" although the
CSV scored below the default (a bad submission: worse than none), and how often the 90 %
interval held the CSV's accuracy (its coverage). The records were written by the report code of
their commit, so a study's rows say how that code's reports held, not today's; the first table
counts only the reports today's rule would write as they stand: those that carry today's
`rule_version` (hackrobust/query/report.py: RULE_VERSION), and those of rule 2 whose estimate the
class shares did not cap, the one thing rule 3 changed (rule 2 wrote every record since the
commit `--since`, RULE_2_SINCE, even before reports said their rule).
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from hackrobust.query.report import CAPPED, RULE_VERSION

RESULTS = Path(__file__).parent / "results"
# The rule `of_todays_rule` knows which earlier reports to count for.
TODAYS_RULE = 3
# The commit that brought rule 2 in: the records since, before reports said their rule, are its.
RULE_2_SINCE = "a950c14"
# The start of each kind of `estimate_basis` (hackrobust/query/report.py), and its name here.
BASES = {
    "head agreement": "heads told apart",
    "the chosen head contradicts": "chosen head contradicted",
    "revealed labels only": "revealed labels only",
    "no target label": "nothing revealed",
}


def scored_reports(results: Path) -> list[dict]:
    """One row per recorded run with a report interval and a target accuracy; a record that one
    study copied from another (the same line) counts once."""
    rows, seen = [], set()
    for store in sorted(results.glob("*.jsonl")):
        for line in store.read_text().splitlines():
            if line in seen:
                continue
            seen.add(line)
            record = json.loads(line)
            report, metrics = record.get("report"), record.get("metrics", {})
            accuracy = metrics.get("target/final_acc", metrics.get("target/acc"))
            if not report or "estimate_interval_90" not in report or accuracy is None:
                continue
            low, high = report["estimate_interval_90"]
            rows.append({
                "study": store.stem,
                "commit": record.get("commit", "unknown"),
                "rule_version": report.get("rule_version"),
                "capped": CAPPED in report["estimate_basis"],
                "basis": basis_of(report["estimate_basis"]),
                "submitted": report["recommendation"] == "submit",
                "below_default": accuracy < report["default_score"],
                "covered": low - 1e-9 <= accuracy <= high + 1e-9,
                "above": accuracy > high + 1e-9,
            })  # fmt: skip
    return rows


@functools.cache
def descends_from(commit: str, ancestor: str) -> bool:
    """Whether `commit` is `ancestor` or comes after it (False for an unknown commit)."""
    done = subprocess.run(["git", "merge-base", "--is-ancestor", ancestor, commit],
                          capture_output=True)  # fmt: skip
    return done.returncode == 0


def of_todays_rule(row: dict, since: str) -> bool:
    """Whether today's rule would write the row's report as it stands: it wrote it, or rule 2
    did (it says so, or was written at `since` or after) and the class shares did not cap it."""
    rule = row["rule_version"]
    if rule is None and descends_from(row["commit"], since):
        rule = 2
    return rule == TODAYS_RULE or (rule == 2 and not row["capped"])


def basis_of(text: str) -> str:
    return next((name for start, name in BASES.items() if text.startswith(start)), "other")


def table(rows: list[dict], key: str) -> list[str]:
    """Per value of `key`: runs, submits, bad submits, and the interval's coverage."""
    groups = defaultdict(list)
    for row in rows:
        groups[row[key]].append(row)
    lines = [
        f"| {key} | runs | said submit | submit below the default | interval held the accuracy "
        "| accuracy above the interval | accuracy below it |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in [*sorted(groups), "all"]:
        group = rows if name == "all" else groups[name]
        n = len(group)
        covered = sum(r["covered"] for r in group)
        above = sum(r["above"] for r in group)
        lines.append(
            f"| {name} | {n} | {sum(r['submitted'] for r in group)} "
            f"| {sum(r['submitted'] and r['below_default'] for r in group)} "
            f"| {covered} ({covered / n:.1%}) | {above / n:.1%} | {(n - covered - above) / n:.1%} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=RESULTS / "report_calibration")
    parser.add_argument(
        "--since",
        default=RULE_2_SINCE,
        help="the commit from which records that do not say their rule are rule 2's",
    )
    args = parser.parse_args()
    rows = scored_reports(args.results)
    if not rows:
        sys.exit(f"no record with a report interval under {args.results}")
    if RULE_VERSION != TODAYS_RULE:
        sys.exit(f"error: report.py's rule is version {RULE_VERSION}; say in of_todays_rule "
                 "which earlier reports it writes alike, then set TODAYS_RULE")  # fmt: skip
    current = [row for row in rows if of_todays_rule(row, args.since)]
    command = " ".join(["python", Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    text = "\n".join([
        "# The reports against the truth: verdicts and 90 % intervals",
        "",
        (__doc__.split("\n\n", 2)[2]).strip(),
        "",
        f"Regenerate: `{command}` ({len(rows)} runs).",
        "",
        f"## Today's rule (version {RULE_VERSION}): {len(current)} runs",
        "",
        *(table(current, "basis") if current else ["None yet: run a study again."]),
        "",
        "## Every record, by estimate basis",
        "",
        *table(rows, "basis"),
        "",
        "## Every record, by study",
        "",
        *table(rows, "study"),
        "",
    ])  # fmt: skip
    args.out.with_suffix(".md").write_text(text)
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
