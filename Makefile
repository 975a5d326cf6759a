# Every target creates the virtual environment first if needed: `make demo` and `make test`
# are the whole set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test test-full lint format demo sweep clean \
	study-hackathon study-hackathon-variants study-hackathon-wide study-hackathon-ceiling \
	study-hackathon-topk study-hackathon-pretrained study-hackathon-deep study-hackathon-fresh-seeds \
	study-hackathon-one-recipe study-hackathon-one-recipe-topk \
	study-hackathon-one-recipe-transductive study-hackathon-last-fitting \
	study-hackathon-chosen-head-fitting study-pair-switches \
	study-mnist-bar study-mix-rate study-flagship-fresh-seeds \
	study-happyfaces study-hierarchical study-speed study-erm study-attributions

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package with its dev tools

test: $(STAMP) ## Run the default test suite (no slow tests, no network); "no tests" is a failure
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

test-full: $(STAMP) ## Run every test, slow ones included
	@$(BIN)/python -m pytest -m "slow or not slow"; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

lint: $(STAMP) ## Check style with ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Format and fix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: $(STAMP) ## Train ERM on mnist_cc built from bundled digits (offline) and write the CSV
	$(BIN)/python -m hackrobust.train experiment=quickstart

sweep: $(STAMP) ## A small multirun: ERM over three seeds on the offline quickstart
	$(BIN)/python -m hackrobust.train -m experiment=quickstart seed=0,1,2

# Studies: each writes its table and plots under experiments/results/ (real data from
# $$HACKROBUST_DATA_DIR; finished runs are kept in a .jsonl, so a stopped study resumes).
STUDY := $(BIN)/python experiments
SMALL_CNN := --extra trainer.enable_progress_bar=false model.cnn_width=16

study-hackathon: $(STAMP) ## Study: every generated hackathon set x {DivDis, top-k, D-BAT, ERM, oracle} x 3 seeds
	$(STUDY)/hackathon_suite.py --methods divdis topk topk_low_mix dbat erm oracle $(SMALL_CNN)

study-hackathon-variants: $(STAMP) ## Study: DivDis beside its options (20 epochs, self-training, transductive)
	$(STUDY)/hackathon_suite.py --methods divdis divdis_long divdis_self_training \
		divdis_long_self_training divdis_transductive --datasets mnist $(SMALL_CNN) \
		--out experiments/results/hackathon_suite_divdis_variants \
		--title "The hackathon suite: DivDis and its options"

study-hackathon-wide: $(STAMP) ## Study: the overlaid-digit sets at the default CNN width (32)
	$(STUDY)/hackathon_suite.py --methods divdis erm oracle --datasets mnist_sum mnist_sum_bis \
		--extra trainer.enable_progress_bar=false model.cnn_width=32 \
		--out experiments/results/hackathon_suite_wide \
		--title "The hackathon suite: overlaid digits at the default CNN width"

study-hackathon-topk: $(STAMP) ## Study: top-k pooled against one quota per kind of disagreement
	$(STUDY)/hackathon_suite.py --methods topk topk_per_assignment --datasets mnist $(SMALL_CNN) \
		--out experiments/results/hackathon_suite_topk_variants \
		--title "The hackathon suite: top-k, pooled or one quota per kind of disagreement"

study-hackathon-pretrained: $(STAMP) ## Study: DivDis from a trunk pretrained as an autoencoder
	$(STUDY)/hackathon_suite.py --methods divdis divdis_pretrained divdis3_pretrained \
		--datasets mnist $(SMALL_CNN) \
		--out experiments/results/hackathon_suite_pretrained \
		--title "The hackathon suite: DivDis from a trunk pretrained on the set's own inputs" \
		--note "The divdis rows are the main suite's runs (make study-hackathon), copied here beside the others."

study-hackathon-deep: $(STAMP) ## Study: the overlaid-digit sets with a third conv block (model.cnn_blocks=3)
	$(STUDY)/hackathon_suite.py \
		--methods divdis_pretrained divdis_pretrained_self_training divdis_pretrained_self_training_cosine \
			divdis_pretrained_self_training_fixmatch divdis_consistency_self_training_fixmatch \
			divdis_pretrained_self_training_fixmatch_blend divdis_pretrained_self_training_fixmatch_h256 \
			divdis_pretrained_self_training_fixmatch_ensemble divdis_pretrained_self_training_fixmatch_2rounds \
			divdis_pretrained_self_training_fixmatch_balanced divdis_pretrained_self_training_fixmatch_crossfit \
			divdis_pretrained_self_training_fixmatch_keep90 divdis3_pretrained_self_training_fixmatch \
			divdis_pretrained_self_training_fixmatch_student30 \
			divdis_pretrained_self_training_cosine_student30 \
			erm oracle oracle_4x oracle_16x oracle_16x_cosine \
		--datasets mnist_sum mnist_sum_bis \
		--extra trainer.enable_progress_bar=false model.cnn_blocks=3 \
		--out experiments/results/hackathon_suite_deep \
		--title "The hackathon suite: overlaid digits with a third conv block" \
		--note "The small CNN with three conv blocks (model.cnn_blocks=3) at the default width, 32."

