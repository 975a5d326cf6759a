"""Choosing the head: sequential Bayesian querying, and the run end to end with an oracle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hackrobust.query import choose_head, expected_information_gain
from hackrobust.submission import read_submission
from hackrobust.train import train

from helpers import compose_train, offline_overrides


def two_heads(n=40, agree=20, seed=0):
    """Head 0 predicts `a`, head 1 predicts `b`; they agree on the first `agree` rows."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n)
    b = np.where(np.arange(n) < agree, a, 1 - a)
    probs = np.stack([np.eye(2)[a], np.eye(2)[b]], axis=1) * 0.9 + 0.05
    return probs, a, b


def test_queries_only_where_heads_disagree_and_finds_the_true_head():
    probs, _, truth = two_heads()
    asked = []

    def reveal(datum_id):
        asked.append(datum_id)
        return int(truth[datum_id])

    choice = choose_head(probs, reveal, budget=5)
    assert choice.head == 1 and choice.posterior[1] > 0.999
    assert 1 <= len(asked) <= 5 and all(d >= 20 for d in asked)


def test_information_gain_is_zero_where_heads_agree():
    probs, _, _ = two_heads()
    gain = expected_information_gain(0.95 * probs + 0.025, np.array([0.5, 0.5]))
    assert np.allclose(gain[:20], 0, atol=1e-9) and (gain[20:] > 0.1).all()


def test_known_labels_are_used_first_for_free():
    probs, truth, _ = two_heads()
    calls = []
    choice = choose_head(
        probs,
        lambda d: calls.append(d),
        budget=0,
        known={25: int(truth[25]), 30: int(truth[30]), 31: int(truth[31]), 33: int(truth[33])},
    )
    assert (
        choice.head == 0
        and calls == []
        and [q.datum_id for q in choice.queries] == [25, 30, 31, 33]
    )


def test_three_competing_features_three_heads_five_labels_pick_the_right_one():
    """With more than two candidate rules (mnist_sum_bis), one head per rule: the queries must
    separate all three hypotheses within the budget."""
    rng = np.random.default_rng(1)
    features = rng.integers(0, 2, size=(60, 3))  # each head predicts one feature
    probs = np.eye(2)[features] * 0.9 + 0.05  # (60, 3 heads, 2)
    for true_head in range(3):
        choice = choose_head(probs, lambda d, h=true_head: int(features[d, h]), budget=5)
        assert choice.head == true_head and max(choice.posterior) > 0.95
        assert len(choice.queries) <= 5


def test_one_head_queries_random_rows():
    probs, truth, _ = two_heads()
    choice = choose_head(probs[:, :1], lambda d: int(truth[d]), budget=5)
    assert choice.head == 0 and len({q.datum_id for q in choice.queries}) == 5


def test_oracle_run_reveals_at_most_five_and_writes_the_report(tmp_path):
    overrides = [
        *offline_overrides("toy", tmp_path),
        "method=divdis",
        "query=oracle",
        "trainer.max_epochs=3",
    ]
    metrics, objects = train(compose_train(overrides, tmp_path))
    ledger = json.loads((tmp_path / "oracle_ledger.json").read_text())
    assert 1 <= len(ledger["revealed"]) <= 5 and ledger["pending"] is None
    report = json.loads((tmp_path / "submission.report.json").read_text())
    assert report["labels_revealed"] == len(ledger["revealed"])
    assert report["default_score"] == 0.8 and report["recommendation"]
    low, high = report["estimate_interval_90"]
    assert 0 <= low <= report["estimated_target_accuracy"] <= high <= 1
    labels = read_submission(tmp_path / "submission.csv")
    head = report["chosen_head"]
    predicted = np.load(tmp_path / "predictions.npz")["predicted"][:, head]
    revealed = {int(d): label for d, label in ledger["revealed"].items()}
    rows = sorted(revealed)
    # The CSV is the head's predictions, but every revealed row carries its revealed label.
    np.testing.assert_array_equal(np.delete(labels, rows), np.delete(predicted, rows))
    assert [labels[d] for d in rows] == [revealed[d] for d in rows]
    assert report["revealed_rows_relabeled"] == sum(predicted[d] != revealed[d] for d in rows)
    assert int(objects["method"].chosen_head) == head


