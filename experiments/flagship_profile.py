"""Where a flagship run's time goes: seconds per stage under each speed option, in one study.

    python experiments/flagship_profile.py [--dataset mnist_sum_bis] [--seed 0] [--epochs 2]
                                           [--variants base bf16 channels_last bf16_channels_last]
                                           [--py-spy]

Runs `experiment=flagship` with every stage cut to `--epochs` epochs (pretraining, DivDis, the
student), once per variant, one after the other, and tables each stage's seconds (the run's own
`timings/<stage>`), the total, and its ratio to the first variant's, all measured in this study
on this machine. Per-epoch costs, not the recipe's accuracy: the target accuracy after so few
epochs is shown for reading only. With `--py-spy` the first variant runs under py-spy's sampling
profiler (`pip install py-spy`), and the table adds the share of samples in each kind of work.
Finished runs are kept in `<out>.jsonl`; a stopped study resumes. Real MNIST from
$HACKROBUST_DATA_DIR.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from hackathon_suite import append_record, environment, load_records

RESULTS = Path(__file__).parent / "results"
VARIANTS = {
    "base": [],
    "bf16": ["+trainer.precision=bf16-mixed"],
    "channels_last": ["model.channels_last=true"],
    "bf16_channels_last": ["+trainer.precision=bf16-mixed", "model.channels_last=true"],
}
STAGES = ["setup", "pretrain", "fit", "query", "predict", "attribution_maps", "self_training"]
# py-spy frames (innermost function names) by the kind of work they do.
KINDS = {
    "convolution forward": ("_conv_forward", "ConvTranspose2d.forward"),
    "backward (autograd)": ("_engine_run_backward",),
    "batch norm": ("batch_norm",),
    "max pool": ("_max_pool2d",),
    "relu": ("relu",),
}


def command(args, variant: str, run_dir: Path) -> list[str]:
    epochs = args.epochs
    return [
        sys.executable, "-m", "hackrobust.train", "experiment=flagship",
        f"dataset={args.dataset}", f"seed={args.seed}", "query=oracle", "logger=none",
        f"trainer.max_epochs={epochs}", f"pretrain.epochs={epochs}",
        f"self_training.epochs={epochs}", "trainer.enable_progress_bar=false",
        *VARIANTS[variant], f"hydra.run.dir={run_dir}",
    ]  # fmt: skip


def run(args, variant: str, profile: bool, log_dir: Path) -> dict:
    run_dir = log_dir / variant
    argv = command(args, variant, run_dir)
    speedscope = log_dir / f"{variant}.speedscope.json"
    if profile:
        argv = [py_spy(), "record", "-r", "20", "-f", "speedscope", "-o", str(speedscope), "--"]
        argv += command(args, variant, run_dir)
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise RuntimeError(f"{variant} failed:\n{done.stderr[-3000:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    record = {"variant": variant, "dataset": args.dataset, "seed": args.seed}
    record |= {"epochs": args.epochs, "metrics": metrics, "machine": environment()}
    if profile:
        record["profile"] = sample_shares(speedscope)
    return record


def py_spy() -> str | None:
    """py-spy on the PATH, or beside this Python (a virtual environment's bin/)."""
    beside = Path(sys.executable).with_name("py-spy")
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def sample_shares(path: Path, top: int = 40) -> dict[str, float]:
    """The share of py-spy's samples whose innermost frame is each function (the `top` ones)."""
    data = json.loads(path.read_text())
    frames, profile = data["shared"]["frames"], data["profiles"][0]
    counts, total = collections.Counter(), 0.0
    for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
        if stack:
            total += weight
            counts[frames[stack[-1]]["name"]] += weight
    return {name: count / total for name, count in counts.most_common(top)}


def kind_of(frame: str) -> str:
    """The kind of work of a py-spy frame name such as `Conv2d._conv_forward`."""
    last = frame.rsplit(".", 1)[-1]
    return next((k for k, names in KINDS.items() if frame in names or last in names), "other")


def table(records: list[dict]) -> str:
    base = records[0]["metrics"]["timings/total"]
    head = "| variant | " + " | ".join(STAGES) + " | total (s) | / first | target acc |"
    rows = [head, "|" + "---|" * (len(STAGES) + 4)]
    for r in records:
        m = r["metrics"]
        cells = [f"{m.get(f'timings/{s}', 0.0):.1f}" for s in STAGES]
        total = m["timings/total"]
        acc = m.get("target/final_acc", float("nan"))
        rows.append(
            f"| {r['variant']} | {' | '.join(cells)} | {total:.1f} | {total / base:.2f} "
            f"| {acc:.3f} |"
        )
    return "\n".join(rows)


def shares_table(record: dict, top: int = 8) -> str:
    """The share of samples per kind of work, then the busiest innermost frames."""
    shares = record["profile"]
    kinds = collections.Counter()
    for frame, share in shares.items():
        kinds[kind_of(frame)] += share
    kinds["other"] += 1 - sum(shares.values())  # the frames past the top ones kept
    rows = ["| work | share of samples |", "|---|---|"]
    rows += [f"| {kind} | {kinds[kind]:.0%} |" for kind in [*KINDS, "other"]]
    rows += ["", "| busiest innermost frames | share |", "|---|---|"]
    rows += [f"| `{frame}` | {share:.0%} |" for frame, share in list(shares.items())[:top]]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="mnist_sum_bis")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--py-spy", action="store_true", help="profile the first variant")
    parser.add_argument("--out", type=Path, default=RESULTS / "flagship_profile")
    args = parser.parse_args()
    if args.py_spy and not py_spy():
        parser.error("--py-spy needs py-spy on the PATH: pip install py-spy")
    store = args.out.with_suffix(".jsonl")
    key = (args.dataset, args.seed, args.epochs)
    done = {
        r["variant"] for r in load_records(store) if (r["dataset"], r["seed"], r["epochs"]) == key
    }
    with tempfile.TemporaryDirectory() as log_dir:
        for i, variant in enumerate(args.variants):
            if variant not in done:
                record = run(args, variant, args.py_spy and i == 0, Path(log_dir))
                append_record(store, record)
                print(variant, record["metrics"]["timings/total"], flush=True)
    records = [r for r in load_records(store) if (r["dataset"], r["seed"], r["epochs"]) == key]
    records.sort(
        key=lambda r: args.variants.index(r["variant"]) if r["variant"] in args.variants else 99
    )
    machine = records[0]["machine"]
    profiled = next((r for r in records if "profile" in r), None)
    text = (
        "# Where a flagship run's time goes\n\n"
        f"Regenerate: `python experiments/flagship_profile.py --dataset {args.dataset} "
        f"--seed {args.seed} --epochs {args.epochs}{' --py-spy' if profiled else ''}`.\n"
        f"CPU {machine['cpu']}, torch {machine['torch']}. `experiment=flagship` on "
        f"`{args.dataset}` (seed {args.seed}), every stage cut to {args.epochs} epochs; seconds "
        "per stage from the run's `timings/<stage>`, the variants run one after the other in "
        "this study. Target accuracy after so few epochs: for reading only.\n\n"
        f"{table(records)}\n"
    )
    if profiled:
        text += (
            f"\nWhere the `{profiled['variant']}` run's samples fell (py-spy, 20 Hz, innermost "
            f"frame):\n\n{shares_table(profiled)}\n"
        )
    args.out.with_suffix(".md").write_text(text)
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
