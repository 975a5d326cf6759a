"""`python -m hackrobust.train`: compose the config, build the run, run its stages.

`train(cfg)` is a plain function (tests and notebooks call it); `main` is the thin Hydra wrapper
that returns the optimized metric so sweepers can use it. A run is its objects (datamodule,
method, trainer) and a list of stages (`cfg.stages`: pretrain, fit, predict, ..., report), each
a small class in `hackrobust.stages` that takes the run and returns it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from hackrobust import dashboards
from hackrobust.stages import Run, run_stages
from hackrobust.utils.allocator import keep_freed_memory
from hackrobust.utils.config import CONFIG_DIR, print_config
from hackrobust.utils.console import (
    EpochProgress,
    announce,
    print_header,
    quiet_third_parties,
)
from hackrobust.utils.errors import user_errors_in_one_line
from hackrobust.utils.instantiate import instantiate_entries, instantiate_named
from hackrobust.utils.timing import timings_line

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> tuple[dict[str, float], dict]:
    """Build the run of `cfg` and run its stages. Returns (metrics, objects)."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    if cfg.get("host_memory_cache"):
        keep_freed_memory(cfg.host_memory_cache)
    stages = instantiate_named(cfg.stages)
    preflight(stages.values())  # outputs and settings, before anything is built
    start = time.perf_counter()
    run = build_run(cfg)
    preflight(run.callbacks.values(), run.datamodule)  # the query's server, before any epoch
    run.timings["setup"] = time.perf_counter() - start
    try:
        run = run_stages(stages, run)
        run.timings["total"] = time.perf_counter() - start
        finish(run)
    finally:
        dashboards.finish(run.trainer.loggers)
    objects = {"cfg": cfg, "datamodule": run.datamodule, "method": run.method}
    return run.metrics, objects | {"trainer": run.trainer, "probs": run.probs, "run": run}


def build_run(cfg: DictConfig) -> Run:
    """The datamodule (set up), the method, the callbacks and the trainer of `cfg`."""
    datamodule = hydra.utils.instantiate(cfg.dataset)
    datamodule.prepare_data()
    datamodule.setup("fit")
    data = datamodule.data
    log.info(
        "Dataset: input %s, label values %s, %d labeled / %d unlabeled / %d target",
        datamodule.input_shape, datamodule.label_values.tolist(),
        len(data.y_labeled), len(data.x_unlabeled), len(data.x_target),
    )  # fmt: skip
    new_model = hydra.utils.instantiate(cfg.model)
    method = hydra.utils.instantiate(
        cfg.method,
        model=new_model,
        input_shape=datamodule.input_shape,
        num_classes=datamodule.num_classes,
        group_names=datamodule.group_names if datamodule.data.has_answer_key else None,
    )
    datamodule.with_unlabeled = method.uses_unlabeled
    callbacks = instantiate_named(cfg.get("callbacks"))
    if cfg.get("query") and cfg.query.get("callback"):
        callbacks["query"] = hydra.utils.instantiate(cfg.query.callback)
    new_trainer = hydra.utils.instantiate(cfg.trainer, _partial_=True)
    trainer = new_trainer(
        callbacks=[*callbacks.values(), EpochProgress("fit")],
        logger=instantiate_entries(cfg.get("logger")),
    )
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return Run(
        datamodule, method, trainer, new_trainer, new_model, callbacks, Path(cfg.paths.output_dir)
    )


def preflight(parts, *args) -> None:
    """Every part's own `check(*args)`, where it has one: a user error shows now, not after
    training, and nothing is written."""
    for part in parts:
        if hasattr(part, "check"):
            part.check(*args)


def finish(run: Run) -> None:
    """The per-stage seconds join the metrics; rank 0 writes them to `metrics.json`."""
    run.metrics |= {f"timings/{name}": seconds for name, seconds in run.timings.items()}
    announce(log, timings_line(run.timings))
    if run.is_global_zero:
        Path(run.output_dir, "metrics.json").write_text(
            json.dumps(run.metrics, indent=2, sort_keys=True) + "\n"
        )


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    quiet_third_parties()
    print_header(HydraConfig.get().runtime.choices, cfg.paths.output_dir)
    if cfg.get("print_config"):
        print_config(cfg)
    with user_errors_in_one_line():
        metrics, _ = train(cfg)
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        raise KeyError(f"optimized_metric {name!r} was not logged; logged: {sorted(metrics)}")
    value = metrics[name]
    return value if math.isfinite(value) else None


if __name__ == "__main__":
    main()
