"""Self-training: a fresh one-head student learns the chosen head's rule from its pseudo-labels.

The chosen head found the right rule, but learnt it from correlated rows only, and is least sure
on the decorrelated ones. Its most confident predictions on the unlabeled and target inputs
become labels for a student trained like ERM on the labeled rows plus those: the student sees
the decorrelated combinations labeled (mostly) right. Its target probabilities then replace the
chosen head's, so the CSV, the predictions file and the report all read the student.

With `self_training=fixmatch` the student also learns consistency on every unlabeled and target
input (hackrobust/methods/fixmatch.py): its own confident predictions label a perturbed copy, which
carries the pseudo-labels' rule over to the hard rows they left out.

With `blend` the CSV reads the mean of the student's and the chosen head's probabilities, a
two-member ensemble: the two learnt from different data (the head from the labeled rows, the
student mostly from pseudo-labels), so their errors may partly differ. `students` trains several
students per round on the same pseudo-labels and reads their mean as one; `rounds` trains each
further student on the previous one's pseudo-labels. All three are off by default.

Two options aim at what the student inherits from the head. `balance_groups` draws its rows
so that every group of (label, the other heads' predictions) weighs the same: the rows where
the head's rule and the spurious ones disagree weigh as much as the correlated rows. `folds`
cross-fits: each fold of target rows is predicted by students that never saw its pseudo-labels,
so none just repeats the head's label for a row it was taught. Both off by default.
`keep_fraction` is the share of each predicted class kept as pseudo-labels (the most confident
rows), and `epochs` the student's own number of epochs (the FixMatch term needs steps). With an
answer key, the student's target accuracy is logged separately on the rows it was taught and on
the rest (`self_training/student_acc_taught` and `_untaught`).

The revealed labels are left out of the student's training: its agreement with them stays a fair
check. A student that contradicts a revealed label the chosen head got right, or that is less
accurate on the held-out labeled split, is discarded. The student can only help where the head
is right but unsure on the decorrelated rows; it costs a second training run, so it is opt-in
(`self_training=pseudo_label`, `self_training=fixmatch`). Findings per option:
experiments/README.md.

The scheme is pseudo-labelling (Lee, "Pseudo-Label: The Simple and Efficient Semi-Supervised
Learning Method for Deep Neural Networks", ICML 2013 workshop) in the teacher-student form of
Noisy Student (Xie et al., "Self-training with Noisy Student improves ImageNet
classification", CVPR 2020; github.com/google-research/noisystudent). It differs from both in
that the teacher is one head chosen by the query, the revealed labels stay out of training, and
a student must pass the revealed labels and the held-out split to replace its teacher.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import lightning as L
import numpy as np
import torch

from hackrobust.data.datamodule import UNKNOWN, HackathonDataModule
from hackrobust.data.in_memory import TensorDict
from hackrobust.methods import ERM, FixMatch
from hackrobust.methods.inference import target_probabilities
from hackrobust.query.report import confidence
from hackrobust.training.pretrain import trunks_of
from hackrobust.training.settling import PredictionsSettle
from hackrobust.training.side_trainer import side_trainer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudentRecipe:
    """How each student is built and trained: the run's model factory, optimizer and schedule
    (Hydra partials), a factory of Trainers with the run's settings, and the epochs of warm-up
    before the schedule (BaseMethod._schedule)."""

    model: Callable
    optimizer: Callable
    scheduler: Callable | None
    trainer: Callable[..., L.Trainer]
    warmup_epochs: int = 0

    def with_epochs(self, epochs: int) -> StudentRecipe:
        """The same recipe training `epochs` epochs; a schedule whose length is the fit's
        (`T_max: null`, BaseMethod.configure_optimizers) follows."""
        if epochs < 1:
            raise ValueError(f"self_training.epochs must be at least 1 (or null), got {epochs}")
        return replace(self, trainer=functools.partial(self.trainer, max_epochs=epochs))

    def with_lr(self, lr: float) -> StudentRecipe:
        """The same recipe with the optimizer's learning rate `lr` (the schedule scales it)."""
        return replace(self, optimizer=functools.partial(self.optimizer, lr=lr))


