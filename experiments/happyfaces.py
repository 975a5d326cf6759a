"""The HappyFaces benchmark: the worse head's target accuracy against the unlabeled mix rate.

    HACKROBUST_DATA_DIR=/path/to/data python experiments/happyfaces.py
        [--methods divdis erm] [--rates 0.1 0.25 0.5 0.75 1.0] [--seeds 0 1 2]
        [--extra <Hydra overrides: the training budget>]

Data: `dataset=happyfaces` (see `hackrobust/data/generators/happyfaces.py`): the 200 labeled
faces (FHWH, FSWS), a 100-row target cut from the validation faces (25 per tag, the same rows at
every mix rate of a seed) and 50 unlabeled rows from the remaining validation faces, of which the
mix rate is the share of decorrelated faces (FHWS, FSWH). The benchmark's own 600-image unlabeled
set is not available; 50 rows is the most every rate from 0 to 1 can have with 25 faces per tag
left, so a rate step below 0.02 is one image and the rates start at 0.1 (5 decorrelated faces).

Each point is one `python -m hackrobust.train method=<m> dataset=happyfaces seed=<s>` run (multi-
head methods with `query=oracle`: at most 5 labels revealed from the target's answer key) with
`dataset.generator.unlabeled_mix_rate=<rate>`. ERM reads no unlabeled rows (their pixel
statistics only enter the input normalisation), so single-head methods run once per seed, at
`--reference-rate`, and are drawn as a flat reference. Per run it records each head's target
accuracy (at the checkpoint the run submits, from its predictions.npz), the worse head's (the
benchmark's score), the chosen head's with at most 5 oracle labels, and each head's agreement
with the writing. Finished runs go to `<out>.jsonl` (an interrupted study resumes; a record
counts only for the same `--extra`); the tables go to `<out>.md`, the plot to `<out>.png`.
As the benchmark reports it: the lowest measured mix rate from which the worse head's mean
accuracy stays at or above 0.9, and the area under that curve over the measured rates divided by
their range's width (the mean accuracy over it; 1 is perfect).

Credit: HappyFaces, Armstrong, Cooper, Daniels-Koch and Gorman, Aligned AI, 2022 (Apache-2.0),
built on Labeled Faces in the Wild (Huang et al. 2007).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from hackathon_suite import (
    RESULTS,
    SINGLE_HEAD,
    append_record,
    commit_id,
    load_records,
    new_figure,
    provenance,
    run,
    save_figure,
)
from mix_rate_curve import lowest_rate_above, normalised_area

DATASET = "happyfaces"
THRESHOLD = 0.9
# The budget that keeps one run near 2 minutes on 2 shared CPUs (a config).
BUDGET = ["experiment=happyfaces_budget"]


def answer_key(run_dir: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(y_val, features_val, metadata) of the dataset a finished run trained on.

    The run's own composed config (`.hydra/config.yaml`) names the generated folder in the cache.
    """
    import hydra
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    folder = hydra.utils.instantiate(cfg.dataset).folder
    metadata = json.loads((folder / "metadata.json").read_text())
    return np.load(folder / "y_val.npy"), np.load(folder / "features_val.npy"), metadata


def head_scores(run_dir: Path) -> dict:
    """Each head's target accuracy and agreement with the writing, at the submitted checkpoint."""
    y, features, metadata = answer_key(run_dir)
    with np.load(run_dir / "predictions.npz") as saved:
        predicted = saved["predicted"]  # (N, heads), label values
    writing = features[:, metadata["features"].index("writing")]
    head_accs = [float((predicted[:, h] == y).mean()) for h in range(predicted.shape[1])]
    return {
        "head_accs": head_accs,
        "worse_head_acc": min(head_accs),
        "best_head_acc": max(head_accs),
        "head_writing_agreement": [
            float((predicted[:, h] == writing).mean()) for h in range(predicted.shape[1])
        ],
        "unlabeled_tag_counts": metadata["tag_counts"]["unlabeled"],
        "unlabeled_mix_rate_actual": metadata["unlabeled_mix_rate_actual"],
    }


