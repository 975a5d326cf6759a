"""GroupDRO, JTT, DFR and logit adjustment: their updates by hand, their stages, one run each."""

from __future__ import annotations

import csv
import functools
import math
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from hackrobust.data.in_memory import TensorDict, pass_through
from hackrobust.methods import DFR, JTT, GroupDRO, LogitAdjustment
from hackrobust.methods.dfr import fit_dfr, l1_logistic_regression
from hackrobust.methods.group_dro import group_mean
from hackrobust.methods.jtt import cross_fitted_errors
from hackrobust.models import MultiHeadClassifier, mlp
from hackrobust.submission import read_submission
from hackrobust.train import train

from helpers import compose_train, offline_overrides

# ---- tiny in-memory data -------------------------------------------------------------------------


class GroupData(L.LightningDataModule):
    """Train, held-out ("val") and target tensors with group ids, as the methods read them."""

    def __init__(self, train: dict, val: dict, target: dict, num_groups: int, batch_size=64):
        super().__init__()
        self.train_set, self.holdout_set = TensorDict(**train), TensorDict(**val)
        self.target_set = TensorDict(**target)
        self.group_names = [f"g{g}" for g in range(num_groups)]
        self.val_stage_names = ["val", "target"]
        self.batch_size = batch_size

    def _loader(self, data: TensorDict, shuffle=False, batch_size=256) -> DataLoader:
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle, collate_fn=pass_through)

    def train_dataloader(self):
        return {"labeled": self._loader(self.train_set, True, self.batch_size)}

    def val_dataloader(self):
        return [self._loader(self.holdout_set), self._loader(self.target_set)]

    def predict_dataloader(self):
        return self._loader(self.target_set)


def spurious_rows(n: int, agree: float, rng: np.random.Generator, flip: float = 0.0) -> dict:
    """2-D rows (noisy core feature = y, clean spurious feature = s); group 2 y + s.

    s equals y on a share `agree` of rows (0.5: independent); `flip` of labels are flipped after.
    """
    y = rng.integers(0, 2, n)
    s = np.where(rng.random(n) < agree, y, 1 - y)
    x = np.stack(
        [(2 * y - 1) + 1.0 * rng.standard_normal(n), (2 * s - 1) + 0.1 * rng.standard_normal(n)], 1
    )
    y = np.where(rng.random(n) < flip, 1 - y, y)
    return {
        "idx": torch.arange(n),
        "x": torch.tensor(x, dtype=torch.float32),
        "y": torch.tensor(y),
        "group": torch.tensor(2 * y + s),
    }


def spurious_data(seed=0, flip=0.0, n_train=400) -> GroupData:
    rng = np.random.default_rng(seed)
    target = spurious_rows(200, 0.5, rng)
    target["y"] = torch.full_like(target["y"], -1)  # no answer key
    val = spurious_rows(200, 0.5, rng)
    return GroupData(spurious_rows(n_train, 0.95, rng, flip), val, target, num_groups=4)


def linear(input_shape, num_classes, num_heads=1) -> MultiHeadClassifier:
    """Heads straight on the inputs: the features are the input dimensions."""
    return MultiHeadClassifier(nn.Identity(), input_shape[0], num_classes, num_heads)


def make(cls, model=linear, num_classes=2, lr=0.1, **kwargs):
    optimizer = functools.partial(torch.optim.AdamW, lr=lr, weight_decay=0.0)
    return cls(model, optimizer, input_shape=(2,), num_classes=num_classes, **kwargs)


def trainer(max_epochs: int, callbacks=()) -> L.Trainer:
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=list(callbacks),
    )


def attach(module, datamodule) -> None:
    """A stand-in trainer exposing only the datamodule, for hooks that read nothing else."""
    module._trainer = SimpleNamespace(datamodule=datamodule)


