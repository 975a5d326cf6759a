"""DivDis: diversify the heads on unlabeled data, then disambiguate with a few labels.

Lee, Yao and Finn, "Diversify and Disambiguate: Out-of-Distribution Robustness via
Disagreement", ICLR 2023; official code github.com/yoonholee/DivDis (`divdis.py`,
`subpopulation/train.py`). Loss, as there:

    mean over heads of the labeled cross-entropy
    + lambda_mi  x mean over head pairs of the mutual information of their unlabeled predictions
    + lambda_reg x mean over heads of KL(head's mean unlabeled prediction ||
                                         mean labeled prediction, detached)   ("kl_backward")

with two heads. The weights default to 1, as in the official toy experiment
(`toy-classification/main.py`, aux_weight 1.0); their subpopulation runs (Waterbirds, CelebA)
used 10 and 10 (`method.mi_weight`, `method.reg_weight`), with which both heads can learn to
hedge on the decorrelated rows (low mutual information, no diversity). One difference: the
official loss averages only the non-zero pairwise terms, which is NaN when all are zero; here
every pair counts, so the term is then 0.

The heads split slowly where the features are hard to tell apart, so such sets may need more
epochs (`trainer.max_epochs`). A trunk trained on correlated rows only may hold a blend of the
features and no feature apart; every head then reads that blend, agreeing with each feature on
part of the target rows as a majority vote does (`target/feature_agreement_head*`). Pretraining
the trunk on the set's inputs (`pretrain=autoencoder`, hackrobust/training/pretrain.py) and a deeper trunk
(`model.cnn_blocks`) aim at that.

`consistency` adds FixMatch's term (hackrobust/methods/fixmatch.py) to every head: each learns
its own rule on the unlabeled rows it is sure of, under noise and an erased square. This is
not in the paper; off by default.

With three classes the diversity term has no single optimum: 720 pairs of rules reach its least
value on a two-feature set, "left and right" among them (experiments/pair_switch_degeneracy.py).
Training can end on such a blend, each head following one feature for some classes and the other
feature, or a third class, for the rest. `pair_switches` (on by default; it acts with two heads and
three classes only) trains one epoch on the labeled set alone, copies that model as a reference, and
adds `plausible_weight` x -log(each head's probability of the reference's two likeliest classes) on
the unlabeled rows: the blends that remain are the 8 that switch heads per class pair, and the
active query chooses among those (hackrobust/methods/pair_switches.py).
"""

from __future__ import annotations

import copy

import torch

from hackrobust.methods.base import BaseMethod
from hackrobust.methods.fixmatch import Consistency
from hackrobust.methods.pair_switches import applies as pair_switches_apply
from hackrobust.methods.pair_switches import hypothesis_names, with_pair_switches
from hackrobust.metrics.head_agreement import mean_pairwise, pairwise_mutual_information

REFERENCE_KEY = "plausibility_reference"  # the checkpoint entry of the frozen reference model

EPS = 1e-8


def marginal_kl(unlabeled_probs: torch.Tensor, labeled_probs: torch.Tensor) -> torch.Tensor:
    """Mean over heads of KL(head's mean unlabeled prediction || mean labeled prediction)."""
    target = unlabeled_probs.mean(dim=0)  # (H, K)
    source = labeled_probs.mean(dim=(0, 1)).detach()  # (K,)
    return (target * ((target + EPS).log() - (source + EPS).log())).sum(dim=-1).mean()


