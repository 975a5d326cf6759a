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
used 10 and 10. On mnist_cc with 10 and 10 both heads learnt to hedge on the decorrelated rows
(low mutual information, no diversity); with 1 and 1 one head learnt each digit
(`method=divdis dataset=mnist_cc dataset.source=digits method.mi_weight=10 method.reg_weight=10`
against the defaults). One difference: the official loss averages only the non-zero pairwise
terms, which is NaN when all are zero; here every pair counts, so the term is then 0.

The heads split slowly where the features are hard to tell apart: on mnist_sum (overlaid
digits) they were still separating at the default 10 epochs (seed 0: 0.909), and 20 epochs
(`trainer.max_epochs=20`) reached 0.976 to 0.984 over 3 seeds (experiments/hackathon_suite.py,
`divdis_long`). With three overlaid digits (mnist_sum_bis, seed 0), DivDis with three heads and
top-k with two or three all learnt a blend: each head agreed with every digit on about 0.8 of
the target rows, as a majority vote does (`target/feature_agreement_head*`): the trunk, trained
on correlated rows only, holds that blend and no digit apart. From a trunk first pretrained as an
autoencoder on the set's inputs (`pretrain=autoencoder`) one of two heads reads the first digit
(0.926 to 0.946 over 3 seeds; hackrobust/pretrain.py), and 0.954 to 0.968 with a third conv
block in the trunk (`model.cnn_blocks=3`, width 32; `make study-hackathon-deep`).

`consistency` adds FixMatch's term (hackrobust/methods/fixmatch.py) to every head: each learns
its own rule on the unlabeled rows it is sure of, under noise and an erased square. On
mnist_sum_bis (three blocks, cosine schedule, last epoch) the chosen head rose from 0.969 to
0.970 over 3 seeds (0.965 to 0.972 on seed 0), within the seeds' spread, and the FixMatch
student that follows reached 0.975 against 0.978 from the plain heads
(`divdis_consistency_self_training_fixmatch` in the same study): off by default.
"""

from __future__ import annotations

import torch

from hackrobust.methods.base import BaseMethod
from hackrobust.methods.fixmatch import Consistency
from hackrobust.metrics.head_agreement import mean_pairwise, pairwise_mutual_information

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
        **kwargs,
    ):
        """`consistency`: `Consistency`'s arguments (hackrobust/methods/fixmatch.py) to add
        FixMatch's term on the unlabeled batch, per head; None leaves it out, {} is its defaults."""
        if num_heads < 2:
            raise ValueError(f"DivDis needs at least 2 heads, got num_heads={num_heads}")
        super().__init__(*args, num_heads=num_heads, **kwargs)
        self.mi_weight = mi_weight
        self.reg_weight = reg_weight
        self.consistency = None if consistency is None else Consistency(**consistency)

    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
        labeled, unlabeled = batch["labeled"], batch["unlabeled"]
        n_labeled = len(labeled["x"])
        logits = self(torch.cat([labeled["x"], unlabeled["x"]]))
        labeled_logits, unlabeled_logits = logits[:n_labeled], logits[n_labeled:]
        cross_entropy = self.heads_cross_entropy(labeled_logits, labeled["y"])
        unlabeled_probs = unlabeled_logits.float().softmax(dim=-1)
        mutual_information = mean_pairwise(pairwise_mutual_information(unlabeled_probs))
        regulariser = marginal_kl(unlabeled_probs, labeled_logits.float().softmax(dim=-1))
        loss = cross_entropy + self.mi_weight * mutual_information + self.reg_weight * regulariser
        extras = {
            "xent": cross_entropy,
            "mutual_information": mutual_information,
            "reg": regulariser,
        }
        if self.consistency is not None:
            consistency, consistency_extras = self.consistency(self.net, unlabeled["x"])
            loss = loss + consistency
            extras |= consistency_extras
        return loss, labeled_logits, extras