@dataclass
class SelfTrainingResult:
    probs: np.ndarray  # (N_target, heads, classes): what the CSV and the report read
    choice: dict | None  # the active query's result, updated when the student is used
    summary: dict  # for the report
    student_probs: np.ndarray  # (N_target, classes): the last round's students' (mean), used or not
    head_probs: np.ndarray  # (N_target, classes): the chosen head's, before self-training
    # (N_target,) bool: whether the students predicting the row trained on its pseudo-label
    taught: np.ndarray
    # (epochs + 1, N_target): the last round's first student's classes before training and after
    # each epoch, when it predicts every target row (one fold); else None
    epoch_classes: np.ndarray | None = None


def confident_rows(probs: np.ndarray, keep_fraction: float, exclude: np.ndarray) -> np.ndarray:
    """Rows of `probs` (N, classes) to pseudo-label: per predicted class, its `keep_fraction`
    most confident rows, so a class the head under-predicts is not thinned out further."""
    if not 0 < keep_fraction <= 1:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
    predicted, sure = probs.argmax(-1), probs.max(-1)
    allowed = np.ones(len(probs), dtype=bool)
    allowed[exclude] = False
    kept = []
    for label in np.unique(predicted[allowed]):
        rows = np.flatnonzero(allowed & (predicted == label))
        rows = rows[np.argsort(-sure[rows], kind="stable")]
        kept.append(rows[: max(1, round(keep_fraction * len(rows)))])
    return np.sort(np.concatenate(kept)) if kept else np.zeros(0, dtype=np.int64)


def pseudo_label_rows(
    unlabeled_probs: np.ndarray,
    target_probs: np.ndarray,
    keep_fraction: float,
    excluded_target_rows: list[int],
) -> np.ndarray:
    """Rows of the unlabeled then the target inputs (one index over both) to pseudo-label: the
    confident ones (`confident_rows`), but none of `excluded_target_rows`."""
    probs = np.concatenate([unlabeled_probs, target_probs])
    exclude = len(unlabeled_probs) + np.asarray(excluded_target_rows, dtype=np.int64)
    return confident_rows(probs, keep_fraction, exclude)


def pseudo_labeled_set(
    datamodule: HackathonDataModule,
    unlabeled_probs: np.ndarray,
    target_probs: np.ndarray,
    rows: np.ndarray,
) -> TensorDict:
    """The labeled training rows plus `rows` of the unlabeled then the target inputs (one index
    over both, as `pseudo_label_rows` gives them), labeled with their most probable class."""
    x = torch.cat([datamodule.unlabeled_set.tensors["x"], datamodule.target_set.tensors["x"]])
    probs = np.concatenate([unlabeled_probs, target_probs])
    labeled = datamodule.train_set.tensors
    first_idx = int(labeled["idx"].max()) + 1 if len(labeled["idx"]) else 0
    return TensorDict(
        idx=torch.cat([labeled["idx"], first_idx + torch.arange(len(rows))]),
        x=torch.cat([labeled["x"], x[rows]]),
        y=torch.cat([labeled["y"], torch.from_numpy(probs[rows].argmax(-1))]),
        group=torch.cat([labeled["group"], torch.full((len(rows),), UNKNOWN)]),
    )


