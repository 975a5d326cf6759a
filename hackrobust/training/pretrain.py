"""Pretraining: the trunk first learns to rebuild the dataset's own inputs, without labels.

A denoising autoencoder (Vincent et al., ICML 2008) whose encoder is the model's trunk: it sees
every input the run has (labeled, unlabeled and target rows; no label, no answer key) with
Gaussian noise added (the 2008 paper zeroes a random share of the inputs instead), and a small
decoder rebuilds the clean input from the trunk's features. The trunk then starts the method's
training with features that describe the whole input, not only what the labeled set's
correlated label needs.

Why: a trunk trained from scratch on the correlated labeled rows only can learn one blend of the
features that the label follows together, and every head then reads that blend; features learnt to
rebuild every input are meant to keep them apart for the heads to choose from. The hackathon forbids
pretrained models and training on other datasets; this trains on the exercise's own inputs only,
which its rules allow ("it is allowed to look at the target set").
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader

from hackrobust.data.in_memory import TensorDict, pass_through
from hackrobust.training.side_trainer import side_trainer

log = logging.getLogger(__name__)


def image_decoder(input_shape: Sequence[int], feature_dim: int, channels: int = 64) -> nn.Module:
    """Features (B, feature_dim) to images (B, C, H, W): a linear map to a grid of at most 8x8,
    then transposed convolutions that double it until it covers H x W, cropped to size."""
    c, h, w = input_shape
    stages = max(2, math.ceil(math.log2(max(h, w) / 8)))
    h0, w0 = math.ceil(h / 2**stages), math.ceil(w / 2**stages)
    layers: list[nn.Module] = [
        nn.Linear(feature_dim, channels * h0 * w0),
        nn.ReLU(inplace=True),
        nn.Unflatten(1, (channels, h0, w0)),
    ]
    width = channels
    for stage in range(stages):
        last = stage == stages - 1
        out = c if last else max(16, width // 2)
        layers.append(nn.ConvTranspose2d(width, out, 4, stride=2, padding=1))
        if not last:
            layers.append(nn.ReLU(inplace=True))
        width = out
    return nn.Sequential(*layers, CropTo(h, w))


class CropTo(nn.Module):
    """The top-left (h, w) of an image batch."""

    def __init__(self, h: int, w: int):
        super().__init__()
        self.h, self.w = h, w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., : self.h, : self.w]


def decoder_for(input_shape: Sequence[int], feature_dim: int) -> nn.Module:
    """The decoder for images (C, H, W) or vectors (D,)."""
    if len(input_shape) == 3:
        return image_decoder(input_shape, feature_dim)
    if len(input_shape) == 1:
        hidden = max(64, 2 * feature_dim)
        return nn.Sequential(
            nn.Linear(feature_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, input_shape[0])
        )
    raise ValueError(
        f"pretraining rebuilds images (C, H, W) or vectors (D,); got input shape {tuple(input_shape)}"
    )


class DenoisingAutoencoder(L.LightningModule):
    """`encoder(x + noise)` -> features -> `decoder` -> x, scored by the mean squared error."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, noise: float, lr: float):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.noise, self.lr = noise, lr
        self.epoch_losses: list[float] = []

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        x = batch["x"]
        rebuilt = self.decoder(self.encoder(x + self.noise * torch.randn_like(x)))
        loss = nn.functional.mse_loss(rebuilt, x)
        self.log("pretrain/loss", loss, on_step=False, on_epoch=True)
        return loss

    def on_train_epoch_end(self) -> None:
        self.epoch_losses.append(float(self.trainer.callback_metrics["pretrain/loss"]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


def trunks_of(net: nn.Module) -> list[nn.Module]:
    """The trunk of a multi-head model, or one per member of an ensemble (D-BAT)."""
    if hasattr(net, "members"):
        return [trunk for member in net.members for trunk in trunks_of(member)]
    if not hasattr(net, "trunk"):
        raise ValueError(
            f"pretrain=autoencoder needs a model with a `trunk`; {type(net).__name__} has none "
            "(use model=auto, small_cnn, mlp or a resnet, or drop pretrain)"
        )
    return [net.trunk]


def all_inputs(datamodule) -> torch.Tensor:
    """Every input the run has: labeled (training and held-out), unlabeled and target rows."""
    names = ("train_set", "holdout_set", "unlabeled_set", "target_set")
    sets = [getattr(datamodule, name, None) for name in names]
    inputs = [s.tensors["x"] for s in sets if isinstance(s, TensorDict) and len(s)]
    if not inputs:
        raise ValueError(
            f"pretrain=autoencoder reads the in-memory inputs of a hackathon dataset; "
            f"{type(datamodule).__name__} has none (drop pretrain for this dataset)"
        )
    return torch.cat(inputs)


def check_settings(epochs: int, noise: float) -> None:
    """Refuse pretraining settings `pretrain_trunk` cannot run with."""
    if epochs < 1:
        raise ValueError(f"pretrain.epochs must be at least 1, got {epochs}")
    if noise < 0:
        raise ValueError(f"pretrain.noise is a standard deviation, got {noise}")


def pretrain_trunk(
    new_trainer: Callable[..., L.Trainer],
    datamodule,
    net: nn.Module,
    epochs: int = 20,
    noise: float = 0.1,
    lr: float = 1e-3,
    batch_size: int = 128,
) -> dict:
    """Fit the first trunk of `net` as a denoising autoencoder on `all_inputs(datamodule)`, with
    a Trainer from `new_trainer` (the run's settings), and copy its weights into the other
    trunks. Returns a summary."""
    check_settings(epochs, noise)
    trunks = trunks_of(net)
    inputs = all_inputs(datamodule)
    training = trunks[0].training
    with torch.no_grad():  # in eval mode, so batch norm's running statistics stay untouched
        feature_dim = trunks[0].eval()(inputs[:2]).shape[-1]
    trunks[0].train(training)
    autoencoder = DenoisingAutoencoder(
        trunks[0], decoder_for(datamodule.input_shape, feature_dim), noise, lr
    )
    loader = DataLoader(
        TensorDict(x=inputs), batch_size=batch_size, shuffle=True, collate_fn=pass_through
    )
    trainer = side_trainer(new_trainer, name="pretrain", max_epochs=epochs)
    trainer.fit(autoencoder, train_dataloaders=loader)
    for trunk in trunks[1:]:
        trunk.load_state_dict(trunks[0].state_dict())
    losses = autoencoder.epoch_losses
    log.info(
        "Pretrained the trunk: %d inputs, %d epochs, loss %.4f to %.4f",
        len(inputs), epochs, losses[0], losses[-1],
    )  # fmt: skip
    return {"inputs": len(inputs), "loss": losses[-1], "epoch_losses": losses}


def trunk_state(net: nn.Module) -> dict:
    """A copy of the first trunk's weights, to start other models (the self-training student)."""
    return copy.deepcopy(trunks_of(net)[0].state_dict())
