"""The challenge submission: ``resnet.pth`` (weights only), zipped, and the worst-K table.

``resnet.pth`` is a state_dict that plain ``torchvision.models.resnet50()`` with
``fc = nn.Linear(2048, num_classes)`` loads with ``strict=True``. `ExportChallengeWeights` writes
it at the end of the predict stage, with the selected checkpoint's weights and the chosen head,
next to ``worst_k.md`` / ``worst_k.json``: the mean accuracy of the K worst groups on the target
split for K = 10 % ... 50 % of the groups (the challenge's K is secret in that range), and
``worst_k.png``: that mean for every K from one group to all of them.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
import torchvision
from lightning.pytorch.loggers import WandbLogger
from torch import nn

from hackrobust.hierarchy.challenge_model import FEATURE_DIM, load_challenge_state, split_fc
from hackrobust.metrics.group_accuracy import GroupAccuracy, worst_k_accuracy
from hackrobust.submission import write_atomically

log = logging.getLogger(__name__)

WEIGHTS = "resnet.pth"
ZIP = "submission.zip"
TABLES = ("worst_k.md", "worst_k.json")
CURVE = "worst_k.png"
FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5)


def export_resnet50(
    net: nn.Module, head: int, backbone_checkpoint: str | os.PathLike | None = None
) -> dict[str, torch.Tensor]:
    """The torchvision ResNet50 state_dict of a challenge `MultiHeadClassifier`'s `head`.

    ``trunk.*`` become the backbone entries and head `head`'s rows of ``heads`` become
    ``fc.weight`` / ``fc.bias``. A head-only net (``trunk`` is ``Identity``) takes its backbone
    from `backbone_checkpoint`. The result is checked by loading it strictly into a fresh
    ``resnet50()`` with ``fc = Linear(2048, K)``, and returned in that model's key order.
    """
    if not all(hasattr(net, name) for name in ("trunk", "heads", "num_classes", "num_heads")):
        raise TypeError(
            f"{type(net).__name__} is not a MultiHeadClassifier (trunk + heads): only the "
            "challenge_resnet50 model exports to the challenge format"
        )
    if not 0 <= int(head) < net.num_heads:
        raise ValueError(f"head must be in [0, {net.num_heads}), got {head}")
    k = net.num_classes
    if isinstance(net.trunk, nn.Identity):
        if backbone_checkpoint is None:
            raise ValueError(
                "this head-only model has no backbone: pass backbone_checkpoint, the resnet50 "
                "state_dict its features were extracted with (model.checkpoint)"
            )
        state, _, _ = split_fc(
            load_challenge_state(backbone_checkpoint), source=str(backbone_checkpoint)
        )
    else:
        state = dict(net.trunk.state_dict())
    rows = slice(int(head) * k, (int(head) + 1) * k)
    state["fc.weight"] = net.heads.weight[rows]
    state["fc.bias"] = net.heads.bias[rows]
    state = {
        name: value.detach().cpu().float() if value.is_floating_point() else value.detach().cpu()
        for name, value in state.items()
    }

    reference = torchvision.models.resnet50(weights=None)
    reference.fc = nn.Linear(FEATURE_DIM, k)
    try:
        reference.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"the exported weights do not fit torchvision's resnet50 with fc = Linear(2048, {k}); "
            f"is the trunk a torchvision resnet50 with fc = Identity? {error}"
        ) from error
    return {name: value.clone() for name, value in reference.state_dict().items()}


def write_submission_zip(
    state_dict: dict[str, torch.Tensor], out_dir: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Write ``out_dir/resnet.pth`` and ``out_dir/submission.zip`` (holding it); returns the zip.

    Neither file is replaced unless `overwrite`; the check comes before anything is written.
    """
    out = Path(out_dir)
    _refuse_existing([out / WEIGHTS, out / ZIP], overwrite)
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    weights = buffer.getvalue()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipf:
        # A fixed timestamp: the same weights always give the same zip.
        zipf.writestr(zipfile.ZipInfo(WEIGHTS, date_time=(1980, 1, 1, 0, 0, 0)), weights)
    write_atomically(out / WEIGHTS, weights, overwrite)
    return write_atomically(out / ZIP, archive.getvalue(), overwrite)


