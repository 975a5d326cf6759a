"""Self-training: which rows get pseudo-labels, the student's place in the outputs, its guard."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest
import torch

from hackrobust.methods import FixMatch
from hackrobust.methods.inference import target_probabilities
from hackrobust.submission import read_submission
from hackrobust.train import train
from hackrobust.training import self_training
from hackrobust.training.self_training import confident_rows, pseudo_label_rows, pseudo_labeled_set

from helpers import build_run, compose_train, offline_overrides, student_recipe

ORACLE_DIVDIS = ["method=divdis", "query=oracle", "trainer.max_epochs=2", "logger=none"]


def test_confident_rows_keeps_the_surest_share_of_each_predicted_class():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.2, 0.8], [0.45, 0.55], [0.99, 0.01]])
    # Class 0 is predicted on rows 0, 1, 2, 5 (keep 2: rows 5 and 0); class 1 on rows 3, 4.
    np.testing.assert_array_equal(confident_rows(probs, 0.5, exclude=np.array([], int)), [0, 3, 5])
    # An excluded row is never kept, and every predicted class keeps at least one row.
    np.testing.assert_array_equal(confident_rows(probs, 0.1, exclude=np.array([5])), [0, 3])
    with pytest.raises(ValueError, match="keep_fraction"):
        confident_rows(probs, 0.0, exclude=np.array([], int))
    with pytest.raises(ValueError, match="rounds must be at least 1"):
        self_training.self_train(None, None, None, probs[:, None], None, rounds=0)


def test_pseudo_labeled_set_adds_unlabeled_and_target_rows_but_never_revealed_ones(tmp_path):
    import hydra

    cfg = compose_train(offline_overrides("toy", tmp_path), tmp_path)
    datamodule = hydra.utils.instantiate(cfg.dataset)
    datamodule.setup("fit")
    n_unlabeled, n_target = len(datamodule.unlabeled_set), len(datamodule.target_set)
    rng = np.random.default_rng(0)
    unlabeled_probs = rng.dirichlet([1, 1], n_unlabeled)
    target_probs = rng.dirichlet([1, 1], n_target)
    revealed = [0, 3]
    rows = pseudo_label_rows(unlabeled_probs, target_probs, 1.0, revealed)
    train_set = pseudo_labeled_set(datamodule, unlabeled_probs, target_probs, rows)

    rows = train_set.tensors
    n_labeled = len(datamodule.train_set)
    assert len(train_set) == n_labeled + n_unlabeled + n_target - len(revealed)
    assert len(set(rows["idx"].tolist())) == len(train_set)  # row ids stay unique
    target_x = datamodule.target_set.tensors["x"]
    added_x, added_y = rows["x"][n_labeled:], rows["y"][n_labeled:].numpy()
    for d in revealed:
        assert not (added_x == target_x[d]).all(dim=1).any()
    expected = np.concatenate([unlabeled_probs, np.delete(target_probs, revealed, 0)]).argmax(-1)
    np.testing.assert_array_equal(added_y, expected)
    assert (rows["group"][n_labeled:] == -1).all()


def test_a_run_with_self_training_writes_the_students_labels_and_reports_it(tmp_path):
    overrides = [*offline_overrides("mnist_cc", tmp_path), *ORACLE_DIVDIS]
    metrics, objects = train(compose_train([*overrides, "self_training=pseudo_label"], tmp_path))

    report = json.loads((tmp_path / "submission.report.json").read_text())
    summary = report["self_training"]
    datamodule = objects["datamodule"]
    kept = summary["pseudo_labeled_rows"]
    n_pool = len(datamodule.unlabeled_set) + len(datamodule.target_set) - report["labels_revealed"]
    assert 0.7 * n_pool <= kept <= 0.9 * n_pool  # keep_fraction 0.8 of each predicted class
    assert summary["training_rows"] == len(datamodule.train_set) + kept
    assert metrics["self_training/holdout_acc"] == summary["holdout_accuracy"]
    assert metrics["self_training/used"] == float(summary["used"])
    assert 0 <= metrics["self_training/student_acc"] <= 1
    # Split by whether the student was taught the row's pseudo-label, the same accuracy.
    taught, n_target = summary["taught_target_rows"], len(datamodule.target_set)
    assert 0 < taught < n_target
    split = (
        metrics["self_training/student_acc_taught"] * taught
        + metrics["self_training/student_acc_untaught"] * (n_target - taught)
    ) / n_target
    assert split == pytest.approx(metrics["self_training/student_acc"])
    # Its accuracy after each epoch, the last one the student's.
    epochs = summary["student_epochs"][0]
    assert epochs == len(summary["changed_by_epoch"]) == 2
    last = metrics[f"self_training/student_acc_epoch/{epochs}"]
    assert last == metrics["self_training/student_acc"]
    # The CSV: the used model's labels, and the revealed rows' labels (each relabeled one was
    # wrong and is now right).
    used = "student_acc" if summary["used"] else "chosen_head_acc"
    relabeled = report["revealed_rows_relabeled"] / n_target
    assert metrics["target/final_acc"] == pytest.approx(
        metrics[f"self_training/{used}"] + relabeled
    )

    head = report["chosen_head"]
    labels = read_submission(tmp_path / "submission.csv")
    probs = objects["probs"]
    revealed = [q["datum_id"] for q in report["revealed"]]
    predicted = datamodule.label_values[probs[:, head].argmax(-1)]
    np.testing.assert_array_equal(np.delete(labels, revealed), np.delete(predicted, revealed))
    assert (labels[revealed] == datamodule.data.y_target[revealed]).all()
    if summary["used"]:  # the student's held-out accuracy is the one the report estimates from
        assert report["holdout_accuracy"][head] == summary["holdout_accuracy"]
    assert metrics["target/final_acc"] == pytest.approx(
        float((labels == datamodule.data.y_target).mean())
    )


def test_a_fixmatch_student_learns_consistency_on_the_unlabeled_and_target_inputs(
    tmp_path, monkeypatch
):
    """`self_training=fixmatch`: the student is a FixMatch model whose unlabeled batches come
    from the unlabeled and target inputs, at the configured batch size; the report says so."""
    seen = []
    compute_loss = FixMatch.compute_loss

    def recording(module, batch):
        seen.append((len(batch["labeled"]["x"]), batch["unlabeled"]["idx"]))
        return compute_loss(module, batch)

    monkeypatch.setattr(FixMatch, "compute_loss", recording)
    overrides = [*offline_overrides("mnist_cc", tmp_path), *ORACLE_DIVDIS]
    overrides += ["self_training=fixmatch", "self_training.fixmatch.unlabeled_batch_size=64"]
    metrics, objects = train(compose_train(overrides, tmp_path))

    report = json.loads((tmp_path / "submission.report.json").read_text())
    assert report["self_training"]["fixmatch"] == {
        "consistency_weight": 1.0,
        "threshold": 0.95,
        "noise_std": 0.3,
        "erase_area": 0.08,
        "unlabeled_batch_size": 64,
    }
    datamodule = objects["datamodule"]
    n_unlabeled, n_target = len(datamodule.unlabeled_set), len(datamodule.target_set)
    training_rows = report["self_training"]["training_rows"]
    # An epoch runs through the longer of the two loaders, cycling the other.
    steps = max(-(-training_rows // datamodule.batch_size), -(-(n_unlabeled + n_target) // 64))
    assert len(seen) == 2 * steps  # two epochs
    ids = torch.cat([idx for _, idx in seen])
    assert all(len(idx) == 64 for _, idx in seen)
    assert ids.max() >= n_unlabeled  # target rows come after the unlabeled ones
    assert ids.max() < n_unlabeled + n_target
    assert 0 <= metrics["self_training/student_acc"] <= 1


class SignRule(L.LightningModule):
    """One head per input column: class 1 where the column is positive (times `sign`)."""

    def __init__(self, columns: list[int], sign: float = 1.0):
        super().__init__()
        self.columns, self.sign = columns, sign
        self.register_buffer("chosen_head", torch.tensor(0))

    def forward(self, x):
        z = 10 * self.sign * x[:, self.columns]
        return torch.stack([-z, z], dim=-1)


def noiseless_toy(tmp_path):
    """The run's config and the toy set at (+-1, +-1), labeled by the x sign, set up to fit."""
    import hydra

    cfg = compose_train(
        [*offline_overrides("toy", tmp_path), "dataset.generator.noise=0"], tmp_path
    )
    datamodule = hydra.utils.instantiate(cfg.dataset)
    datamodule.setup("fit")
    return cfg, datamodule


