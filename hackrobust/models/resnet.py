"""torchvision ResNet18/50 trunks, randomly initialised or from a local weights file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torchvision
from torch import nn

from hackrobust.models.classifier import MultiHeadClassifier


def load_backbone_weights(net: nn.Module, weights_path: str | Path) -> None:
    """Load a torchvision-style state_dict (the `fc.*` entries are ignored), strictly otherwise."""
    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist (model.weights_path)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(
            f"{path} does not fit this ResNet: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )


def resnet(
    input_shape: Sequence[int],
    num_classes: int,
    num_heads: int = 1,
    depth: int = 18,
    weights_path: str | None = None,
    small_input: bool | None = None,
) -> MultiHeadClassifier:
    """ResNet trunk (`weights=None`: no download) with the project's multi-head output.

    `small_input` (default: images under 96 px) swaps the 7x7 stride-2 stem and max-pool for a
    3x3 stride-1 stem, as is usual for CIFAR-sized images. Inputs with other than 3 channels get
    a stem with that many channels.
    """
    builders = {18: torchvision.models.resnet18, 50: torchvision.models.resnet50}
    if depth not in builders:
        raise ValueError(f"depth must be one of {sorted(builders)}, got {depth}")
    if len(input_shape) != 3:
        raise ValueError(f"resnet takes images (C, H, W), got input shape {tuple(input_shape)}")
    net = builders[depth](weights=None)
    if weights_path:
        load_backbone_weights(net, weights_path)
    channels, height, width = input_shape
    if small_input is None:
        small_input = min(height, width) < 96
    if small_input or channels != 3:
        stride, kernel = (1, 3) if small_input else (2, 7)
        net.conv1 = nn.Conv2d(channels, 64, kernel, stride, kernel // 2, bias=False)
    if small_input:
        net.maxpool = nn.Identity()
    feature_dim = net.fc.in_features
    net.fc = nn.Identity()
    return MultiHeadClassifier(net, feature_dim, num_classes, num_heads)
