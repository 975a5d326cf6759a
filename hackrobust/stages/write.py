"""The submission: one label per target row (the CSV), and every hypothesis's probabilities."""

from __future__ import annotations

from hackrobust.predict import with_revealed_labels, write_outputs
from hackrobust.stages.run import Run
from hackrobust.submission import check_new_output


class WriteSubmission:
    """Write the chosen hypothesis's labels to `path`, with each revealed row's known label in
    place of the model's, and the per-hypothesis probabilities to `predictions_path`. An
    existing file is never replaced unless `overwrite`."""

    def __init__(self, path: str, predictions_path: str | None = None, overwrite: bool = False):
        self.path, self.predictions_path, self.overwrite = path, predictions_path, overwrite

    def check(self) -> None:
        """Refuse, before training, outputs that exist (unless `overwrite`) or cannot be written."""
        for path, what in ((self.path, "submission.path"),
                           (self.predictions_path, "submission.predictions_path")):  # fmt: skip
            if path:
                check_new_output(path, what, self.overwrite)

    def __call__(self, run: Run) -> Run:
        label_values = run.datamodule.label_values
        revealed = {q["datum_id"]: q["label"] for q in (run.choice or {}).get("queries", [])}
        run.model_labels = label_values[run.probs[:, run.head].argmax(-1)]
        run.submitted = with_revealed_labels(run.model_labels, label_values, revealed)
        run.report_sections["revealed_rows_relabeled"] = int(
            (run.submitted != run.model_labels).sum()
        )
        if run.is_global_zero:
            write_outputs(
                run.submitted, run.probs, label_values, run.head,
                self.path, self.predictions_path, self.overwrite,
            )  # fmt: skip
        return run
