"""Embedding datasets: left/right digit pairs seen only through a fixed network's embeddings.

The hackathon's embedding sets (ids 23 and 456) hold "embeddings of MNIST digits" from a network
it does not name. The default embedder here is a small CNN trained to recognise single digits on
the source's train split: each half of the pair goes through it, the two codes are concatenated
and mixed by a fixed random rotation, so no coordinate belongs to one side. `embedder="random"`
keeps an untrained network instead: a harder set, where a 64-d code loses part of the digit.

The embedder trains and runs on one CPU thread: float sums split over threads round
differently and training carries the difference on, so machines with different thread counts
would draw different sets from one seed. One thread gives every machine the same set.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from hackrobust.data.generators.base import add_noise, build_dataset
from hackrobust.data.generators.draws import MIX_RATE_RANGE, Draw
from hackrobust.data.generators.mnist import DigitPools

VARIANTS = {"23": (2, 3), "456": (4, 5, 6)}
EMBEDDERS = ("trained", "random")


@contextlib.contextmanager
def one_thread():
    """Run torch's CPU ops on one thread (same floats on every machine), then restore."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _conv_trunk(out_dim: int, in_width: int) -> nn.Sequential:
    """Two strided 5x5 convolutions and a linear map: (N, 1, 28, in_width) -> (N, out_dim)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, stride=2),
        nn.ReLU(),
        nn.Conv2d(16, 32, 5, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * ((in_width - 12) // 4), out_dim),
    )


def _random_embedder(dim: int, generator: torch.Generator) -> nn.Module:
    """An untrained conv net over the whole 28x56 pair, with widened uniform weights."""
    net = _conv_trunk(dim, 56)
    with torch.no_grad():
        for param in net.parameters():
            bound = 1.0 / np.sqrt(param[0].numel()) if param.ndim > 1 else 0.1
            param.copy_(torch.empty_like(param).uniform_(-bound, bound, generator=generator) * 3)
    return net.eval()


def _train_digit_embedder(
    pools: DigitPools, code_dim: int, generator: torch.Generator, epochs: int, max_images: int
) -> nn.Module:
    """A single-digit CNN trained on every class of the train split; returns its code layer."""
    pool = pools.pools["train"]
    rng = np.random.default_rng(int(torch.randint(2**31, (1,), generator=generator)))
    rows = rng.permutation(len(pool.labels))[:max_images]
    images = torch.from_numpy(np.ascontiguousarray(pool.images[rows], dtype=np.float32))
    classes, labels = np.unique(pool.labels[rows], return_inverse=True)
    labels = torch.from_numpy(labels.astype(np.int64))
    trunk = nn.Sequential(_conv_trunk(code_dim, 28), nn.ReLU())
    classifier = nn.Linear(code_dim, len(classes))
    for module in (*trunk.modules(), classifier):
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            bound = 1.0 / np.sqrt(module.weight[0].numel())
            with torch.no_grad():
                module.weight.uniform_(-bound, bound, generator=generator)
                module.bias.zero_()
    net = nn.Sequential(trunk, classifier)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(epochs):
        for batch in torch.randperm(len(labels), generator=generator).split(128):
            noisy = images[batch] + 0.1 * torch.randn(images[batch].shape, generator=generator)
            loss = nn.functional.cross_entropy(net(noisy.clamp(0, 1)), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return trunk.eval()


class _PairEmbedder(nn.Module):
    """Each 28x28 half through the digit embedder, codes concatenated, then rotated."""

    def __init__(self, digit_embedder: nn.Module, dim: int, generator: torch.Generator):
        super().__init__()
        self.digit_embedder = digit_embedder
        rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator))
        self.register_buffer("rotation", rotation)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        left, right = pairs[..., :28], pairs[..., 28:]
        codes = torch.cat([self.digit_embedder(left), self.digit_embedder(right)], dim=1)
        return codes @ self.rotation


def make_mnist_embed(
    *,
    variant: str = "23",
    seed: int | None = 0,
    true_feature: str = "left",
    dim: int = 64,
    embedder: str = "trained",
    embed_seed: int = 0,
    embedder_epochs: int = 2,
    embedder_images: int = 20000,
    noise: float = 0.1,
    source: str = "mnist",
    data_dir: str | None = None,
    download: bool = True,
    draw: bool = False,
    **split_options,
):
    """Embeddings (N, dim) of left/right digit images: variant "23" (2 classes, labels 2 and 3)
    or "456" (3 classes). The embedder ("trained" or "random", see the module docstring) is fixed
    by `embed_seed`, not by the dataset seed; training it leaves the global RNGs untouched.

    `draw=True` draws, in this order: the true feature ("left" or "right"); as many distinct
    digits out of 0-9 as the variant has classes (2 or 3), shared by both sides, in place of the
    variant's own (the trained embedder learns all ten digits); the unlabeled mix rate in
    `draws.MIX_RATE_RANGE` (0.25 to 0.75). The embedder does not depend on the draw.
    """
    _check_options(variant, embedder, dim)
    digits = VARIANTS[variant]
    drawn = {}
    if draw:
        true_feature, digits, mix_rate, record = _drawn_options(seed, variant, len(digits))
        split_options["unlabeled_mix_rate"] = mix_rate
        drawn = {"draw": record}
    pools = DigitPools(source, data_dir, download)
    embed = _fixed_embedder(embedder, dim, pools, embed_seed, embedder_epochs, embedder_images)
    params = {"variant": variant, "dim": dim, "embedder": embedder, "embed_seed": embed_seed}
    if embedder == "trained":
        params |= {"embedder_epochs": embedder_epochs, "embedder_images": embedder_images}
    return build_dataset(
        name=f"mnist_embed_{variant}",
        seed=seed,
        render=_embedding_renderer(pools, digits, embed, noise),
        feature_names=("left", "right"),
        true_feature=true_feature,
        label_values=digits,
        **split_options,
        params={**params, "noise": noise, "source": source, **drawn},
    )


def _check_options(variant: str, embedder: str, dim: int) -> None:
    """Refuse an unknown variant or embedder, and an odd `dim` for the trained embedder."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    if embedder not in EMBEDDERS:
        raise ValueError(f"embedder must be one of {list(EMBEDDERS)}, got {embedder!r}")
    if embedder == "trained" and dim % 2:
        raise ValueError(
            f"embedder='trained' codes each half in dim/2: dim must be even, not {dim}"
        )


