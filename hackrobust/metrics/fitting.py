"""The rule for an epoch at which heads still fit the labeled rows (one definition).

Every candidate rule fits the labeled rows, so a head whose held-out labeled accuracy falls
more than a tolerance below its best so far has stopped being one. `val/select_last_fitting`
(hackrobust/methods/base.py) applies it to every head during fit; `HeadFittingCheckpoints`
(hackrobust/training/head_fitting.py) to the chosen head after the query.
"""

from __future__ import annotations

from collections.abc import Sequence

# Held-out accuracies are fractions of a few hundred rows: equal ones must compare equal.
_SLACK = 1e-9


def still_fits(accuracy: Sequence[float], best: Sequence[float], tolerance: float) -> bool:
    """Whether every head's `accuracy` is within `tolerance` of its `best` so far."""
    return all(a >= b - tolerance - _SLACK for a, b in zip(accuracy, best, strict=True))
