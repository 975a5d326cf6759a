"""Every study by name: the one place its command line is written down.

    python experiments/studies.py NAME [ARGS...]   # make study NAME=... [ARGS="--jobs 4"]
    python experiments/studies.py --list           # make study

Runs `python experiments/SCRIPT ARGUMENTS` from the repository root for the study NAME in
STUDIES, with ARGS appended (e.g. `--jobs 4`, `--table-only`). Each study writes its table and
plots under experiments/results/ (real data from $HACKROBUST_DATA_DIR; finished runs are kept in
a .jsonl, so a stopped study resumes), and its table's "Regenerate:" line is the command run.
The hackathon suite's --methods names are the configs under conf/experiment/suite/.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL_CNN = ["--extra", "trainer.enable_progress_bar=false", "model.cnn_width=16"]
DEEP_CNN = ["--extra", "trainer.enable_progress_bar=false", "model.cnn_blocks=3"]
ONE_RECIPE = "The one recipe (make study NAME=hackathon-one-recipe)"
FAST_TEACHER_NOTE = (
    "experiment=flagship_fast_teacher: bf16 autocast, channels-last convolutions, 10 "
    "autoencoder epochs, students started from the teacher's chosen head for 20 epochs and "
    "skipped when the head is sure of nearly every target row. Seconds per stage in the "
    "records (timings/<stage>); make study NAME=flagship-fast-teacher-baseline times the "
    "recipe it replaces on the same machine."
)

# name: (what it studies, [the script in experiments/, its arguments...])
STUDIES: dict[str, tuple[str, list[str]]] = {
    "hackathon": (
        "every generated hackathon set x {DivDis, top-k, D-BAT, ERM, oracle} x 3 seeds",
        ["hackathon_suite.py", "--methods", "divdis", "topk", "topk_low_mix", "dbat", "erm",
         "oracle", *SMALL_CNN],
    ),
    "hackathon-variants": (
        "DivDis beside its options (20 epochs, self-training, transductive)",
        ["hackathon_suite.py", "--methods", "divdis", "divdis_long", "divdis_self_training",
         "divdis_long_self_training", "divdis_transductive", "--datasets", "mnist", *SMALL_CNN,
         "--out", "experiments/results/hackathon_suite_divdis_variants",
         "--title", "The hackathon suite: DivDis and its options"],
    ),
    "hackathon-wide": (
        "the overlaid-digit sets at the default CNN width (32)",
        ["hackathon_suite.py", "--methods", "divdis", "erm", "oracle",
         "--datasets", "mnist_sum", "mnist_sum_bis",
         "--extra", "trainer.enable_progress_bar=false", "model.cnn_width=32",
         "--out", "experiments/results/hackathon_suite_wide",
         "--title", "The hackathon suite: overlaid digits at the default CNN width"],
    ),
    "hackathon-topk": (
        "top-k pooled against one quota per kind of disagreement",
        ["hackathon_suite.py", "--methods", "topk", "topk_per_assignment",
         "--datasets", "mnist", *SMALL_CNN,
         "--out", "experiments/results/hackathon_suite_topk_variants",
         "--title", "The hackathon suite: top-k, pooled or one quota per kind of disagreement"],
    ),
    "hackathon-pretrained": (
        "DivDis from a trunk pretrained as an autoencoder",
        ["hackathon_suite.py", "--methods", "divdis", "divdis_pretrained", "divdis3_pretrained",
         "--datasets", "mnist", *SMALL_CNN,
         "--out", "experiments/results/hackathon_suite_pretrained",
         "--title",
         "The hackathon suite: DivDis from a trunk pretrained on the set's own inputs",
         "--note",
         "The divdis rows are the main suite's runs (make study NAME=hackathon), copied here "
         "beside the others."],
    ),
    "hackathon-deep": (
        "the overlaid-digit sets with a third conv block (model.cnn_blocks=3)",
        ["hackathon_suite.py", "--methods", "divdis_pretrained",
         "divdis_pretrained_self_training", "divdis_pretrained_self_training_cosine",
         "divdis_pretrained_self_training_fixmatch", "divdis_consistency_self_training_fixmatch",
         "divdis_pretrained_self_training_fixmatch_blend",
         "divdis_pretrained_self_training_fixmatch_h256",
         "divdis_pretrained_self_training_fixmatch_ensemble",
         "divdis_pretrained_self_training_fixmatch_2rounds",
         "divdis_pretrained_self_training_fixmatch_balanced",
         "divdis_pretrained_self_training_fixmatch_crossfit",
         "divdis_pretrained_self_training_fixmatch_keep90",
         "divdis3_pretrained_self_training_fixmatch",
         "divdis_pretrained_self_training_fixmatch_student30",
         "divdis_pretrained_self_training_cosine_student30",
         "erm", "oracle", "oracle_4x", "oracle_16x", "oracle_16x_cosine",
         "--datasets", "mnist_sum", "mnist_sum_bis", *DEEP_CNN,
         "--out", "experiments/results/hackathon_suite_deep",
         "--title", "The hackathon suite: overlaid digits with a third conv block",
         "--note",
         "The small CNN with three conv blocks (model.cnn_blocks=3) at the default width, 32."],
    ),
    "mnist-bar": (
        "table: the flagship and each set's best recipe against 0.98, ERM beside them (reads "
        "the records; rewrites mnist_bar.md and the README's table)",
        ["mnist_bar.py"],
    ),
    "hackathon-fresh-seeds": (
        "the mnist_sum_bis recipe on seeds 3 and 4, not the ones it was chosen on",
        ["hackathon_suite.py", "--methods", "divdis_pretrained_self_training_fixmatch_student30",
         "--datasets", "mnist_sum_bis", "--seeds", "3", "4", *DEEP_CNN,
         "--out", "experiments/results/hackathon_suite_fresh_seeds",
         "--title", "The mnist_sum_bis recipe on fresh seeds",
         "--note",
         "Chosen among many variants on seeds 0 to 2; seeds 3 and 4 check it was not luck."],
    ),
    "hackathon-one-recipe": (
        "the mnist_sum_bis recipe, unchanged, on all ten MNIST sets",
        ["hackathon_suite.py", "--methods", "divdis_pretrained_self_training_fixmatch_student30",
         "--datasets", "mnist", *DEEP_CNN,
         "--out", "experiments/results/hackathon_suite_one_recipe",
         "--title", "The hackathon suite: one recipe on every MNIST set",
         "--note",
         "The mnist_sum_bis recipe (3 conv blocks, width 32; on the embeddings, the MLP) with "
         "nothing changed per set. Its mnist_sum_bis rows are the deep study's runs (make study "
         "NAME=hackathon-deep), copied here."],
    ),
    "hackathon-one-recipe-topk": (
        "the one recipe with low-mix top-k heads, all ten MNIST sets",
        ["hackathon_suite.py", "--methods",
         "topk_low_mix_pretrained_self_training_fixmatch_student30", "--datasets", "mnist",
         *DEEP_CNN,
         "--out", "experiments/results/hackathon_suite_one_recipe_topk",
         "--title", "The hackathon suite: the one recipe with top-k heads on every MNIST set",
         "--note",
         f"{ONE_RECIPE} with top-k heads at a mix-rate lower bound of 0.05, one quota per kind "
         "of disagreement, 20 epochs (topk_low_mix) in place of DivDis: under DivDis the "
         "low-mix set stays below 0.98."],
    ),
    "hackathon-one-recipe-transductive": (
        "the one recipe reading the target inputs too, all ten MNIST sets",
        ["hackathon_suite.py", "--methods",
         "divdis_pretrained_self_training_fixmatch_student30_transductive",
         "--datasets", "mnist", *DEEP_CNN,
         "--out", "experiments/results/hackathon_suite_one_recipe_transductive",
         "--title", "The hackathon suite: the one recipe, transductive, on every MNIST set",
         "--note",
         f"{ONE_RECIPE} whose DivDis disagreement term also reads the target inputs, never "
         "their labels (dataset.unlabeled_with_target=true): on the low-mix set that lifts the "
         "decorrelated share of the rows it reads from 5% to 16%."],
    ),
    "hackathon-last-fitting": (
        "the one recipe keeping the last epoch that still fits the held-out rows",
        ["hackathon_suite.py", "--methods", "divdis_pretrained_cosine_last_fitting",
         "divdis_pretrained_self_training_fixmatch_student30_last_fitting",
         "--datasets", "mnist", *DEEP_CNN,
         "--out", "experiments/results/hackathon_suite_last_fitting",
         "--title",
         "The hackathon suite: the one recipe, heads kept at their last fitting epoch",
         "--note",
         f"{ONE_RECIPE} with callbacks=last_fitting in place of callbacks=none: the heads' last "
         "epoch at which every head is within 0.02 of its best held-out labeled accuracy so "
         "far. divdis_pretrained_cosine_last_fitting: those heads without the student."],
    ),
    "hackathon-chosen-head-fitting": (
        "the one recipe predicting with the chosen head's last fitting epoch (the flagship)",
        ["hackathon_suite.py", "--methods", "divdis_pretrained_cosine_chosen_head_fitting",
         "divdis_pretrained_self_training_fixmatch_student30_chosen_head_fitting", "erm",
         "--datasets", "mnist", *DEEP_CNN,
         "--out", "experiments/results/hackathon_suite_chosen_head_fitting",
         "--title",
         "The hackathon suite: the one recipe, the chosen head at its last fitting epoch",
         "--note",
         f"{ONE_RECIPE} with callbacks=chosen_head_fitting in place of callbacks=none: after "
         "the query, the chosen head's last epoch within 0.05 of its best held-out labeled "
         "accuracy so far, the head chosen again there from the labels revealed. "
         "divdis_pretrained_cosine_chosen_head_fitting: those heads without the student. ERM: "
         "the same model, for comparison."],
    ),
    "flagship-fresh-seeds": (
        "the flagship on seeds it was not put together on (3 to 9; the embedding sets)",
        ["hackathon_suite.py", "--methods",
         "divdis_pretrained_self_training_fixmatch_student30_chosen_head_fitting",
         "--datasets", "mnist_embed", "mnist_embed_456",
         "--seeds", "3", "4", "5", "6", "7", "8", "9", *DEEP_CNN,
         "--out", "experiments/results/hackathon_suite_flagship_fresh_seeds",
         "--title", "The hackathon suite: the flagship on fresh seeds",
         "--note",
         "The flagship (experiment=flagship, make study NAME=hackathon-chosen-head-fitting) on "
         "seeds 3 to 9, which played no part in putting it together (seeds 0 to 2 did)."],
    ),
    "pair-switches": (
        "DivDis with and without class-pair switches, mnist_embed_456, 10 seeds",
        ["hackathon_suite.py", "--methods", "divdis", "divdis_no_pair_switches",
         "divdis_pretrained_self_training_fixmatch_student30",
         "divdis_pretrained_self_training_fixmatch_student30_no_pair_switches",
         "--datasets", "mnist_embed_456",
         "--seeds", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", *DEEP_CNN,
         "--out", "experiments/results/pair_switches",
         "--title", "Class-pair switches on mnist_embed_456 (three classes), 10 seeds",
         "--note",
         "With and without method.pair_switches (hackrobust/methods/pair_switches.py): plain "
         "DivDis, and the one recipe (make study NAME=hackathon-one-recipe). Why: "
         "experiments/results/pair_switch_degeneracy.md (python "
         "experiments/pair_switch_degeneracy.py)."],
    ),
    "hackathon-ceiling": (
        "the oracle on mnist_sum_bis with 1x, 4x and 16x the labeled rows",
        ["hackathon_suite.py", "--methods", "oracle", "oracle_4x", "oracle_16x",
         "--datasets", "mnist_sum_bis", *SMALL_CNN,
         "--out", "experiments/results/hackathon_suite_ceiling",
         "--title", "The hackathon suite: how many labels the model needs on mnist_sum_bis",
         "--note",
         "oracle_4x and oracle_16x: 4800 and 19200 labeled rows (4 and 16 times the set's), "
         "half of them decorrelated. Their runs at 5845088 also revealed 5 labels after "
         "training (a query the ceilings now skip); the head does not depend on it."],
    ),
    "mix-rate": (
        "target accuracy against the unlabeled mix rate (mnist_cc, low-mix set)",
        ["mix_rate_curve.py", "--datasets", "mnist_cc", "mnist_uniform_color_low_mix_rate",
         *SMALL_CNN],
    ),
    "happyfaces": (
        "the HappyFaces benchmark (worse-head accuracy over mix rates)",
        ["happyfaces.py"],
    ),
    "hierarchical": ("worst-K species accuracy per group-robust method, on EfficientNet-Lite0's "
                     "ImageNet features (make study-hierarchical)",
                     ["hierarchical_benchmark.py",
                      "--out", "experiments/results/hierarchical_benchmark_lite0"]),
    "hierarchical-checkpoint": ("the same from a barely trained ResNet50 checkpoint (the harness)",
                                ["hierarchical_benchmark.py", "--backbone", "checkpoint",
                                 "--out", "experiments/results/hierarchical_benchmark"]),
    "speed": ("Lightning against a plain PyTorch loop, same model and data",
              ["speed_study.py", "--epochs", "5"]),
    "erm": ("ERM on every dataset, 3 seeds", ["erm_baseline.py"]),
    "attributions": ("the README's per-head attribution figure", ["attribution_figure.py"]),
    "flagship-profile": (
        "where a flagship run's time goes: seconds per stage under each speed option",
        ["flagship_profile.py", "--py-spy"],
    ),
    "flagship-fast": (
        "the fast flagship under study on the ten MNIST sets, the flagship beside it",
        ["hackathon_suite.py", "--methods", "experiment/flagship_fast", "--datasets", "mnist",
         "--seeds", "0", "1", "2",
         "--out", "experiments/results/hackathon_suite_flagship_fast",
         "--title", "The hackathon suite: the fast flagship under study",
         "--note",
         "experiment=flagship_fast (bf16 autocast, channels-last convolutions, half the "
         "autoencoder's and the student's epochs) on the seeds the flagship was put together "
         "on; seconds per stage in the records (timings/<stage>)."],
    ),
    "flagship-student-start": (
        "the fast flagship's student on mnist_sum_bis: from the pretrained trunk or the teacher",
        ["hackathon_suite.py", "--methods", "experiment/flagship_fast", "flagship_fast_student30",
         "flagship_fast_teacher10", "flagship_fast_teacher20",
         "--datasets", "mnist_sum_bis", "--seeds", "0", "1", "2",
         "--out", "experiments/results/hackathon_suite_student_start",
         "--title", "The hackathon suite: where the fast flagship's student starts",
         "--note", "The student of experiment=flagship_fast (15 epochs from the pretrained "
         "trunk), trained 30 epochs, or started from the teacher's trunk and chosen head for "
         "10 or 20; seed 0's variant runs were made as --extra overrides of "
         "experiment/flagship_fast (each record's overrides), the same composed config."],
    ),
    "flagship-fast-teacher": (
        "the fast flagship's next candidate: ten MNIST sets, tuning seeds 0-2 (resumes)",
        ["hackathon_suite.py", "--methods", "experiment/flagship_fast_teacher",
         "--datasets", "mnist", "--seeds", "0", "1", "2",
         "--out", "experiments/results/hackathon_suite_flagship_fast_teacher",
         "--title", "The hackathon suite: the fast flagship's next candidate",
         "--note", FAST_TEACHER_NOTE],
    ),
    "flagship-fast-teacher-draws": (
        "the same on random draws of every set's free choices, fresh seeds 3-7 (never tuned on)",
        ["hackathon_suite.py", "--methods", "experiment/flagship_fast_teacher",
         "--datasets", "mnist", "--seeds", "3", "4", "5", "6", "7",
         "--extra", "trainer.enable_progress_bar=false", "dataset.generator.draw=true",
         "--out", "experiments/results/hackathon_suite_flagship_fast_teacher_draws",
         "--title", "The hackathon suite: the fast flagship's candidate on random draws",
         "--note", "Seeds 3 to 7 were never used to tune it; each set's label feature, digits "
         "and unlabeled mix rate are drawn from the seed (dataset.generator.draw=true). "
         + FAST_TEACHER_NOTE],
    ),
    "flagship-fast-settle-draws": (
        "the settling candidate on random draws, fresh seeds 3-7 (never tuned on)",
        ["hackathon_suite.py", "--methods", "experiment/flagship_fast_settle",
         "--datasets", "mnist", "--seeds", "3", "4", "5", "6", "7",
         "--extra", "trainer.enable_progress_bar=false", "dataset.generator.draw=true",
         "--out", "experiments/results/hackathon_suite_flagship_fast_settle_draws",
         "--title", "The hackathon suite: the settling candidate on random draws",
         "--note", "experiment=flagship_fast_settle: experiment=flagship_fast_teacher whose "
         "students stop once two epochs in a row each changed at most 0.5 % of the target "
         "rows' classes (rule chosen on seed 0: make study NAME=student-settling). Seeds 3 to "
         "7 were never used to tune it; each set's label feature, digits and unlabeled mix "
         "rate are drawn from the seed (dataset.generator.draw=true)."],
    ),
    "flagship-fast-halves": (
        "the halves-apart candidate timed beside the settling one on the random-side sets' "
        "draws, fresh seeds 3-4",
        ["hackathon_suite.py", "--methods", "experiment/flagship_fast_settle",
         "experiment/flagship_fast_halves", "--datasets", "mnist_constant_image_random_row",
         "mnist_uniform_color_random_row", "mnist_uniform_color_low_mix_rate",
         "--seeds", "3", "4",
         "--extra", "trainer.enable_progress_bar=false", "dataset.generator.draw=true",
         "--out", "experiments/results/hackathon_suite_flagship_fast_halves",
         "--title", "The hackathon suite: convolutions on each half apart",
         "--note", "experiment=flagship_fast_halves: experiment=flagship_fast_settle whose "
         "convolutions see each half of a random-side image apart (model.halves_apart=true), "
         "timed beside it in the same study, one run at a time. Seeds 3 and 4 were never used "
         "to tune either; each set's label feature, digits and unlabeled mix rate are drawn "
         "from the seed (dataset.generator.draw=true)."],
    ),
    "flagship-fast-halves-draws": (
        "the halves-apart candidate on random draws of all ten sets, fresh seeds 4-7",
        ["hackathon_suite.py", "--methods", "experiment/flagship_fast_halves",
         "--datasets", "mnist", "--seeds", "4", "5", "6", "7",
         "--extra", "trainer.enable_progress_bar=false", "dataset.generator.draw=true",
         "--out", "experiments/results/hackathon_suite_flagship_fast_halves_draws",
         "--title", "The hackathon suite: the halves-apart candidate on random draws",
         "--note", "experiment=flagship_fast_halves: experiment=flagship_fast_settle whose "
         "convolutions see each half of a random-side image apart (model.halves_apart=true; "
         "the same as flagship_fast_settle on the sets without a symmetry). Seeds 4 to 7 were "
         "never used to tune it; each set's label feature, digits and unlabeled mix rate are "
         "drawn from the seed (dataset.generator.draw=true)."],
    ),
    "humans-imagenet": (
        "D-BAT on EfficientNet-Lite0's ImageNet features on humans, where the hackathon allows it",
        ["hackathon_suite.py", "--methods", "dbat_imagenet_lite0", "--datasets", "humans",
         "--out", "experiments/results/hackathon_suite_humans_imagenet",
         "--title", "The hackathon suite: humans from ImageNet features",
         "--note", "suite/dbat_imagenet_lite0: D-BAT's two heads on EfficientNet-Lite0's frozen "
         "ImageNet features (model=efficientnet_lite0), which the hackathon allows on humans "
         "only. D-BAT from scratch on the same set: experiments/results/hackathon_suite.md."],
    ),
    "flagship-fast-teacher-baseline": (
        "the flagship as it was, timed beside the candidate in its study (two sets, seed 0)",
        ["hackathon_suite.py", "--methods", "experiment/flagship",
         "--datasets", "mnist_sum_bis", "mnist_cc", "--seeds", "0",
         "--out", "experiments/results/hackathon_suite_flagship_baseline",
         "--title", "The hackathon suite: the flagship it replaces, timed on the same machine",
         "--note", "experiment=flagship as it was, for the seconds beside make study "
         "NAME=flagship-fast-teacher (run them one after the other on one machine)."],
    ),
    "flagship-student-settling": (
        "the candidate's students trained every epoch, scored after each (tuning seed 0)",
        ["hackathon_suite.py", "--methods", "experiment/flagship_fast_teacher",
         "--datasets", "mnist_embed_456", "mnist_sum_bis", "mnist_sum", "mnist_constant_image",
         "mnist_constant_image_random_row", "--seeds", "0",
         "--extra", "trainer.enable_progress_bar=false", "self_training.skip_if_sure_of=null",
         "--out", "experiments/results/hackathon_suite_student_settling",
         "--title", "The hackathon suite: when the fast flagship's student settles",
         "--note", "experiment=flagship_fast_teacher with every student trained all its 20 "
         "epochs (no skip); each record holds the student's target accuracy after every epoch "
         "(self_training/student_acc_epoch/<k>) and the share of target rows each epoch changed "
         "(the report's self_training.changed_by_epoch), to choose self_training.settled_below. "
         "Seed 0 is a tuning seed."],
    ),
    "flagship-student-warmup": (
        "the same students with a 2-epoch warm-up of their rate (tuning seed 0, two sets)",
        ["hackathon_suite.py", "--methods", "experiment/flagship_fast_teacher",
         "--datasets", "mnist_sum_bis", "mnist_constant_image_random_row", "--seeds", "0",
         "--extra", "trainer.enable_progress_bar=false", "self_training.skip_if_sure_of=null",
         "self_training.warmup_epochs=2",
         "--out", "experiments/results/hackathon_suite_student_warmup",
         "--title", "The hackathon suite: students whose rate warms up",
         "--note", "As make study NAME=flagship-student-settling, but each student's rate "
         "rises linearly over its first 2 epochs before the cosine schedule: whether the dip a "
         "teacher-started student makes at the full rate goes. Seed 0 is a tuning seed."],
    ),
    "student-settling": (
        "where each settling rule would stop those students, and what it saves (trains nothing)",
        ["student_settling.py"],
    ),
    "flagship-gpu": (
        "the flagship, unchanged, timed on a GPU on three sets (run it where a GPU is lent)",
        ["flagship_profile.py", "--datasets", "mnist_cc", "mnist_sum_bis", "mnist_embed",
         "--epochs", "0", "--variants", "base", "channels_last", "--extra", "trainer=gpu",
         "--out", "experiments/results/flagship_gpu"],
    ),
    "report-recheck": (
        "every recorded run whose report said submit below the default, run again today",
        ["report_recheck.py"],
    ),
    "report-calibration": (
        "the reports' verdicts and 90% intervals against the truth, over every study's records",
        ["report_calibration.py"],
    ),
}  # fmt: skip


def command(name: str, extra: list[str] = ()) -> list[str]:
    """The study's command line, run from the repository root."""
    script, *arguments = STUDIES[name][1]
    return [sys.executable, f"experiments/{script}", *arguments, *extra]


def listing() -> str:
    width = max(map(len, STUDIES))
    lines = [f"  {name:<{width}}  {about}" for name, (about, _) in STUDIES.items()]
    return "Studies (make study NAME=...; python experiments/studies.py NAME):\n" + "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("--list", "-l"):
        print(listing())
        return 0
    if argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    name, extra = argv[0], argv[1:]
    if name not in STUDIES:
        print(f"no study named {name!r}\n{listing()}", file=sys.stderr)
        return 2
    return subprocess.run(command(name, extra), cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