study-mnist-bar: $(STAMP) ## Table: the flagship and each set's best recipe against 0.98, ERM beside them (reads the records; rewrites mnist_bar.md and the README's table)
	$(STUDY)/mnist_bar.py

study-hackathon-fresh-seeds: $(STAMP) ## Study: the mnist_sum_bis recipe on seeds 3 and 4, not the ones it was chosen on
	$(STUDY)/hackathon_suite.py \
		--methods divdis_pretrained_self_training_fixmatch_student30 --datasets mnist_sum_bis \
		--seeds 3 4 --extra trainer.enable_progress_bar=false model.cnn_blocks=3 \
		--out experiments/results/hackathon_suite_fresh_seeds \
		--title "The mnist_sum_bis recipe on fresh seeds" \
		--note "Chosen among many variants on seeds 0 to 2; seeds 3 and 4 check it was not luck."

study-hackathon-one-recipe: $(STAMP) ## Study: the mnist_sum_bis recipe, unchanged, on all ten MNIST sets
	$(STUDY)/hackathon_suite.py \
		--methods divdis_pretrained_self_training_fixmatch_student30 --datasets mnist \
		--extra trainer.enable_progress_bar=false model.cnn_blocks=3 \
		--out experiments/results/hackathon_suite_one_recipe \
		--title "The hackathon suite: one recipe on every MNIST set" \
		--note "The mnist_sum_bis recipe (3 conv blocks, width 32; on the embeddings, the MLP) with nothing changed per set. Its mnist_sum_bis rows are the deep study's runs (make study-hackathon-deep), copied here."

study-hackathon-one-recipe-topk: $(STAMP) ## Study: the one recipe with low-mix top-k heads, all ten MNIST sets
	$(STUDY)/hackathon_suite.py \
		--methods topk_low_mix_pretrained_self_training_fixmatch_student30 --datasets mnist \
		--extra trainer.enable_progress_bar=false model.cnn_blocks=3 \
		--out experiments/results/hackathon_suite_one_recipe_topk \
		--title "The hackathon suite: the one recipe with top-k heads on every MNIST set" \
		--note "The one recipe (make study-hackathon-one-recipe) with top-k heads at a mix-rate lower bound of 0.05, one quota per kind of disagreement, 20 epochs (topk_low_mix) in place of DivDis: under DivDis the low-mix set stays below 0.98."

study-hackathon-one-recipe-transductive: $(STAMP) ## Study: the one recipe reading the target inputs too, all ten MNIST sets
	$(STUDY)/hackathon_suite.py \
		--methods divdis_pretrained_self_training_fixmatch_student30_transductive --datasets mnist \
		--extra trainer.enable_progress_bar=false model.cnn_blocks=3 \
		--out experiments/results/hackathon_suite_one_recipe_transductive \
		--title "The hackathon suite: the one recipe, transductive, on every MNIST set" \
		--note "The one recipe (make study-hackathon-one-recipe) whose DivDis disagreement term also reads the target inputs, never their labels (dataset.unlabeled_with_target=true): on the low-mix set that lifts the decorrelated share of the rows it reads from 5% to 16%."

study-hackathon-last-fitting: $(STAMP) ## Study: the one recipe keeping the last epoch that still fits the held-out rows
	$(STUDY)/hackathon_suite.py \
		--methods divdis_pretrained_cosine_last_fitting \
		divdis_pretrained_self_training_fixmatch_student30_last_fitting --datasets mnist \
		--extra trainer.enable_progress_bar=false model.cnn_blocks=3 \
		--out experiments/results/hackathon_suite_last_fitting \
		--title "The hackathon suite: the one recipe, heads kept at their last fitting epoch" \
		--note "The one recipe (make study-hackathon-one-recipe) with callbacks=last_fitting in place of callbacks=none: the heads' last epoch at which every head is within 0.02 of its best held-out labeled accuracy so far. divdis_pretrained_cosine_last_fitting: those heads without the student."