def worst_k_table(
    per_group: torch.Tensor,
    counts: torch.Tensor,
    group_names: Sequence[str],
    fractions: Sequence[float] = FRACTIONS,
    show: int = 10,
) -> dict:
    """Worst-K mean accuracies, overall accuracy and the `show` worst groups, as plain data."""
    per_group, counts = per_group.double().cpu(), counts.cpu()
    seen = counts > 0
    correct = (per_group[seen] * counts[seen]).sum()
    order = [int(i) for i in per_group.nan_to_num(nan=2.0).argsort(stable=True) if seen[i]][:show]
    n_seen = int(seen.sum())
    return {
        "groups": n_seen,
        "rows": int(counts.sum()),
        "accuracy": float(correct / max(int(counts.sum()), 1)),
        "worst_k": {
            f"{round(100 * f)}%": {"k": max(1, math.ceil(f * n_seen)), "accuracy": a}
            for f, a in worst_k_accuracy(per_group, fractions).items()
        },
        "worst_groups": [
            {"group": group_names[i], "rows": int(counts[i]), "accuracy": float(per_group[i])}
            for i in order
        ],
    }


def worst_k_curve(per_group: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(K as a share of the groups, mean accuracy of the K worst), for K = 1 ... n groups."""
    seen = per_group[~torch.isnan(per_group)].double().sort().values.cpu()
    k = torch.arange(1, len(seen) + 1, dtype=torch.float64)
    return k / max(len(seen), 1), seen.cumsum(0) / k


def plot_worst_k_curve(
    per_group: torch.Tensor, path: Path, title: str = "", overwrite: bool = False
) -> Path:
    """The worst-K curve, the challenge's secret range of K (10 % to 50 %) shaded, as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    share, mean = worst_k_curve(per_group)
    figure = Figure(figsize=(5, 3.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.axvspan(10, 50, color="grey", alpha=0.15, label="challenge K (10% to 50%)")
    axes.plot(100 * share.numpy(), mean.numpy(), marker=".")
    axes.set(
        xlabel="K: share of the groups, worst first (%)", ylabel="mean accuracy of the K worst"
    )
    axes.set(xlim=(0, 100), ylim=(0, 1), title=title)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return write_atomically(path, buffer.getvalue(), overwrite)


def format_worst_k(table: dict, head: int) -> str:
    """The worst-K table as Markdown."""
    lines = [
        "# Worst-K group accuracy on the target split",
        "",
        f"Head {head}; {table['groups']} groups, {table['rows']} rows; overall accuracy "
        f"{table['accuracy']:.4f}.",
        "",
        "| K (share of groups) | K | mean accuracy of the K worst groups |",
        "|---|---:|---:|",
        *(
            f"| {name} | {row['k']} | {row['accuracy']:.4f} |"
            for name, row in table["worst_k"].items()
        ),
        "",
        "| worst group | rows | accuracy |",
        "|---|---:|---:|",
        *(f"| {g['group']} | {g['rows']} | {g['accuracy']:.4f} |" for g in table["worst_groups"]),
    ]
    return "\n".join(lines) + "\n"


class ExportChallengeWeights(L.Callback):
    """At the end of the predict stage: ``resnet.pth``, ``submission.zip`` and the worst-K table.

    Runs after the best checkpoint is loaded (`predict` with ``ckpt_path``), exports head
    ``pl_module.chosen_head`` (list this callback after any callback that changes it), and scores
    the predictions of the target split, whose batches carry ``y`` and ``group``, on every rank
    (the counts are summed over ranks); rank 0 writes. Existing files stop the run before
    training unless `overwrite`.

    Args:
        dirpath: the output folder.
        backbone_checkpoint: the backbone of a head-only model (its trunk is ``Identity``).
        submission: write ``resnet.pth`` and ``submission.zip``; false for a model that is not
            the challenge's ResNet50 (a head on another backbone's features): the table only.
        fractions: the K shares of the groups in the table.
        show: how many of the worst groups the table lists by name.
    """

    def __init__(
        self,
        dirpath: str | os.PathLike,
        backbone_checkpoint: str | os.PathLike | None = None,
        overwrite: bool = False,
        submission: bool = True,
        fractions: Sequence[float] = FRACTIONS,
        show: int = 10,
    ):
        self.dirpath = Path(dirpath)
        self.backbone_checkpoint = backbone_checkpoint
        self.overwrite = overwrite
        self.submission = submission
        self.fractions = tuple(fractions)
        self.show = show
        self.table: dict | None = None
        self._accuracy: list[GroupAccuracy] = []

    def outputs(self) -> list[Path]:
        names = (WEIGHTS, ZIP) * self.submission + (*TABLES, CURVE)
        return [self.dirpath / name for name in names]

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":  # fail before training, not after
            _refuse_existing(self.outputs(), self.overwrite)
            if self.submission and hasattr(pl_module, "net"):
                _refuse_other_features(pl_module.net)

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        num_groups = max(1, len(getattr(trainer.datamodule, "group_names", [])))
        self._accuracy = [
            GroupAccuracy(num_groups).to(pl_module.device) for _ in range(pl_module.num_heads)
        ]

    def on_predict_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if "group" not in batch or bool((batch["y"] < 0).any()):
            return  # no answer key for these rows
        predicted = outputs["probs"].argmax(-1)  # (B, heads)
        for head, metric in enumerate(self._accuracy):
            metric.update(predicted[:, head], batch["y"], batch["group"])

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        head = int(pl_module.chosen_head)
        metric = self._accuracy[head]
        per_group, counts = metric.compute(), metric.total.clone()  # compute syncs the ranks
        if trainer.world_size > 1:
            counts = trainer.strategy.reduce(counts, reduce_op="sum")
        if not trainer.is_global_zero:
            return
        if self.submission:
            state = export_resnet50(pl_module.net, head, self.backbone_checkpoint)
            path = write_submission_zip(state, self.dirpath, self.overwrite)
            log.info("Wrote %s (head %d)", path, head)
        if not int(counts.sum()):
            log.warning("No labelled target rows: no worst-K table written")
            return
        names = getattr(trainer.datamodule, "group_names", None) or [
            str(i) for i in range(len(counts))
        ]
        self.table = worst_k_table(per_group, counts, names, self.fractions, self.show)
        self.table["head"] = head
        md, js = (self.dirpath / name for name in TABLES)
        write_atomically(md, format_worst_k(self.table, head).encode(), self.overwrite)
        write_atomically(js, (json.dumps(self.table, indent=2) + "\n").encode(), self.overwrite)
        curve = plot_worst_k_curve(per_group, self.dirpath / CURVE, f"head {head}", self.overwrite)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="worst_k_curve", images=[str(curve)])
        worst = ", ".join(f"{k} {v['accuracy']:.4f}" for k, v in self.table["worst_k"].items())
        log.info("Worst-K accuracy on the target split: %s", worst)


def _refuse_other_features(net: nn.Module) -> None:
    """Stop before training a model whose heads do not read a ResNet50's 2048-d features."""
    width = getattr(getattr(net, "heads", None), "in_features", FEATURE_DIM)
    if width != FEATURE_DIM:
        raise ValueError(
            f"the challenge takes a ResNet50 with fc = Linear({FEATURE_DIM}, K), but this "
            f"model's heads read {width}-d features: pass "
            "callbacks.export_challenge_weights.submission=false for the worst-K table alone"
        )


def _refuse_existing(paths: Sequence[Path], overwrite: bool) -> None:
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{', '.join(existing)} already exist and a submission is never replaced silently: "
            "choose another output folder or pass overwrite=True "
            "(callbacks.export_challenge_weights.overwrite=true)"
        )