def group_balancing_weights(
    teacher: L.LightningModule, head: int, train_set: TensorDict
) -> tuple[torch.Tensor, int]:
    """Per-row weights that give every group of `train_set` the same total, and the number of
    groups. A row's group: its (pseudo-)label and the teacher's other heads' predictions.

    The other heads read the rules the chosen one was told apart from (the spurious features),
    so the groups where they disagree with the label are the decorrelated rows, which the
    correlated ones outnumber; weighed alike, the student gains nothing from the spurious rules.
    """
    predicted = target_probabilities(teacher, train_set.tensors["x"]).argmax(-1)  # (N, heads)
    predicted[:, head] = train_set.tensors["y"].numpy()
    _, groups, counts = np.unique(predicted, axis=0, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[groups.reshape(-1)]
    return torch.from_numpy(weights / weights.mean()), len(counts)


def target_folds(n_target: int, folds: int) -> list[np.ndarray]:
    """The target rows each group of students predicts: all of them for `folds` 1, else
    `folds` disjoint sets of rows drawn at random (seed 0), together all of them."""
    if not 1 <= folds <= max(n_target, 1):
        raise ValueError(
            f"self_training.folds must be at least 1 and at most the {n_target} target rows, "
            f"got {folds}"
        )
    if folds == 1:
        return [np.arange(n_target)]
    order = np.random.default_rng(0).permutation(n_target)
    return [np.sort(order[k::folds]) for k in range(folds)]


def _share(a: np.ndarray, b: np.ndarray) -> float | None:
    return round(float(np.mean(a == b)), 6) if len(a) else None


def _agreement(predicted: np.ndarray, revealed: dict[int, int]) -> float | None:
    if not revealed:
        return None
    return float(np.mean([predicted[d] == y for d, y in revealed.items()]))


# What a student may start from (`SelfTrainingSettings.start`).
STARTS = ("pretrained", "teacher")
# The largest probability from which a head counts as sure of a row: FixMatch's confidence
# threshold (Sohn et al., NeurIPS 2020).
SURE = 0.95


@dataclass(frozen=True)
class SelfTrainingSettings:
    """How `self_train` trains its students; refused at once when it cannot run.

    keep_fraction: per predicted class, the share of its most confident rows pseudo-labeled.
    rounds: rounds of students in turn, each on the previous round's pseudo-labels.
    fixmatch: FixMatch's arguments and the student's `unlabeled_batch_size`, to add its
        consistency term on the unlabeled and target inputs; None trains the student like ERM.
    blend: use the mean of the last student's and the chosen head's probabilities (checked
        and reported in the student's place) instead of the student's alone.
    students: each round trains this many students on the same pseudo-labels, one after the
        other (each from its own random state); "the student" is their ensemble (mean).
    balance_groups: the students draw their training rows so that every group (the row's
        label and the teacher's other heads' predictions) weighs the same
        (`group_balancing_weights`).
    folds: cross-fitting. The target rows are split into this many folds, and each fold's
        students train without that fold's pseudo-labels and predict it; so no target row is
        predicted by a student taught the head's label for it (which it would repeat, wrong or
        right). Each round then trains `folds` x `students` students.
    epochs: each student's epochs (None: the run's, `trainer.max_epochs`); a schedule over the
        fit's epochs (the cosine one) follows them.
    start: what each student starts from: "pretrained", the pretrained trunk when the run has
        one (else fresh weights), or "teacher", the teacher's trunk and chosen head.
    skip_if_sure_of: train no student when the chosen head is sure (largest probability at
        least `SURE`) of at least this share of the target rows: its pseudo-labels would teach
        the student nothing the head does not already say. None: always train one.
    settled_below, settled_epochs: a student stops early once `settled_epochs` epochs in a row
        each changed the class of at most a share `settled_below` of its target rows
        (hackrobust/training/settling.py). None trains every epoch.
    lr: the students' learning rate (None: the run's optimizer's); the schedule scales it.
    warmup_epochs: the students' rate rises linearly to it over this many epochs first.
    """

    # In the order the report shows them.
    rounds: int = 1
    keep_fraction: float = 0.8
    fixmatch: dict | None = None
    blend: bool = False
    students: int = 1
    folds: int = 1
    epochs: int | None = None
    balance_groups: bool = False
    start: str = "pretrained"
    skip_if_sure_of: float | None = None
    settled_below: float | None = None
    settled_epochs: int = 2
    lr: float | None = None
    warmup_epochs: int = 0

    def __post_init__(self):
        if self.settled_below is not None and not 0 <= self.settled_below < 1:
            raise ValueError(
                f"self_training.settled_below must be in [0, 1) or null, got {self.settled_below}"
            )
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"self_training.lr must be positive (or null), got {self.lr}")
        if self.warmup_epochs < 0:
            raise ValueError(
                f"self_training.warmup_epochs must be at least 0, got {self.warmup_epochs}"
            )
        if self.settled_epochs < 1:
            raise ValueError(
                f"self_training.settled_epochs must be at least 1, got {self.settled_epochs}"
            )
        if self.skip_if_sure_of is not None and not 0 < self.skip_if_sure_of <= 1:
            raise ValueError(
                f"self_training.skip_if_sure_of must be in (0, 1] or null, got "
                f"{self.skip_if_sure_of}"
            )
        if self.start not in STARTS:
            raise ValueError(
                f"self_training.start must be one of {', '.join(STARTS)}, got {self.start!r}"
            )
        if self.rounds < 1:
            raise ValueError(f"self_training.rounds must be at least 1, got {self.rounds}")
        if self.students < 1:
            raise ValueError(f"self_training.students must be at least 1, got {self.students}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(
                f"self_training.epochs must be at least 1 (or null), got {self.epochs}"
            )

    def skip_reason(self, sure: float) -> str | None:
        """Why no student is needed for a head sure of a share `sure` of the target rows."""
        if self.skip_if_sure_of is None or sure < self.skip_if_sure_of:
            return None
        return f"the chosen head is sure of {sure:.1%} of the target rows"

    def summary(self) -> dict:
        """The settings as the report shows them (`fixmatch` as a plain dict)."""
        summary = {field.name: getattr(self, field.name) for field in fields(self)}
        return summary | {"fixmatch": None if self.fixmatch is None else dict(self.fixmatch)}


