"""Empirical risk minimisation: cross-entropy on the labeled set, averaged over heads."""

from __future__ import annotations

import torch

from hackrobust.methods.base import BaseMethod


class ERM(BaseMethod):
    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
        labeled = batch["labeled"]
        logits = self(labeled["x"])
        return self.heads_cross_entropy(logits, labeled["y"]), logits, {}
