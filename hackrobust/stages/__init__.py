"""A run after its objects are built: a list of stages (Hydra's `stages:`), each passed the run."""

from hackrobust.stages.fit import Fit
from hackrobust.stages.fitting_epoch import FittingEpoch
from hackrobust.stages.predict import PredictTarget, RememberRevealedLabels
from hackrobust.stages.pretrain import Pretrain
from hackrobust.stages.report import Report
from hackrobust.stages.run import Run, Stage, run_stages
from hackrobust.stages.score import ScoreAnswerKey
from hackrobust.stages.self_training import SelfTraining
from hackrobust.stages.write import WriteSubmission

__all__ = [
    "Fit",
    "FittingEpoch",
    "PredictTarget",
    "Pretrain",
    "RememberRevealedLabels",
    "Report",
    "Run",
    "ScoreAnswerKey",
    "SelfTraining",
    "Stage",
    "WriteSubmission",
    "run_stages",
]
