"""DFR: ERM, then retrain the last layer on group-balanced held-out data.

Kirichenko, Izmailov and Wilson, "Last Layer Re-Training is Sufficient for Robustness to
Spurious Correlations", ICLR 2023; official code
github.com/PolinaKirichenko/deep_feature_reweighting (`dfr_evaluate_spurious.py`, DFR on
validation). Training is ERM. Before predicting, the heads are replaced by a logistic
regression on the trunk's features of the held-out labeled split ("val"):

- `num_retrains` (20, as `dfr_on_validation_eval`) fits, each on a fresh group-balanced
  subsample (every group cut to the smallest group's size), features standardised, L1 penalty
  (liblinear), then the coefficients and intercepts averaged;
- C: `C` if given, else tuned as `dfr_on_validation_tune`: each C of their grid
  (1, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01) fit on a balanced subsample of one half of the split and
  scored by worst-group accuracy on the other half.

The averaged model is written into every head, the standardisation folded in (W / sigma,
b - W mu / sigma); with two classes sklearn's single row w becomes logits (-w/2, w/2), whose
softmax is sklearn's sigmoid. With more classes the fit is one-vs-rest (liblinear's multiclass
scheme in their code; recent sklearn needs `OneVsRestClassifier` for it).

Differences: the scaler is fit on the held-out split (theirs on the training set's features,
which would need another pass over it); subsampling draws from a seeded generator (`seed`), so
refitting the same trunk gives the same head. The refit runs in `on_predict_start`: Lightning
loads the selected checkpoint before it, and the weights exported at `on_predict_end` then hold
the refit head. Checkpoints and `val/select` during training see the ERM head.
"""

from __future__ import annotations

import numpy as np
import torch

from hackrobust.methods.base import BaseMethod
from hackrobust.methods.groups import every_row_loader, fit_datamodule

C_GRID = (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)  # the official C_OPTIONS


