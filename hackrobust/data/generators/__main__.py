"""Write a generated dataset folder: python -m hackrobust.data.generators NAME OUT_DIR [--seed N]."""

from __future__ import annotations

import argparse

from hackrobust.data import generators
from hackrobust.data.layout import save_hackathon_dir


def main(argv: list[str] | None = None) -> None:
    names = sorted(n.removeprefix("make_") for n in generators.__all__)
    parser = argparse.ArgumentParser(
        prog="python -m hackrobust.data.generators", description=__doc__
    )
    parser.add_argument("name", choices=names)
    parser.add_argument("out_dir", help="the folder to create (it must not exist)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--draw",
        action="store_true",
        help="draw the true feature, digits and unlabeled mix rate from the seed (see draws.py)",
    )
    parser.add_argument("--source", help="image source, e.g. mnist, digits, cifar, synthetic")
    parser.add_argument(
        "--data-dir", help="where real data sets live (default $HACKROBUST_DATA_DIR)"
    )
    args = parser.parse_args(argv)
    options = {"seed": args.seed}
    if args.draw:
        options["draw"] = True
    if args.source:
        options["source"] = args.source
    if args.data_dir:
        options["data_dir"] = args.data_dir
    data = getattr(generators, f"make_{args.name}")(**options)
    path = save_hackathon_dir(data, args.out_dir)
    print(f"wrote {args.name} (seed {args.seed}) to {path}: {data.metadata}")


if __name__ == "__main__":
    main()