def _mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def runs_table(records: list[dict]) -> str:
    groups = defaultdict(list)
    for r in records:
        groups[r["method"], r["mix_rate"]].append(r)
    lines = [
        "| method | mix rate | decorrelated / unlabeled | seeds | worse head | min | chosen head "
        "(≤5 labels) | best head | heads' agreement with the writing | seconds per run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (method, rate), group in sorted(groups.items()):
        worse = [r["worse_head_acc"] for r in group]
        chosen = [r["metrics"]["target/final_acc"] for r in group]
        best = [r["best_head_acc"] for r in group]
        writing = np.mean([r["head_writing_agreement"] for r in group], axis=0)
        counts = group[0]["unlabeled_tag_counts"]
        mixed = counts["FHWS"] + counts["FSWH"]
        lines.append(
            f"| {method} | {rate} | {mixed} / {sum(counts.values())} | {len(group)} "
            f"| {_mean_std(worse)} | {min(worse):.3f} | {_mean_std(chosen)} | {_mean_std(best)} "
            f"| {', '.join(f'{w:.2f}' for w in writing)} "
            f"| {np.mean([r['seconds'] for r in group]):.0f} |"
        )
    return "\n".join(lines)


def curves(records: list[dict], key: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per method: measured rates and the mean over seeds of `key` (a record's score) at each."""
    points = defaultdict(lambda: defaultdict(list))
    for r in records:
        value = r["metrics"]["target/final_acc"] if key == "chosen" else r[key]
        points[r["method"]][r["mix_rate"]].append(value)
    out = {}
    for method, by_rate in points.items():
        rates = np.array(sorted(by_rate))
        out[method] = rates, np.array([np.mean(by_rate[rate]) for rate in rates])
    return out


def summary_table(records: list[dict]) -> str:
    lines = [
        f"| method | score | lowest mix rate ≥ {THRESHOLD} | area over the measured rates |",
        "|---|---|---|---|",
    ]
    for key, name in (("worse_head_acc", "worse head (benchmark)"), ("chosen", "chosen head")):
        for method, (rates, accs) in sorted(curves(records, key).items()):
            if method in SINGLE_HEAD and key == "chosen":
                continue  # one head: chosen = worse
            above = lowest_rate_above(rates, accs, THRESHOLD)
            area = normalised_area(rates, accs, upto=float(rates.max()))
            note = f" (run at mix rate {rates[0]} only)" if len(rates) == 1 else ""
            lines.append(
                f"| {method} | {name}{note} | {'none' if above is None else above} "
                f"| {'n/a' if np.isnan(area) else f'{area:.3f}'} |"
            )
    return "\n".join(lines)


def plot(records: list[dict], path: Path) -> None:
    figure, axes = new_figure((6.4, 4.2))
    worse, chosen = curves(records, "worse_head_acc"), curves(records, "chosen")
    for index, (method, (rates, accs)) in enumerate(sorted(worse.items())):
        color = f"C{index}"
        if len(rates) == 1:
            axes.axhline(accs[0], color=color, linestyle="--", label=f"{method} (one head)")
            continue
        axes.plot(rates, accs, marker="o", color=color, label=f"{method}: worse head")
        axes.plot(*chosen[method], marker="x", linestyle=":", color=color,
                  label=f"{method}: chosen head (≤5 labels)")  # fmt: skip
        seeds = [(r["mix_rate"], r["worse_head_acc"]) for r in records if r["method"] == method]
        axes.scatter(*zip(*seeds, strict=True), s=10, alpha=0.4, color=color)
    axes.axhline(THRESHOLD, color="grey", linestyle=":", linewidth=1, label=f"{THRESHOLD}")
    axes.axhline(0.5, color="red", linestyle=":", linewidth=1, label="chance (0.5)")
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("unlabeled mix rate (share of FHWS and FSWH faces)")
    axes.set_ylabel("target accuracy (mean over seeds; dots: seeds)")
    axes.set_title("HappyFaces (Armstrong et al., Aligned AI, 2022)", fontsize=10)
    save_figure(figure, axes, path, legend_fontsize=7)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--methods", nargs="+", default=["divdis", "erm"])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--reference-rate", type=float, default=0.5, help="the one rate of single-head methods"
    )
    parser.add_argument("--extra", nargs="*", default=BUDGET, help="Hydra overrides of each run")
    parser.add_argument("--out", type=Path, default=RESULTS / DATASET)
    parser.add_argument(
        "--table-only", action="store_true", help="only rewrite the tables from recorded runs"
    )
    args = parser.parse_args()
    args.offline = False  # the benchmark has no offline stand-in

    store = args.out.with_suffix(".jsonl")
    store.parent.mkdir(parents=True, exist_ok=True)
    records = [r for r in load_records(store) if r.get("extra") == args.extra]
    done = {(r["method"], r["seed"], r["mix_rate"]) for r in records}
    extra = list(args.extra)
    planned = [  # seed by seed, so an interrupted study has whole curves
        (method, rate, seed)
        for seed in args.seeds
        for method in args.methods
        for rate in ([args.reference_rate] if method in SINGLE_HEAD else args.rates)
    ]
    with tempfile.TemporaryDirectory() as log_dir:
        for method, rate, seed in planned:
            if (method, seed, rate) in done or args.table_only:
                continue
            args.extra = [*extra, f"dataset.generator.unlabeled_mix_rate={rate}"]
            record = run(method, DATASET, seed, args, Path(log_dir) / f"r{rate}")
            run_dir = Path(log_dir) / f"r{rate}" / f"{DATASET}-{method}-{seed}"
            record |= head_scores(run_dir)
            record |= {"mix_rate": rate, "extra": extra, "commit": commit_id()}
            append_record(store, record)
            records.append(record)
            print(
                f"{method} rate {rate} seed {seed}: worse head {record['worse_head_acc']:.3f}, "
                f"chosen {record['metrics']['target/final_acc']:.3f}, heads "
                f"{[round(a, 3) for a in record['head_accs']]} ({record['seconds']:.0f} s)",
                flush=True,
            )
    args.extra = extra

    wanted = [
        r
        for r in records
        if r["method"] in args.methods
        and r["seed"] in args.seeds
        and (r["mix_rate"] in args.rates or r["method"] in SINGLE_HEAD)
    ]
    missing = [
        f"{m} rate {r} seed {s}"
        for m, r, s in planned
        if not any((x["method"], x["mix_rate"], x["seed"]) == (m, r, s) for x in wanted)
    ]
    arguments = [a for a in sys.argv[1:] if a != "--table-only"]
    plot(wanted, args.out.with_suffix(".png"))
    args.out.with_suffix(".md").write_text(
        "# HappyFaces: the worse head's accuracy against the unlabeled mix rate\n\n"
        + provenance(arguments, False, args.seeds, wanted)
        + f"Each run's overrides: `{' '.join(extra)}`.\n"
        "`model=auto` is the small CNN, trained from scratch (no pretrained weights), on the\n"
        "dataset's 64 px RGB images unless the overrides say otherwise.\n\n"
        "Data: HappyFaces (Armstrong, Cooper, Daniels-Koch and Gorman, Aligned AI, 2022;\n"
        "Apache-2.0), faces from Labeled Faces in the Wild (Huang et al. 2007) with HAPPY or SAD\n"
        "written on them. Labeled: the 200 FHWH and FSWS faces. Target: 100 validation faces,\n"
        "25 per tag (the same rows at every mix rate of a seed). Unlabeled: 50 of the other\n"
        "validation faces, the mix rate being the share of FHWS and FSWH among them (the\n"
        "benchmark's 600-image unlabeled set is not available).\n\n"
        "Worse head: the lower target accuracy of the two heads at the submitted checkpoint (the\n"
        "benchmark's score). Chosen head: the head the run submits after revealing at most 5\n"
        "target labels (`query=oracle`). Best head: the higher of the two. Agreement with the\n"
        "writing: the share of target rows where each head's prediction equals the writing (1.0:\n"
        "the head reads the word; on this balanced target such a head scores 0.5). ERM reads no\n"
        f"unlabeled rows and runs at mix rate {args.reference_rate} only. Mean ± std over seeds.\n\n"
        + runs_table(wanted)
        + "\n\n## The benchmark's summary\n\n"
        f"Lowest mix rate ≥ {THRESHOLD}: the smallest measured rate from which the mean over seeds\n"
        "stays at or above it at every larger measured rate. Area: trapezoid area under the mean\n"
        "curve over the measured rates, divided by their range's width.\n\n"
        + summary_table(wanted)
        + "\n\n"
        + f"![worse-head accuracy against mix rate]({args.out.with_suffix('.png').name})\n"
        + (f"\nNot run yet (the command resumes them): {', '.join(missing)}.\n" if missing else "")
    )
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
