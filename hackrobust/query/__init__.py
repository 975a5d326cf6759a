"""Choosing among the heads with a few revealed target labels."""

from hackrobust.methods.inference import target_probabilities
from hackrobust.query.callback import ActiveQuery
from hackrobust.query.selection import HeadChoice, choose_head, expected_information_gain

__all__ = [
    "ActiveQuery",
    "HeadChoice",
    "choose_head",
    "expected_information_gain",
    "target_probabilities",
]
