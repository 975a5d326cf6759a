"""Where a flagship run's time goes: seconds per stage under each speed option, in one study.

    python experiments/flagship_profile.py [--datasets mnist_sum_bis] [--seed 0] [--epochs 2]
                                           [--variants base bf16 channels_last bf16_channels_last]
                                           [--experiment flagship] [--extra trainer=gpu ...]
                                           [--py-spy] [--out experiments/results/NAME]

Runs `experiment=flagship` on each dataset with every stage cut to `--epochs` epochs
(pretraining, DivDis, the student; 0 keeps the recipe's own), once per variant, one after the
other, and tables each stage's seconds (the run's own `timings/<stage>`), the total, and its
ratio to the dataset's first variant, all measured in this study on this machine. `--extra`
overrides go to every run: `--extra trainer=gpu` times the recipe on a GPU, unchanged (make
study NAME=flagship-gpu). With cut epochs these are per-epoch costs, not the recipe's accuracy:
the target accuracy is shown for reading only. With `--py-spy` the first variant runs under py-spy's sampling
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

from hackrobust.utils.run_dir import set_aside

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


def command(args, dataset: str, variant: str, run_dir: Path) -> list[str]:
    epochs = args.epochs
    cut = [f"trainer.max_epochs={epochs}", f"pretrain.epochs={epochs}",
           f"self_training.epochs={epochs}"] if epochs else []  # fmt: skip
    return [
        sys.executable, "-m", "hackrobust.train", f"experiment={args.experiment}",
        f"dataset={dataset}", f"seed={args.seed}", "query=oracle", "logger=none", *cut,
        "trainer.enable_progress_bar=false", *VARIANTS[variant], *args.extra,
        f"hydra.run.dir={run_dir}",
    ]  # fmt: skip


def run(args, dataset: str, variant: str, profile: bool, log_dir: Path) -> dict:
    run_dir = set_aside(log_dir / f"{dataset}-{variant}")
    argv = command(args, dataset, variant, run_dir)
    speedscope = log_dir / f"{dataset}-{variant}.speedscope.json"
    if profile:
        argv = [py_spy(), "record", "-r", "20", "-f", "speedscope", "-o", str(speedscope), "--"]
        argv += command(args, dataset, variant, run_dir)
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise RuntimeError(f"{dataset} {variant} failed:\n{done.stderr[-3000:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    record = {"variant": variant, "dataset": dataset, "seed": args.seed, "epochs": args.epochs}
    record |= {"extra": args.extra, "experiment": args.experiment}
    record |= {"metrics": metrics, "machine": environment() | {"device": device()}}
    if profile:
        record["profile"] = sample_shares(speedscope)
    return record


def device() -> str:
    """The accelerator a run would use: the GPU's name, else "cpu"."""
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


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
    first = {}  # each dataset's first variant's total: the ratios' baseline
    head = "| dataset | variant | " + " | ".join(STAGES) + " | total (s) | / first | target acc |"
    rows = [head, "|" + "---|" * (len(STAGES) + 5)]
    for r in records:
        m = r["metrics"]
        cells = [f"{m.get(f'timings/{s}', 0.0):.1f}" for s in STAGES]
        total = m["timings/total"]
        base = first.setdefault(r["dataset"], total)
        acc = m.get("target/final_acc", float("nan"))
        rows.append(
            f"| `{r['dataset']}` | {r['variant']} | {' | '.join(cells)} | {total:.1f} "
            f"| {total / base:.2f} | {acc:.3f} |"
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
    parser.add_argument("--datasets", nargs="+", default=["mnist_sum_bis"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=2, help="0: the recipe's own")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--experiment", default="flagship")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides for every run")
    parser.add_argument("--py-spy", action="store_true", help="profile the first run")
    parser.add_argument("--out", type=Path, default=RESULTS / "flagship_profile")
    args = parser.parse_args()
    if args.py_spy and not py_spy():
        parser.error("--py-spy needs py-spy on the PATH: pip install py-spy")
    store = args.out.with_suffix(".jsonl")

    def ours(r: dict) -> bool:
        return (r["seed"], r["epochs"], r.get("extra", []), r.get("experiment", "flagship")) == (
            args.seed, args.epochs, args.extra, args.experiment,
        )  # fmt: skip

    done = {(r["dataset"], r["variant"]) for r in load_records(store) if ours(r)}
    runs = [(d, v) for d in args.datasets for v in args.variants]
    with tempfile.TemporaryDirectory() as log_dir:
        for i, (dataset, variant) in enumerate(runs):
            if (dataset, variant) not in done:
                record = run(args, dataset, variant, args.py_spy and i == 0, Path(log_dir))
                append_record(store, record)
                print(dataset, variant, record["metrics"]["timings/total"], flush=True)
    records = [r for r in load_records(store) if ours(r) and (r["dataset"], r["variant"]) in runs]
    records.sort(key=lambda r: runs.index((r["dataset"], r["variant"])))
    args.out.with_suffix(".md").write_text(report(records, sys.argv[1:]))
    print(f"wrote {args.out.with_suffix('.md')}")


def report(records: list[dict], argv: list[str]) -> str:
    machine = records[0]["machine"]
    profiled = next((r for r in records if "profile" in r), None)
    r0 = records[0]
    cut = f"every stage cut to {r0['epochs']} epochs" if r0["epochs"] else "the recipe's epochs"
    extra = f" with `{' '.join(r0['extra'])}`" if r0.get("extra") else ""
    text = (
        "# Where a flagship run's time goes\n\n"
        f"Regenerate: `python experiments/flagship_profile.py {' '.join(argv)}`.\n"
        f"Device {machine.get('device', 'cpu')}; CPU {machine['cpu']}, torch {machine['torch']}. "
        f"`experiment={r0.get('experiment', 'flagship')}`{extra}, seed {r0['seed']}, {cut}; "
        "seconds per stage from the run's `timings/<stage>`, the runs one after the other in "
        "this study. Target accuracy after cut epochs: for reading only.\n\n"
        f"{table(records)}\n"
    )
    if profiled:
        text += (
            f"\nWhere the `{profiled['dataset']}` `{profiled['variant']}` run's samples fell "
            f"(py-spy, 20 Hz, innermost frame):\n\n{shares_table(profiled)}\n"
        )
    return text


if __name__ == "__main__":
    main()