def choice_revealing(datamodule, rows, holdout_accuracy) -> dict:
    """An active query's result: head 0 chosen, the true labels of target `rows` revealed."""
    truth = datamodule.target_set.tensors["y"].numpy()
    return {
        "head": 0,
        "posterior": [1.0, 0.0],
        "queries": [
            {"datum_id": int(d), "label": int(datamodule.label_values[truth[d]])} for d in rows
        ],
        "holdout_accuracy": holdout_accuracy,
        "holdout_size": len(datamodule.holdout_set),
    }


@pytest.mark.parametrize("student_sign", [1.0, -1.0])
def test_a_student_that_contradicts_a_revealed_label_is_discarded(
    student_sign, tmp_path, monkeypatch
):
    """Toy points at (+-1, +-1), labeled by the x sign. The teacher's head 0 reads x (head 1
    reads y) and agrees with every revealed label; a student reading x is used, one reading -x
    contradicts them and is discarded."""
    cfg, datamodule = noiseless_toy(tmp_path)
    teacher = SignRule([0, 1])
    probs = target_probabilities(teacher, datamodule.target_set.tensors["x"])
    truth = datamodule.target_set.tensors["y"].numpy()
    choice = choice_revealing(datamodule, (0, 1, 2), [0.9, 0.5])
    monkeypatch.setattr(self_training, "_fit_student", lambda *_: SignRule([0], student_sign))

    result = self_training.self_train(student_recipe(cfg), datamodule, teacher, probs, choice)
    new_probs, new_choice, summary = result.probs, result.choice, result.summary
    np.testing.assert_array_equal(result.student_probs.argmax(-1), (student_sign > 0) == truth)
    np.testing.assert_array_equal(result.head_probs, probs[:, 0])
    assert summary["chosen_head_revealed_agreement"] == 1.0
    assert summary["used"] is (student_sign > 0)
    if student_sign > 0:
        assert summary["revealed_agreement"] == 1.0 and summary["holdout_accuracy"] == 1.0
        assert new_choice["holdout_accuracy"] == [1.0, 0.5]  # the student's, for head 0 only
        np.testing.assert_array_equal(new_probs[:, 1], probs[:, 1])
    else:
        assert summary["revealed_agreement"] == 0.0
        assert new_probs is probs and new_choice is choice  # the head's, untouched