def clone_state(module: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def end_to_end(tmp_path, method: str, *extra: str):
    overrides = [*offline_overrides("toy", tmp_path), f"method={method}", *extra]
    metrics, objects = train(compose_train(overrides, tmp_path))
    labels = read_submission(tmp_path / "submission.csv")
    assert len(labels) == len(objects["datamodule"].data.x_target)
    with next((tmp_path / "csv").rglob("metrics.csv")).open() as f:
        rows = list(csv.DictReader(f))
    return metrics, objects, rows


# ---- Group DRO -----------------------------------------------------------------------------------


def test_group_dro_q_follows_exponentiated_gradient_by_hand():
    module = make(GroupDRO, eta=0.5, adjustment=1.0)
    module.init_groups(torch.tensor([4.0, 1.0, 9.0, 0.0]))  # group 3 has no training row
    adj = [1 / 2, 1.0, 1 / 3, 0.0]
    q = [1 / 3, 1 / 3, 1 / 3, 0.0]
    assert module.q.tolist() == pytest.approx(q)
    steps = [
        ([0.7, 0.2, 0.0, 0.0], [True, True, False, False]),  # group 2 absent: keeps its weight
        ([1.5, 0.0, 0.4, 0.0], [True, False, True, False]),
    ]
    for losses, present in steps:
        module.update_q(torch.tensor(losses), torch.tensor(present))
        q = [
            w * math.exp(0.5 * (loss + a) * p)
            for w, loss, a, p in zip(q, losses, adj, present, strict=True)
        ]
        q = [w / sum(q) for w in q]
        assert module.q.tolist() == pytest.approx(q, rel=1e-6)
    assert module.q[3] == 0


def test_group_dro_adjustment_is_c_over_sqrt_count():
    module = make(GroupDRO, eta=0.1, adjustment=2.0)
    module.init_groups(torch.tensor([100.0, 4.0, 0.0]))
    assert module.group_adjustment.tolist() == pytest.approx([0.2, 1.0, 0.0])
    module.update_q(torch.tensor([0.3, 0.3, 0.0]), torch.tensor([True, True, False]))
    # Equal losses: the small group gains exp(eta (1.0 - 0.2)) relative to the large one.
    assert (module.q[1] / module.q[0]).item() == pytest.approx(math.exp(0.1 * 0.8))


def loop_group_mean(losses, groups, num_groups):
    means, counts = torch.zeros(num_groups), torch.zeros(num_groups)
    for g in range(num_groups):
        rows = groups == g
        counts[g] = rows.sum()
        if rows.any():
            means[g] = losses[rows].mean()
    return means, counts


@pytest.mark.parametrize("ema", [None, 0.9])
def test_group_dro_vectorised_update_equals_a_per_group_loop(ema):
    torch.manual_seed(0)
    num_groups, eta = 7, 0.3
    module = make(GroupDRO, eta=eta, adjustment=0.5, ema=ema)
    counts = torch.tensor([5.0, 3, 8, 1, 2, 0, 4])
    module.init_groups(counts)
    q = [(1.0 if c > 0 else 0.0) / 6 for c in counts]
    history, seen = [0.0] * num_groups, [False] * num_groups
    for _ in range(5):
        losses = torch.rand(12)
        groups = torch.tensor([0, 1, 2, 3, 4, 6])[torch.randint(0, 6, (12,))]
        means, batch_counts = group_mean(losses, groups, num_groups)
        ref_means, ref_counts = loop_group_mean(losses, groups, num_groups)
        torch.testing.assert_close(means, ref_means)
        torch.testing.assert_close(batch_counts, ref_counts)
        module.update_q(means, batch_counts > 0)
        for g in range(num_groups):  # the reference: one group at a time
            if ref_counts[g] == 0:
                continue
            signal = ref_means[g].item() + (0.5 / math.sqrt(counts[g]) if counts[g] else 0)
            if ema is not None:
                history[g] = ema * history[g] + (1 - ema) * signal if seen[g] else signal
                seen[g] = True
                signal = history[g]
            q[g] *= math.exp(eta * signal)
        q = [w / sum(q) for w in q]
        assert module.q.tolist() == pytest.approx(q, rel=1e-5)


def test_group_dro_loss_is_the_q_weighted_group_loss_with_the_updated_q():
    torch.manual_seed(0)
    module = make(GroupDRO, model=functools.partial(mlp, hidden=(4,)), eta=0.2)
    module.init_groups(torch.tensor([3.0, 3.0, 3.0]))
    batch = {"x": torch.randn(6, 2), "y": torch.tensor([0, 1, 0, 1, 0, 1])}
    batch["group"] = torch.tensor([0, 0, 1, 1, 1, 0])
    loss, logits, extras = module.compute_loss({"labeled": batch})
    per_row = F.cross_entropy(logits[:, 0], batch["y"], reduction="none").detach()
    means = torch.stack([per_row[batch["group"] == g].mean() for g in (0, 1)])
    q = torch.tensor([1 / 3, 1 / 3, 1 / 3]) * torch.exp(0.2 * torch.cat([means, torch.zeros(1)]))
    q = q / q.sum()
    assert loss.item() == pytest.approx((means @ q[:2]).item(), rel=1e-5)
    assert extras["worst_group_loss"].item() == pytest.approx(means.max().item())
    assert extras["max_q"].item() == pytest.approx(q.max().item())
    # Evaluation steps leave q alone.
    module.eval()
    before = module.q.clone()
    module.compute_loss({"labeled": batch})
    assert torch.equal(module.q, before)


def test_group_dro_reads_groups_from_the_datamodule_and_refuses_none():
    data = spurious_data()
    module = make(GroupDRO)
    attach(module, data)
    module.setup("fit")
    counts = torch.bincount(data.train_set.tensors["group"], minlength=4)
    assert module.num_groups == 4
    assert module.q.tolist() == pytest.approx((counts > 0).float() / (counts > 0).sum())
    # A checkpoint loads into a fresh module, whose q is sized at setup.
    fresh = make(GroupDRO)
    fresh.load_state_dict(module.state_dict())
    assert torch.equal(fresh.q, module.q)
    attach(module, SimpleNamespace(train_set=data.train_set))
    with pytest.raises(ValueError, match="needs groups"):
        module.setup("fit")


# ---- JTT -----------------------------------------------------------------------------------------


class JTTRecorder(L.Callback):
    """Callbacks' epoch-start hooks run before the module's: the model as identification ended."""

    def on_fit_start(self, trainer, module):
        self.initial = clone_state(module.net)
        self.ready = []

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == module.identification_epochs:
            data = trainer.datamodule.train_set.tensors
            with torch.no_grad():
                self.expected = module.net(data["x"])[:, 0].argmax(-1) != data["y"]
            self.before_reset = clone_state(module.net)

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.current_epoch == module.identification_epochs and batch_idx == 0:
            self.at_second_stage = clone_state(module.net)
            self.optimizer_state = len(trainer.optimizers[0].state)

    def on_train_epoch_end(self, trainer, module):
        self.ready.append(module.selection_ready())


def test_jtt_identifies_errors_resets_the_model_and_upweights():
    L.seed_everything(0)
    data = spurious_data(flip=0.1)
    module = make(JTT, identification_epochs=2, upweight=5.0)
    recorder = JTTRecorder()
    assert not module.selection_ready()
    trainer(3, [recorder]).fit(module, datamodule=data)

    idx = data.train_set.tensors["idx"]
    errors = module.error_set[idx]
    assert torch.equal(errors, recorder.expected)
    assert 0 < errors.sum() < len(errors)  # the flipped labels at least
    for key, value in recorder.initial.items():
        assert torch.equal(recorder.at_second_stage[key], value), key
        assert not torch.equal(recorder.before_reset[key], value), key
    assert recorder.optimizer_state == 0  # AdamW starts again
    assert recorder.ready == [False, False, True]
    assert module.mean_weight.item() == pytest.approx(1 + 4 * errors.float().mean().item())

    # A checkpoint keeps the error set, and loads into a fresh module.
    fresh = make(JTT, identification_epochs=2, upweight=5.0)
    fresh.load_state_dict(module.state_dict())
    assert torch.equal(fresh.error_set, module.error_set) and fresh.selection_ready()


def test_jtt_weights_rows_by_idx():
    torch.manual_seed(0)
    module = make(JTT, upweight=10.0)
    module.error_set = torch.tensor([False, True, False, False, True, False])
    module.mean_weight = torch.tensor(1 + 9 * 2 / 6)
    batch = {
        "idx": torch.tensor([4, 0, 2, 1]),
        "x": torch.randn(4, 2),
        "y": torch.tensor([1, 0, 1, 0]),
    }
    loss, logits, extras = module.compute_loss({"labeled": batch})
    per_row = F.cross_entropy(logits[:, 0], batch["y"], reduction="none")
    weights = torch.tensor([10.0, 1.0, 1.0, 10.0])
    expected = (weights * per_row).sum() / (4 * (1 + 9 * 2 / 6))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert extras["upweighted"].item() == 0.5


def test_jtt_cross_fitted_errors_find_flipped_labels():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 2))
    y = (x[:, 0] > 0).astype(np.int64)
    flipped = rng.random(200) < 0.05
    y[flipped] = 1 - y[flipped]
    wrong = cross_fitted_errors(x, y, folds=4)
    assert wrong[flipped].all()
    assert wrong[~flipped].mean() < 0.05


