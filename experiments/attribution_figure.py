"""The README's attribution figure: what each DivDis head looks at on mnist_cc.

    python experiments/attribution_figure.py [--dataset mnist_cc] [--seed 0] [--extra ...]

Trains `method=divdis query=oracle` once and copies the run's `attributions.png` (integrated
gradients of each head on target rows where the heads disagree) to
experiments/results/attributions_<dataset>.png. Real images come from $HACKROBUST_DATA_DIR.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="mnist_cc")
    parser.add_argument("--method", default="divdis")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extra", nargs="*", default=["trainer.enable_progress_bar=false"])
    args = parser.parse_args()

    overrides = [f"method={args.method}", f"dataset={args.dataset}", f"seed={args.seed}"]
    with tempfile.TemporaryDirectory() as run_dir:
        command = [
            sys.executable, "-m", "hackrobust.train", *overrides, "query=oracle", *args.extra,
            f"hydra.run.dir={run_dir}",
        ]  # fmt: skip
        subprocess.run(command, check=True)
        out = RESULTS / f"attributions_{args.dataset}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(run_dir) / "attributions.png", out)
    print(f"wrote {out} ({' '.join(command[3:-1])})")


if __name__ == "__main__":
    main()