@pytest.mark.parametrize(
    ("fixmatch", "expected"), [(None, "ERM"), ({}, "FixMatch"), ({"threshold": 0.5}, "FixMatch")]
)
def test_the_student_is_fixmatch_whenever_fixmatch_settings_are_given(fixmatch, expected, tmp_path):
    overrides = [*offline_overrides("toy", tmp_path), "trainer.max_epochs=0"]
    cfg, datamodule, _ = build_run(overrides, tmp_path)
    student = self_training._fit_student(
        student_recipe(cfg), datamodule, datamodule.train_set, None, fixmatch
    )
    assert type(student).__name__ == expected
    if fixmatch:
        assert student.consistency.threshold == 0.5


@pytest.mark.parametrize("blend", [False, True])
def test_a_blend_is_checked_and_used_as_the_mean_of_student_and_head(blend, tmp_path, monkeypatch):
    """The head reads x, surely; the student reads y, faintly. On revealed rows where x and y
    disagree the student alone contradicts the labels and is discarded; blended, the mean
    follows the surer head there, passes the same checks and replaces the head."""
    cfg, datamodule = noiseless_toy(tmp_path)
    teacher, student = SignRule([0, 1]), SignRule([1], 0.1)
    probs = target_probabilities(teacher, datamodule.target_set.tensors["x"])
    x, truth = datamodule.target_set.tensors["x"], datamodule.target_set.tensors["y"].numpy()
    disagree = np.flatnonzero((x[:, 0] > 0).numpy() != (x[:, 1] > 0).numpy())[:3]
    assert len(disagree) == 3, "the toy target set should have decorrelated rows"
    choice = choice_revealing(datamodule, disagree, [1.0, 1.0])
    monkeypatch.setattr(self_training, "_fit_student", lambda *_: student)

    result = self_training.self_train(
        student_recipe(cfg), datamodule, teacher, probs, choice, blend=blend
    )

    student_probs = target_probabilities(student, x)[:, 0]
    np.testing.assert_allclose(result.student_probs, student_probs)  # the student's alone
    assert result.summary["blend"] is blend
    assert result.summary["used"] is blend
    if blend:
        np.testing.assert_allclose(result.probs[:, 0], (student_probs + probs[:, 0]) / 2)
        np.testing.assert_array_equal(result.probs[:, 0].argmax(-1), truth)
        assert result.summary["revealed_agreement"] == 1.0
        np.testing.assert_array_equal(result.probs[:, 1], probs[:, 1])
    else:
        assert result.summary["revealed_agreement"] == 0.0
        assert result.probs is probs


