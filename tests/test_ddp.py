"""DDP on CPU (gloo, 2 processes) gives the same CSV and per-group counts as one process.

Training itself differs under DDP (each process sees half of every epoch), so the model is kept
at its seeded initialisation (learning rate 0, no batch norm): what is compared is the part that
is DDP's own — evaluation shards, metric reduction and the gather of the predictions by row.
The target set has an odd size, so the shards are uneven.
"""

from __future__ import annotations

import json
import subprocess
import sys

COMMON = [
    "dataset=toy",
    "dataset.generator.n_labeled=96",
    "dataset.generator.n_unlabeled=128",
    "dataset.generator.n_target=63",
    "method=erm",
    "method.optimizer.lr=0",
    "method.optimizer.weight_decay=0",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "logger=csv",
]


def run_cli(run_dir, *extra):
    command = [
        sys.executable,
        "-m",
        "hackrobust.train",
        *COMMON,
        *extra,
        f"hydra.run.dir={run_dir}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((run_dir / "metrics.json").read_text())


def test_two_gloo_processes_match_one(tmp_path):
    one = run_cli(tmp_path / "one")
    two = run_cli(tmp_path / "two", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2")

    assert (tmp_path / "one" / "submission.csv").read_text() == (
        tmp_path / "two" / "submission.csv"
    ).read_text()
    counts = {k: v for k, v in one.items() if k.startswith("target/group_count/")}
    assert counts and sum(counts.values()) == 63
    assert counts == {k: v for k, v in two.items() if k.startswith("target/group_count/")}
    per_group = [k for k in one if k.startswith(("target/group_acc/", "target/feature_agreement/"))]
    for key in per_group + ["target/acc"]:
        assert abs(one[key] - two[key]) < 1e-6, key
