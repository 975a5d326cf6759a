"""A run is a list of stages from the config, each timed; the seconds reach metrics and report."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from hackrobust.stages import run_stages
from hackrobust.train import train
from hackrobust.utils.timing import TimedCallback, timings_line

from helpers import compose_train, offline_overrides


class Sleeper(TimedCallback):
    timing_name = "sleeper"

    def work(self, seconds: float) -> None:
        with self.timed():
            time.sleep(seconds)


class Marker:
    """A stage that records its name on the run, and makes a timed callback work."""

    def __init__(self, name: str, callback_seconds: float = 0.0, own_seconds: float = 0.0):
        self.name, self.callback_seconds, self.own_seconds = name, callback_seconds, own_seconds

    def __call__(self, run):
        run.order.append(self.name)
        time.sleep(self.own_seconds)
        if self.callback_seconds:
            run.trainer.callbacks[0].work(self.callback_seconds)
        return run


class Flag:
    """A stage that sets metric `name` to 1."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, run):
        run.metrics[self.name] = 1.0
        return run


def test_stages_run_in_order_and_a_timed_callback_counts_apart_from_its_stage():
    run = SimpleNamespace(order=[], timings={}, trainer=SimpleNamespace(callbacks=[Sleeper()]))
    stages = {
        "first": Marker("first", own_seconds=0.05),
        "second": Marker("second", callback_seconds=0.2, own_seconds=0.05),
    }
    run = run_stages(stages, run)
    assert run.order == ["first", "second"]
    assert list(run.timings) == ["first", "sleeper", "second"]
    assert run.timings["sleeper"] == pytest.approx(0.2, abs=0.1)
    # The stage's own seconds exclude the callback's: 0.05 s, not 0.25 s.
    assert 0.04 <= run.timings["second"] < 0.15
    line = timings_line(run.timings | {"total": 1.0})
    assert line.startswith("Seconds per stage: first 0.") and line.endswith("total 1.0")


def test_a_run_records_every_stage_seconds_in_metrics_and_report(tmp_path):
    overrides = [
        *offline_overrides("toy", tmp_path), "method=divdis", "query=oracle",
        "trainer.max_epochs=2", "logger=none", "pretrain=autoencoder", "pretrain.epochs=1",
        "self_training=pseudo_label", "self_training.epochs=1",
    ]  # fmt: skip
    metrics, _ = train(compose_train(overrides, tmp_path))

    saved = json.loads((tmp_path / "metrics.json").read_text())
    report = json.loads((tmp_path / "submission.report.json").read_text())
    stages = ["setup", "pretrain", "fit", "predict", "query", "self_training", "write", "score"]
    for name in stages:
        assert saved[f"timings/{name}"] >= 0 and metrics[f"timings/{name}"] >= 0
        assert name in report["timings"]
    assert saved["timings/fit"] > 0 and saved["timings/pretrain"] > 0
    # The parts are disjoint: together no more than the whole.
    parts = sum(v for k, v in saved.items() if k.startswith("timings/") and k != "timings/total")
    assert parts <= saved["timings/total"] + 1e-6


def test_a_stage_set_to_null_is_skipped_and_a_new_one_is_a_config_line(tmp_path):
    extra = "+stages.flag={_target_:test_stages.Flag,name:flag/ran}"
    overrides = [*offline_overrides("toy", tmp_path), "trainer.max_epochs=1", "logger=none"]
    metrics, objects = train(compose_train([*overrides, "stages.score=null", extra], tmp_path))
    assert "target/final_acc" not in metrics and "timings/score" not in metrics
    assert metrics["flag/ran"] == 1.0 and "timings/flag" in metrics
    assert list(objects["run"].timings)[-3:] == ["report", "flag", "total"]
