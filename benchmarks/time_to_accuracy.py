"""Time to accuracy on full Fashion-MNIST: seconds of training for a named network and a fixed number of
epochs, and its mean test accuracy over several seeds (airbench's way of stating it: the target is a mean
over seeds, the time is the training time of one run).

    python benchmarks/time_to_accuracy.py [--model resnet20] [--epochs 10] [--seeds 0 1 2 3 4]
                                          [--batch-size 512] [--lr 0.4] [--target 0.94] [--compile] [--out tta.json]

Each run: the `fast` recipe (Nesterov SGD, warm-up, then linear decay to 0) with the given epochs, batch
and peak learning rate (per 128 images), on the 58,000 training images left after the 2,000 of the
validation split; the test accuracy is measured once at the end on the 10,000 test images.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import emit

import resnet_bench as rb
from resnet_bench.data import load_dataset, split
from resnet_bench.recipe import get_recipe
from resnet_bench.train import spec_for_data, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=0.2, help="peak learning rate per 128 images of batch")
    parser.add_argument("--target", type=float, default=0.94)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out")
    args = parser.parse_args()
    runs = []
    for seed in args.seeds:
        data = split(load_dataset("fashion-mnist"), seed=seed)
        torch.manual_seed(seed)
        model = rb.build_model(spec_for_data(rb.presets.resolve(args.model), data))
        recipe = get_recipe("fast", epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=seed,
                            warmup_epochs=min(1.0, args.epochs / 5), compile=args.compile or None)
        result = train(model, data, recipe, args.device)
        runs.append({"seed": seed, "test_accuracy": result.test_accuracy, "val_accuracy": result.val_accuracy,
                     "train_seconds": result.train_seconds, "compile_seconds": result.compile_seconds})
        print(f"seed {seed}: test {result.test_accuracy:.2%}, {result.train_seconds:.1f} s of training"
              f" (+{result.compile_seconds:.1f} s compiling)", flush=True)
    mean = statistics.mean(r["test_accuracy"] for r in runs)
    seconds = statistics.mean(r["train_seconds"] for r in runs)
    figures = {"device": result.device, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
               "model": args.model, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
               "compile": args.compile, "mean_test_accuracy": mean, "mean_train_seconds": seconds,
               "reached": mean >= args.target, "target": args.target, "runs": runs}
    print(f"{args.model}, {args.epochs} epochs: mean test accuracy {mean:.2%} over {len(runs)} seeds "
          f"({'reaches' if mean >= args.target else 'misses'} {args.target:.0%}) in {seconds:.1f} s of training")
    emit(figures, args.out)


if __name__ == "__main__":
    main()
