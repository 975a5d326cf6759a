"""DDP on CPU (gloo, 2 processes) gives the same CSV and per-group counts as one process, and
the same revealed labels and report: the query runs on global rank 0 and its choice is broadcast.

Training itself differs under DDP (each process sees half of every epoch), so the model is kept
at its seeded initialisation (learning rate 0, no batch norm): what is compared is the part that
is DDP's own — evaluation shards, metric reduction and the gather of the predictions by row.
The target set has an odd size, so the shards are uneven.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from reveal_server import FakeRevealServer

COMMON = [
    "dataset=toy",
    "dataset.generator.n_labeled=96",
    "dataset.generator.n_unlabeled=128",
    "dataset.generator.n_target=63",
    "method.optimizer.lr=0",
    "method.optimizer.weight_decay=0",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "logger=csv",
]


DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]


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
    one = run_cli(tmp_path / "one", "method=erm")
    two = run_cli(tmp_path / "two", "method=erm", *DDP)

    assert (tmp_path / "one" / "submission.csv").read_text() == (
        tmp_path / "two" / "submission.csv"
    ).read_text()
    counts = {k: v for k, v in one.items() if k.startswith("target/group_count/")}
    assert counts and sum(counts.values()) == 63
    assert counts == {k: v for k, v in two.items() if k.startswith("target/group_count/")}
    per_group = [k for k in one if k.startswith(("target/group_acc/", "target/feature_agreement/"))]
    for key in per_group + ["target/acc"]:
        assert abs(one[key] - two[key]) < 1e-6, key


def test_under_ddp_rank_zero_queries_the_api_once_and_broadcasts_its_choice(tmp_path, monkeypatch):
    import hydra

    from helpers import compose_train

    cfg = compose_train([*COMMON[:4], "method=divdis"], tmp_path / "compose")
    datamodule = hydra.utils.instantiate(cfg.dataset)
    datamodule.prepare_data()  # the runs below find it in the test session's cache
    labels = np.load(datamodule.generated_dir() / "y_val.npy").tolist()
    monkeypatch.setenv("HACKROBUST_REVEAL_USERNAME", "team")
    monkeypatch.setenv("HACKROBUST_REVEAL_PASSWORD", "secret")

    runs = {}
    for name, extra in (("one", []), ("two", DDP)):
        monkeypatch.setenv("HACKROBUST_STATE_DIR", str(tmp_path / name / "state"))
        with FakeRevealServer(labels) as server:
            api = ["query=api", f"query.url={server.url}", "query.exercise_id=1"]
            run_cli(tmp_path / name, "method=divdis", *api, *extra)
            runs[name] = list(server.revealed["team"])
            assert server.requests == len(runs[name])  # each label asked for once, by one rank
        assert 1 <= len(runs[name]) <= 5

    assert runs["one"] == runs["two"]
    one, two = (json.loads((tmp_path / n / "submission.report.json").read_text()) for n in runs)
    assert one.pop("timings").keys() == two.pop("timings").keys()  # seconds differ, stages not
    assert one == two and one["labels_revealed"] == len(runs["one"])
    assert (tmp_path / "one" / "submission.csv").read_text() == (
        tmp_path / "two" / "submission.csv"
    ).read_text()