def test_jtt_cross_fitted_errors_on_wide_features_read_the_top_components():
    """Wide, low-rank features (like a backbone's) are projected before the probe."""
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((300, 4))
    x = latent @ rng.standard_normal((4, 500)) + 0.1 * rng.standard_normal((300, 500))
    y = (latent[:, 0] > 0).astype(np.int64)
    flipped = rng.random(300) < 0.05
    y[flipped] = 1 - y[flipped]
    wrong = cross_fitted_errors(x, y, folds=4, max_dim=8)
    assert wrong[flipped].mean() > 0.8
    assert wrong[~flipped].mean() < 0.1


class RowsWithoutTensors(torch.utils.data.Dataset):
    """An image-style set: rows one at a time, `tensors` holding labels only (no "x")."""

    def __init__(self, rows: dict):
        self.rows = rows
        self.tensors = {k: v for k, v in rows.items() if k != "x"}

    def __len__(self):
        return len(self.rows["y"])

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.rows.items()}


@pytest.mark.parametrize("folds", [None, 3])
def test_jtt_errors_from_a_per_row_dataset_match_the_in_memory_one(folds):
    torch.manual_seed(0)
    data = spurious_data(flip=0.1)
    module = make(JTT, identification_folds=folds)
    idx, wrong = module.training_errors(data)
    data.train_set = RowsWithoutTensors(data.train_set.tensors)
    idx_rows, wrong_rows = module.training_errors(data)
    assert torch.equal(idx, idx_rows) and torch.equal(wrong, wrong_rows)
    assert 0 < wrong.sum() < len(wrong)


