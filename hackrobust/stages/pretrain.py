"""Before fit: the trunk learns to rebuild the dataset's own inputs (`hackrobust.training.pretrain`)."""

from __future__ import annotations

from hackrobust.stages.run import Run
from hackrobust.training.pretrain import check_settings, pretrain_trunk, trunk_state


class Pretrain:
    """Pretrain the method's trunk as a denoising autoencoder on every input of the run, with
    the run's trainer settings; the self-training student starts from the same weights."""

    def __init__(
        self, epochs: int = 20, noise: float = 0.1, lr: float = 1e-3, batch_size: int = 128
    ):
        check_settings(epochs, noise)  # refused here, before any training
        self.settings = {"epochs": epochs, "noise": noise, "lr": lr, "batch_size": batch_size}

    def __call__(self, run: Run) -> Run:
        summary = pretrain_trunk(run.new_trainer, run.datamodule, run.method.net, **self.settings)
        run.trunk_state = trunk_state(run.method.net)
        run.metrics["pretrain/loss"] = summary["loss"]
        return run