study-hackathon-chosen-head-fitting: $(STAMP) ## Study: the one recipe predicting with the chosen head's last fitting epoch
	$(STUDY)/hackathon_suite.py \
		--methods divdis_pretrained_cosine_chosen_head_fitting \
		divdis_pretrained_self_training_fixmatch_student30_chosen_head_fitting erm --datasets mnist \
		--extra trainer.enable_progress_bar=false model.cnn_blocks=3 \
		--out experiments/results/hackathon_suite_chosen_head_fitting \
		--title "The hackathon suite: the one recipe, the chosen head at its last fitting epoch" \
		--note "The one recipe (make study-hackathon-one-recipe) with callbacks=chosen_head_fitting in place of callbacks=none: after the query, the chosen head's last epoch within 0.05 of its best held-out labeled accuracy so far, the head chosen again there from the labels revealed. divdis_pretrained_cosine_chosen_head_fitting: those heads without the student. ERM: the same model, for comparison."

study-flagship-fresh-seeds: $(STAMP) ## Study: the flagship on seeds it was not put together on (3 to 9; the embedding sets)
	$(STUDY)/hackathon_suite.py \
		--methods divdis_pretrained_self_training_fixmatch_student30_chosen_head_fitting \
		--datasets mnist_embed mnist_embed_456 --seeds 3 4 5 6 7 8 9 \
		--extra trainer.enable_progress_bar=false model.cnn_blocks=3 \
		--out experiments/results/hackathon_suite_flagship_fresh_seeds \
		--title "The hackathon suite: the flagship on fresh seeds" \
		--note "The flagship (experiment=flagship, make study-hackathon-chosen-head-fitting) on seeds 3 to 9, which played no part in putting it together (seeds 0 to 2 did)."

study-pair-switches: $(STAMP) ## Study: DivDis with and without class-pair switches, mnist_embed_456, 10 seeds
	$(STUDY)/hackathon_suite.py \
		--methods divdis divdis_no_pair_switches \
		divdis_pretrained_self_training_fixmatch_student30 \
		divdis_pretrained_self_training_fixmatch_student30_no_pair_switches \
		--datasets mnist_embed_456 --seeds 0 1 2 3 4 5 6 7 8 9 \
		--extra trainer.enable_progress_bar=false model.cnn_blocks=3 \
		--out experiments/results/pair_switches \
		--title "Class-pair switches on mnist_embed_456 (three classes), 10 seeds" \
		--note "With and without method.pair_switches (hackrobust/query/pair_switches.py): plain DivDis, and the one recipe (make study-hackathon-one-recipe). Why: experiments/results/pair_switch_degeneracy.md (python experiments/pair_switch_degeneracy.py)."

study-hackathon-ceiling: $(STAMP) ## Study: the oracle on mnist_sum_bis with 1x, 4x and 16x the labeled rows
	$(STUDY)/hackathon_suite.py --methods oracle oracle_4x oracle_16x --datasets mnist_sum_bis \
		$(SMALL_CNN) --out experiments/results/hackathon_suite_ceiling \
		--title "The hackathon suite: how many labels the model needs on mnist_sum_bis" \
		--note "oracle_4x and oracle_16x: 4800 and 19200 labeled rows (4 and 16 times the set's), \
	half of them decorrelated. Their runs at 5845088 also revealed 5 labels after training (a \
	query the ceilings now skip); the head does not depend on it."

study-mix-rate: $(STAMP) ## Study: target accuracy against the unlabeled mix rate (mnist_cc, low-mix set)
	$(STUDY)/mix_rate_curve.py --datasets mnist_cc mnist_uniform_color_low_mix_rate $(SMALL_CNN)

study-happyfaces: $(STAMP) ## Study: the HappyFaces benchmark (worse-head accuracy over mix rates)
	$(STUDY)/happyfaces.py

study-hierarchical: $(STAMP) ## Study: worst-K species accuracy per group-robust method
	$(STUDY)/hierarchical_benchmark.py

study-speed: $(STAMP) ## Study: Lightning against a plain PyTorch loop, same model and data
	$(STUDY)/speed_study.py --epochs 5

study-erm: $(STAMP) ## Study: ERM on every dataset, 3 seeds
	$(STUDY)/erm_baseline.py

study-attributions: $(STAMP) ## Study: the README's per-head attribution figure
	$(STUDY)/attribution_figure.py

clean: ## Remove run outputs and caches (not .venv, not the dataset cache)
	rm -rf logs outputs multirun .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +
