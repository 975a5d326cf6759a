"""The hackathon suite: every dataset x method x seed, target accuracy and labels spent.

    python experiments/hackathon_suite.py [--methods divdis erm oracle] [--datasets all]
                                          [--seeds 0 1 2] [--jobs 1]

Runs `python -m hackrobust.train method=<m> dataset=<d> seed=<s> query=oracle` for each triple
(multi-head methods spend at most 5 labels from the generated answer key through the same
budget-and-ledger code as the API; ERM spends none), `--jobs` runs at a time (one unless
told; on a GPU machine several share the device). Each finished run is
appended to `<out>.jsonl`, so an interrupted study resumes where it stopped (`--fresh` starts over).
`--datasets` takes names or the groups "mnist" (the ten MNIST sets) and "all" (those and the
two hard image sets, vehicle_animal and humans, where the default is 0.5). The Markdown table
goes to `<out>.md`: per dataset and method, the target accuracy of the head the run submits
(mean ± std and min over seeds), labels spent, how many runs the report said to submit, and the
score those decisions earn against the default of not submitting; a dot plot of that score to
`<out>.png`.
A --methods name NAME with a config conf/experiment/suite/NAME.yaml stands for
`experiment=suite/NAME` (the study variants: divdis_pretrained, oracle_16x, topk_low_mix...; each
file's comment says what it is); `experiment/NAME` stands for `experiment=NAME` (the flagship:
experiment/flagship); any other name for `method=NAME`. The ceilings (CEILINGS: oracle and its
larger labeled sets) are ERM with unambiguous labels, not contenders; some variants run on
some sets only (ONLY_ON).
Real images come from $HACKROBUST_DATA_DIR; `--offline` uses the bundled stand-ins.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from hackrobust.data.exercises import HARD_EXERCISES, default_score
from hackrobust.utils.run_dir import set_aside

MNIST = [
    "mnist_cc", "mnist_constant_image", "mnist_constant_image_random_row",
    "mnist_uniform_color_random_row", "mnist_uniform_color_low_mix_rate", "mnist_sum",
    "mnist_sum_bis", "mnist_sum_noise_level", "mnist_embed", "mnist_embed_456",
]  # fmt: skip
HARD = list(HARD_EXERCISES)  # not submitting scores 0.5 there, 0.8 elsewhere
DATASET_GROUPS = {"mnist": MNIST, "all": MNIST + HARD}
OFFLINE = {"vehicle_animal": "synthetic", "humans": "synthetic", "toy": None}
SINGLE_HEAD = {"erm", "group_dro", "jtt", "dfr", "logit_adjustment"}
# The ceilings: ERM on unambiguous labels, no query, every target row counted as submitted.
CEILINGS = {"oracle", "oracle_4x", "oracle_16x", "oracle_16x_cosine"}
# Variants meant for some datasets only: elsewhere they are neither run nor missing.
ONLY_ON = {
    "topk_low_mix": {"mnist_uniform_color_low_mix_rate"},
    "oracle_4x": {"mnist_sum_bis"},
    "oracle_16x": {"mnist_sum_bis"},
    "oracle_16x_cosine": {"mnist_sum_bis"},
    "divdis3_pretrained": {"mnist_sum_bis"},  # the one set with three features
    "divdis_pretrained_self_training_cosine": {"mnist_sum_bis"},
    "divdis_consistency_self_training_fixmatch": {"mnist_sum_bis"},
    "divdis_pretrained_self_training_fixmatch_blend": {"mnist_sum_bis"},
    "divdis_pretrained_self_training_fixmatch_h256": {"mnist_sum_bis"},
    "divdis_pretrained_self_training_fixmatch_ensemble": {"mnist_sum_bis"},
    "divdis_pretrained_self_training_fixmatch_2rounds": {"mnist_sum_bis"},
    "divdis_pretrained_self_training_fixmatch_balanced": {"mnist_sum_bis"},
    "divdis_pretrained_self_training_fixmatch_crossfit": {"mnist_sum_bis"},
    "divdis_pretrained_self_training_fixmatch_keep90": {"mnist_sum_bis"},
    "divdis3_pretrained_self_training_fixmatch": {"mnist_sum_bis"},
    "divdis_pretrained_self_training_cosine_student30": {"mnist_sum_bis"},
    "divdis_no_pair_switches": {"mnist_embed_456"},  # the one set with three classes
    "divdis_pretrained_self_training_fixmatch_student30_no_pair_switches": {"mnist_embed_456"},
}
RESULTS = Path(__file__).parent / "results"
# The study variants, one experiment config each (the checkout's conf/, which train reads).
SUITE_DIR = Path(__file__).resolve().parents[1] / "conf" / "experiment" / "suite"


def selected_by(method: str) -> list[str]:
    """What a --methods name stands for: a study variant (conf/experiment/suite/NAME.yaml), an
    experiment config (`experiment/NAME`), or a method config."""
    if method.startswith("experiment/"):
        return [f"experiment={method.removeprefix('experiment/')}"]
    if (SUITE_DIR / f"{method}.yaml").is_file():
        return [f"experiment=suite/{method}"]
    return [f"method={method}"]


def overrides_for(
    method: str, dataset: str, seed: int, extra: list[str], offline: bool
) -> list[str]:
    """The `hackrobust.train` overrides of one run of the suite."""
    study = Path(sys.argv[0]).stem  # W&B groups the runs of one study (with logger=wandb)
    selects = selected_by(method)
    overrides = [*selects, f"dataset={dataset}", f"seed={seed}", f"study={study}", *extra]
    if method not in SINGLE_HEAD | CEILINGS:
        overrides.append("query=oracle")
    if offline and OFFLINE.get(dataset, "digits"):
        overrides.append(f"dataset.source={OFFLINE.get(dataset, 'digits')}")
    return overrides


def run(method: str, dataset: str, seed: int, args: argparse.Namespace, log_dir: Path) -> dict:
    """One training run; returns its metrics, report and the overrides that made it."""
    overrides = overrides_for(method, dataset, seed, args.extra, args.offline)
    run_dir = set_aside(log_dir / f"{dataset}-{method.replace('/', '-')}-{seed}")
    command = [sys.executable, "-m", "hackrobust.train", *overrides, f"hydra.run.dir={run_dir}"]
    start = time.time()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(overrides)} failed:\n{done.stderr[-3000:]}")
    report_path = run_dir / "submission.report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    return {
        "method": method,
        "dataset": dataset,
        "seed": seed,
        "overrides": " ".join(overrides),
        "seconds": time.time() - start,
        "metrics": json.loads((run_dir / "metrics.json").read_text()),
        "report": report,
    }


def run_all(
    todo: list[tuple[str, str, int]],
    args: argparse.Namespace,
    log_dir: Path,
    recorded: Callable[[], set] = set,
):
    """Yields each run's record as it finishes, `args.jobs` runs at a time. After a failure no
    new run starts; the ones under way finish and are yielded, then the failures are raised. A
    run in `recorded()` when its turn comes (another process sharing the store made it) is
    skipped."""
    failed = threading.Event()

    def attempt(triple: tuple[str, str, int]) -> dict | None:
        if failed.is_set():
            return None  # not started: a run before it failed
        if triple in recorded():
            return None  # another process recorded it meanwhile
        try:
            return run(*triple, args, log_dir)
        except RuntimeError:
            failed.set()
            raise

    failures = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for future in as_completed([pool.submit(attempt, triple) for triple in todo]):
            try:
                record = future.result()
            except RuntimeError as failure:
                failures.append(str(failure))
                continue
            if record is not None:
                yield record
    if failures:
        raise RuntimeError("\n\n".join(failures))


def table_arguments(argv: list[str]) -> list[str]:
    """The arguments the table depends on: without --table-only and --jobs N (or --jobs=N)."""
    kept, skip = [], False
    for arg in argv:
        if skip or arg == "--table-only" or arg.startswith("--jobs="):
            skip = False
        elif arg == "--jobs":
            skip = True
        else:
            kept.append(arg)
    return kept


def decision_score(record: dict, default: float) -> tuple[bool, float]:
    """(submitted?, score earned): the report's recommendation, else submit. ERM and the
    ceilings reveal no label: blind submissions, whatever their report says (it keeps the
    default: nothing checked their rule), even where an early ceiling run also queried."""
    accuracy = record["metrics"]["target/final_acc"]
    report = None if record["method"] in CEILINGS | SINGLE_HEAD else record["report"]
    submit = report is None or report.get("recommendation") == "submit"
    return submit, accuracy if submit else default


def table(records: list[dict]) -> str:
    rows = defaultdict(list)
    for record in records:
        rows[record["dataset"], record["method"]].append(record)
    lines = [
        "| dataset | method | target accuracy | min | labels spent | submitted | score earned "
        "| default | seconds per run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (dataset, method), group in sorted(rows.items()):  # each dataset's methods together
        default = default_score(dataset)
        accs = np.array([r["metrics"]["target/final_acc"] for r in group])
        spent = [r["report"]["labels_revealed"] if r["report"] else 0 for r in group]
        spent_cell = "all" if method in CEILINGS else max(spent)
        decisions = [decision_score(r, default) for r in group]
        lines.append(
            f"| {dataset} | {method} | {accs.mean():.3f} ± {accs.std():.3f} | {accs.min():.3f} "
            f"| {spent_cell} | {sum(s for s, _ in decisions)}/{len(group)} "
            f"| {np.mean([score for _, score in decisions]):.3f} | {default} "
            f"| {np.mean([r['seconds'] for r in group]):.0f} |"
        )
    return "\n".join(lines)


def plot(records: list[dict], datasets: list[str], methods: list[str], path: Path) -> None:
    """Per dataset (one row each), the score each method earned (mean over seeds) beside the
    default: a method left of the black tick loses points against not submitting."""
    shown = [m for m in methods if any(r["method"] == m for r in records)]
    # Tall enough for one legend line per method, wide enough for the longest name.
    height = max(1.2 + 0.4 * len(datasets), 0.6 + 0.16 * (len(shown) + 1))
    figure, axes = new_figure((5 + 0.06 * max(map(len, shown), default=0), height))
    for i, method in enumerate(shown):
        offset = 0.6 * (i - (len(shown) - 1) / 2) / max(1, len(shown))
        points = []
        for row, dataset in enumerate(datasets):
            group = [r for r in records if r["dataset"] == dataset and r["method"] == method]
            if group:
                scores = [decision_score(r, default_score(dataset))[1] for r in group]
                points.append((np.mean(scores), row + offset))
        if points:
            x, y = np.array(points).T
            marker = "os^D"[i // 10 % 4]  # the colours repeat after ten methods, markers differ
            axes.scatter(x, y, s=18, marker=marker, label=method, zorder=3)
    axes.scatter(
        [default_score(d) for d in datasets],
        range(len(datasets)),
        marker="|",
        s=250,
        color="black",
        label="default (no submission)",
    )
    axes.set_yticks(range(len(datasets)), datasets, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("score earned (mean over seeds)")
    axes.grid(axis="x", alpha=0.3)
    save_figure(figure, axes, path, 7, loc="upper left", bbox_to_anchor=(1.01, 1))


TIMED_STAGES = ("setup", "pretrain", "fit", "query", "predict", "attribution_maps",
                "self_training", "total")  # fmt: skip


def timings_table(records: list[dict]) -> str:
    """Per dataset and method, the mean wall seconds of each stage (`timings/<stage>`, recorded
    by runs made since the stages were timed) over its seeds."""
    rows = defaultdict(list)
    for record in records:
        if "timings/total" in record["metrics"]:
            rows[record["dataset"], record["method"]].append(record["metrics"])
    if not rows:
        return ""
    lines = [
        "| dataset | method | " + " | ".join(TIMED_STAGES) + " | seeds |",
        "|---|---|" + "---|" * (len(TIMED_STAGES) + 1),
    ]
    for (dataset, method), group in sorted(rows.items()):
        means = [np.mean([m.get(f"timings/{s}", 0.0) for m in group]) for s in TIMED_STAGES]
        cells = " | ".join(f"{v:.0f}" for v in means)
        lines.append(f"| {dataset} | {method} | {cells} | {len(group)} |")
    return (
        "\n\nSeconds per stage (mean over the seeds; wall time on the machine named above, so\n"
        "compare rows of one study only):\n\n" + "\n".join(lines)
    )


def self_training_table(records: list[dict]) -> str:
    """Per dataset, the chosen head's and the student's target accuracy in the same runs."""
    rows = defaultdict(list)
    for record in records:
        if "self_training/chosen_head_acc" in record["metrics"]:
            rows[record["dataset"], record["method"]].append(record)
    if not rows:
        return ""
    lines = [
        "| dataset | method | chosen head | student | student used | submitted accuracy | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for (dataset, method), group in sorted(rows.items()):
        metric = {
            name: np.array([r["metrics"][f"self_training/{name}"] for r in group])
            for name in ("chosen_head_acc", "student_acc", "used")
        }
        final = np.array([r["metrics"]["target/final_acc"] for r in group])
        skipped = sum(r["metrics"].get("self_training/skipped", 0) for r in group)
        used = f"{int(metric['used'].sum())}/{len(group)}" + (
            f" ({int(skipped)} skipped)" if skipped else ""
        )
        lines.append(
            f"| {dataset} | {method} | {metric['chosen_head_acc'].mean():.3f} "
            f"| {metric['student_acc'].mean():.3f} | {used} "
            f"| {final.mean():.3f} | {len(group)} |"
        )
    methods = ", ".join(f"`{m}`" for m in sorted({method for _, method in rows}))
    return (
        f"\n\nSelf-training ({methods}): in each run, the\n"
        "target accuracy of the head the query chose and of the student trained on its\n"
        "pseudo-labels (reading only), how often the student passed its checks (revealed\n"
        "labels, held-out split) and replaced the head (skipped: the head was sure of enough\n"
        "target rows that no student was trained), and the accuracy submitted.\n\n"
        + "\n".join(lines)
    )


def new_figure(figsize: tuple[float, float] = (6, 4)):
    """A figure drawn off-screen (no display needed) and its one axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def save_figure(figure, axes, path: Path, legend_fontsize: int = 8, **legend_options) -> None:
    """The studies' figure ending: legend, tight layout, a 120-dpi PNG at `path`."""
    axes.legend(fontsize=legend_fontsize, **legend_options)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def commit_id() -> str:
    """The short hash of the checked-out commit, recorded with each study run."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def environment() -> dict:
    """What a run's numbers may depend on beyond the code: the CPU and the numeric libraries
    (mnist_embed_456 seed 2 gave 0.97 on one machine and 0.64 on another, same code and data)."""
    import torch

    cpu = next(
        (line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
        platform.processor() or "unknown",
    )
    return {"cpu": cpu, "torch": torch.__version__, "numpy": np.__version__}


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def load_records(store: Path) -> list[dict]:
    """The runs a study has recorded so far, one JSON object per line of `store`."""
    return [json.loads(line) for line in store.read_text().splitlines()] if store.exists() else []


def append_record(store: Path, record: dict) -> None:
    with store.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def provenance(arguments: list[str], offline: bool, seeds: list[int], records: list[dict]) -> str:
    """The table's header lines: the command that regenerates it, the machine, the commits."""
    command = f"python {Path(sys.argv[0]).as_posix()} " + shlex.join(arguments)
    commits = sorted({r.get("commit", "unknown") for r in records})
    environments = sorted(
        {
            f"{e['cpu']}, torch {e['torch']}, numpy {e['numpy']}"
            for e in (r.get("environment") for r in records)
            if e
        }
    )
    return (
        f"Regenerate: `{command.strip()}` (data: "
        f"{'offline stand-ins' if offline else '$HACKROBUST_DATA_DIR'}; seeds {seeds}).\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; code at commit {', '.join(commits)}.\n"
        + (f"Recorded on: {'; '.join(environments)}.\n" if environments else "")
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--methods", nargs="+", default=["divdis", "erm", "oracle"])
    parser.add_argument(
        "--datasets", nargs="+", default=["all"], help='names, or the groups "mnist" and "all"'
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--extra", nargs="*", default=["trainer.enable_progress_bar=false"])
    parser.add_argument("--offline", action="store_true")
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs at a time (each gets cores / jobs threads)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "hackathon_suite")
    parser.add_argument("--fresh", action="store_true", help="ignore the runs already recorded")
    parser.add_argument("--title", default="The hackathon suite", help="the table's heading")
    parser.add_argument("--note", default="", help="a paragraph under the heading")
    parser.add_argument(
        "--table-only", action="store_true", help="only rewrite the table from recorded runs"
    )
    args = parser.parse_args()
    args.datasets = [d for name in args.datasets for d in DATASET_GROUPS.get(name, [name])]

    store = args.out.with_suffix(".jsonl")
    store.parent.mkdir(parents=True, exist_ok=True)
    if args.fresh:
        store.unlink(missing_ok=True)
    records = load_records(store)
    done = {(r["method"], r["dataset"], r["seed"]) for r in records}
    machine = environment()  # the same for every run of this process
    todo = [
        (method, dataset, seed)
        for dataset in args.datasets
        for method in args.methods
        for seed in args.seeds
        if (method, dataset, seed) not in done and dataset in ONLY_ON.get(method, {dataset})
    ]
    if args.jobs > 1:  # share the cores between the runs unless told how
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.jobs)))

    def recorded() -> set:
        return {(r["method"], r["dataset"], r["seed"]) for r in load_records(store)}

    with tempfile.TemporaryDirectory() as log_dir:
        for record in run_all([] if args.table_only else todo, args, Path(log_dir), recorded):
            record["commit"] = commit_id()
            record["environment"] = machine
            append_record(store, record)
            print(
                f"{record['dataset']} {record['method']} seed {record['seed']}: "
                f"{record['metrics']['target/final_acc']:.4f} ({record['seconds']:.0f} s)",
                flush=True,
            )

    records = load_records(store)  # with what other processes sharing it recorded meanwhile
    wanted = [
        r
        for r in records
        if r["method"] in args.methods and r["dataset"] in args.datasets and r["seed"] in args.seeds
    ]
    missing = [
        f"{d} {m} seed {s}"
        for d in args.datasets
        for m in args.methods
        for s in args.seeds
        if d in ONLY_ON.get(m, {d})
        and not any(r["dataset"] == d and r["method"] == m and r["seed"] == s for r in wanted)
    ]
    arguments = table_arguments(sys.argv[1:])
    figure = args.out.with_suffix(".png")
    if wanted:
        plot(
            wanted,
            [d for d in args.datasets if any(r["dataset"] == d for r in wanted)],
            args.methods,
            figure,
        )
    args.out.with_suffix(".md").write_text(
        f"# {args.title}\n\n"
        + (f"{args.note}\n\n" if args.note else "")
        + provenance(arguments, args.offline, args.seeds, wanted)
        + "Target accuracy: the submitted head's, scored with the generated answer key (reading\n"
        "only; nothing selects on it). Labels spent: the most any seed revealed (budget 5; ERM\n"
        "has one head and spends none). Submitted: runs whose report recommended submitting\n"
        "(ERM and the oracle reveal no label: their rows count as blind submissions).\n"
        "Score earned: the mean over seeds of the accuracy where the report said submit and of\n"
        "the default score where it said keep the default. Seconds: wall time of the whole\n"
        "command, dataset generation included; not a benchmark (other jobs may share the CPUs).\n"
        "Oracle: the ceiling, not a contender: ERM on the same model with as many labels, made\n"
        "unambiguous (half the labeled rows decorrelated, like the target set).\n\n"
        + table(wanted)
        + self_training_table(wanted)
        + timings_table(wanted)
        + "\n"
        + (f"\n![score earned per dataset and method]({figure.name})\n" if wanted else "")
        + (f"\nNot run yet (the command resumes them): {', '.join(missing)}.\n" if missing else "")
    )
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
