"""What the group-aware methods (GroupDRO, JTT, DFR, logit adjustment) read from a fit."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from hackrobust.data.in_memory import TensorDict, pass_through
from hackrobust.methods.base import BaseMethod


def fit_datamodule(module: BaseMethod, method: str):
    """The datamodule of the module's trainer, or a clear error."""
    datamodule = getattr(module._trainer, "datamodule", None) if module._trainer else None
    if datamodule is None:
        raise RuntimeError(f"{method} reads its datamodule: fit with `datamodule=`")
    return datamodule


def datamodule_num_groups(datamodule, method: str) -> int:
    """`len(datamodule.group_names)`, else `datamodule.num_groups`; an error when neither."""
    names = getattr(datamodule, "group_names", None)
    count = len(names) if names is not None else getattr(datamodule, "num_groups", None)
    if not count:
        raise ValueError(
            f"{method} needs groups: {type(datamodule).__name__} has neither group_names nor "
            "num_groups"
        )
    return int(count)


def every_row_loader(datamodule, dataset) -> DataLoader:
    """All rows of `dataset` in order, on this rank alone (no shuffling, no DDP sharding).

    In-memory sets (`TensorDict`) come in whole batches; image sets through the datamodule's
    workers, with the transform the set carries.
    """
    in_memory = isinstance(dataset, TensorDict)
    return DataLoader(
        dataset,
        batch_size=getattr(datamodule, "eval_batch_size", 256),
        shuffle=False,
        collate_fn=pass_through if in_memory else None,
        num_workers=0 if in_memory else getattr(datamodule, "num_workers", 0),
    )


def training_rows_unaugmented(datamodule):
    """The training set as evaluation sees it: `train_eval_set` when the datamodule augments."""
    return getattr(datamodule, "train_eval_set", datamodule.train_set)


def per_example_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each row's cross-entropy, averaged over heads: (B, H, K), (B,) -> (B,)."""
    batch, heads = logits.shape[:2]
    losses = F.cross_entropy(logits.flatten(0, 1), y.repeat_interleave(heads), reduction="none")
    return losses.view(batch, heads).mean(dim=1)


def resize_buffers(
    module: torch.nn.Module, state_dict: dict, prefix: str, names: tuple[str, ...]
) -> None:
    """Give buffers sized at setup the checkpoint's shapes, so a fresh module can load it."""
    for name in names:
        saved = state_dict.get(prefix + name)
        if saved is not None and saved.shape != getattr(module, name).shape:
            setattr(module, name, torch.empty_like(saved, device=getattr(module, name).device))
