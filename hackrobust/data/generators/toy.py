"""The toy dataset: 2-D points whose x sign and y sign agree in the labeled set."""

from __future__ import annotations

from hackrobust.data.generators.base import build_dataset


def make_toy(
    *,
    seed: int | None = 0,
    true_feature: str = "x",
    n_labeled: int = 1200,
    n_unlabeled: int = 3800,
    n_target: int = 1200,
    unlabeled_mix_rate: float = 0.5,
    target_mix_rate: float = 0.5,
    noise: float = 0.3,
):
    """Points around (+-1, +-1): feature "x" is the sign of x, "y" the sign of y."""

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
        n_labeled=n_labeled,
        n_unlabeled=n_unlabeled,
        n_target=n_target,
        unlabeled_mix_rate=unlabeled_mix_rate,
        target_mix_rate=target_mix_rate,
        params={"noise": noise},
    )