def test_each_round_trains_the_given_number_of_students_and_uses_their_mean(tmp_path, monkeypatch):
    """Three students per round: two read x (one surely, one faintly), one reads y faintly.
    Their ensemble, the mean of their probabilities, follows x: it is what the CSV reads."""
    cfg, datamodule = noiseless_toy(tmp_path)
    teacher = SignRule([0, 1])
    x, truth = datamodule.target_set.tensors["x"], datamodule.target_set.tensors["y"].numpy()
    probs = target_probabilities(teacher, x)
    choice = choice_revealing(datamodule, (0, 1, 2), [1.0, 0.5])
    members = [SignRule([0]), SignRule([0], 0.1), SignRule([1], 0.1)]
    trained = []

    def fit_student(cfg, datamodule, train_set, *_):
        trained.append(train_set)
        return members[(len(trained) - 1) % len(members)]

    monkeypatch.setattr(self_training, "_fit_student", fit_student)
    result = self_training.self_train(
        student_recipe(cfg), datamodule, teacher, probs, choice, rounds=2, students=3
    )

    assert len(trained) == 6  # 2 rounds of 3 students
    expected = np.mean([target_probabilities(m, x)[:, 0] for m in members], axis=0)
    np.testing.assert_allclose(result.student_probs, expected, rtol=1e-6)
    np.testing.assert_allclose(result.probs[:, 0], expected, rtol=1e-6)
    np.testing.assert_array_equal(result.probs[:, 0].argmax(-1), truth)
    assert result.summary["students"] == 3 and result.summary["used"] is True
    with pytest.raises(ValueError, match="students must be at least 1"):
        self_training.self_train(
            student_recipe(cfg), datamodule, teacher, probs, choice, students=0
        )


def test_group_balancing_weights_give_every_group_of_label_and_other_heads_the_same_total(
    tmp_path, monkeypatch
):
    """Head 0 (chosen) reads x, head 1 reads y. The groups are (label, head 1's prediction):
    the rows where y's sign disagrees with the label weigh as much as those where it agrees,
    and the students are given those weights."""
    cfg, datamodule = noiseless_toy(tmp_path)
    teacher = SignRule([0, 1])
    x = datamodule.target_set.tensors["x"]
    probs = target_probabilities(teacher, x)
    unlabeled = target_probabilities(teacher, datamodule.unlabeled_set.tensors["x"])
    rows = pseudo_label_rows(unlabeled[:, 0], probs[:, 0], 1.0, [])
    train_set = pseudo_labeled_set(datamodule, unlabeled[:, 0], probs[:, 0], rows)

    weights, groups = self_training.group_balancing_weights(teacher, 0, train_set)

    label, y_sign = train_set.tensors["y"].numpy(), (train_set.tensors["x"][:, 1] > 0).numpy()
    keys = label * 2 + y_sign
    assert groups == len(np.unique(keys)) == 4
    totals = [float(weights[keys == k].sum()) for k in np.unique(keys)]
    np.testing.assert_allclose(totals, totals[0], rtol=1e-6)
    assert float(weights.mean()) == pytest.approx(1.0)
    agree = label == y_sign  # the correlated rows outnumber the others, so weigh less
    assert agree.sum() > (~agree).sum() and weights[agree].max() < weights[~agree].min()

    given = []
    monkeypatch.setattr(
        self_training, "_fit_student", lambda *args: given.append(args[5]) or SignRule([0])
    )
    choice = choice_revealing(datamodule, (0,), [1.0, 0.5])
    result = self_training.self_train(student_recipe(cfg), datamodule, teacher, probs, choice)
    assert given == [None] and result.summary["balance_groups"] is False
    result = self_training.self_train(
        student_recipe(cfg), datamodule, teacher, probs, choice, balance_groups=True
    )
    assert given[1] is not None and len(given[1]) == result.summary["training_rows"]
    assert result.summary["groups"] == 4


