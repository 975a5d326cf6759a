"""Where the Hydra configs live, how a resolved config is shown, and the command that resumes a run."""

from __future__ import annotations

import shlex
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

_PACKAGE = Path(__file__).resolve().parents[1]
# An installed wheel carries the configs inside the package; a source checkout has them at the top.
CONFIG_DIR = _PACKAGE / "conf" if (_PACKAGE / "conf").is_dir() else _PACKAGE.parent / "conf"


@rank_zero_only
def print_config(cfg: DictConfig) -> None:
    """Print the resolved config as YAML: highlighted on a terminal, plain (never cut to a
    width) when piped."""
    import sys

    from rich.console import Console
    from rich.syntax import Syntax

    text = OmegaConf.to_yaml(cfg, resolve=True)
    if not sys.stdout.isatty():
        print(text, flush=True)
        return
    Console().print(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))


def resume_command(checkpoint: str | Path) -> str:
    """The command line of this run (its Hydra overrides), resumed from `checkpoint`: a run
    resumed from its last checkpoint trains no further epoch."""
    from hydra.core.hydra_config import HydraConfig

    overrides = []
    if HydraConfig.initialized():
        overrides = [o for o in HydraConfig.get().overrides.task if not _run_specific(o)]
    words = ["python", "-m", "hackrobust.train", *overrides, f"ckpt_path={checkpoint}"]
    return shlex.join(words)


def _run_specific(override: str) -> bool:
    """An override the resumed run must not repeat: its checkpoint and its run folder."""
    return override.split("=", 1)[0].lstrip("+~") in {"ckpt_path", "hydra.run.dir"}