class DivDis(BaseMethod):
    """Several heads that fit the labeled set and disagree on the unlabeled one."""

    uses_unlabeled = True

    def __init__(
        self,
        *args,
        num_heads: int = 2,
        mi_weight: float = 1.0,
        reg_weight: float = 1.0,
        consistency: dict | None = None,
        pair_switches: bool = True,
        plausible_weight: float = 1.0,
        plausible_after: int = 1,
        **kwargs,
    ):
        """`consistency`: `Consistency`'s arguments (hackrobust/methods/fixmatch.py) to add
        FixMatch's term on the unlabeled batch, per head; None leaves it out, {} is its defaults.
        `pair_switches`: with two heads and three classes (hackrobust/methods/pair_switches.py),
        train the first `plausible_after` epochs without the diversity term, copy the model as
        a reference, then add `plausible_weight` x the plausibility term, and offer the active
        query the class-pair hypotheses beside the heads. Elsewhere it changes nothing."""
        if num_heads < 2:
            raise ValueError(f"DivDis needs at least 2 heads, got num_heads={num_heads}")
        super().__init__(*args, num_heads=num_heads, **kwargs)
        self.mi_weight = mi_weight
        self.reg_weight = reg_weight
        self.consistency = None if consistency is None else Consistency(**consistency)
        self.pair_switching = pair_switches and pair_switches_apply(
            num_heads, self.hparams.num_classes
        )
        self.plausible_weight = plausible_weight
        self.plausible_after = plausible_after
        # In a tuple, so it is no submodule: not trained, not in the state dict. Checkpoints
        # carry it under their own key, so a resumed run keeps the same reference.
        self._reference: tuple[torch.nn.Module, ...] = ()

    def add_hypotheses(self, probs: torch.Tensor) -> torch.Tensor:
        return with_pair_switches(probs) if self.pair_switching else probs

    def hypothesis_names(self, label_values=None) -> list[str]:
        if not self.pair_switching:
            return super().hypothesis_names(label_values)
        return hypothesis_names(self.num_heads, self.hparams.num_classes, label_values)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        if self._reference:
            checkpoint[REFERENCE_KEY] = self._reference[0].state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        if REFERENCE_KEY in checkpoint:
            reference = copy.deepcopy(self.net).eval().requires_grad_(False)
            reference.load_state_dict(checkpoint[REFERENCE_KEY])
            self._reference = (reference,)

    def plausibility(self, x: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """Mean over rows and heads of -log(the head's probability of the reference model's top
        `num_heads` classes): each head predicts what the labeled-only model finds likely."""
        if not self._reference:
            self._reference = (copy.deepcopy(self.net).eval().requires_grad_(False),)
        with torch.no_grad():
            model = self._reference[0].to(x.device)  # a no-op unless restored on another device
            reference = model(x).float().softmax(-1).mean(dim=1)  # (B, K)
        top = reference.topk(self.num_heads, dim=-1).indices
        mask = torch.zeros_like(reference).scatter_(1, top, 1.0)
        return -((probs * mask[:, None]).sum(-1) + EPS).log().mean()

    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
        labeled, unlabeled = batch["labeled"], batch["unlabeled"]
        n_labeled = len(labeled["x"])
        logits = self(torch.cat([labeled["x"], unlabeled["x"]]))
        labeled_logits, unlabeled_logits = logits[:n_labeled], logits[n_labeled:]
        cross_entropy = self.heads_cross_entropy(labeled_logits, labeled["y"])
        unlabeled_probs = unlabeled_logits.float().softmax(dim=-1)
        mutual_information = mean_pairwise(pairwise_mutual_information(unlabeled_probs))
        mi_weight, plausible = self.mi_weight, torch.zeros((), device=logits.device)
        if self.pair_switching:
            if self.current_epoch < self.plausible_after:
                mi_weight = 0.0  # the heads learn the labeled set first: the reference model
            else:
                plausible = self.plausibility(unlabeled["x"], unlabeled_probs)
        regulariser = marginal_kl(unlabeled_probs, labeled_logits.float().softmax(dim=-1))
        loss = (
            cross_entropy
            + mi_weight * mutual_information
            + self.reg_weight * regulariser
            + self.plausible_weight * plausible
        )
        extras = {
            "xent": cross_entropy,
            "mutual_information": mutual_information,
            "reg": regulariser,
        }
        if self.pair_switching:
            extras["plausible"] = plausible
        if self.consistency is not None:
            consistency, consistency_extras = self.consistency(self.net, unlabeled["x"])
            loss = loss + consistency
            extras |= consistency_extras
        return loss, labeled_logits, extras