@pytest.mark.parametrize("callbacks", ["default", "chosen_head_fitting"])
def test_a_run_resumed_from_its_checkpoint_asks_nothing(tmp_path, callbacks):
    """The labels the query used are written into the checkpoint the run keeps; resumed from it
    in a new folder (whose oracle ledger is empty), the run chooses again from them and reveals
    nothing, whether it stops there (the same CSV) or trains on (its own held-out numbers)."""
    import torch

    common = [
        *offline_overrides("toy", tmp_path),
        "method=divdis",
        "query=oracle",
        f"callbacks={callbacks}",
    ]
    first = tmp_path / "first"
    _, objects = train(compose_train([*common, "trainer.max_epochs=2"], first))
    kept = objects["trainer"].checkpoint_callback.best_model_path
    state = torch.load(kept, map_location="cpu", weights_only=False)["callbacks"]["ActiveQuery"]
    report = json.loads((first / "submission.report.json").read_text())
    labels = {q["datum_id"]: q["label"] for q in report["revealed"]}
    assert state["revealed"] == labels and len(labels) == 5 and state["source"]

    modified = Path(kept).stat().st_mtime_ns
    for epochs in (2, 3):
        resumed = tmp_path / f"resumed_{epochs}"
        resume = [*common, f"trainer.max_epochs={epochs}", f"ckpt_path='{kept}'"]  # quoted: '='
        train(compose_train(resume, resumed))
        if (resumed / "oracle_ledger.json").exists():
            assert json.loads((resumed / "oracle_ledger.json").read_text())["revealed"] == {}
        again = json.loads((resumed / "submission.report.json").read_text())
        assert {q["datum_id"]: q["label"] for q in again["revealed"]} == labels
        assert all(q["information_gain"] == 0.0 for q in again["revealed"])  # known, not asked
    assert Path(kept).stat().st_mtime_ns == modified  # the first run's files are left alone
    assert (tmp_path / "resumed_2" / "submission.csv").read_text() == (
        first / "submission.csv"
    ).read_text()


def test_labels_in_the_callbacks_state_are_used_again_and_not_asked_again(tmp_path):
    """Restored from a checkpoint, the callback chooses again (as at the chosen head's fitting
    epoch) from the labels it used, in label values, without asking a new ledger for any; labels
    from another answer key are not evidence."""
    from functools import partial
    from types import SimpleNamespace

    from hackrobust.query import ActiveQuery
    from hackrobust.reveal import OracleRevealer

    probs, truth, _ = two_heads()
    values = np.array([3, 7])
    np.save(tmp_path / "y_val.npy", values[truth])
    np.save(tmp_path / "other.npy", values[truth])
    data = SimpleNamespace(
        label_values=values, to_class_index=lambda y: np.searchsorted(values, y), folder=None
    )

    def callback(ledger, answer_key="y_val.npy"):
        key, ledger = tmp_path / answer_key, tmp_path / ledger
        return ActiveQuery(partial(OracleRevealer, key, ledger_file=ledger))

    first = callback("first.json")
    chosen = first._query(data, probs, None)
    assert len(chosen["queries"]) == 5 and chosen["head"] == 0
    assert {q["label"] for q in chosen["queries"]} <= {3, 7}

    resumed = callback("resumed.json")
    resumed.load_state_dict(first.state_dict())
    again = resumed._query(data, probs, None)
    assert [q["datum_id"] for q in again["queries"]] == sorted(first.revealed)
    assert again["head"] == 0 and not (tmp_path / "resumed.json").exists()

    elsewhere = callback("elsewhere.json", answer_key="other.npy")
    elsewhere.load_state_dict(first.state_dict())
    elsewhere._query(data, probs, None)
    fetched = json.loads((tmp_path / "elsewhere.json").read_text())["revealed"]
    assert len(fetched) == 5  # it asked its own answer key


@pytest.mark.parametrize("method", ["divdis", "erm"])
def test_without_a_query_the_report_says_nothing_checked_the_rule(tmp_path, method, caplog):
    overrides = [*offline_overrides("toy", tmp_path), f"method={method}", "trainer.max_epochs=1"]
    train(compose_train(overrides, tmp_path))
    report = json.loads((tmp_path / "submission.report.json").read_text())
    assert report["labels_revealed"] == 0 and report["revealed"] == []
    assert report["recommendation"] == "keep the default (do not submit)"
    assert "query=none" in report["estimate_basis"]
    several = "hypotheses and no query: the CSV holds head 0, unchecked" in caplog.text
    assert several == (method == "divdis")


