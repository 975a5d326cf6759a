"""The MNIST datasets of the hackathon: two digits side by side, a digit beside a constant
template or a uniform patch, overlaid digits, and a digit whose noise level tracks the label.

Every generator here takes `draw` (default False): with `draw=True` it draws its true feature,
its digits and its unlabeled mix rate from the seed, on a stream of their own (see `draws`);
each docstring says what it draws and from where.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from hackrobust.data.generators.base import add_noise, build_dataset, sample_images
from hackrobust.data.generators.draws import LOW_MIX_RATE_RANGE, MIX_RATE_RANGE, Draw


def default_data_dir() -> str:
    return os.environ.get("HACKROBUST_DATA_DIR", "data")


class DigitPools:
    """Digit images per class and split, loaded once per dataset."""

    def __init__(self, source: str, data_dir: str | None, download: bool = True):
        from hackrobust.data.sources import digit_pool

        data_dir = data_dir or default_data_dir()
        self.pools = {s: digit_pool(source, data_dir, s, download) for s in ("train", "test")}

    def sample(self, rng, split: str, digits: Sequence[int], classes: np.ndarray) -> np.ndarray:
        by_class = [self.pools[split].of_class(d) for d in digits]
        return sample_images(rng, by_class, classes)


def _side_by_side(
    left: np.ndarray, right: np.ndarray, swap: np.ndarray | None = None
) -> np.ndarray:
    """Concatenate along the width; rows where `swap` is true put `right` on the left."""
    if swap is not None:
        swap = swap[:, None, None, None]
        left, right = np.where(swap, right, left), np.where(swap, left, right)
    return np.concatenate([left, right], axis=-1)


def make_mnist_cc(
    *,
    seed: int | None = 0,
    digits: Sequence[int] = (0, 1),
    right_digits: Sequence[int] | None = None,
    true_feature: str = "left",
    noise: float = 0.1,
    source: str = "mnist",
    data_dir: str | None = None,
    download: bool = True,
    draw: bool = False,
    **split_options,
):
    """Left digit and right digit (1x28x56); the labels are the true side's digit classes
    (`right_digits` null: the right side uses `digits` too).

    `draw=True` draws, in this order: the true feature ("left" or "right"); `len(digits)`
    distinct digits out of 0-9 shared by both sides, or, when `right_digits` is given, a draw
    for each side (the sides may share digits); the unlabeled mix rate in
    `draws.MIX_RATE_RANGE` (0.25 to 0.75).
    """
    drawn = {}
    if draw:
        pick = Draw(seed, "mnist_cc")
        true_feature = pick.true_feature(("left", "right"))
        n_classes = len(digits)
        digits = tuple(pick.digits("digits", n_classes))
        if right_digits is not None:
            right_digits = pick.digits("right_digits", n_classes)
        split_options["unlabeled_mix_rate"] = pick.mix_rate(MIX_RATE_RANGE)
        drawn = {"draw": pick.record}
    pools = DigitPools(source, data_dir, download)
    right_digits = tuple(right_digits or digits)

    def render(rng, features, split):
        left = pools.sample(rng, split, digits, features[:, 0])
        right = pools.sample(rng, split, right_digits, features[:, 1])
        return add_noise(rng, _side_by_side(left, right), noise)

    return build_dataset(
        name="mnist_cc",
        seed=seed,
        render=render,
        feature_names=("left", "right"),
        true_feature=true_feature,
        label_values=digits if true_feature == "left" else right_digits,
        **split_options,
        params={
            "digits": list(digits),
            "right_digits": list(right_digits),
            "noise": noise,
            "source": source,
            **drawn,
        },
    )


def _digit_and_cue(
    *,
    name: str,
    cue_name: str,
    cue_images: np.ndarray,
    random_side: bool,
    seed,
    digits,
    true_feature,
    noise,
    source,
    data_dir,
    download,
    params,
    **split_options,
):
    """A digit on one side and a per-class cue image (K, 1, 28, 28) on the other."""
    pools = DigitPools(source, data_dir, download)

    def render(rng, features, split):
        digit = pools.sample(rng, split, digits, features[:, 0])
        cue = cue_images[features[:, 1]]
        swap = rng.random(len(features)) < 0.5 if random_side else None
        return add_noise(rng, _side_by_side(digit, cue, swap), noise)

    return build_dataset(
        name=name,
        seed=seed,
        render=render,
        feature_names=("digit", cue_name),
        true_feature=true_feature,
        label_values=digits,
        **split_options,
        params={
            "digits": list(digits),
            "noise": noise,
            "source": source,
            "random_side": random_side,
            **params,
        },
    )


def _draw_digit_and_cue(seed, name, cue_name, digits, mix_rate_range, split_options) -> tuple:
    """Dataset `name`'s drawn (true feature, digits, params): "digit" or the cue, `len(digits)`
    distinct digits, and the unlabeled mix rate in `mix_rate_range` (set in `split_options`)."""
    pick = Draw(seed, name)
    true_feature = pick.true_feature(("digit", cue_name))
    digits = tuple(pick.digits("digits", len(digits)))
    split_options["unlabeled_mix_rate"] = pick.mix_rate(mix_rate_range)
    return true_feature, digits, {"draw": pick.record}


def _templates(source, data_dir, download, digits, seed) -> np.ndarray:
    """One fixed train image per class: the "constant image" of that class."""
    pool = DigitPools(source, data_dir, download).pools["train"]
    rng = np.random.default_rng([0 if seed is None else seed, 7])
    return np.stack([pool.of_class(d)[rng.integers(len(pool.of_class(d)))] for d in digits])


def make_mnist_constant_image(
    *,
    seed: int | None = 0,
    digits: Sequence[int] = (0, 2),
    true_feature: str = "digit",
    random_side: bool = False,
    noise: float = 0.1,
    source: str = "mnist",
    data_dir: str | None = None,
    download: bool = True,
    draw: bool = False,
    **split_options,
):
    """A digit on the left, a constant (noisy) template image of its class on the right.

    `draw=True` draws, in this order: the true feature ("digit" or "constant_image");
    `len(digits)` distinct digits out of 0-9 (the templates are images of those digits); the
    unlabeled mix rate in `draws.MIX_RATE_RANGE` (0.25 to 0.75).
    """
    name = "mnist_constant_image_random_row" if random_side else "mnist_constant_image"
    params = {}
    if draw:
        true_feature, digits, params = _draw_digit_and_cue(
            seed, name, "constant_image", digits, MIX_RATE_RANGE, split_options
        )
    return _digit_and_cue(
        name=name,
        cue_name="constant_image",
        cue_images=_templates(source, data_dir, download, digits, seed),
        random_side=random_side,
        seed=seed,
        digits=digits,
        true_feature=true_feature,
        noise=noise,
        source=source,
        data_dir=data_dir,
        download=download,
        **split_options,
        params=params,
    )


def make_mnist_constant_image_random_row(**kwargs):
    """`make_mnist_constant_image` with the template on a random side per example (and the
    same `draw`)."""
    return make_mnist_constant_image(random_side=True, **kwargs)


def make_mnist_uniform_color_random_row(**kwargs):
    """A digit and a 28x28 patch of uniform intensity `colors[class]`, on random sides.

    `draw=True` draws, in this order: the true feature ("digit" or "color"); `len(digits)`
    distinct digits out of 0-9 (class i keeps `colors[i]`); the unlabeled mix rate in
    `draws.MIX_RATE_RANGE` (0.25 to 0.75).
    """
    return _uniform_color(**{"name": "mnist_uniform_color_random_row"} | kwargs)


def make_mnist_uniform_color_low_mix_rate(*, unlabeled_mix_rate: float = 0.05, **kwargs):
    """The uniform-colour dataset with few decorrelated unlabeled examples (default 5%).

    `draw=True` draws as `make_mnist_uniform_color_random_row` does, but the unlabeled mix rate
    stays low: uniform in `draws.LOW_MIX_RATE_RANGE` (0.02 to 0.1).
    """
    return _uniform_color(
        **{"name": "mnist_uniform_color_low_mix_rate"} | kwargs,
        mix_rate_range=LOW_MIX_RATE_RANGE,
        unlabeled_mix_rate=unlabeled_mix_rate,
    )


def _uniform_color(
    *,
    seed: int | None = 0,
    digits: Sequence[int] = (0, 1),
    colors: Sequence[float] = (0.3, 0.7),
    true_feature: str = "digit",
    noise: float = 0.1,
    source: str = "mnist",
    data_dir: str | None = None,
    download: bool = True,
    name: str = "mnist_uniform_color_random_row",
    draw: bool = False,
    mix_rate_range: tuple[float, float] = MIX_RATE_RANGE,
    **split_options,
):
    """Both uniform-colour datasets; a draw takes its mix rate in `mix_rate_range`."""
    if len(colors) != len(digits):
        raise ValueError(
            f"give one color per digit class: {len(digits)} digits, {len(colors)} colors"
        )
    params = {}
    if draw:
        true_feature, digits, params = _draw_digit_and_cue(
            seed, name, "color", digits, mix_rate_range, split_options
        )
    patches = np.broadcast_to(
        np.asarray(colors, dtype=np.float32)[:, None, None, None], (len(colors), 1, 28, 28)
    )
    return _digit_and_cue(
        name=name,
        cue_name="color",
        cue_images=patches,
        random_side=True,
        seed=seed,
        digits=digits,
        true_feature=true_feature,
        noise=noise,
        source=source,
        data_dir=data_dir,
        download=download,
        **split_options,
        params={"colors": list(colors), **params},
    )


def make_mnist_sum(
    *,
    seed: int | None = 0,
    slots: Sequence[Sequence[int]] = ((0, 1), (2, 3)),
    true_feature: str = "digit_a",
    noise: float = 0.1,
    source: str = "mnist",
    data_dir: str | None = None,
    download: bool = True,
    name: str = "mnist_sum",
    draw: bool = False,
    **split_options,
):
    """Digits overlaid in one 1x28x28 image, one per slot; each slot has its own digit classes
    (were they shared, nothing would tell the slots apart). Labels are the true slot's digits.

    `draw=True` draws, in this order: the true feature (any slot, "digit_a", "digit_b", ...);
    for every slot `len(slot)` digits out of 0-9, no digit in two slots (so 2 slots of 2
    classes use 4 distinct digits, 3 slots 6); the unlabeled mix rate in
    `draws.MIX_RATE_RANGE` (0.25 to 0.75).
    """
    slots = [tuple(s) for s in slots]
    if len({len(s) for s in slots}) != 1:
        raise ValueError(f"every slot needs the same number of classes, got {slots}")
    names = [f"digit_{chr(ord('a') + i)}" for i in range(len(slots))]
    drawn = {}
    if draw:
        pick = Draw(seed, name)
        true_feature = pick.true_feature(names)
        slots = [tuple(s) for s in pick.disjoint_digits("slots", len(slots), len(slots[0]))]
        split_options["unlabeled_mix_rate"] = pick.mix_rate(MIX_RATE_RANGE)
        drawn = {"draw": pick.record}
    if true_feature not in names:
        raise ValueError(f"true_feature must be one of {names}, got {true_feature!r}")
    pools = DigitPools(source, data_dir, download)

    def render(rng, features, split):
        layers = [pools.sample(rng, split, s, features[:, i]) for i, s in enumerate(slots)]
        return add_noise(rng, np.clip(np.sum(layers, axis=0), 0, 1), noise)

    return build_dataset(
        name=name,
        seed=seed,
        render=render,
        feature_names=names,
        true_feature=true_feature,
        label_values=slots[names.index(true_feature)],
        **split_options,
        params={"slots": [list(s) for s in slots], "noise": noise, "source": source, **drawn},
    )


def make_mnist_sum_bis(*, slots: Sequence[Sequence[int]] = ((0, 1), (2, 3), (4, 5)), **kwargs):
    """Three overlaid digits (the same `draw`: one true slot of three, six distinct digits)."""
    return make_mnist_sum(slots=slots, name="mnist_sum_bis", **kwargs)


def make_mnist_sum_noise_level(
    *,
    seed: int | None = 0,
    digits: Sequence[int] = (0, 1),
    noise_levels: Sequence[float] = (0.05, 0.3),
    true_feature: str = "digit",
    source: str = "mnist",
    data_dir: str | None = None,
    download: bool = True,
    draw: bool = False,
    **split_options,
):
    """A 1x28x28 digit with gaussian noise of standard deviation `noise_levels[class]`.

    `draw=True` draws, in this order: the true feature ("digit" or "noise_level");
    `len(digits)` distinct digits out of 0-9 (class i keeps `noise_levels[i]`); the unlabeled
    mix rate in `draws.MIX_RATE_RANGE` (0.25 to 0.75).
    """
    if len(noise_levels) != len(digits):
        raise ValueError("give one noise level per digit class")
    params = {}
    if draw:
        true_feature, digits, params = _draw_digit_and_cue(
            seed, "mnist_sum_noise_level", "noise_level", digits, MIX_RATE_RANGE, split_options
        )
    pools = DigitPools(source, data_dir, download)
    levels = np.asarray(noise_levels, dtype=np.float32)

    def render(rng, features, split):
        return add_noise(
            rng, pools.sample(rng, split, digits, features[:, 0]), levels[features[:, 1]]
        )

    return build_dataset(
        name="mnist_sum_noise_level",
        seed=seed,
        render=render,
        feature_names=("digit", "noise_level"),
        true_feature=true_feature,
        label_values=digits,
        **split_options,
        params={
            "digits": list(digits),
            "noise_levels": list(noise_levels),
            "source": source,
            **params,
        },
    )