def test_jtt_needs_epochs_after_identification():
    with pytest.raises(ValueError, match="max_epochs must exceed it, got 1"):
        trainer(1).fit(make(JTT, identification_epochs=1), datamodule=spurious_data())


# ---- DFR -----------------------------------------------------------------------------------------


def spurious_ratio(module) -> float:
    """|spurious| / |core| weight of the class-1-minus-class-0 logit."""
    weight = module.net.heads.weight.detach()
    difference = (weight[1] - weight[0]).abs()
    return (difference[1] / difference[0]).item()


def test_dfr_refit_ignores_the_spurious_feature_and_predicts_as_sklearn():
    L.seed_everything(0)
    data = spurious_data()
    module = make(DFR, C=1.0, num_retrains=5)
    fit = trainer(15)
    fit.fit(module, datamodule=data)
    erm_ratio = spurious_ratio(module)
    assert erm_ratio > 1  # ERM leans on the clean spurious feature

    probs = torch.cat([o["probs"] for o in fit.predict(module, datamodule=data)])
    dfr_ratio = spurious_ratio(module)
    assert dfr_ratio < 0.2 * erm_ratio
    x = data.target_set.tensors["x"].numpy()
    head = module.dfr_head
    np.testing.assert_array_equal(probs[:, 0].argmax(-1).numpy(), head.predict(x))
    # Two classes: the softmax of (-z/2, z/2) is sklearn's sigmoid of z.
    sigmoid = 1 / (1 + np.exp(-head.decision_function(x)))
    np.testing.assert_allclose(probs[:, 0, 1].numpy(), sigmoid, rtol=1e-4, atol=1e-5)

    # Predicting again refits the same head.
    weight = module.net.heads.weight.detach().clone()
    again = torch.cat([o["probs"] for o in fit.predict(module, datamodule=data)])
    torch.testing.assert_close(module.net.heads.weight.detach(), weight)
    torch.testing.assert_close(again, probs)


def test_dfr_head_matches_sklearn_on_balanced_data():
    """num_retrains=1 on equal groups: the subsample is every row, so one plain sklearn fit."""
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(4), 30)
    y = groups // 2
    x = np.stack([y + 0.8 * rng.standard_normal(120), rng.standard_normal(120)], 1)
    head, C = fit_dfr(x, y, groups, num_classes=2, C=0.3, num_retrains=1)
    assert C == 0.3
    scaler = StandardScaler().fit(x)
    reference = l1_logistic_regression(0.3, num_classes=2).set_params(tol=1e-8)
    reference.fit(scaler.transform(x), y)
    np.testing.assert_allclose(head.coef, reference.coef_, atol=2e-3)
    np.testing.assert_array_equal(head.predict(x), reference.predict(scaler.transform(x)))


def test_dfr_three_classes_writes_one_vs_rest_into_every_head():
    rng = np.random.default_rng(2)

    def rows(n):
        y = rng.integers(0, 3, n)
        x = np.stack([np.cos(2 * y) + 0.3 * rng.standard_normal(n), np.sin(2 * y)], 1)
        return {
            "idx": torch.arange(n),
            "x": torch.tensor(x, dtype=torch.float32),
            "y": torch.tensor(y),
            "group": torch.tensor(y),
        }

    data = GroupData(rows(60), rows(90), rows(30), num_groups=3)
    module = make(DFR, num_classes=3, num_heads=2, num_retrains=3)  # C tuned on the grid
    module.refit_heads(data)
    x = data.target_set.tensors["x"]
    logits = module(x).detach()
    scores = module.dfr_head.decision_function(x.numpy())
    np.testing.assert_allclose(logits[:, 0].numpy(), scores, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logits[:, 1], logits[:, 0])
    assert module.dfr_C in (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)