def test_training_rows_with_weights_are_drawn_in_proportion_to_them(tmp_path):
    cfg, datamodule = noiseless_toy(tmp_path)
    n = len(datamodule.train_set)
    weights = torch.zeros(n, dtype=torch.float64)
    weights[:3] = 1.0  # only the first three rows may be drawn
    datamodule.train_weights = weights
    loader = datamodule.train_dataloader()["labeled"]
    drawn = torch.cat([batch["idx"] for batch in loader])
    assert len(drawn) == n  # an epoch still holds as many rows as the set
    assert set(drawn.tolist()) <= set(datamodule.train_set.tensors["idx"][:3].tolist())
    datamodule.train_weights = weights[:-1]
    with pytest.raises(ValueError, match="one weight per training row"):
        datamodule.train_dataloader()


def test_cross_fitting_predicts_each_fold_with_students_never_taught_its_pseudo_labels(
    tmp_path, monkeypatch
):
    """`folds` 2: two students, each trained without one fold's target rows (nor the revealed
    ones) and predicting that fold; the holdout and next round read both."""
    cfg, datamodule = noiseless_toy(tmp_path)
    teacher = SignRule([0, 1])
    x = datamodule.target_set.tensors["x"]
    probs = target_probabilities(teacher, x)
    choice = choice_revealing(datamodule, (0, 1), [1.0, 0.5])
    excluded = []
    build = self_training.pseudo_label_rows
    monkeypatch.setattr(
        self_training,
        "pseudo_label_rows",
        lambda *args: excluded.append(sorted(args[-1])) or build(*args),
    )
    members = [SignRule([0]), SignRule([0], 0.5)]
    monkeypatch.setattr(self_training, "_fit_student", lambda *_: members[len(excluded) - 1])

    result = self_training.self_train(
        student_recipe(cfg), datamodule, teacher, probs, choice, folds=2
    )

    folds = self_training.target_folds(len(x), 2)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(x)))
    for fold, rows, member in zip(folds, excluded, members, strict=True):
        assert rows == sorted({0, 1, *fold.tolist()})
        expected = target_probabilities(member, x[fold])[:, 0]
        np.testing.assert_allclose(result.student_probs[fold], expected, rtol=1e-6)
    assert result.summary["folds"] == 2 and result.summary["used"] is True
    unlabeled = target_probabilities(teacher, datamodule.unlabeled_set.tensors["x"])[:, 0]
    per_fold = [
        len(datamodule.train_set) + len(build(unlabeled, probs[:, 0], 0.8, rows))
        for rows in excluded
    ]
    assert result.summary["training_rows_per_fold"] == per_fold
    assert result.summary["training_rows"] == round(np.mean(per_fold))
    assert not result.taught.any() and result.summary["taught_target_rows"] == 0
    assert self_training.target_folds(len(x), 1)[0].tolist() == list(range(len(x)))
    for folds in (0, len(x) + 1):
        with pytest.raises(ValueError, match="folds must be at least 1 and at most"):
            self_training.target_folds(len(x), folds)


def test_taught_marks_the_target_rows_the_student_trained_on(tmp_path, monkeypatch):
    """Without cross-fitting, a target row is taught when its pseudo-label is in the student's
    training set: kept by confidence, and never a revealed row."""
    import hydra

    cfg = compose_train(offline_overrides("toy", tmp_path), tmp_path)
    datamodule = hydra.utils.instantiate(cfg.dataset)
    datamodule.setup("fit")
    teacher = SignRule([0, 1], 0.1)  # unsaturated: its confidence varies from row to row
    probs = target_probabilities(teacher, datamodule.target_set.tensors["x"])
    choice = choice_revealing(datamodule, (0, 1), [1.0, 0.5])
    monkeypatch.setattr(self_training, "_fit_student", lambda *_: SignRule([0]))

    result = self_training.self_train(
        student_recipe(cfg), datamodule, teacher, probs, choice, keep_fraction=0.5
    )

    unlabeled = target_probabilities(teacher, datamodule.unlabeled_set.tensors["x"])[:, 0]
    kept = self_training.pseudo_label_rows(unlabeled, probs[:, 0], 0.5, [0, 1]) - len(unlabeled)
    np.testing.assert_array_equal(np.flatnonzero(result.taught), kept[kept >= 0])
    assert not result.taught[[0, 1]].any()
    assert 0 < result.summary["taught_target_rows"] < len(probs)


