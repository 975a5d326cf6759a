"""The free choices a generator draws from its seed when called with `draw=True`.

By default every generator fixes its free choices: which feature is the label, which digits
make each feature's classes, the unlabeled mix rate. With `draw=True` it draws them from the
seed instead, so that a recipe can be tried on many exercises of one kind, not one.

The draw has its own random stream, `np.random.default_rng([seed, DRAW_STREAM, crc32(name)])`
with `name` the dataset's name (fresh entropy when the seed is None), so two datasets drawn
with one seed do not share their choices. The rows, images and noise still come from the
generator's usual stream (`np.random.default_rng(seed)` in `base.build_dataset`; HappyFaces'
own), which the draw never touches: `draw=False` builds exactly what the generator built before
the argument existed, and a draw that picks the default choices builds the default arrays.

With `draw=True` the drawn choices replace the arguments they stand for (`true_feature`,
`digits`, `right_digits`, `slots`, `unlabeled_mix_rate`), whatever those say; every other
argument (sizes, target mix rate, colours, noise levels, number of classes) keeps its meaning.
The metadata's "draw" entry (absent with `draw=False`) records what was drawn, keyed by the
argument each value replaced; "true_feature", "label_values", "digits"/"slots" and the rest
describe the set as built, so the answer key, the group names and the feature metrics follow
the draw. A drawn set is cached apart from the default one: `draw` and the seed are among the
generator arguments whose hash names the cache folder (`HackathonDataModule.generated_dir`).

Choices are drawn in a fixed order (true feature, digits, mix rate), each uniformly:

- the true feature: any one of the generator's features;
- digits (MNIST generators only): distinct digits out of 0-9, sorted within each feature, so
  class i is the feature's i-th smallest digit and correlated rows pair the i-th digits of
  every feature; features that must not share digits (the overlaid slots of mnist_sum) draw
  disjoint ones;
- the unlabeled mix rate: uniform in MIX_RATE_RANGE around the usual 0.5, or in
  LOW_MIX_RATE_RANGE for the low-mix set (default 0.05), rounded to 3 decimals. The target mix
  rate is not drawn.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

DRAW_STREAM = 0x64726177  # "draw" in ASCII: the draw's stream key, beside the seed
MIX_RATE_RANGE = (0.25, 0.75)
LOW_MIX_RATE_RANGE = (0.02, 0.1)
DIGITS = tuple(range(10))


class Draw:
    """One generator's draw: call its methods in the documented order, then read `record`."""

    def __init__(self, seed: int | None, name: str):
        key = [seed, DRAW_STREAM, zlib.crc32(name.encode())]
        self.rng = np.random.default_rng(None if seed is None else key)
        self.record: dict = {}

    def true_feature(self, feature_names: Sequence[str]) -> str:
        feature = str(feature_names[int(self.rng.integers(len(feature_names)))])
        self.record["true_feature"] = feature
        return feature

    def digits(self, key: str, n_classes: int) -> list[int]:
        """`n_classes` distinct digits, sorted, recorded under `key`."""
        return self.disjoint_digits(key, 1, n_classes)[0]

    def disjoint_digits(self, key: str, n_features: int, n_classes: int) -> list[list[int]]:
        """`n_features` lists of `n_classes` digits, no digit in two lists, each sorted."""
        if n_features * n_classes > len(DIGITS):
            raise ValueError(
                f"{n_features} features of {n_classes} distinct digits need "
                f"{n_features * n_classes} digits; there are {len(DIGITS)}"
            )
        chosen = self.rng.permutation(DIGITS)[: n_features * n_classes]
        lists = [sorted(int(d) for d in part) for part in chosen.reshape(n_features, n_classes)]
        self.record[key] = lists if n_features > 1 else lists[0]
        return lists

    def mix_rate(self, bounds: tuple[float, float] = MIX_RATE_RANGE) -> float:
        low, high = bounds
        rate = round(float(self.rng.uniform(low, high)), 3)
        rate = min(max(rate, low), high)
        self.record["unlabeled_mix_rate"] = rate
        return rate


def feature_and_mix_rate(
    draw: bool, seed: int | None, name: str, features: Sequence[str], true_feature: str,
    split_options: dict,
) -> tuple[str, dict]:  # fmt: skip
    """For generators with nothing else to draw: `(true_feature, extra metadata)`, as given
    without `draw`; with it, the true feature drawn among `features` and the unlabeled mix rate
    in MIX_RATE_RANGE, written into `split_options`, and the draw recorded."""
    if not draw:
        return true_feature, {}
    pick = Draw(seed, name)
    true_feature = pick.true_feature(features)
    split_options["unlabeled_mix_rate"] = pick.mix_rate(MIX_RATE_RANGE)
    return true_feature, {"draw": pick.record}
