"""Several small trials at once on one GPU: aggregate training throughput of K concurrent resnet20 runs.

K processes (each its own CUDA context, as `resnet-bench sweep --trials-per-gpu K` starts them; the GPU's
settings are untouched) each load full Fashion-MNIST, build resnet20 and train it with the sweep's trainer.
They wait at a barrier, then train --epochs epochs each; the aggregate is every process's images over the
wall time from the barrier to the last one's end. Reported for each K: aggregate images/s and its ratio to
K = 1. Latency is never measured like this: `latency_ms` is always measured alone.

    python benchmarks/packing.py [--device cuda] [--k 1 2 4 8] [--epochs 3] [--batch-size 512] [--out packing.json]
    python benchmarks/packing.py --device cpu --k 1 2 --limit 2048 --epochs 1    # a smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import time

import torch
from common import emit


def worker(index: int, args: argparse.Namespace, barrier, results) -> None:  # type: ignore[no-untyped-def]
    import resnet_bench as rb
    from resnet_bench.data import load_dataset, split
    from resnet_bench.recipe import Recipe
    from resnet_bench.train import spec_for_data, train

    if args.device == "cpu":
        torch.set_num_threads(max(1, args.threads // args.current_k))
    data = split(load_dataset("fashion-mnist"), seed=index)
    # Throughput, not accuracy: 256 validation and test images keep evaluation out of the wall time.
    few = torch.arange(256)
    data = dataclasses.replace(data, val=data.val.subset(few), test=data.test.subset(few))
    if args.limit:
        data = dataclasses.replace(data, train=data.train.subset(torch.arange(args.limit)))
    torch.manual_seed(index)
    model = rb.build_model(spec_for_data(rb.presets.get("resnet20"), data))
    # A short warm-up outside the clock: CUDA context, cuDNN autotuning, the allocator.
    train(model, data, Recipe(epochs=1, batch_size=args.batch_size, schedule="constant"), args.device)
    barrier.wait()
    start = time.time()
    result = train(model, data, Recipe(epochs=args.epochs, batch_size=args.batch_size, lr=0.1), args.device)
    end = time.time()
    images = result.epochs * (len(data.train) // args.batch_size) * args.batch_size
    results.put({"index": index, "start": start, "end": end, "images": images,
                 "images_per_second_alone_clock": result.images_per_second})


def run(k: int, args: argparse.Namespace) -> dict:
    context = mp.get_context("spawn")
    barrier, results = context.Barrier(k), context.Queue()
    args.current_k = k
    processes = [context.Process(target=worker, args=(i, args, barrier, results)) for i in range(k)]
    for p in processes:
        p.start()
    rows = [results.get() for _ in processes]
    for p in processes:
        p.join()
        if p.exitcode:
            raise RuntimeError(f"a worker exited with {p.exitcode}")
    wall = max(r["end"] for r in rows) - min(r["start"] for r in rows)
    return {"k": k, "aggregate_images_per_second": sum(r["images"] for r in rows) / wall, "wall_seconds": wall,
            "per_process_images_per_second": [r["images_per_second_alone_clock"] for r in rows]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--limit", type=int, help="train on the first N images only (smoke runs)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU only: shared by the K")
    parser.add_argument("--out")
    args = parser.parse_args()
    rows = []
    for k in args.k:
        row = run(k, args)
        rows.append(row)
        row["over_k1"] = row["aggregate_images_per_second"] / rows[0]["aggregate_images_per_second"]
        print(f"K={k}: {row['aggregate_images_per_second']:9.0f} images/s aggregate, "
              f"x{row['over_k1']:.2f} of K={args.k[0]}",
              flush=True)
    device = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    figures = {"device": device, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "model": "resnet20",
               "dataset": "fashion-mnist", "batch_size": args.batch_size, "epochs": args.epochs, "rows": rows}
    emit(figures, args.out)


if __name__ == "__main__":
    main()