def balanced_subsample(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices with every present group cut to the smallest one's size (shuffled)."""
    present = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    size = min(len(rows) for rows in present)
    return np.concatenate([rng.permutation(rows)[:size] for rows in present])


def l1_logistic_regression(C: float, num_classes: int, seed: int = 0):
    """liblinear L1 logistic regression, one-vs-rest beyond two classes."""
    import sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    version = tuple(int(p) for p in sklearn.__version__.split(".")[:2])
    # sklearn 1.8 deprecated `penalty` for `l1_ratio`.
    penalty = {"l1_ratio": 1.0} if version >= (1, 8) else {"penalty": "l1"}
    model = LogisticRegression(C=C, solver="liblinear", random_state=seed, **penalty)
    return model if num_classes == 2 else OneVsRestClassifier(model)


def _coefficients(model) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(model, "estimators_"):  # one-vs-rest: one binary model per class
        coef = np.concatenate([m.coef_ for m in model.estimators_])
        return coef, np.concatenate([m.intercept_ for m in model.estimators_])
    return model.coef_, model.intercept_


class DFRHead:
    """The averaged, standardised logistic regression; `logits` is what the heads compute."""

    def __init__(self, mean, scale, coef, intercept, num_classes: int):
        self.mean, self.scale = mean, scale
        self.coef, self.intercept = coef, intercept  # (1 or K, D), (1 or K,)
        self.num_classes = num_classes

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        """sklearn's decision function of the averaged model: (N,) for two classes, else (N, K)."""
        scores = ((features - self.mean) / self.scale) @ self.coef.T + self.intercept
        return scores[:, 0] if self.num_classes == 2 else scores

    def predict(self, features: np.ndarray) -> np.ndarray:
        scores = self.decision_function(features)
        return (scores > 0).astype(np.int64) if self.num_classes == 2 else scores.argmax(-1)

    def linear(self) -> tuple[np.ndarray, np.ndarray]:
        """(K, D) weight and (K,) bias on raw features, standardisation folded in."""
        weight = self.coef / self.scale
        bias = self.intercept - weight @ self.mean
        if self.num_classes == 2:
            weight = np.concatenate([-weight / 2, weight / 2])
            bias = np.concatenate([-bias / 2, bias / 2])
        return weight, bias


def fit_dfr(
    features: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    num_classes: int,
    C: float | None = None,
    num_retrains: int = 20,
    seed: int = 0,
) -> tuple[DFRHead, float]:
    """The DFR head on (features, y, groups), and the C it used (tuned when `C` is None)."""
    from sklearn.preprocessing import StandardScaler

    missing = sorted(set(range(num_classes)) - set(y.tolist()))
    if missing:
        raise ValueError(f"DFR: the held-out split has no row of classes {missing}")
    rng = np.random.default_rng(seed)
    if C is None:
        C = tune_c(features, y, groups, num_classes, rng, seed)
    scaler = StandardScaler().fit(features)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    coefs, intercepts = [], []
    for _ in range(num_retrains):
        rows = balanced_subsample(groups, rng)
        model = l1_logistic_regression(C, num_classes, seed)
        model.fit((features[rows] - scaler.mean_) / scale, y[rows])
        coef, intercept = _coefficients(model)
        coefs.append(coef)
        intercepts.append(intercept)
    head = DFRHead(scaler.mean_, scale, np.mean(coefs, 0), np.mean(intercepts, 0), num_classes)
    return head, C


def tune_c(features, y, groups, num_classes, rng, seed=0) -> float:
    """The grid's C of best worst-group accuracy, fit on a balanced half, scored on the rest."""
    from sklearn.preprocessing import StandardScaler

    order = rng.permutation(len(y))
    scored, fitted = order[: len(y) // 2], order[len(y) // 2 :]
    fitted = fitted[balanced_subsample(groups[fitted], rng)]
    if len(set(y[fitted].tolist())) < num_classes:
        return C_GRID[0]  # too few rows to tune: the grid's first (weakest penalty)
    scaler = StandardScaler().fit(features[fitted])
    worst = []
    for C in C_GRID:
        model = l1_logistic_regression(C, num_classes, seed)
        model.fit(scaler.transform(features[fitted]), y[fitted])
        hits = model.predict(scaler.transform(features[scored])) == y[scored]
        worst.append(min(hits[groups[scored] == g].mean() for g in np.unique(groups[scored])))
    return C_GRID[int(np.argmax(worst))]


class DFR(BaseMethod):
    """ERM whose heads are refit on the group-balanced held-out split before predicting."""

    def __init__(self, *args, C: float | None = None, num_retrains: int = 20, seed: int = 0, **kw):
        if C is not None and C <= 0:
            raise ValueError(f"C must be positive or null, got {C}")
        if num_retrains < 1:
            raise ValueError(f"num_retrains must be at least 1, got {num_retrains}")
        super().__init__(*args, **kw)
        self.C = C
        self.num_retrains = num_retrains
        self.seed = seed
        self.dfr_head: DFRHead | None = None  # the last refit, for inspection
        self.dfr_C: float | None = None

    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
        labeled = batch["labeled"]
        logits = self(labeled["x"])
        return self.heads_cross_entropy(logits, labeled["y"]), logits, {}

    def on_predict_start(self) -> None:
        self.refit_heads(fit_datamodule(self, "DFR"))

    @torch.no_grad()
    def heldout_features(self, datamodule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The trunk's features, labels and groups of the "val" split, in eval mode."""
        names = list(getattr(datamodule, "val_stage_names", []))
        if not names or names[0] != "val":
            raise ValueError(
                "DFR refits the heads on the held-out labeled split: the datamodule has none "
                "(set dataset.holdout_fraction > 0)"
            )
        was_training = self.net.training
        self.net.eval()
        features, ys, groups = [], [], []
        try:
            # The set itself, not `val_dataloader()[0]`, which DDP may shard: every rank fits
            # the same head on every held-out row.
            holdout = getattr(datamodule, "holdout_set", None)
            loader = (
                every_row_loader(datamodule, holdout)
                if holdout is not None
                else datamodule.val_dataloader()[0]
            )
            for batch in loader:
                features.append(self.net.features(batch["x"].to(self.device)).float().cpu())
                ys.append(batch["y"].cpu())
                groups.append(batch["group"].cpu())
        finally:
            self.net.train(was_training)
        groups = torch.cat(groups).numpy()
        if (groups < 0).any():
            raise ValueError("DFR needs a known group (>= 0) for every held-out row")
        return torch.cat(features).numpy(), torch.cat(ys).numpy(), groups

    @torch.no_grad()
    def refit_heads(self, datamodule) -> None:
        """Fit the DFR head on the held-out split and write it into every head."""
        features, y, groups = self.heldout_features(datamodule)
        num_classes = self.net.num_classes
        self.dfr_head, self.dfr_C = fit_dfr(
            features, y, groups, num_classes, self.C, self.num_retrains, self.seed
        )
        weight, bias = self.dfr_head.linear()
        heads = self.net.heads
        dim = heads.in_features
        heads.weight.copy_(
            torch.as_tensor(weight, dtype=heads.weight.dtype)
            .repeat(self.num_heads, 1)
            .view(self.num_heads * num_classes, dim)
        )
        heads.bias.copy_(torch.as_tensor(bias, dtype=heads.bias.dtype).repeat(self.num_heads))
