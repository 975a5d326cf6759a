"""The entry point end to end: compose, train, predict, write the submission."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hackrobust.submission import SubmissionExistsError, read_submission
from hackrobust.train import train

from helpers import build_run, compose_train, offline_overrides, options

# Hackathon datasets made by a generator (the hierarchical ones have their own tests).
# Real data only (happyfaces: tests/test_happyfaces.py runs it on fake archives).
NOT_GENERATED = {"hackathon_dir", "inat_dir", "tinyimagenet_hier", "happyfaces"}
GENERATED = [d for d in options("dataset") if d not in NOT_GENERATED]
FAST = ["trainer.max_epochs=1", "logger=csv"]


def run(overrides, output_dir):
    return train(compose_train(overrides, output_dir))


def test_every_dataset_is_offered():
    expected = {
        "toy", "mnist_cc", "mnist_constant_image", "mnist_constant_image_random_row",
        "mnist_uniform_color_random_row", "mnist_uniform_color_low_mix_rate", "mnist_sum",
        "mnist_sum_bis", "mnist_sum_noise_level", "mnist_embed", "vehicle_animal", "humans",
    }  # fmt: skip
    assert expected <= set(GENERATED)


@pytest.mark.parametrize("method", options("method"))
@pytest.mark.parametrize("dataset", GENERATED)
def test_compose_and_step_every_dataset_method(dataset, method, tmp_path):
    """Every dataset x method config builds; the method takes a training step on the data."""
    overrides = [*offline_overrides(dataset, tmp_path), f"method={method}", "dataset.batch_size=16"]
    _, datamodule, module = build_run(overrides, tmp_path)
    datamodule.with_unlabeled = module.uses_unlabeled
    batch = {name: next(iter(loader)) for name, loader in datamodule.train_dataloader().items()}
    loss, logits, _ = module.compute_loss(batch)
    loss.backward()
    assert loss.isfinite()
    assert logits.shape == (len(batch["labeled"]["y"]), module.num_heads, datamodule.num_classes)
    # D-BAT's members are separate networks and only the active one (the first) trains.
    trained = module.net.members[0] if hasattr(module.net, "members") else module.net.heads
    assert all(p.grad is not None for p in trained.parameters())


@pytest.mark.parametrize("dataset", GENERATED)
def test_fast_run_writes_a_valid_submission(dataset, tmp_path):
    metrics, objects = run([*offline_overrides(dataset, tmp_path), *FAST], tmp_path)
    datamodule = objects["datamodule"]
    labels = read_submission(tmp_path / "submission.csv")
    assert len(labels) == len(datamodule.data.x_target)
    assert set(labels) <= set(datamodule.label_values.tolist())
    predictions = np.load(tmp_path / "predictions.npz")
    assert predictions["probs"].shape == (len(labels), 1, datamodule.num_classes)
    np.testing.assert_allclose(predictions["probs"].sum(-1), 1, atol=1e-5)
    # The answer key is read for reporting: the final accuracy matches the CSV.
    truth = datamodule.data.y_target
    assert metrics["target/final_acc"] == pytest.approx(float((labels == truth).mean()))
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["target/final_acc"] == metrics["target/final_acc"]
    assert saved["target/final_worst_group_acc"] <= saved["target/final_acc"]
    # The head's agreement with the true feature is its accuracy, on the same (last) epoch.
    features = datamodule.data.metadata.get("features", [])
    if len(features) > 1:
        true_feature = datamodule.data.metadata["true_feature"]
        assert {f"target/feature_agreement/{name}" for name in features} <= set(saved)
        assert saved[f"target/feature_agreement/{true_feature}"] == pytest.approx(
            saved["target/acc"]
        )


def test_same_seed_gives_a_byte_identical_csv(tmp_path):
    overrides = [*offline_overrides("mnist_cc", tmp_path), "trainer.max_epochs=2", "seed=7"]
    run(overrides, tmp_path / "a")
    run(overrides, tmp_path / "b")
    first = (tmp_path / "a" / "submission.csv").read_bytes()
    assert first == (tmp_path / "b" / "submission.csv").read_bytes()
    assert first.count(b"\n") == 64


def test_cosine_schedule_anneals_the_learning_rate_to_zero_over_the_epochs(tmp_path):
    overrides = [*offline_overrides("toy", tmp_path), "method=divdis", "scheduler=cosine"]
    _, objects = run([*overrides, *FAST, "trainer.max_epochs=3"], tmp_path)
    trainer = objects["trainer"]
    assert trainer.lr_scheduler_configs[0].scheduler.T_max == 3
    (group,) = trainer.optimizers[0].param_groups
    assert group["initial_lr"] == pytest.approx(1e-3)
    assert group["lr"] == pytest.approx(0, abs=1e-12)


def test_existing_submission_is_never_overwritten(tmp_path):
    target = tmp_path / "submission.csv"
    target.write_text("keep me\n")
    overrides = [*offline_overrides("toy", tmp_path), *FAST, f"submission.path={target}"]
    with pytest.raises(SubmissionExistsError, match="submission.overwrite=true"):
        run(overrides, tmp_path)
    assert target.read_text() == "keep me\n"
    assert not (tmp_path / "predictions.npz").exists()

    run([*overrides, "submission.overwrite=true"], tmp_path)
    assert len(read_submission(target)) == 64


def _write_foreign_folder(path, x_shape, label_values, rng, n=(90, 150, 70)):
    """A hackathon42 folder as someone else would write it: float64, arbitrary label values."""
    path.mkdir()
    n_labeled, n_unlabeled, n_target = n
    y = rng.choice(label_values, n_labeled)
    signal = (np.searchsorted(label_values, y)).astype(np.float64)
    x_labeled = rng.normal(size=(n_labeled, *x_shape)) + signal.reshape(-1, *[1] * len(x_shape))
    np.save(path / "X_labeled.npy", x_labeled)
    np.save(path / "y_labeled.npy", y)
    np.save(path / "X_unlabeled.npy", rng.normal(size=(n_unlabeled, *x_shape)))
    np.save(path / "X_val.npy", rng.normal(size=(n_target, *x_shape)))
    return n_target


@pytest.mark.parametrize(
    ("x_shape", "label_values"),
    [((16,), [4, 5, 6]), ((1, 12, 20), [0, 2]), ((3, 8, 8), [-1, 7])],
)
def test_hackathon_dir_from_elsewhere(x_shape, label_values, tmp_path):
    folder = tmp_path / "foreign"
    n_target = _write_foreign_folder(folder, x_shape, label_values, np.random.default_rng(0))
    out = tmp_path / "out" / "answer.csv"
    run(
        ["dataset=hackathon_dir", f"dataset.path={folder}", f"submission.path={out}", *FAST],
        tmp_path / "run",
    )
    text = out.read_text()
    assert len(text.splitlines()) == n_target
    assert set(map(int, text.split())) <= set(label_values)


def test_wandb_offline_run_carries_the_report_and_final_scores(tmp_path, monkeypatch):
    from lightning.pytorch.loggers import WandbLogger
    from wandb.sdk.wandb_summary import Summary

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_RUN_GROUP", raising=False)
    # An offline run keeps its summary inside the binary .wandb file: record what is sent.
    summary, tables = {}, {}
    update, log_table = Summary.update, WandbLogger.log_table
    monkeypatch.setattr(Summary, "update", lambda self, d: summary.update(d) or update(self, d))
    monkeypatch.setattr(
        WandbLogger,
        "log_table",
        lambda self, key, **kw: tables.update({key: kw}) or log_table(self, key, **kw),
    )
    overrides = ["method=divdis", "query=oracle", "logger=wandb", "study=my_study"]
    metrics, objects = run([*offline_overrides("toy", tmp_path), *FAST, *overrides], tmp_path)

    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb")), "the offline run has no .wandb history file"
    report = json.loads((tmp_path / "submission.report.json").read_text())
    assert summary["report/recommendation"] == report["recommendation"]
    assert summary["report/labels_revealed"] == report["labels_revealed"] <= 5
    assert summary["target/final_acc"] == metrics["target/final_acc"]
    assert len(tables["report/revealed"]["data"]) == report["labels_revealed"]
    assert {row[0] for row in tables["target/final_groups"]["data"]} == {
        k.removeprefix("target/final_group_acc/")
        for k in metrics
        if k.startswith("target/final_group_acc/")
    }
    assert objects["trainer"].logger.experiment.group == "my_study"
