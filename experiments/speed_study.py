"""Lightning's overhead: the same ERM training through Lightning's Trainer and a plain loop.

    python experiments/speed_study.py [--dataset mnist_cc] [--epochs 5] [--device cpu|cuda]

Both paths train the same model (seeded, same init) on the same in-memory dataset and loader,
with the same optimizer, for the same epochs, with no validation, logging or checkpointing; each
runs in its own subprocess so peak memory is its own. Reported: median epoch time (the first
epoch left out), samples per second, the Lightning / plain ratio, and peak memory (RSS on CPU,
allocated memory on CUDA). Both keep freed host memory as `python -m hackrobust.train` does
(`host_memory_cache`, hackrobust/utils/allocator.py); a third row runs Lightning on malloc's defaults
(`host_memory_cache=null`) to show what that setting is worth. Writes
experiments/results/speed_study.md; real MNIST from $HACKROBUST_DATA_DIR, or `--offline` for the
bundled digits.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from hackathon_suite import environment

RESULTS = Path(__file__).parent / "results"
# (row, timed path, extra overrides): the two paths under the training defaults, then Lightning
# with malloc's defaults.
PATHS = [
    ("plain", "plain", []),
    ("lightning", "lightning", []),
    ("lightning, malloc defaults", "lightning", ["host_memory_cache=null"]),
]


def build(args):
    """The datamodule and ERM module of `python -m hackrobust.train dataset=... method=erm`."""
    import hydra
    from hydra import compose, initialize_config_dir

    from hackrobust.utils.allocator import keep_freed_memory
    from hackrobust.utils.config import CONFIG_DIR

    overrides = [f"dataset={args.dataset}", "method=erm", f"seed={args.seed}", *args.extra]
    if args.offline:
        overrides.append("dataset.source=digits")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    if cfg.host_memory_cache:
        keep_freed_memory(cfg.host_memory_cache)
    datamodule = hydra.utils.instantiate(cfg.dataset)
    datamodule.prepare_data()
    datamodule.setup("fit")
    import lightning as L

    L.seed_everything(args.seed)
    method = hydra.utils.instantiate(
        cfg.method,
        model=hydra.utils.instantiate(cfg.model),
        input_shape=datamodule.input_shape,
        num_classes=datamodule.num_classes,
    )
    return datamodule, method


def peak_memory(device: str) -> float:
    """MiB: CUDA's peak allocation, else the process's peak resident set."""
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def lightning_epochs(args) -> list[float]:
    import lightning as L

    datamodule, method = build(args)
    times = []

    class EpochTimer(L.Callback):
        def on_train_epoch_start(self, trainer, module):
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            if args.device == "cuda":
                import torch

                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.start)

    trainer = L.Trainer(
        accelerator="gpu" if args.device == "cuda" else "cpu",
        devices=1,
        max_epochs=args.epochs,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[EpochTimer()],
    )
    trainer.fit(method, train_dataloaders=datamodule.train_dataloader())
    return times


def plain_epochs(args) -> list[float]:
    import torch

    datamodule, method = build(args)
    device = torch.device(args.device)
    method.to(device).train()
    optimizer = method.configure_optimizers()
    loader = datamodule.train_dataloader()["labeled"]
    times = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        for batch in loader:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            loss, _, _ = method.compute_loss({"labeled": batch})
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if args.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def measure(args) -> None:
    """Child process: time one path, print one JSON line."""
    times = (lightning_epochs if args.phase == "lightning" else plain_epochs)(args)
    datamodule, _ = build(args)
    samples = len(datamodule.train_set)
    steady = sorted(times[1:] or times)
    median = steady[len(steady) // 2]
    result = {
        "epoch_seconds": times,
        "median_epoch_seconds": median,
        "samples_per_second": samples / median,
        "peak_memory_mib": peak_memory(args.device),
        "samples": samples,
    }
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="mnist_cc")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--offline", action="store_true")
    parser.add_argument("--extra", nargs="*", default=[])
    parser.add_argument("--phase", choices=["lightning", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS / "speed_study.md")
    args = parser.parse_args()
    if args.phase:
        return measure(args)

    results = {}
    for name, phase, extra in PATHS:
        command = [sys.executable, __file__, *sys.argv[1:], "--phase", phase]
        if extra:  # after the user's own --extra values, so it wins
            command += ["--extra", *args.extra, *extra]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(name, results[name]["median_epoch_seconds"], flush=True)
    ratio = results["lightning"]["median_epoch_seconds"] / results["plain"]["median_epoch_seconds"]
    allocator = (
        results["lightning, malloc defaults"]["median_epoch_seconds"]
        / results["lightning"]["median_epoch_seconds"]
    )
    rows = "\n".join(
        f"| {phase} | {r['median_epoch_seconds']:.3f} | {r['samples_per_second']:.0f} "
        f"| {r['peak_memory_mib']:.0f} |"
        for phase, r in results.items()
    )
    device = args.device
    if device == "cuda":
        import torch

        device = torch.cuda.get_device_name()
    machine = environment()
    command = "python experiments/speed_study.py " + " ".join(sys.argv[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        "# Lightning against a plain PyTorch loop\n\n"
        f"Regenerate: `{command.strip()}`.\n"
        f"Device: {device}; CPU {machine['cpu']} ({os.cpu_count()} cores), Python "
        f"{platform.python_version()}, torch {machine['torch']}, numpy {machine['numpy']}. "
        f"ERM on `{args.dataset}` ({results['plain']['samples']} training rows), "
        f"{args.epochs} epochs, the median epoch after the first.\n\n"
        "| path | median epoch (s) | samples/s | peak memory (MiB) |\n|---|---|---|---|\n"
        f"{rows}\n\n**Lightning / plain epoch time: {ratio:.3f}**\n\n"
        f"Malloc's defaults (`host_memory_cache=null`) / kept host memory: {allocator:.3f}\n"
    )
    print(f"ratio {ratio:.3f}; wrote {args.out}")


if __name__ == "__main__":
    main()
