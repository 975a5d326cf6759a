"""Where the Hydra configs live, and how a resolved config is shown."""

from __future__ import annotations

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
