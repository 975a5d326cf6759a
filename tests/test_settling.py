"""A fit stops once its predictions settle; every epoch's classes are kept either way."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from hackrobust.training import self_training
from hackrobust.training.settling import PredictionsSettle

# Rows of class 1 before training (index 0) and after each epoch: the epochs change the class
# of 4, 1, 0, 0, 0 and 0 of the 10 rows.
CLASS_ONE_ROWS = [0, 4, 5, 5, 5, 5, 5]


class Scripted(L.LightningModule):
    """Predicts class 1 on its first CLASS_ONE_ROWS[e] rows once it has trained e epochs."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.class_one_rows = CLASS_ONE_ROWS[0]

    def forward(self, x):
        logits = torch.zeros(len(x), 1, 2)
        logits[: self.class_one_rows, 0, 1] = 1.0
        return logits

    def training_step(self, batch, batch_idx):
        self.class_one_rows = CLASS_ONE_ROWS[self.current_epoch + 1]
        return self.weight.sum() * 0.0

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit_scripted(tolerance, patience) -> tuple[PredictionsSettle, L.Trainer]:
    settle = PredictionsSettle(torch.zeros(10, 1), tolerance, patience)
    trainer = L.Trainer(
        max_epochs=len(CLASS_ONE_ROWS) - 1, callbacks=[settle], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    data = torch.utils.data.DataLoader(torch.zeros(2, 1), batch_size=2)
    trainer.fit(Scripted(), train_dataloaders=data)
    return settle, trainer


@pytest.mark.parametrize(
    ("tolerance", "patience", "epochs"),
    [(0.1, 2, 3), (0.1, 3, 4), (0.0, 2, 4), (None, 2, 6), (0.05, 1, 3)],
)
def test_the_fit_stops_after_patience_epochs_that_each_change_few_rows(tolerance, patience, epochs):
    settle, trainer = fit_scripted(tolerance, patience)
    assert trainer.current_epoch == epochs
    assert settle.changed == pytest.approx([0.4, 0.1, 0.0, 0.0, 0.0, 0.0][:epochs])
    assert len(settle.classes) == epochs + 1
    np.testing.assert_array_equal(settle.classes[0], np.zeros(10))
    assert settle.classes[-1].sum() == CLASS_ONE_ROWS[epochs]
    assert settle.stopped == (epochs < len(CLASS_ONE_ROWS) - 1)


def test_a_bad_tolerance_or_patience_is_refused_before_any_training():
    with pytest.raises(ValueError, match="settled_below must be in"):
        self_training.SelfTrainingSettings(settled_below=1.0)
    with pytest.raises(ValueError, match="settled_epochs must be at least 1"):
        self_training.SelfTrainingSettings(settled_epochs=0)
    with pytest.raises(ValueError, match="patience must be at least 1"):
        PredictionsSettle(torch.zeros(1), 0.1, 0)