def test_revealed_labels_replace_the_predictions_of_their_rows():
    from hackrobust.predict import with_revealed_labels

    predicted = np.array([3, 7, 3])
    label_values = np.array([3, 7])
    labels = with_revealed_labels(predicted, label_values, {0: 7, 1: 7})
    assert labels.tolist() == [7, 7, 3]  # row 0 relabeled, row 1 already right, row 2 untouched
    assert predicted.tolist() == [3, 7, 3]  # the model's labels are left as they were
    with pytest.raises(ValueError, match="revealed label 5 of target row 2 is not one of"):
        with_revealed_labels(predicted, label_values, {2: 5})


def test_queries_spread_over_the_disagreement_region_and_catch_heads_that_are_both_wrong():
    """An OR head and an AND head of two features: neither is the label (feature x)."""
    from hackrobust.query.report import build_report

    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    or_head, and_head = x | y, x & y
    probs = np.stack([np.eye(2)[or_head], np.eye(2)[and_head]], axis=1) * 0.9 + 0.05
    features = np.stack([x, y], axis=1) + 0.01 * rng.standard_normal((200, 2))
    choice = choose_head(probs, lambda d: int(x[d]), budget=5, features=features)
    groups = {(int(x[q.datum_id]), int(y[q.datum_id])) for q in choice.queries}
    assert groups == {(1, 0), (0, 1)}  # both kinds of disagreement were asked
    report = build_report(choice.to_dict(), probs, [1.0, 1.0], 100, np.array([0, 1]), 0.8)
    assert not report["chosen_head_matches_every_revealed_label"]
    assert report["recommendation"].startswith("keep the default")


def test_once_decided_the_labels_check_the_chosen_head_where_the_heads_disagree():
    """Top-k on a low-mix set: an OR head beside a head that predicts 0 everywhere; the label is
    feature x, so neither head is right. After the first label the gain sends the others to one
    kind of row, where the chosen head is right; random rows where the heads disagree (x = 1 or
    y = 1) are labelled against one head or the other."""
    from hackrobust.query.report import build_report

    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 2, 400), rng.integers(0, 2, 400)
    or_sure = np.where((x == 0) & (y == 1), 0.7, 0.97)  # P(OR head says 1) on its 1 rows
    p_or = np.where((x | y) == 1, or_sure, 0.03)
    probs = np.stack([np.stack([1 - p_or, p_or], -1), np.tile([0.97, 0.03], (400, 1))], axis=1)
    outcomes = {}
    for verify_after in (0.9, 1.1):  # 1.1: the gain to the end
        choice = choose_head(probs, lambda d: int(x[d]), budget=5, verify_after=verify_after)
        report = build_report(choice.to_dict(), probs, [1.0, 1.0], 120, np.array([0, 1]), 0.8)
        asked = {(int(x[q.datum_id]), int(y[q.datum_id])) for q in choice.queries}
        outcomes[verify_after] = (choice.head, asked, report["recommendation"])
    _, asked, verdict = outcomes[1.1]
    assert len(asked) == 1 and verdict == "submit"  # the failure the check exists for
    _, asked, verdict = outcomes[0.9]
    assert len(asked) > 1 and verdict.startswith("keep the default")


def test_heads_that_disagree_both_ways_keep_the_gain_to_the_end():
    """Two rules on two features are not nested: deciding does not switch to random rows."""
    probs, _, truth = two_heads(n=200, agree=100)
    picks = [
        [q.datum_id for q in choose_head(probs, lambda d: int(truth[d]), 5, verify_after=v).queries]
        for v in (0.9, 1.1)
    ]
    assert picks[0] == picks[1] and len(picks[0]) == 5


def test_an_explicit_default_score_of_zero_is_the_one_the_report_weighs(tmp_path):
    overrides = [*offline_overrides("toy", tmp_path), "trainer.max_epochs=1"]
    train(compose_train([*overrides, "submission.default_score=0"], tmp_path))
    assert json.loads((tmp_path / "submission.report.json").read_text())["default_score"] == 0.0
