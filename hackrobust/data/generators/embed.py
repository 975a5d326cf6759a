"""Embedding datasets: left/right digit pairs seen only through a fixed random network."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hackrobust.data.generators.base import add_noise, build_dataset
from hackrobust.data.generators.mnist import DigitPools

VARIANTS = {"23": (2, 3), "456": (4, 5, 6)}


def _embedder(dim: int, seed: int) -> nn.Module:
    """A random conv net, built under its own generator: the global RNG is left untouched."""
    generator = torch.Generator().manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 16, 5, stride=2),
        nn.ReLU(),
        nn.Conv2d(16, 32, 5, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * 11, dim),
    )
    with torch.no_grad():
        for param in net.parameters():
            bound = 1.0 / np.sqrt(param[0].numel()) if param.ndim > 1 else 0.1
            param.copy_(torch.empty_like(param).uniform_(-bound, bound, generator=generator) * 3)
    return net.eval()


def make_mnist_embed(
    *,
    variant: str = "23",
    seed: int | None = 0,
    true_feature: str = "left",
    dim: int = 64,
    embed_seed: int = 0,
    noise: float = 0.1,
    source: str = "mnist",
    data_dir: str | None = None,
    download: bool = True,
    **split_options,
):
    """Embeddings (N, dim) of left/right digit images: variant "23" (2 classes, labels 2 and 3)
    or "456" (3 classes). The network is fixed by `embed_seed`, not by the dataset seed."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    digits = VARIANTS[variant]
    pools = DigitPools(source, data_dir, download)
    embed = _embedder(dim, embed_seed)

    def render(rng, features, split):
        left = pools.sample(rng, split, digits, features[:, 0])
        right = pools.sample(rng, split, digits, features[:, 1])
        images = add_noise(rng, np.concatenate([left, right], axis=-1), noise)
        with torch.no_grad():
            return torch.cat(
                [embed(chunk) for chunk in torch.from_numpy(images).split(1024)]
            ).numpy()

    return build_dataset(
        name=f"mnist_embed_{variant}",
        seed=seed,
        render=render,
        feature_names=("left", "right"),
        true_feature=true_feature,
        label_values=digits,
        **split_options,
        params={
            "variant": variant,
            "dim": dim,
            "embed_seed": embed_seed,
            "noise": noise,
            "source": source,
        },
    )