def toy_run_with_cosine(tmp_path):
    """A one-epoch toy run's config with the cosine schedule, its data set up to fit, a
    SignRule teacher reading both columns and its target probabilities."""
    import hydra

    cfg = compose_train(
        [*offline_overrides("toy", tmp_path), "scheduler=cosine", "trainer.max_epochs=1"], tmp_path
    )
    datamodule = hydra.utils.instantiate(cfg.dataset)
    datamodule.setup("fit")
    teacher = SignRule([0, 1])
    return (
        cfg,
        datamodule,
        teacher,
        target_probabilities(teacher, datamodule.target_set.tensors["x"]),
    )


def test_students_train_for_their_own_epochs_and_a_cosine_schedule_follows(tmp_path, monkeypatch):
    """`epochs` sets the students' epochs, not the run's; the cosine schedule's length, which
    reads trainer.max_epochs, follows. `lr` sets their learning rate."""
    cfg, datamodule, teacher, probs = toy_run_with_cosine(tmp_path)
    real_fit_student, fitted = self_training._fit_student, []
    monkeypatch.setattr(
        self_training,
        "_fit_student",
        lambda *args: fitted.append((args[0], real_fit_student(*args))) or fitted[-1][1],
    )

    result = self_training.self_train(
        student_recipe(cfg), datamodule, teacher, probs, None, epochs=3, lr=0.0125
    )

    recipe, student = fitted[0]
    assert student.trainer.current_epoch == 3 and result.summary["epochs"] == 3
    assert student.trainer.lr_scheduler_configs[0].scheduler.T_max == 3
    # `lr` sets the students' learning rate, where the cosine schedule starts.
    assert student.trainer.lr_scheduler_configs[0].scheduler.base_lrs == [0.0125]
    assert result.summary["lr"] == 0.0125 and cfg.method.optimizer.lr != 0.0125
    with pytest.raises(ValueError, match="self_training.lr must be positive"):
        self_training.SelfTrainingSettings(lr=0)
    with pytest.raises(ValueError, match="self_training.warmup_epochs must be at least 0"):
        self_training.SelfTrainingSettings(warmup_epochs=-1)


