"""Where a settling rule would have stopped the self-training students, and what it would cost.

    python experiments/student_settling.py [RECORDS.jsonl]
        [--out experiments/results/student_settling]

Trains nothing. Reads the records of students trained every epoch (`make study
NAME=flagship-student-settling`): each holds the share of target rows every epoch changed
(`self_training.changed_by_epoch` in the report) and the student's target accuracy after every
epoch (`self_training/student_acc_epoch/<k>`, scored against the generated answer key). For each
rule (`self_training.settled_below`, `settled_epochs`) it finds the epoch the rule would have
stopped at (hackrobust/training/settling.py stops the same way) and tables that epoch, the
accuracy there beside the last epoch's, and the student's seconds it would have saved (its
seconds per epoch times the epochs not trained). The stopped student's weights are the ones the
full run had after that epoch, since a stop changes nothing before it; but the run's check that
may keep the head instead (held-out split, revealed labels) is not replayed here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hackrobust.training.settling import settled

RESULTS = Path(__file__).parent / "results"
RECORDS = RESULTS / "hackathon_suite_student_settling.jsonl"
TOLERANCES = (0.0, 0.001, 0.002, 0.005, 0.01)
PATIENCES = (1, 2, 3)


def stop_epoch(changed: list[float], tolerance: float, patience: int) -> int:
    """The epoch `PredictionsSettle` stops after: the first at which its rule (`settled`) holds,
    or the last epoch."""
    stops = (
        epoch for epoch in range(1, len(changed)) if settled(changed[:epoch], tolerance, patience)
    )
    return next(stops, len(changed))


def trajectories(records: Path) -> list[dict]:
    """Per run whose student trained: its set, seed, changes, accuracies and student seconds."""
    runs = []
    for line in records.read_text().splitlines():
        record = json.loads(line)
        section = record["report"].get("self_training", {})
        changed = section.get("changed_by_epoch")
        if not changed:
            continue
        metrics = record["metrics"]
        accuracy = [
            metrics[f"self_training/student_acc_epoch/{k}"] for k in range(len(changed) + 1)
        ]
        runs.append({
            "run": f"{record['dataset']} seed {record['seed']}",
            "changed": changed,
            "accuracy": accuracy,
            "seconds_per_epoch": metrics["timings/self_training"] / len(changed),
        })  # fmt: skip
    return runs


def table(runs: list[dict]) -> str:
    """One row per rule: per run, the epoch it stops after and the accuracy there (the last
    epoch's in the header); the student seconds saved over all runs, and the most accuracy any
    run lost against its last epoch."""
    header = " | ".join(f"{run['run']} (end {run['accuracy'][-1]:.4f})" for run in runs)
    lines = [
        f"| settled_below | settled_epochs | {header} | seconds saved | most accuracy lost |",
        "|---|---|" + "---|" * len(runs) + "---|---|",
    ]
    for tolerance in TOLERANCES:
        for patience in PATIENCES:
            stops = [stop_epoch(run["changed"], tolerance, patience) for run in runs]
            cells = " | ".join(
                f"{stop}: {run['accuracy'][stop]:.4f}"
                for stop, run in zip(stops, runs, strict=True)
            )
            saved = sum(
                run["seconds_per_epoch"] * (len(run["changed"]) - stop)
                for stop, run in zip(stops, runs, strict=True)
            )
            lost = max(
                run["accuracy"][-1] - run["accuracy"][stop]
                for stop, run in zip(stops, runs, strict=True)
            )
            lines.append(f"| {tolerance} | {patience} | {cells} | {saved:.0f} | {lost:.4f} |")
    return "\n".join(lines)


def trajectory_table(runs: list[dict]) -> str:
    """Each run's accuracy and changed share per epoch."""
    lines = ["| run | epoch | changed | accuracy |", "|---|---|---|---|"]
    for run in runs:
        lines.append(f"| {run['run']} | 0 | | {run['accuracy'][0]:.4f} |")
        for epoch, share in enumerate(run["changed"], start=1):
            lines.append(f"| {run['run']} | {epoch} | {share:.4f} | {run['accuracy'][epoch]:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("records", nargs="?", type=Path, default=RECORDS)
    parser.add_argument("--out", type=Path, default=RESULTS / "student_settling")
    args = parser.parse_args(argv)
    runs = trajectories(args.records)
    if not runs:
        raise SystemExit(f"error: no record in {args.records} holds a student's epochs")
    text = (
        "# When the students settle\n\n"
        f"Regenerate: `python experiments/student_settling.py {args.records}` (trains nothing; "
        "reads the records of `make study NAME=flagship-student-settling`). Per rule, where it "
        "stops each student (epoch: accuracy there, scored with the answer key; the run's check "
        "that may keep the head is not replayed), the student seconds saved over all runs and "
        "the most accuracy a run lost against its last epoch.\n\n"
        f"{table(runs)}\n\n## Per epoch\n\n{trajectory_table(runs)}\n"
    )
    args.out.with_suffix(".md").write_text(text)
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