def self_train(
    student: StudentRecipe,
    datamodule: HackathonDataModule,
    teacher: L.LightningModule,
    probs: np.ndarray,
    choice: dict | None,
    trunk_state: dict | None = None,
    **settings,
) -> SelfTrainingResult:
    """Train students on the chosen head's pseudo-labels (`SelfTrainingSettings`: `settings`).

    `choice` is the active query's result (None without a query). If the student passes its
    checks, the result's probabilities and choice are the student's in the chosen head's place
    (its held-out accuracy and confidences too); otherwise they are the ones given.
    `trunk_state`: the pretrained trunk's weights (`pretrain=...`), which each student starts from.
    """
    options = SelfTrainingSettings(**settings)
    if options.epochs is not None:
        student = student.with_epochs(options.epochs)
    if options.lr is not None:
        student = student.with_lr(options.lr)
    student = replace(student, warmup_epochs=options.warmup_epochs)
    head = int(choice["head"]) if choice else int(teacher.chosen_head)
    revealed = {  # class indices of the revealed target rows
        q["datum_id"]: int(datamodule.to_class_index(np.array([q["label"]]))[0])
        for q in (choice or {}).get("queries", [])
    }
    teacher_target = probs[:, head]
    sure = round(float(np.mean(teacher_target.max(-1) >= SURE)), 6)
    skipped = options.skip_reason(sure)
    if skipped:
        return _no_student(options, probs, choice, teacher_target, sure, skipped)
    trained = _train_rounds(
        student, datamodule, teacher, head, teacher_target, sorted(revealed), trunk_state, options
    )
    holdout_x = datamodule.holdout_set.tensors["x"]
    teacher_holdout = target_probabilities(teacher, holdout_x)[:, head]
    used_target, used_holdout = trained.target, _mean_probabilities(trained.ensemble, holdout_x)
    if options.blend:
        used_target = (used_target + teacher_target) / 2
        used_holdout = (used_holdout + teacher_holdout) / 2
    summary = options.summary() | {"chosen_head_sure_share": sure} | _summary(
        trained, datamodule, revealed, (used_target, used_holdout),
        (teacher_target, teacher_holdout), options.balance_groups,
    )  # fmt: skip
    result = SelfTrainingResult(
        probs, choice, summary, trained.target, teacher_target, trained.taught,
        trained.epoch_classes(options.folds),
    )  # fmt: skip
    rejected = _rejection(summary)
    if rejected:
        log.warning("Self-training: kept the chosen head; the student %s", rejected)
        result.summary |= {"used": False, "rejected_because": rejected}
        return result
    result.summary["used"] = True
    result.probs = probs.copy()
    result.probs[:, head] = used_target
    if choice is not None:
        result.choice = _student_choice(choice, head, summary["holdout_accuracy"], used_holdout)
    return result


def _no_student(options, probs, choice, teacher_target, sure: float, skipped: str):
    """The result when the chosen head is sure enough to need no student: its own."""
    log.info("Self-training: no student, %s", skipped)
    summary = options.summary() | {"chosen_head_sure_share": sure, "used": False,
                                   "skipped_because": skipped}  # fmt: skip
    untaught = np.zeros(len(teacher_target), dtype=bool)
    return SelfTrainingResult(probs, choice, summary, teacher_target, teacher_target, untaught)


@dataclass
class _Rounds:
    """What the rounds of students leave: the last round's."""

    target: np.ndarray  # (N_target, classes): its students' probabilities (mean)
    ensemble: list[L.LightningModule]  # its students
    fold_rows: list[int]  # per fold: each student's training rows
    fold_groups: list[int | None]  # per fold: the groups (balance_groups)
    taught: np.ndarray  # (N_target,) bool: the row's students trained on its pseudo-label
    settling: list[PredictionsSettle]  # its students' classes per epoch

    def epoch_classes(self, folds: int) -> np.ndarray | None:
        """The first student's classes per epoch (`SelfTrainingResult.epoch_classes`)."""
        classes = self.settling[0].classes
        return np.stack(classes) if folds == 1 and classes else None


def _train_rounds(
    recipe, datamodule, teacher, head, teacher_target, revealed, trunk_state, options
) -> _Rounds:
    """Train `options.rounds` rounds of students, each on the previous round's pseudo-labels."""
    keep_fraction, fixmatch, folds = options.keep_fraction, options.fixmatch, options.folds
    target_x = datamodule.target_set.tensors["x"]
    unlabeled_x = datamodule.unlabeled_set.tensors["x"]
    current_target = teacher_target
    current_unlabeled = target_probabilities(teacher, unlabeled_x)[:, head]
    taught = np.zeros(len(target_x), dtype=bool)
    # Every student of every round starts from the first teacher, when told to.
    start = chosen_head_state(teacher.net, head) if options.start == "teacher" else None
    for round_ in range(options.rounds):
        next_target, ensemble, fold_rows, fold_groups = np.empty_like(current_target), [], [], []
        settling = []
        for predicted in target_folds(len(target_x), folds):
            held_out = predicted.tolist() if folds > 1 else []
            excluded = sorted({*revealed, *held_out})
            kept = pseudo_label_rows(current_unlabeled, current_target, keep_fraction, excluded)
            train_set = pseudo_labeled_set(datamodule, current_unlabeled, current_target, kept)
            taught[predicted] = np.isin(predicted + len(current_unlabeled), kept)
            weights, groups = (
                group_balancing_weights(teacher, head, train_set)
                if options.balance_groups
                else (None, None)
            )
            fold_rows.append(len(train_set))
            fold_groups.append(groups)
            fold_students = []
            for _ in range(options.students):
                settle = PredictionsSettle(
                    target_x[predicted], options.settled_below, options.settled_epochs
                )
                fold_students.append(
                    _fit_student(
                        recipe, datamodule, train_set, trunk_state, fixmatch, weights, start, settle
                    )  # fmt: skip
                )
                settling.append(settle)
            next_target[predicted] = _mean_probabilities(fold_students, target_x[predicted])
            ensemble += fold_students
        current_target = next_target
        current_unlabeled = _mean_probabilities(ensemble, unlabeled_x)
        log.info("Self-training round %d: %s training rows", round_ + 1, fold_rows)
    return _Rounds(current_target, ensemble, fold_rows, fold_groups, taught, settling)


def _summary(trained: _Rounds, datamodule, revealed, used, teacher, balance_groups) -> dict:
    """For the report: the last round's rows and groups (with folds, the mean over the folds
    and each fold's beside it), and the used probabilities' agreement with what is known,
    beside the chosen head's. `used` and `teacher`: (target, held-out) probabilities."""
    holdout_y = datamodule.holdout_set.tensors["y"].numpy()
    training_rows = round(float(np.mean(trained.fold_rows)))  # per student of the last round
    folded = len(trained.fold_rows) > 1
    groups = trained.fold_groups
    return {
        **({"groups": round(float(np.mean(groups)))} if balance_groups else {}),
        "training_rows": training_rows,
        "pseudo_labeled_rows": training_rows - len(datamodule.train_set),
        **({"training_rows_per_fold": trained.fold_rows} if folded else {}),
        **({"groups_per_fold": groups} if folded and balance_groups else {}),
        "taught_target_rows": int(trained.taught.sum()),
        "student_epochs": [len(settle.changed) for settle in trained.settling],
        "changed_by_epoch": [round(share, 5) for share in trained.settling[0].changed],
        "agreement_with_chosen_head": _share(used[0].argmax(-1), teacher[0].argmax(-1)),
        "holdout_accuracy": _share(used[1].argmax(-1), holdout_y),
        "chosen_head_holdout_accuracy": _share(teacher[1].argmax(-1), holdout_y),
        "revealed_agreement": _agreement(used[0].argmax(-1), revealed),
        "chosen_head_revealed_agreement": _agreement(teacher[0].argmax(-1), revealed),
    }


