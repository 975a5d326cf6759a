"""Per-head attribution maps: each head's map lies where that head reads; the PNG and callback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import WandbLogger
from PIL import Image
from torch import nn

from hackrobust.interpret import AttributionMaps, attribution_figure, head_attributions
from hackrobust.interpret.callback import pick_rows
from hackrobust.train import train

from helpers import compose_train, offline_overrides

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class HalfReader(nn.Module):
    """Two heads on (B, 1, 4, 8) images: head 0 reads only the left half, head 1 the right."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.dropout = nn.Dropout(0.5)  # makes train mode visible: the maps would be random
        self.left, self.right = nn.Linear(16, 3), nn.Linear(16, 3)

    def forward(self, x):
        x = self.dropout(x)
        left, right = x[..., :4].flatten(1), x[..., 4:].flatten(1)
        return torch.stack([self.left(left).tanh(), self.right(right).tanh()], dim=1)


def images(n=6):
    return torch.randn(n, 1, 4, 8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("method", ["integrated_gradients", "saliency"])
def test_each_head_map_lies_in_the_half_it_reads(method):
    model, x = HalfReader(), images()
    for head, (inside, outside) in enumerate(
        [(slice(0, 4), slice(4, 8)), (slice(4, 8), slice(0, 4))]
    ):
        maps = head_attributions(model, x, head, method).abs()
        assert maps.shape == x.shape
        assert maps[..., outside].sum() == 0 and maps[..., inside].sum() > 0


def test_integrated_gradients_add_up_to_the_logit_change_from_zero():
    """Completeness: IG from a zero baseline sums to f(x) - f(0) of the target logit."""
    model, x = HalfReader().eval(), images()
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    maps = head_attributions(model, x, head=1, target=target, n_steps=200)
    with torch.no_grad():
        rows = torch.arange(len(x))
        change = model(x)[rows, 1, target] - model(torch.zeros_like(x))[rows, 1, target]
    torch.testing.assert_close(maps.flatten(1).sum(1), change, atol=2e-3, rtol=0)


def test_target_defaults_to_the_heads_prediction():
    model, x = HalfReader(), images()
    predicted = model.eval()(x)[:, 0].argmax(-1)
    expected = head_attributions(model, x, 0, "saliency", target=predicted)
    torch.testing.assert_close(head_attributions(model, x, 0, "saliency"), expected)
    other = head_attributions(model, x, 0, "saliency", target=(predicted + 1) % 3)
    assert not torch.allclose(other, expected)


def test_modes_are_restored_and_no_gradient_reaches_the_parameters():
    model, x = HalfReader(), images()
    model.train()
    model.left.eval()  # a mixed mode must survive too
    first = head_attributions(model, x, 0)
    # Eval mode inside: dropout is off, so two calls agree exactly.
    torch.testing.assert_close(head_attributions(model, x, 0), first, rtol=0, atol=0)
    assert model.training and model.dropout.training and not model.left.training
    assert all(p.grad is None for p in model.parameters())


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown attribution method 'gradcam'"):
        head_attributions(HalfReader(), images(), 0, method="gradcam")
    with pytest.raises(ValueError, match="unknown attribution method"):
        AttributionMaps(method="gradcam")


@pytest.mark.parametrize("shape", [(3, 1, 4, 8), (3, 3, 5, 5), (3, 7)])
def test_figure_is_a_png_with_a_row_per_example(shape, tmp_path):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    path = attribution_figure(x, [x, 2 * x], tmp_path / "maps.png", head_titles=["a", "b"])
    one = attribution_figure(x[:1], [x[:1], x[:1]], tmp_path / "one.png")
    assert path == tmp_path / "maps.png" and path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as three_rows, Image.open(one) as one_row:
        three_rows.verify()
        assert three_rows.width == one_row.width  # the columns: input, head a, head b
        assert three_rows.height > 2 * one_row.height


def test_figure_never_replaces_a_file_unless_asked(tmp_path):
    path = tmp_path / "maps.png"
    path.write_bytes(b"keep me")
    x = np.ones((2, 4), dtype=np.float32)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        attribution_figure(x, [x], path)
    assert path.read_bytes() == b"keep me"
    attribution_figure(x, [x], path, overwrite=True)
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_figure_rejects_maps_of_another_shape(tmp_path):
    with pytest.raises(ValueError, match="maps alike"):
        attribution_figure(np.ones((2, 4)), [np.ones((2, 5))], tmp_path / "maps.png")


def test_disagreeing_rows_come_first_then_the_first_rows():
    predictions = np.array([[0, 0], [1, 1], [0, 1], [1, 1], [1, 0], [2, 2]])
    assert pick_rows(predictions, 3).tolist() == [2, 4, 0]
    assert pick_rows(predictions, 10).tolist() == [2, 4, 0, 1, 3, 5]
    assert pick_rows(predictions[:, :1], 2).tolist() == [0, 1]  # one head: the first rows


class RecordingWandb(WandbLogger):
    """A W&B logger that records images instead of starting a run."""

    def __init__(self):
        super().__init__(offline=True)
        self.images = []

    def log_image(self, key, images, step=None, **kwargs):
        self.images.append((key, images))


def test_training_run_writes_the_maps_and_never_replaces_them(tmp_path):
    overrides = [
        *offline_overrides("toy", tmp_path),
        "method=divdis",
        "trainer.max_epochs=1",
        "callbacks.attribution_maps.num_examples=3",
    ]
    _, objects = train(compose_train(overrides, tmp_path))
    first = tmp_path / "attributions.png"
    assert first.read_bytes()[:8] == PNG_MAGIC
    content = first.read_bytes()

    # The same trainer predicting again (at the chosen head's fitting epoch) redraws its file.
    trainer, method = objects["trainer"], objects["method"]
    callback = next(c for c in trainer.callbacks if isinstance(c, AttributionMaps))
    first.write_bytes(b"the earlier drawing")
    callback.on_predict_end(trainer, method)
    assert first.read_bytes() == content and not (tmp_path / "attributions_1.png").exists()

    # A second fit into the same folder writes the next name and sends it to W&B.
    another_fit = AttributionMaps(num_examples=3, dirpath=tmp_path)
    wandb = RecordingWandb()
    trainer.loggers = [wandb]
    another_fit.on_predict_end(trainer, method)
    second = tmp_path / "attributions_1.png"
    assert wandb.images == [("attributions", [str(second)])]
    assert second.read_bytes()[:8] == PNG_MAGIC and first.read_bytes() == content

    one_file = AttributionMaps(num_examples=3, dirpath=tmp_path, every_run=False)
    one_file.on_predict_end(trainer, method)
    assert not (tmp_path / "attributions_2.png").exists() and len(wandb.images) == 1
