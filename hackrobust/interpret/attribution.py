"""Per-head attribution maps: which part of the input each head's prediction rests on.

`head_attributions` wraps one head of a (B, heads, classes) model for captum (integrated gradients
from a zero baseline, or plain input gradients); `attribution_figure` draws the maps as a PNG,
one row per example: the input, then each head's absolute attribution summed over channels.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import nn

METHODS = ("integrated_gradients", "saliency")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Every submodule in eval mode inside; each one's own mode restored after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def head_attributions(
    model: nn.Module,
    x: torch.Tensor,
    head: int,
    method: str = "integrated_gradients",
    target: int | torch.Tensor | None = None,
    n_steps: int = 50,
) -> torch.Tensor:
    """Attribution of each input value to `head`'s logit of `target`, shaped like `x`.

    `target` defaults to the head's predicted class of each row. The model runs in eval mode and
    only input gradients are taken: parameters' `.grad` are left as they were.
    """
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose one of {METHODS}")
    from captum.attr import IntegratedGradients, Saliency  # slow import, needed only here

    param = next(model.parameters(), None)
    device = param.device if param is not None else x.device

    def forward(batch: torch.Tensor) -> torch.Tensor:
        logits = model(batch)
        if logits.ndim != 3:
            raise ValueError(f"expected logits (B, heads, classes), got {tuple(logits.shape)}")
        return logits[:, head].float()

    # Lightning's predict stage runs under inference mode, which enable_grad alone cannot lift.
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        inputs = x.detach().to(device=device, dtype=torch.float32).clone().requires_grad_()
        if target is None:
            with torch.no_grad():
                target = forward(inputs).argmax(-1)
        if method == "saliency":
            maps = Saliency(forward).attribute(inputs, target=target, abs=False)
        else:
            maps = IntegratedGradients(forward).attribute(
                inputs, baselines=torch.zeros_like(inputs), target=target, n_steps=n_steps
            )
    return maps.detach().to(x.device)


def attribution_figure(
    x: np.ndarray | torch.Tensor,
    attributions: Sequence[np.ndarray | torch.Tensor],
    path: str | Path,
    row_titles: Sequence[str] | None = None,
    head_titles: Sequence[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a PNG: one row per example, the input then each head's map. Returns the path.

    Args:
        x: inputs, images (N, C, H, W) or vectors (N, D).
        attributions: one array shaped like `x` per head.
        row_titles: a title per example; head_titles: a title per head.
        overwrite: replace an existing file (otherwise FileExistsError).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    x, maps = _checked_maps(x, attributions)
    n, heads = len(x), len(maps)
    head_titles = list(head_titles or [f"head {h}" for h in range(heads)])
    row_titles = list(row_titles or [f"example {i}" for i in range(n)])

    image = x.ndim == 4
    # Cells in inches: images keep roughly their aspect, strips are wide and low.
    width, height = (2.2, 2.2 * np.clip(x.shape[2] / x.shape[3], 0.6, 1.5)) if image else (3.2, 1.8)
    fig = Figure(figsize=(width * (heads + 1), height * n + 0.3), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, heads + 1, squeeze=False)
    for i in range(n):
        titles = head_titles if i == 0 else None
        _draw_row(axes[i], x[i], [head_maps[i] for head_maps in maps], row_titles[i], titles)
    axes[0, 0].set_title("input", fontsize=9)
    _write_png(fig, path, overwrite)
    return path


def _checked_maps(
    x: np.ndarray | torch.Tensor, attributions: Sequence[np.ndarray | torch.Tensor]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """`x` and the absolute maps as float32 arrays; refuses inputs that are neither images nor
    vectors, and maps shaped otherwise."""
    x = _numpy(x)
    maps = [np.abs(_numpy(a)) for a in attributions]
    if x.ndim not in (2, 4) or any(m.shape != x.shape for m in maps):
        shapes = [m.shape for m in maps]
        raise ValueError(
            f"expected x (N, C, H, W) or (N, D) and maps alike, got {x.shape}, {shapes}"
        )
    return x, maps


def _draw_row(axes, x: np.ndarray, maps: list[np.ndarray], title: str, head_titles) -> None:
    """One example's row: its input (titled `title` at the left), then each head's map, a heat
    map summed over channels for an image, bars for a vector; `head_titles` (or None) titles
    the head cells."""
    image = x.ndim == 3
    if image:
        _show_image(axes[0], x)
    else:
        _bars(axes[0], x, "tab:blue")
    # Horizontal: a rotated multi-line title is wider than a short image row is high.
    axes[0].set_ylabel(title, fontsize=7, rotation=0, ha="right", va="center")
    for h, head_map in enumerate(maps):
        ax = axes[h + 1]
        if image:
            heat = head_map.sum(axis=0)
            ax.imshow(heat, cmap="inferno", vmin=0, vmax=heat.max() or 1)
            _no_ticks(ax)
        else:
            _bars(ax, head_map, "tab:red")
        if head_titles is not None:
            ax.set_title(head_titles[h], fontsize=9)


def _write_png(fig: Figure, path: Path, overwrite: bool) -> None:
    """Render `fig` to PNG in memory, then write it to `path` (its folder made if need be)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb" if overwrite else "xb") as file:  # "xb": never replace a file
        file.write(buffer.getvalue())


def _numpy(a: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().float().cpu().numpy()
    return np.asarray(a, dtype=np.float32)


def _show_image(ax, image: np.ndarray) -> None:
    """One (C, H, W) image, scaled to [0, 1]: RGB when C is 3, else the channel mean in grey."""
    image = image.transpose(1, 2, 0) if len(image) == 3 else image.mean(axis=0)
    low, high = image.min(), image.max()
    ax.imshow((image - low) / (high - low or 1), cmap="gray", vmin=0, vmax=1)
    _no_ticks(ax)


def _bars(ax, values: np.ndarray, color: str) -> None:
    ax.bar(np.arange(len(values)), values, color=color, width=0.9)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # feature indices
    ax.tick_params(labelsize=6)


def _no_ticks(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
