"""ERM on every hackathon42 dataset: target accuracy against the default score of not submitting.

    python experiments/erm_baseline.py [--seeds 0 1 2] [--extra trainer=gpu ...]

Runs `python -m hackrobust.train method=erm dataset=<name> seed=<s>` for each dataset and seed,
reads each run's metrics.json and writes experiments/results/erm_baseline.md. Real images come
from $HACKROBUST_DATA_DIR (MNIST/raw, cifar10_4class, smiles_lfw); `--offline` uses the bundled
digits and the synthetic stand-ins instead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from hackathon_suite import commit_id, default_score, environment

from hackrobust.utils.run_dir import set_aside

DATASETS = [
    "toy", "mnist_cc", "mnist_constant_image", "mnist_constant_image_random_row",
    "mnist_uniform_color_random_row", "mnist_uniform_color_low_mix_rate", "mnist_sum",
    "mnist_sum_bis", "mnist_sum_noise_level", "mnist_embed", "mnist_embed_456",
    "vehicle_animal", "humans",
]  # fmt: skip
OFFLINE = {"vehicle_animal": "synthetic", "humans": "synthetic", "toy": None}
RESULTS = Path(__file__).parent / "results"


def run(dataset: str, seed: int, extra: list[str], offline: bool, log_dir: Path) -> dict:
    overrides = [f"dataset={dataset}", "method=erm", f"seed={seed}", *extra]
    if offline and OFFLINE.get(dataset, "digits"):
        overrides.append(f"dataset.source={OFFLINE.get(dataset, 'digits')}")
    run_dir = set_aside(log_dir / f"{dataset}-{seed}")
    command = [sys.executable, "-m", "hackrobust.train", *overrides, f"hydra.run.dir={run_dir}"]
    start = time.time()
    subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metadata = {"overrides": " ".join(overrides), "seconds": time.time() - start}
    return metrics | metadata


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", default=DATASETS)
    parser.add_argument("--extra", nargs="*", default=["trainer.enable_progress_bar=false"])
    parser.add_argument("--offline", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "erm_baseline.md")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as log_dir:
        for dataset in args.datasets:
            runs = [run(dataset, s, args.extra, args.offline, Path(log_dir)) for s in args.seeds]
            accs = np.array([r["target/final_acc"] for r in runs])
            worst = np.array([r["target/final_worst_group_acc"] for r in runs])
            default = default_score(dataset)
            rows.append(
                f"| {dataset} | {accs.mean():.3f} ± {accs.std():.3f} | {worst.mean():.3f} | "
                f"{default} | {np.mean([r['seconds'] for r in runs]):.0f} |"
            )
            print(rows[-1], flush=True)

    machine = environment()
    command = "python experiments/erm_baseline.py " + " ".join(sys.argv[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        "# ERM on every hackathon42 dataset\n\n"
        f"Regenerate: `{command.strip()}` (data: "
        f"{'offline stand-ins' if args.offline else '$HACKROBUST_DATA_DIR'}; seeds {args.seeds}).\n"
        f"Machine: {machine['cpu']}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"torch {machine['torch']}, numpy {machine['numpy']}; code at commit {commit_id()}.\n"
        "Seconds per run: wall time of the whole command (dataset generation included), not a\n"
        "benchmark.\n\n"
        "Target accuracy (mean ± std over seeds) of the ERM head, scored with the generated answer\n"
        "key, beside the score of not submitting. Worst group: the lowest accuracy over the\n"
        "target's feature combinations (where the features disagree, ERM is right only if it\n"
        "learned the true one).\n\n"
        "| dataset | target accuracy | worst group | default score | seconds per run |\n"
        "|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
