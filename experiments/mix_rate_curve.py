"""Target accuracy against the unlabeled set's mix rate (the share of decorrelated rows).

    python experiments/mix_rate_curve.py [--datasets mnist_cc] [--methods divdis topk]
        [--rates 0.01 0.03 0.1 0.3 0.5] [--seeds 0]

Each point is one `python -m hackrobust.train` run with `query=oracle` (at most 5 labels) and
`dataset.generator.unlabeled_mix_rate=<rate>`; the target set keeps its mix rate. Finished runs go
to `<out>.jsonl` (an interrupted study resumes); the table and a plot go to `<out>.md` and
`<out>.png`. As the HappyFaces benchmark reports it: the lowest mix rate from which accuracy stays
at or above 0.9 (and 0.98), and the area under the accuracy curve over mix rates up to 0.3,
divided by the width of the measured range (the mean accuracy over it; 1 is perfect).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from hackathon_suite import (
    RESULTS,
    append_record,
    commit_id,
    load_records,
    new_figure,
    provenance,
    run,
    save_figure,
)


def lowest_rate_above(rates: np.ndarray, accs: np.ndarray, threshold: float) -> float | None:
    """The smallest measured rate from which every larger measured rate reaches `threshold`."""
    ok = accs >= threshold
    for i in range(len(rates)):
        if ok[i:].all():
            return float(rates[i])
    return None


def normalised_area(rates: np.ndarray, accs: np.ndarray, upto: float = 0.3) -> float:
    """Trapezoid area under accuracy over the measured rates <= `upto`, over that range's width."""
    keep = rates <= upto
    r, a = rates[keep], accs[keep]
    if len(r) < 2:
        return float("nan")
    return float(np.sum((r[1:] - r[:-1]) * (a[1:] + a[:-1]) / 2) / (r[-1] - r[0]))


def plot(curves: dict, path: Path) -> None:
    figure, axes = new_figure()
    for (dataset, method), (rates, accs) in curves.items():
        axes.plot(rates, accs, marker="o", label=f"{method} on {dataset}")
    axes.set_xscale("log")
    axes.set_xlabel("unlabeled mix rate (share of decorrelated rows)")
    axes.set_ylabel("target accuracy (mean over seeds)")
    axes.axhline(0.98, color="grey", linestyle=":", linewidth=1)
    axes.axhline(0.8, color="red", linestyle=":", linewidth=1, label="default score (0.8)")
    save_figure(figure, axes, path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=["mnist_cc"])
    parser.add_argument("--methods", nargs="+", default=["divdis", "topk"])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.01, 0.03, 0.1, 0.3, 0.5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--extra", nargs="*", default=["trainer.enable_progress_bar=false"])
    parser.add_argument("--offline", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "mix_rate_curve")
    parser.add_argument(
        "--table-only", action="store_true", help="only rewrite the table from recorded runs"
    )
    args = parser.parse_args()

    store = args.out.with_suffix(".jsonl")
    store.parent.mkdir(parents=True, exist_ok=True)
    records = load_records(store)
    done = {(r["method"], r["dataset"], r["seed"], r["mix_rate"]) for r in records}
    extra = list(args.extra)
    with tempfile.TemporaryDirectory() as log_dir:
        for dataset in args.datasets:
            for method in args.methods:
                for rate in args.rates:
                    for seed in args.seeds:
                        if (method, dataset, seed, rate) in done or args.table_only:
                            continue
                        args.extra = [*extra, f"dataset.generator.unlabeled_mix_rate={rate}"]
                        record = run(method, dataset, seed, args, Path(log_dir) / f"r{rate}")
                        record |= {"mix_rate": rate, "commit": commit_id()}
                        append_record(store, record)
                        records.append(record)
                        acc = record["metrics"]["target/final_acc"]
                        print(f"{dataset} {method} rate {rate} seed {seed}: {acc:.4f}", flush=True)

    by_curve = defaultdict(lambda: defaultdict(list))
    for r in records:
        if (
            r["dataset"] in args.datasets
            and r["method"] in args.methods
            and r["seed"] in args.seeds
            and r["mix_rate"] in args.rates
        ):
            by_curve[r["dataset"], r["method"]][r["mix_rate"]].append(
                r["metrics"]["target/final_acc"]
            )
    curves, lines = {}, []
    rates = sorted({r for points in by_curve.values() for r in points})  # the table's columns
    for key, points in sorted(by_curve.items()):
        measured = np.array(sorted(points))
        accs = np.array([np.mean(points[r]) for r in measured])
        curves[key] = (measured, accs)
        above = [lowest_rate_above(measured, accs, t) for t in (0.9, 0.98)]
        cells = " | ".join(f"{np.mean(points[r]):.3f}" if r in points else "-" for r in rates)
        lines.append(
            f"| {key[0]} | {key[1]} | {cells} | {above[0]} | {above[1]} "
            f"| {normalised_area(measured, accs):.3f} |"
        )
    missing = [
        f"{d} {m} rate {r} seed {s}"
        for d in args.datasets
        for m in args.methods
        for r in args.rates
        for s in args.seeds
        if (m, d, s, r)
        not in {(x["method"], x["dataset"], x["seed"], x["mix_rate"]) for x in records}
    ]
    plot(curves, args.out.with_suffix(".png"))
    args.out.with_suffix(".md").write_text(
        "# Target accuracy against the unlabeled mix rate\n\n"
        + provenance(
            [a for a in sys.argv[1:] if a != "--table-only"], args.offline, args.seeds, records
        )
        + "Target accuracy (mean over seeds) of the submitted head with at most 5 revealed labels,\n"
        "per unlabeled mix rate; the target set's mix rate stays at the dataset's default.\n"
        "Lowest rate >= t: the smallest measured rate from which every larger one reaches t.\n"
        "Area: trapezoid area under the curve over the measured rates up to 0.3, divided by\n"
        "that range's width.\n\n"
        f"| dataset | method | {' | '.join(str(r) for r in rates)} | lowest rate >= 0.9 "
        "| lowest rate >= 0.98 | area to 0.3 |\n"
        f"|---|---|{'---|' * len(rates)}---|---|---|\n" + "\n".join(lines) + "\n\n"
        f"![accuracy against mix rate]({args.out.with_suffix('.png').name})\n"
        + (f"\nNot run yet (the command resumes them): {', '.join(missing)}.\n" if missing else "")
    )
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
