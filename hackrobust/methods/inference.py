"""Inference outside a Trainer: every head's probabilities or the trunk's features of a tensor."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch


@torch.no_grad()
def _evaluate(module: L.LightningModule, x: torch.Tensor, forward, batch_size: int) -> torch.Tensor:
    """`forward` over `x` in batches, in eval mode (restoring the module's mode after)."""
    was_training = module.training
    module.eval()
    try:
        return torch.cat([forward(c.to(module.device)).float().cpu() for c in x.split(batch_size)])
    finally:
        module.train(was_training)


def target_probabilities(
    module: L.LightningModule, x: torch.Tensor, batch_size: int = 1024
) -> np.ndarray:
    """Every head's softmax on every row, and the rules the method builds from them (its
    `probabilities`, BaseMethod.add_hypotheses): (N, hypotheses, classes)."""
    forward = getattr(module, "probabilities", lambda c: module(c).float().softmax(-1))
    return _evaluate(module, x, forward, batch_size).numpy()


def trunk_features(
    module: L.LightningModule, x: torch.Tensor, batch_size: int = 1024
) -> np.ndarray:
    """The shared trunk's features of each row, standardised per dimension: (N, D)."""
    feats = _evaluate(module, x, module.net.features, batch_size)
    return ((feats - feats.mean(0)) / feats.std(0).clamp_min(1e-6)).numpy()
