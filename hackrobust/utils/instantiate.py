"""Build the named entries of a config dict (callbacks, loggers, stages) that carry a `_target_`."""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def instantiate_named(cfg: DictConfig | None) -> dict:
    """Instantiate every value of `cfg` that has a `_target_`, by name and in order; entries
    set to null are skipped."""
    if not cfg:
        return {}
    if not isinstance(cfg, DictConfig):
        raise TypeError(f"expected a dict of named entries, got {type(cfg).__name__}")
    built = {}
    for name, entry in cfg.items():
        if isinstance(entry, DictConfig) and "_target_" in entry:
            log.debug("Instantiating %s <%s>", name, entry._target_)
            built[name] = hydra.utils.instantiate(entry)
    return built


def instantiate_entries(cfg: DictConfig | None) -> list:
    """The objects of `instantiate_named`, in order."""
    return list(instantiate_named(cfg).values())
