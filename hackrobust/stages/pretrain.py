"""Before fit: the trunk learns to rebuild the dataset's own inputs (`hackrobust.training.pretrain`)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from hackrobust.stages.run import Run
from hackrobust.submission import save_atomically
from hackrobust.training.pretrain import check_settings, pretrain_trunk, trunk_state, trunks_of

log = logging.getLogger(__name__)

# Beside the run's checkpoints: a run resumed from one of them (`ckpt_path=`) reads it.
TRUNK_FILE = "pretrained_trunk.pt"


class Pretrain:
    """Pretrain the method's trunk as a denoising autoencoder on every input of the run, with
    the run's trainer settings; the self-training student starts from the same weights.

    The pretrained weights are kept in the run's `checkpoints/` folder. A run resumed from a
    checkpoint (`ckpt_path`) whose folder holds them reads them instead of pretraining again.
    """

    def __init__(
        self,
        epochs: int = 20,
        noise: float = 0.1,
        lr: float = 1e-3,
        batch_size: int = 128,
        ckpt_path: str | None = None,
    ):
        check_settings(epochs, noise)  # refused here, before any training
        self.settings = {"epochs": epochs, "noise": noise, "lr": lr, "batch_size": batch_size}
        self.ckpt_path = ckpt_path

    @property
    def kept(self) -> Path | None:
        """The trunk kept beside the checkpoint file the run resumes from, if there is one
        (not for Lightning's "last" or "best" shortcuts)."""
        if not (self.ckpt_path and Path(self.ckpt_path).is_file()):
            return None
        kept = Path(self.ckpt_path).parent / TRUNK_FILE
        return kept if kept.is_file() else None

    def __call__(self, run: Run) -> Run:
        kept = self.kept
        if kept is not None:
            log.info("Pretrained trunk read from %s, not trained again", kept)
            run.trunk_state = torch.load(kept, map_location="cpu", weights_only=True)
            for trunk in trunks_of(run.method.net):
                trunk.load_state_dict(run.trunk_state)
            return run
        summary = pretrain_trunk(run.new_trainer, run.datamodule, run.method.net, **self.settings)
        run.trunk_state = trunk_state(run.method.net)
        run.metrics["pretrain/loss"] = summary["loss"]
        if run.is_global_zero:
            save_atomically(run.trunk_state, run.output_dir / "checkpoints" / TRUNK_FILE, True)
        return run
