"""The LightningModule every method subclasses: shared step, metrics, optimizers, predict.

A method overrides `compute_loss(batch)`; the rest (the multi-head model, per-head accuracy,
the target set's reading-only metrics, `predict_step`, the checkpoint-selection score) lives here
once.

Checkpoints are selected without target labels, on `val/select`: the held-out labeled loss plus,
with several heads, `selection_diversity` x the heads' mean pairwise mutual information on the
target inputs (low when the heads have found different rules). A method that is not ready to be
selected yet (D-BAT before its last member) logs it as +inf.

`val/select_last_fitting` (`callbacks=last_fitting`) selects the last epoch at which every
head is still within `fit_tolerance` of its best held-out labeled accuracy so far: -epoch
there, +inf elsewhere. Every candidate rule fits the labeled rows, so a head that stops fitting
the held-out ones is no longer one: with few decorrelated unlabeled rows, DivDis can push a head
to disagree on correlated rows late in training, and its held-out accuracy falls with its target
accuracy. Asking every head to fit is too strict where a wrong head drifts:
`hackrobust.training.head_fitting` judges the chosen head alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from hackrobust.methods.hypotheses import Hypotheses
from hackrobust.metrics import (
    FeatureAgreement,
    GroupAccuracy,
    HeadMutualInformation,
    feature_names_of_groups,
    worst_k_accuracy,
)
from hackrobust.metrics.fitting import still_fits

# Above this many groups, per-group accuracies are not logged one metric each.
MAX_NAMED_GROUPS = 64
# The checkpoint entry of each head's best held-out accuracy so far (`val/select_last_fitting`).
BEST_HELDOUT_KEY = "best_heldout_accuracy"


class BaseMethod(Hypotheses, L.LightningModule):
    """Owns the model (logits (B, heads, classes)), the metrics and `predict_step`.

    Args:
        model: a model factory (Hydra partial) called with input_shape, num_classes, num_heads.
        optimizer: an optimizer factory (Hydra partial) called with the parameters.
        scheduler: optional LR scheduler factory called with the optimizer (stepped per epoch);
            a `T_max` left None is the fit's epochs.
        num_heads: heads on the shared trunk; the head used for the CSV is `chosen_head`.
        group_names: names of the target set's groups (feature combinations), for logging.
        selection_diversity: weight of the heads' mutual information on the target inputs in
            `val/select`, the checkpoint-selection score (ignored with one head).
        fit_tolerance: how far below its best held-out accuracy so far a head may fall
            in an epoch that `val/select_last_fitting` may select.
    """

    uses_unlabeled = False  # methods that read unlabeled batches set this

    def __init__(
        self,
        model: Callable[..., nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable | None = None,
        *,
        input_shape: Sequence[int],
        num_classes: int,
        num_heads: int = 1,
        group_names: Sequence[str] | None = None,
        selection_diversity: float = 1.0,
        fit_tolerance: float = 0.02,
        warmup_epochs: int = 0,
    ):
        super().__init__()
        # Plain Python types: Hydra passes lists as ListConfig, which checkpoints should not hold.
        input_shape, group_names = tuple(input_shape), list(group_names or [])
        self.save_hyperparameters(
            {"input_shape": input_shape, "num_classes": num_classes, "num_heads": num_heads},
            logger=False,
        )
        self.net = model(
            input_shape=tuple(input_shape), num_classes=num_classes, num_heads=num_heads
        )
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.num_heads = num_heads
        self.group_names = group_names
        # The head the submission uses; a buffer so checkpoints carry it.
        self.register_buffer("chosen_head", torch.tensor(0))
        self.selection_diversity = selection_diversity
        self.fit_tolerance = fit_tolerance
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be at least 0, got {warmup_epochs}")
        self.warmup_epochs = warmup_epochs
        self.best_heldout_accuracy: torch.Tensor | None = None
        self._build_metrics(num_classes, num_heads)

    def _build_metrics(self, num_classes: int, num_heads: int) -> None:
        """One metric instance per stage and head: accuracies, the target's per-group accuracy
        and feature agreement, the held-out loss and the heads' mutual information."""

        def accuracies() -> nn.ModuleList:
            return nn.ModuleList(
                MulticlassAccuracy(num_classes, average="micro") for _ in range(num_heads)
            )

        stages = ("train", "val", "target")
        # Keyed "<stage>_acc": a ModuleDict key may not shadow nn.Module.train.
        self.accuracy = nn.ModuleDict({f"{s}_acc": accuracies() for s in stages})
        self._build_rule_accuracy(num_classes, stages)
        self.target_group_accuracy = nn.ModuleList(
            GroupAccuracy(max(1, len(self.group_names))) for _ in range(num_heads)
        )
        # Per head and feature of the target set, how often the head predicts that feature.
        self.feature_names = feature_names_of_groups(self.group_names) or []
        n_features = len(self.feature_names)
        combinations = n_features > 1 and len(self.group_names) == num_classes**n_features
        self.target_feature_agreement = nn.ModuleList(
            FeatureAgreement(num_classes, n_features)
            for _ in range(num_heads if combinations else 0)
        )
        self.heldout_loss = MeanMetric()
        # Each head's held-out accuracy, apart from the logged one, and the best of each so far.
        self.heldout_accuracy = accuracies()
        self.target_mutual_information = (
            HeadMutualInformation(num_heads, num_classes) if num_heads > 1 else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    # ---- the one hook methods override --------------------------------------------------------

    def compute_loss(
        self, batch: dict
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Return (loss, labeled logits (B, heads, classes), extra scalars to log)."""
        raise NotImplementedError

    @staticmethod
    def heads_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean over heads of each head's cross-entropy: (B, H, K), (B,) -> scalar."""
        heads = logits.shape[1]
        return F.cross_entropy(logits.flatten(0, 1), y.repeat_interleave(heads))

    # ---- steps ---------------------------------------------------------------------------------

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, logits, extras = self.compute_loss(batch)
        labeled = batch["labeled"]
        size = len(labeled["y"])
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log_dict({f"train/{k}": v for k, v in extras.items()}, batch_size=size)
        self._track_accuracy("train", logits, labeled["y"], on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        stage = self.trainer.datamodule.val_stage_names[dataloader_idx]
        logits = self(batch["x"])
        y = batch["y"]
        if stage == "target" and self.target_mutual_information is not None:
            self.target_mutual_information.update(logits.float().softmax(dim=-1))
        if stage == "target" and bool((y < 0).any()):
            return  # no answer key: the target inputs serve selection only
        loss = self.heads_cross_entropy(logits, y)
        if stage == "val":
            self.heldout_loss.update(loss, weight=len(y))
            for head, metric in enumerate(self.heldout_accuracy):
                metric.update(logits[:, head], y)
        self.log(
            f"{stage}/loss",
            loss,
            batch_size=len(y),
            add_dataloader_idx=False,
            prog_bar=stage == "val",
            sync_dist=True,
        )
        self._track_accuracy(stage, logits, y, add_dataloader_idx=False)
        if stage == "target":
            for head, metric in enumerate(self.target_group_accuracy):
                metric.update(logits[:, head].argmax(-1), y, batch["group"])
            for head, metric in enumerate(self.target_feature_agreement):
                metric.update(logits[:, head].argmax(-1), batch["group"])

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._log_selection_score()
            self._log_last_fitting()
        self.heldout_loss.reset()
        for metric in self.heldout_accuracy:
            metric.reset()
        if self.target_mutual_information is not None:
            self.target_mutual_information.reset()
        for head, metric in enumerate(self.target_group_accuracy):
            # The sanity check's batches are counted, then dropped here with the reset.
            if self.group_names and not self.trainer.sanity_checking and metric.total.sum():
                self._log_group_accuracy(head, metric)
            metric.reset()
        for head, metric in enumerate(self.target_feature_agreement):
            if not self.trainer.sanity_checking and metric.counts.sum():
                agreement = dict(zip(self.feature_names, metric.compute(), strict=True))
                suffix = self._head_suffix(head)
                self.log_dict(
                    {f"target/feature_agreement{suffix}/{n}": v for n, v in agreement.items()}
                )
            metric.reset()

    def _head_suffix(self, head: int) -> str:
        """ "_head<h>" in metric names with several heads, nothing with one."""
        return f"_head{head}" if self.num_heads > 1 else ""

    def selection_ready(self) -> bool:
        """Whether this epoch's model may be selected; methods trained in stages override it."""
        return True

    def _log_selection_score(self) -> None:
        """`val/select` = held-out labeled loss + selection_diversity x heads' MI on the target."""
        score = self.heldout_loss.compute() if self.heldout_loss.update_called else None
        if self.target_mutual_information is not None and self.target_mutual_information.count:
            information = self.target_mutual_information.compute()
            self.log("val/target_mutual_information", information)
            score = self.selection_diversity * information + (0 if score is None else score)
        if score is None:
            return  # neither a holdout nor several heads: nothing to select on
        if not self.selection_ready():
            score = torch.tensor(torch.inf)
        self.log("val/select", score)

    def _log_last_fitting(self) -> None:
        """`val/select_last_fitting`: -epoch if no head is more than `fit_tolerance`
        below its best held-out accuracy so far (selectable epochs only), else +inf."""
        if not self.heldout_accuracy[0].update_called:
            return  # no held-out split: nothing to select on
        if not self.selection_ready():
            self.log("val/select_last_fitting", torch.inf)
            return
        accuracy = torch.stack([metric.compute() for metric in self.heldout_accuracy]).cpu()
        best = self.best_heldout_accuracy
        self.best_heldout_accuracy = best = accuracy if best is None else best.maximum(accuracy)
        fitting = still_fits(accuracy.tolist(), best.tolist(), self.fit_tolerance)
        self.log("val/select_last_fitting", -float(self.current_epoch) if fitting else torch.inf)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.best_heldout_accuracy is not None:
            checkpoint[BEST_HELDOUT_KEY] = self.best_heldout_accuracy.tolist()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if BEST_HELDOUT_KEY in checkpoint:
            self.best_heldout_accuracy = torch.tensor(checkpoint[BEST_HELDOUT_KEY])

    def _log_group_accuracy(self, head: int, metric: GroupAccuracy) -> None:
        """Worst group, mean of the worst K% groups (K = 10..50), each group's accuracy; the
        group sizes once (every head sees the same rows); per group only up to MAX_NAMED_GROUPS."""
        per_group = metric.compute()
        suffix = self._head_suffix(head)
        seen = ~torch.isnan(per_group)
        self.log(f"target/worst_group_acc{suffix}", per_group[seen].min())
        worst = worst_k_accuracy(per_group)
        self.log_dict({f"target/worst{round(k * 100)}pct_acc{suffix}": v for k, v in worst.items()})
        if len(self.group_names) > MAX_NAMED_GROUPS:
            return  # thousands of species: the worst-K summary stands for them
        named = [(name, i) for i, name in enumerate(self.group_names) if seen[i]]
        self.log_dict({f"target/group_acc{suffix}/{name}": per_group[i] for name, i in named})
        if head == 0:
            with metric.sync_context():  # every process's counts, not just this one's
                total = metric.total.float().clone()
            self.log_dict({f"target/group_count/{name}": total[i] for name, i in named})

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        return {"idx": batch["idx"], "probs": self.probabilities(batch["x"])}

    # ---- metrics -------------------------------------------------------------------------------

    def _track_accuracy(
        self, stage: str, logits: torch.Tensor, y: torch.Tensor, **log_kwargs
    ) -> None:
        """Update each head's accuracy and log it, and as `<stage>/acc` the chosen hypothesis's
        (a rule built from the heads, chosen after fit, has a metric of its own)."""
        metrics = self.accuracy[f"{stage}_acc"]
        for head, metric in enumerate(metrics):
            metric.update(logits[:, head].detach(), y)
        chosen_metric = self._chosen_accuracy(stage, logits, y, metrics)
        # torchmetrics objects are logged whole so Lightning computes and resets them per epoch.
        self.log(f"{stage}/acc", chosen_metric, prog_bar=stage != "train", **log_kwargs)
        if self.num_heads > 1:
            for head, metric in enumerate(metrics):
                self.log(f"{stage}/acc_head{head}", metric, **log_kwargs)

    # ---- optimisation --------------------------------------------------------------------------

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": self._schedule(optimizer),
                "interval": "epoch",
            },
        }

    def _schedule(self, optimizer: torch.optim.Optimizer):
        """The scheduler; one whose `T_max` is left null runs over this fit's epochs (after the
        warm-up). With `warmup_epochs`, the rate first rises linearly to the optimizer's over
        that many epochs (Goyal et al., "Accurate, Large Minibatch SGD", 2017), then follows it."""
        factory, warmup = self.scheduler_factory, self.warmup_epochs
        if getattr(factory, "keywords", {}).get("T_max", 0) is None:
            factory = functools.partial(factory, T_max=max(1, self.trainer.max_epochs - warmup))
        schedule = factory(optimizer=optimizer)
        if not warmup:
            return schedule
        rise = torch.optim.lr_scheduler.LinearLR(
            optimizer, start_factor=1 / (warmup + 1), total_iters=warmup
        )
        return torch.optim.lr_scheduler.SequentialLR(optimizer, [rise, schedule], [warmup])
