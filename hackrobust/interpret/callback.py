"""The attribution-maps callback: at predict time, draw what each head looks at on target rows."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.loggers import WandbLogger

from hackrobust.interpret.attribution import METHODS, attribution_figure, head_attributions
from hackrobust.methods.inference import target_probabilities
from hackrobust.utils.timing import TimedCallback

log = logging.getLogger(__name__)


def pick_rows(predictions: np.ndarray, n: int) -> np.ndarray:
    """The rows of (N, heads) predictions where the heads disagree, then the others; first `n`."""
    disagree = (predictions != predictions[:, :1]).any(axis=1)
    return np.concatenate([np.flatnonzero(disagree), np.flatnonzero(~disagree)])[:n]


class AttributionMaps(TimedCallback, L.Callback):
    """Writes each head's attribution maps of `num_examples` target rows as a PNG.

    Rows where the heads disagree come first: they show what tells the heads apart. Drawn at the
    end of the predict stage, so with the weights the submission uses (the selected checkpoint)
    and after the query has chosen a head; on global rank 0 only; the PNG goes to every W&B
    logger.

    Args:
        method: "integrated_gradients" (zero baseline) or "saliency" (input gradients).
        n_steps: integration steps of integrated gradients (each costs a forward and a backward).
        filename: the PNG's name in `dirpath` (default: the trainer's `default_root_dir`).
        every_run: if the file exists (another fit into the same folder), write the next free
            name (`attributions_1.png`, ...); False keeps the existing file and draws nothing.
            A second predict stage of the same trainer (the chosen head's fitting epoch,
            hackrobust/training/head_fitting.py) redraws its own file: the maps are of the last weights.
    """

    timing_name = "attribution_maps"

    def __init__(
        self,
        num_examples: int = 8,
        method: str = "integrated_gradients",
        filename: str = "attributions.png",
        every_run: bool = True,
        dirpath: str | Path | None = None,
        n_steps: int = 20,
    ):
        if method not in METHODS:
            raise ValueError(f"unknown attribution method {method!r}; choose one of {METHODS}")
        self.num_examples = num_examples
        self.method = method
        self.filename = filename
        self.every_run = every_run
        self.dirpath = dirpath
        self.n_steps = n_steps
        self._drawn: tuple[int, Path] | None = None  # (the trainer's id, the file it drew)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            with self.timed():
                self._draw_maps(trainer, pl_module)

    def _draw_maps(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        if getattr(datamodule, "target_set", None) is None:
            log.info("No target set on the datamodule: no attribution maps drawn")
            return
        path = self._path(trainer)
        if path is None:
            log.info("%s exists and every_run is false: no attribution maps drawn", self.filename)
            return

        x = datamodule.target_set.tensors["x"]
        heads = getattr(pl_module, "num_heads", None)  # rules built on the heads have no maps
        predictions = target_probabilities(pl_module, x)[:, :heads].argmax(-1)  # (N, heads)
        rows = pick_rows(predictions, self.num_examples)
        maps = [
            head_attributions(pl_module, x[rows], head, self.method, n_steps=self.n_steps)
            for head in range(predictions.shape[1])
        ]
        data = datamodule.data
        said = datamodule.label_values[predictions[rows]]
        features = data.features_target
        chosen = int(getattr(pl_module, "chosen_head", 0))
        titles = [
            f"row {r}\nheads say {said[i].tolist()} (chosen: {chosen})"
            + ("" if features is None else f"\nfeatures {features[r].tolist()}")
            for i, r in enumerate(rows)
        ]
        # The raw rows are drawn; the maps are of the (possibly standardised) model inputs.
        redraw = self._drawn == (id(trainer), path)
        attribution_figure(data.x_target[rows], maps, path, row_titles=titles, overwrite=redraw)
        self._drawn = (id(trainer), path)
        log.info("Attribution maps of %d target rows written to %s", len(rows), path)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="attributions", images=[str(path)])

    def _path(self, trainer: L.Trainer) -> Path | None:
        """Where to write: `filename`, else the next free numbered name (None: skip)."""
        if self._drawn is not None and self._drawn[0] == id(trainer):
            return self._drawn[1]
        path = Path(self.dirpath or trainer.default_root_dir) / self.filename
        if not path.exists():
            return path
        if not self.every_run:
            return None
        numbered = (path.with_stem(f"{path.stem}_{i}") for i in itertools.count(1))
        return next(p for p in numbered if not p.exists())
