"""The toy dataset: 2-D points whose x sign and y sign agree in the labeled set."""

from __future__ import annotations

from hackrobust.data.generators.base import build_dataset
from hackrobust.data.generators.draws import feature_and_mix_rate


def make_toy(
    *,
    seed: int | None = 0,
    true_feature: str = "x",
    noise: float = 0.3,
    draw: bool = False,
    **split_options,
):
    """Points around (+-1, +-1): feature "x" is the sign of x, "y" the sign of y.

    `draw=True` draws from the seed (see `draws`), in this order: the true feature ("x" or
    "y"); the unlabeled mix rate in `draws.MIX_RATE_RANGE` (0.25 to 0.75).
    """
    true_feature, drawn = feature_and_mix_rate(
        draw, seed, "toy", ("x", "y"), true_feature, split_options
    )

    def render(rng, features, split):
        centres = 2.0 * features - 1.0
        return centres + noise * rng.standard_normal(centres.shape)

    return build_dataset(
        name="toy",
        seed=seed,
        render=render,
        feature_names=("x", "y"),
        true_feature=true_feature,
        label_values=(0, 1),
        **split_options,
        params={"noise": noise, **drawn},
    )