def _rejection(summary: dict) -> str | None:
    """Why the student may not replace the head, if it may not: it must do at least as well
    on what is known, the revealed labels (it never trained on them) and the held-out split."""
    if (summary["revealed_agreement"] or 0) < (summary["chosen_head_revealed_agreement"] or 0):
        return "contradicts a revealed label the chosen head got right"
    if (summary["holdout_accuracy"] or 0) < (summary["chosen_head_holdout_accuracy"] or 0):
        return "is less accurate than the chosen head on the held-out split"
    return None


def _student_choice(choice: dict, head: int, holdout_accuracy: float, used_holdout) -> dict:
    """A copy of the query's `choice` with the student's held-out accuracy (and confidences)
    in the chosen head's place."""
    choice = copy.deepcopy(choice)
    choice["holdout_accuracy"][head] = holdout_accuracy
    if "holdout_scores" in choice:
        choice["holdout_scores"] = confidence(used_holdout, choice["atc_score"]).tolist()
    return choice


def chosen_head_state(net: torch.nn.Module, head: int) -> dict:
    """The weights of a one-head copy of the multi-head `net` that keeps its trunk and `head`.
    A mixed hypothesis (`head` past the heads: one head per class pair, with
    `method.pair_switches`) is no one head: the copy keeps the trunk alone."""
    if not hasattr(net, "heads"):
        raise ValueError(
            f"self_training.start=teacher needs a trunk with heads; {type(net).__name__} has none "
            "(an ensemble such as D-BAT's): use start=pretrained"
        )
    classes = net.num_classes
    rows = slice(head * classes, (head + 1) * classes)
    state = {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("heads.")}
    if head >= net.num_heads:
        return state
    return state | {"heads.weight": net.heads.weight[rows].detach().clone(),
                    "heads.bias": net.heads.bias[rows].detach().clone()}  # fmt: skip


def _mean_probabilities(models: list[L.LightningModule], x: torch.Tensor) -> np.ndarray:
    """(N, classes): the one-head `models`' mean class probabilities on `x`."""
    return np.mean([target_probabilities(model, x)[:, 0] for model in models], axis=0)


def _fit_student(
    recipe: StudentRecipe,
    datamodule: HackathonDataModule,
    train_set: TensorDict,
    trunk_state: dict | None = None,
    fixmatch: dict | None = None,
    weights: torch.Tensor | None = None,
    start: dict | None = None,
    settle: PredictionsSettle | None = None,
) -> L.LightningModule:
    """A one-head model with the run's model, optimizer and trainer settings, from scratch (or
    from `trunk_state`, the pretrained trunk, when the run pretrained one; or from `start`, a
    whole one-head model's weights), trained like ERM on
    `train_set`, or like FixMatch with `fixmatch` (its unlabeled batches: unlabeled and target);
    with `weights`, its rows are drawn in proportion to them.

    It trains for the run's epochs (or until `settle` stops it) and keeps the last; no logger
    (the run's is the teacher's).
    """
    settings = dict(fixmatch or {})
    unlabeled_batch_size = settings.pop("unlabeled_batch_size", None)
    student = (ERM if fixmatch is None else FixMatch)(
        model=recipe.model,
        optimizer=recipe.optimizer,
        scheduler=recipe.scheduler,
        input_shape=datamodule.input_shape,
        num_classes=datamodule.num_classes,
        num_heads=1,
        warmup_epochs=recipe.warmup_epochs,
        **settings,
    )
    if start is not None:  # the student's own head where `start` has none
        missing, _ = student.net.load_state_dict(start, strict=False)
        if any(not key.startswith("heads.") for key in missing):
            raise KeyError(f"the teacher's weights lack {missing}")
    elif trunk_state is not None:
        trunks_of(student.net)[0].load_state_dict(trunk_state)
    student_data = copy.copy(datamodule)
    student_data.train_set = train_set
    student_data.train_weights = weights
    student_data.with_unlabeled = student.uses_unlabeled
    student_data.unlabeled_with_target = True
    student_data.unlabeled_batch_size = unlabeled_batch_size or datamodule.unlabeled_batch_size
    callbacks = [settle] if settle is not None else []
    side_trainer(recipe.trainer, name="student", callbacks=callbacks).fit(
        student, datamodule=student_data
    )
    return student
