"""Where the Hydra configs live, and how a resolved config is shown."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

_PACKAGE = Path(__file__).resolve().parent
# An installed wheel carries the configs inside the package; a source checkout has them at the top.
CONFIG_DIR = _PACKAGE / "conf" if (_PACKAGE / "conf").is_dir() else _PACKAGE.parent / "conf"


def print_config(cfg: DictConfig) -> None:
    """Print the resolved config as YAML, as a rich syntax-highlighted panel when on a terminal."""
    from rich.console import Console
    from rich.syntax import Syntax

    text = OmegaConf.to_yaml(cfg, resolve=True)
    Console().print(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))