def _drawn_options(
    seed: int | None, variant: str, n_classes: int
) -> tuple[str, tuple[int, ...], float, dict]:
    """`draw=True`'s true feature, digits and unlabeled mix rate, drawn in that order, and the
    record of the draw."""
    pick = Draw(seed, f"mnist_embed_{variant}")
    true_feature = pick.true_feature(("left", "right"))
    digits = tuple(pick.digits("digits", n_classes))
    mix_rate = pick.mix_rate(MIX_RATE_RANGE)
    return true_feature, digits, mix_rate, pick.record


def _fixed_embedder(
    embedder: str, dim: int, pools: DigitPools, embed_seed: int, epochs: int, max_images: int
) -> nn.Module:
    """The pair embedder, fixed by `embed_seed`, built on one thread with the global RNGs forked
    (module construction draws from them), so the caller's stay untouched."""
    generator = torch.Generator().manual_seed(embed_seed)
    with torch.random.fork_rng(devices=[]), one_thread():
        if embedder == "random":
            return _random_embedder(dim, generator)
        digit_embedder = _train_digit_embedder(pools, dim // 2, generator, epochs, max_images)
        return _PairEmbedder(digit_embedder, dim, generator)


def _embedding_renderer(pools: DigitPools, digits, embed: nn.Module, noise: float):
    """The renderer of `build_dataset`: a noisy left/right digit pair per row, embedded."""

    def render(rng, features, split):
        left = pools.sample(rng, split, digits, features[:, 0])
        right = pools.sample(rng, split, digits, features[:, 1])
        images = add_noise(rng, np.concatenate([left, right], axis=-1), noise)
        with torch.no_grad(), one_thread():
            return torch.cat(
                [embed(chunk) for chunk in torch.from_numpy(images).split(1024)]
            ).numpy()

    return render


# 2: the embedder runs on one thread (sets cached before came from the machine's thread count).
make_mnist_embed.cache_version = 2