def test_dfr_needs_a_heldout_split():
    module = make(DFR)
    data = spurious_data()
    data.val_stage_names = ["target"]
    with pytest.raises(ValueError, match="held-out labeled split"):
        module.refit_heads(data)


# ---- logit adjustment ----------------------------------------------------------------------------


def test_posthoc_bias_shift_is_tau_log_prior_ratio_and_idempotent():
    module = make(LogitAdjustment, tau=1.5, num_heads=2)
    module.set_train_prior(torch.tensor([0] * 30 + [1] * 10))
    trained = module.net.heads.bias.detach().clone()
    shift = 1.5 * (math.log(0.5) - torch.tensor([0.75, 0.25]).log())
    for _ in range(2):  # a second predict does not add it again
        module.on_predict_start()
        torch.testing.assert_close(module.net.heads.bias.detach() - trained, shift.repeat(2))
    module.on_fit_start()  # training resumes on the trained bias
    torch.testing.assert_close(module.net.heads.bias.detach(), trained)


def test_posthoc_survives_inference_mode_and_a_checkpoint_round_trip():
    module = make(LogitAdjustment, target_prior=[0.2, 0.8])
    module.set_train_prior(torch.tensor([0, 0, 1, 1]))
    with torch.inference_mode():
        module.on_predict_start()
    fresh = make(LogitAdjustment, target_prior=[0.2, 0.8])
    fresh.load_state_dict(module.state_dict())
    fresh.on_predict_start()
    torch.testing.assert_close(fresh.net.heads.bias, module.net.heads.bias)


def test_group_balanced_prior_is_each_class_share_of_the_groups():
    """Three species of class 0 (one of them common), one of class 1: pi_t = (3/4, 1/4)."""
    module = make(LogitAdjustment, target_prior="group_balanced")
    y = torch.tensor([0] * 50 + [0, 0, 1, 1])
    group = torch.tensor([0] * 50 + [1, 2, 3, 3])
    module.set_group_balanced_prior(y, group)
    torch.testing.assert_close(module.target_prior, torch.tensor([0.75, 0.25]))
    with pytest.raises(ValueError, match="'group_balanced' or one number per class"):
        make(LogitAdjustment, target_prior="balanced")


def test_loss_mode_is_the_logit_adjusted_cross_entropy():
    torch.manual_seed(0)
    module = make(LogitAdjustment, mode="loss", tau=2.0)
    module.set_train_prior(torch.tensor([0] * 9 + [1]))
    batch = {"x": torch.randn(5, 2), "y": torch.tensor([0, 1, 1, 0, 1])}
    loss, logits, _ = module.compute_loss({"labeled": batch})
    adjusted = logits[:, 0] + 2.0 * torch.tensor([0.9, 0.1]).log() - 2.0 * math.log(0.5)
    assert loss.item() == pytest.approx(F.cross_entropy(adjusted, batch["y"]).item(), rel=1e-6)
    bias = module.net.heads.bias.detach().clone()
    module.on_predict_start()  # the loss variant leaves the logits as they are
    assert torch.equal(module.net.heads.bias.detach(), bias)


# ---- end to end ----------------------------------------------------------------------------------


def test_group_dro_end_to_end(tmp_path):
    metrics, objects, _ = end_to_end(tmp_path, "group_dro", "method.ema=0.9")
    assert metrics["train/max_q"] > 0 and math.isfinite(metrics["train/worst_group_loss"])
    assert objects["method"].num_groups == len(objects["datamodule"].group_names)


def test_jtt_end_to_end(tmp_path):
    _, objects, rows = end_to_end(tmp_path, "jtt", "trainer.max_epochs=2")
    assert objects["method"].identified
    selected = [(r["epoch"], r["val/select"] == "inf") for r in rows if r["val/select"]]
    assert selected == [("0", True), ("1", False)]
    assert objects["trainer"].checkpoint_callback.best_model_path.endswith("epoch_001.ckpt")


def test_dfr_end_to_end(tmp_path):
    _, objects, _ = end_to_end(tmp_path, "dfr", "method.num_retrains=3")
    assert objects["method"].dfr_head is not None


def test_logit_adjustment_end_to_end(tmp_path):
    _, objects, _ = end_to_end(tmp_path, "logit_adjustment")
    method = objects["method"]
    torch.testing.assert_close(method.applied_adjustment, method.adjustment())
