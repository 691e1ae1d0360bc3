"""torch.compile on the CPU, on the quickstart's trials: its compile seconds against the training seconds it saves.

    python benchmarks/cpu_compile.py [--epochs 2] [--json cpu_compile.json]

Two networks of the quickstart's front, one of its grouped bottlenecks and its resnet20 baseline train with the
quickstart's recipe (the fast recipe, 2 epochs, the mini set), each once plain and once with `compile = true`, in
today's defaults (precision and memory format auto), at the threads of one quickstart worker (1; `--threads`).
The trainer times the first compiled step apart
(`compile_seconds`: compilation and that one step); the saving is the plain run's training seconds less the
compiled run's. A trial pays for compiling when the saving exceeds the compile seconds; the break-even is the
epochs a trial would need for that.
"""

from __future__ import annotations

import argparse
import json

import torch

from resnet_bench.cpu import use_threads
from resnet_bench.data import load_dataset, split
from resnet_bench.models import build_model
from resnet_bench.presets import resolve
from resnet_bench.recipe import get_recipe
from resnet_bench.train import spec_for_data, train

NETWORKS = [
    "resnet20",
    "block=preact_basic,layers=2-3-1,stem=cifar,stem_width=16,shortcut=A",
    "block=bottleneck,layers=2-3-2,stem=cifar,stem_width=8,groups=2,width_per_group=32",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="the quickstart's 2")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: as the quickstart's workers run)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    threads = use_threads(args.threads)
    data = split(load_dataset("fashion-mnist-mini"), val_size=2000, seed=0)
    rows = []
    for line in NETWORKS:
        spec = spec_for_data(resolve(line), data)
        results = {}
        for compiled in (False, True):
            torch.manual_seed(0)
            recipe = get_recipe("fast", epochs=args.epochs, warmup_epochs=0.5, compile=compiled)
            results[compiled] = train(build_model(spec), data, recipe, "cpu")
        plain, comp = results[False], results[True]
        saved = plain.train_seconds - comp.train_seconds
        per_epoch = saved / args.epochs
        row = {"network": line, "threads": threads, "precision": plain.precision, "epochs": args.epochs,
               "plain_train_seconds": round(plain.train_seconds, 1),
               "compiled_train_seconds": round(comp.train_seconds, 1),
               "compile_seconds": round(comp.compile_seconds, 1), "saved_seconds": round(saved, 1),
               "break_even_epochs": round(comp.compile_seconds / per_epoch, 1) if per_epoch > 0 else None,
               "val_plain": plain.val_accuracy, "val_compiled": comp.val_accuracy}
        rows.append(row)
        print(f"{line[:60]:60} plain {row['plain_train_seconds']:6.1f} s, "
              f"compiled {row['compiled_train_seconds']:6.1f} s "
              f"+ {row['compile_seconds']:5.1f} s compiling; saves {saved:5.1f} s; break-even "
              f"{row['break_even_epochs'] if row['break_even_epochs'] is not None else 'never'} epochs", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