def test_a_students_warmup_raises_its_rate_before_the_schedule(tmp_path, monkeypatch):
    """With warmup_epochs 2 of 5, the rate climbs lr/3, 2 lr/3, then the cosine runs 3 epochs
    from lr to zero."""
    cfg, datamodule, teacher, probs = toy_run_with_cosine(tmp_path)
    rates, real_fit = [], self_training.side_trainer

    class Rates(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            rates.append(trainer.optimizers[0].param_groups[0]["lr"])

    monkeypatch.setattr(
        self_training, "side_trainer",
        lambda *args, callbacks=(), **kw: real_fit(*args, callbacks=[*callbacks, Rates()], **kw),
    )  # fmt: skip
    self_training.self_train(
        student_recipe(cfg), datamodule, teacher, probs, None, epochs=5, lr=0.03, warmup_epochs=2
    )
    cosine = [0.03 * (1 + np.cos(np.pi * k / 3)) / 2 for k in range(3)]
    assert rates == pytest.approx([0.01, 0.02, *cosine])
    assert cfg.trainer.max_epochs == 1  # the run's own config is left alone
    assert student_recipe(cfg).trainer().max_epochs == 1  # and so are the run's settings
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        self_training.self_train(student_recipe(cfg), datamodule, teacher, probs, None, epochs=0)


def test_without_held_out_rows_the_report_says_null_and_stays_strict_json(tmp_path):
    overrides = [*offline_overrides("toy", tmp_path), *ORACLE_DIVDIS, "dataset.holdout_fraction=0"]
    train(compose_train([*overrides, "self_training=pseudo_label"], tmp_path))

    def no_nan(token):
        raise AssertionError(f"{token} in the report")

    text = (tmp_path / "submission.report.json").read_text()
    report = json.loads(text, parse_constant=no_nan)
    assert report["holdout_accuracy"] == [None, None]
    assert report["self_training"]["holdout_accuracy"] is None
    assert "no held-out labeled rows" in report["estimate_basis"]


def test_a_student_started_from_the_teacher_predicts_as_its_chosen_head():
    from hackrobust.models.auto import auto

    torch.manual_seed(0)
    teacher = auto((1, 8, 8), num_classes=3, num_heads=2, cnn_width=4, cnn_blocks=1).eval()
    student = auto((1, 8, 8), num_classes=3, num_heads=1, cnn_width=4, cnn_blocks=1).eval()
    student.load_state_dict(self_training.chosen_head_state(teacher, head=1))
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(student(x)[:, 0], teacher(x)[:, 1])
    mixed = self_training.chosen_head_state(teacher, head=2)  # one head per class pair
    assert not any(key.startswith("heads.") for key in mixed)
    fresh = auto((1, 8, 8), num_classes=3, num_heads=1, cnn_width=4, cnn_blocks=1).eval()
    fresh.load_state_dict(mixed, strict=False)
    torch.testing.assert_close(fresh.features(x), teacher.features(x))
    with pytest.raises(ValueError, match="start=teacher needs a trunk with heads"):
        self_training.chosen_head_state(torch.nn.Linear(2, 2), head=0)
    with pytest.raises(ValueError, match="self_training.start must be one of pretrained, teacher"):
        self_training.SelfTrainingSettings(start="scratch")


def test_no_student_is_trained_for_a_head_sure_of_enough_target_rows(tmp_path, monkeypatch):
    """SignRule heads are sure (probability ~1) of every noiseless toy row: with
    skip_if_sure_of the probabilities stay the head's and no student is fitted; a head sure of
    too few rows still gets its student."""
    cfg, datamodule = noiseless_toy(tmp_path)
    teacher = SignRule([0, 1])
    probs = target_probabilities(teacher, datamodule.target_set.tensors["x"])
    choice = choice_revealing(datamodule, (0,), [1.0, 0.5])
    fitted = []
    monkeypatch.setattr(
        self_training, "_fit_student", lambda *args: fitted.append(args) or SignRule([0])
    )
    result = self_training.self_train(
        student_recipe(cfg), datamodule, teacher, probs, choice, skip_if_sure_of=0.99
    )
    assert not fitted and result.summary["used"] is False
    assert (
        result.summary["skipped_because"] == "the chosen head is sure of 100.0% of the target rows"
    )
    assert result.summary["chosen_head_sure_share"] == 1.0
    np.testing.assert_array_equal(result.probs, probs)
    unsure = probs.copy()
    unsure[: len(unsure) // 2, 0] = [0.6, 0.4]  # unsure of half the rows
    result = self_training.self_train(
        student_recipe(cfg), datamodule, teacher, unsure, choice, skip_if_sure_of=0.99
    )
    assert len(fitted) == 1
    assert result.summary["chosen_head_sure_share"] == pytest.approx(0.5, abs=0.02)
    with pytest.raises(ValueError, match="skip_if_sure_of must be in"):
        self_training.SelfTrainingSettings(skip_if_sure_of=1.5)


def test_a_student_that_settles_stops_and_the_report_says_after_how_many_epochs(tmp_path):
    """Every epoch counts as settled with settled_below near 1: the student stops after
    settled_epochs of its 5; its classes per epoch come back for scoring."""
    cfg, datamodule = noiseless_toy(tmp_path)
    teacher = SignRule([0, 1])
    probs = target_probabilities(teacher, datamodule.target_set.tensors["x"])
    n_target = len(datamodule.target_set)
    for settled_below, epochs in ((0.99, 2), (None, 5)):
        result = self_training.self_train(
            student_recipe(cfg), datamodule, teacher, probs, None,
            epochs=5, settled_below=settled_below, settled_epochs=2,
        )  # fmt: skip
        assert result.summary["student_epochs"] == [epochs]
        assert len(result.summary["changed_by_epoch"]) == epochs
        assert result.epoch_classes.shape == (epochs + 1, n_target)
        np.testing.assert_array_equal(result.epoch_classes[-1], result.student_probs.argmax(-1))
