"""Which head is right? Sequential Bayesian querying over the heads' hypotheses.

Each head h is a hypothesis "the labels are head h's predictions". A revealed label y at a
target row x has likelihood (1 - eps) p_h(y|x) + eps / K under head h (eps allows for the
true head's own mistakes). Each step queries the row of greatest expected information gain
about which head is right, i.e. where the heads that are still plausible disagree most, updates
the posterior, and stops when one head is decided or the budget is spent.

When the heads are nested (nearly every row where they disagree shows the same pattern of
predictions: an OR and an AND of two features, or a head that predicts one class everywhere
beside any other), neither may be the rule: two rules on two features of a target that has both
kinds of decorrelated row disagree both ways. The gain cannot see it; after the first label it
keeps asking the kind of row that decided the posterior, where the chosen head is right. So
once one head is decided (posterior >= `verify_after`) and the heads are nested, the remaining
labels go to random rows where the heads disagree, which reach the kinds of row the gain
would skip: a head that predicts 0 everywhere, beside an OR head, would otherwise be checked
only on the rows where 0 is the right label.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

# The share of the disagreement rows in one prediction pattern from which heads count as nested.
NESTED_SHARE = 0.95


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
    verify_after: float = 0.9,
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
    Once a head's posterior reaches `verify_after` and the heads are nested, the remaining
    queries are random rows where the heads disagree (module docstring); `verify_after` > 1
    keeps the gain to the end.
    """
    n_heads = probs.shape[1]
    likelihood = _likelihood(probs.astype(np.float64), error_rate)
    choice = HeadChoice(head=0, posterior=[1 / n_heads] * n_heads)
    posterior = _Posterior(likelihood, choice)
    for datum_id, label in sorted((known or {}).items()):
        posterior.update(datum_id, label, 0.0)
    asked = set(known or {})
    rng = np.random.default_rng(seed)
    random_order = iter(rng.permutation(len(probs)))
    patterns = probs.argmax(-1)  # (N, H) each head's prediction
    disagree = (patterns != patterns[:, :1]).any(axis=1)
    pattern_of_row = np.unique(patterns, axis=0, return_inverse=True)[1].reshape(-1)
    verify_from = verify_after if _nested(pattern_of_row[disagree]) else np.inf
    for _ in range(budget):
        if n_heads == 1:
            # Nothing to choose: a random sample at least measures the one head's accuracy.
            datum_id = next(d for d in map(int, random_order) if d not in asked)
            gain = np.zeros(len(probs))
        elif posterior.value.max() >= stop_at:
            break
        else:
            gain = expected_information_gain(likelihood, posterior.value)
            gain[list(asked)] = -np.inf
            picked = None
            if posterior.value.max() >= verify_from:
                picked = _verification_pick(pattern_of_row, disagree, sorted(asked), rng)
            datum_id = picked if picked is not None else _spread_pick(gain, features, sorted(asked))
        asked.add(datum_id)
        posterior.update(datum_id, reveal(datum_id), float(gain[datum_id]))
    choice.head = int(np.argmax(posterior.value))
    choice.posterior = posterior.value.round(6).tolist()
    return choice


class _Posterior:
    """The heads' posterior given the labels revealed so far; each one joins `choice.queries`
    with the posterior after it."""

    def __init__(self, likelihood: np.ndarray, choice: HeadChoice):
        self.likelihood, self.choice = likelihood, choice
        n_heads = likelihood.shape[1]
        self.log_posterior = np.zeros(n_heads)
        self.value = np.full(n_heads, 1 / n_heads)

    def update(self, datum_id: int, label: int, gain: float) -> None:
        self.log_posterior = self.log_posterior + np.log(self.likelihood[datum_id, :, label])
        posterior = np.exp(self.log_posterior - self.log_posterior.max())
        self.value = posterior / posterior.sum()
        self.choice.queries.append(Query(datum_id, label, gain, self.value.round(6).tolist()))


def _nested(disagreement_patterns: np.ndarray) -> bool:
    """Whether (nearly) every disagreement row shows one pattern (ids) of head predictions."""
    if len(disagreement_patterns) == 0:
        return False
    return np.bincount(disagreement_patterns).max() >= NESTED_SHARE * len(disagreement_patterns)


def _verification_pick(
    pattern_of_row: np.ndarray, disagree: np.ndarray, asked: list[int], rng: np.random.Generator
) -> int | None:
    """A random unasked row where the heads disagree, of the least-asked disagreement pattern.

    None when every such row has been asked.
    """
    open_rows = disagree.copy()
    open_rows[asked] = False
    if not open_rows.any():
        return None
    n_patterns = pattern_of_row.max() + 1
    asked_per_pattern = np.bincount(pattern_of_row[asked], minlength=n_patterns)
    available = np.bincount(pattern_of_row[open_rows], minlength=n_patterns) > 0
    times = np.where(available, asked_per_pattern, np.iinfo(np.int64).max)
    pattern = int(np.argmin(times))  # ties: the first pattern
    return int(rng.choice(np.flatnonzero(open_rows & (pattern_of_row == pattern))))


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
