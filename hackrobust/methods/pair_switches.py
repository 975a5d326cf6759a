"""Class-pair switches: the hypotheses beside two heads when the classes are three.

With three classes, diversity alone cannot say which feature each head reads. On a set where
the labels follow one of two features (left or right digit), every pair of heads that maps the
six kinds of decorrelated row (left a, right b, a != b) one to one onto the six pairs of
different predictions has the same, least, mutual information: 720 such pairs, of which 2 are
"head 0 reads left, head 1 right" and its mirror (experiments/pair_switch_degeneracy.py counts
them). DivDis's `plausible_weight` term keeps each head's predictions among the classes a
labeled-only model ranks first (on a row of digits a and b: a or b), which leaves 8: for each
pair of classes {a, b}, which head follows the left digit there. Those are the hypotheses
here: for each of the three class pairs, follow head 0 or head 1 on the rows where the heads
predict that pair. The two heads themselves are the all-0 and all-1 switches; the six mixed
ones come after them, and the active query chooses among all eight with the revealed labels.

Rows where the heads agree take the mean of the two heads' probabilities in a mixed hypothesis.
With more than three class pairs (four classes or more) or other than two heads the hypotheses
are the heads alone: 2^6 switches and more are too many for five labels.
"""

from __future__ import annotations

import itertools

import torch

MAX_PAIRS = 3  # class pairs up to which the mixed hypotheses are added (three classes)


def class_pairs(num_classes: int) -> list[tuple[int, int]]:
    """The unordered pairs of class indices, (0, 1), (0, 2), ... in order."""
    return list(itertools.combinations(range(num_classes), 2))


def applies(num_heads: int, num_classes: int) -> bool:
    """Whether the mixed hypotheses exist: two heads, and 2 to MAX_PAIRS class pairs."""
    return num_heads == 2 and 2 <= len(class_pairs(num_classes)) <= MAX_PAIRS


def switches(num_classes: int) -> list[tuple[int, ...]]:
    """The mixed switch vectors (which head per class pair), neither all-0 nor all-1."""
    n_pairs = len(class_pairs(num_classes))
    return [s for s in itertools.product((0, 1), repeat=n_pairs) if 0 < sum(s) < n_pairs]


def hypothesis_names(num_heads: int, num_classes: int, label_values=None) -> list[str]:
    """ "head 0", "head 1", then per mixed hypothesis the head it follows on each class pair."""
    names = [f"head {h}" for h in range(num_heads)]
    if not applies(num_heads, num_classes):
        return names
    values = list(range(num_classes)) if label_values is None else list(label_values)
    pairs = class_pairs(num_classes)
    for switch in switches(num_classes):
        names.append(
            ", ".join(
                f"head {h} on {values[a]}/{values[b]}"
                for (a, b), h in zip(pairs, switch, strict=True)
            )
        )
    return names


def with_pair_switches(probs: torch.Tensor) -> torch.Tensor:
    """(N, 2, K) head probabilities -> (N, 2 + mixed, K): the heads, then the mixed hypotheses.

    Unchanged where `applies` is false."""
    _, num_heads, num_classes = probs.shape
    if not applies(num_heads, num_classes):
        return probs
    pair_index = torch.full((num_classes, num_classes), -1, dtype=torch.long)
    for i, (a, b) in enumerate(class_pairs(num_classes)):
        pair_index[a, b] = pair_index[b, a] = i
    predicted = probs.argmax(-1)
    row_pair = pair_index.to(probs.device)[predicted[:, 0], predicted[:, 1]]  # -1: heads agree
    agree, mean = row_pair < 0, probs.mean(dim=1)
    rows = torch.arange(len(probs), device=probs.device)
    mixed = []
    for switch in switches(num_classes):
        follow = torch.tensor(switch, device=probs.device)[row_pair.clamp_min(0)]
        mixed.append(torch.where(agree[:, None], mean, probs[rows, follow]))
    return torch.cat([probs, torch.stack(mixed, dim=1)], dim=1)
