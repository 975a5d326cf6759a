"""Which head is right? Sequential Bayesian querying over the heads' hypotheses.

Each head h is a hypothesis "the labels are head h's predictions". A revealed label y at a
target row x has likelihood (1 - eps) p_h(y|x) + eps / K under head h (eps allows for the
true head's own mistakes). Each step queries the row of greatest expected information gain
about which head is right, i.e. where the heads that are still plausible disagree most, updates
the posterior, and stops when one head is decided or the budget is spent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class Query:
    datum_id: int
    label: int  # class index
    information_gain: float  # expected, in nats, when the row was chosen (0 for reused labels)
    posterior_after: list[float]


@dataclass
class HeadChoice:
    head: int
    posterior: list[float]
    queries: list[Query] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _likelihood(probs: np.ndarray, error_rate: float) -> np.ndarray:
    """(N, H, K) head probabilities -> likelihood of each label under each head hypothesis."""
    return (1 - error_rate) * probs + error_rate / probs.shape[-1]


def _entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=axis)


def expected_information_gain(likelihood: np.ndarray, posterior: np.ndarray) -> np.ndarray:
    """Mutual information between a row's label and the head identity, per row: (N,)."""
    predictive = np.einsum("h,nhk->nk", posterior, likelihood)
    return _entropy(predictive) - np.einsum("h,nh->n", posterior, _entropy(likelihood))


def choose_head(
    probs: np.ndarray,
    reveal: Callable[[int], int],
    budget: int,
    known: dict[int, int] | None = None,
    stop_at: float = 1.0,
    error_rate: float = 0.05,
    seed: int = 0,
    features: np.ndarray | None = None,
) -> HeadChoice:
    """Query up to `budget` new rows with `reveal(datum_id) -> class index`; pick the MAP head.

    Labels in `known` (already revealed, e.g. by an earlier run) are used first, for free.
    With a single head there is no hypothesis to test: it queries random rows (`seed`).

    Among the informative rows (at least half the best gain), a query goes to the one farthest
    in `features` (N, D) from the rows already asked. Repeating one kind of row would only
    test the heads against each other there; spreading the queries over the disagreement
    region also catches heads that are *all* wrong somewhere (say an OR and an AND of the two
    features), which the report then sees as disagreement with the revealed labels. By default
    the whole budget is spent (labels cost nothing up to it); `stop_at` < 1 stops earlier.
    """
    n_heads = probs.shape[1]
    likelihood = _likelihood(probs.astype(np.float64), error_rate)
    log_posterior = np.zeros(n_heads)
    choice = HeadChoice(head=0, posterior=[1 / n_heads] * n_heads)

    def update(datum_id: int, label: int, gain: float) -> np.ndarray:
        nonlocal log_posterior
        log_posterior = log_posterior + np.log(likelihood[datum_id, :, label])
        posterior = np.exp(log_posterior - log_posterior.max())
        posterior /= posterior.sum()
        choice.queries.append(Query(datum_id, label, gain, posterior.round(6).tolist()))
        return posterior

    posterior = np.full(n_heads, 1 / n_heads)
    for datum_id, label in sorted((known or {}).items()):
        posterior = update(datum_id, label, 0.0)
    asked = set(known or {})
    random_order = iter(np.random.default_rng(seed).permutation(len(probs)))
    for _ in range(budget):
        if n_heads == 1:
            # Nothing to choose: a random sample at least measures the one head's accuracy.
            datum_id = next(d for d in map(int, random_order) if d not in asked)
            gain = np.zeros(len(probs))
        elif posterior.max() >= stop_at:
            break
        else:
            gain = expected_information_gain(likelihood, posterior)
            gain[list(asked)] = -np.inf
            datum_id = _spread_pick(gain, features, sorted(asked))
        asked.add(datum_id)
        posterior = update(datum_id, reveal(datum_id), float(gain[datum_id]))
    choice.head = int(np.argmax(posterior))
    choice.posterior = posterior.round(6).tolist()
    return choice


def _spread_pick(gain: np.ndarray, features: np.ndarray | None, asked: list[int]) -> int:
    """The most informative row, or among the informative ones the farthest from `asked`."""
    best = int(np.argmax(gain))  # ties: the first row
    if features is None or not asked or not np.isfinite(gain[best]):
        return best
    candidates = np.flatnonzero(gain >= 0.5 * gain[best])
    distance = np.linalg.norm(features[candidates, None] - features[None, asked], axis=-1).min(
        axis=1
    )
    return int(candidates[np.argmax(distance)])
