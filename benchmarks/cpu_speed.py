"""Training speed on this CPU: precision x memory format x threads, and one 2-thread worker against 2 single-thread
workers running at once, as ratios measured in one interleaved run.

    python benchmarks/cpu_speed.py [--rounds 3] [--seconds 1.5] [--batch-size 64] [--json cpu_speed.json]

Part 1, for each network (the quickstart's sizes up to a 1.5-GFLOPs one, on Fashion-MNIST's 1x28x28 images), each
thread count and each of fp32/bf16 x NCHW/channels_last: training steps (forward, backward, SGD step, as the
trainer runs them) for `--seconds` after a warm-up, `--rounds` times in alternating order; the median images per
second and the ratio to fp32 NCHW (the previous release's CPU path) at the same threads.
Part 2, for each network in bf16 channels_last: one process of 2 threads, then 2 processes of 1 thread started
together (their images per second added), `--rounds` times; the ratio is what the workers rule reads
(search/workers.py: SMALL_NETWORK_GFLOPS). Random images are fine here: speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

NETWORKS = {  # name: (one-line spec, what it stands for)
    "bottleneck 2-3-2 g2": "block=bottleneck,layers=2-3-2,stem=cifar,stem_width=8,groups=2,width_per_group=32",
    "preact 2-3-1 w16": "block=preact_basic,layers=2-3-1,stem=cifar,stem_width=16,shortcut=A",
    "resnet20": "resnet20",
    "resnet20 x2 wide": "resnet20,widths=32-64-128",
    "resnet20 x4 wide": "resnet20,widths=64-128-256",
    "resnet56 x4 wide": "resnet56,widths=64-128-256",
    "wrn28_10": "wrn28_10",
}
CONFIGS = [(p, f) for p in ("fp32", "bf16") for f in ("nchw", "channels_last")]


def images_per_second(spec: str, precision: str, memory_format: str, threads: int, seconds: float,
                      batch: int) -> float:
    """Training images per second of one network in this process, after 2 warm-up steps."""
    import torch
    from torch import nn

    from resnet_bench.cpu import set_threads
    from resnet_bench.models import build_model

    set_threads(threads)
    torch.manual_seed(0)
    fmt = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
    model = build_model(f"{spec},in_channels=1").train().to(memory_format=fmt)
    x = torch.randn(batch, 1, 28, 28).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(), step()
    steps, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or steps < 2:
        step()
        steps += 1
    return steps * batch / elapsed


def _child(args: argparse.Namespace) -> None:
    name, threads = args.child
    if threads == "auto":  # what the tool's commands choose: the cores that other processes leave idle
        from resnet_bench.cpu import idle_cores

        threads = idle_cores()
    print(images_per_second(NETWORKS[name], "bf16", "channels_last", int(threads), args.seconds, args.batch_size))


def _processes(name: str, count: int, threads: int, args: argparse.Namespace) -> float:
    """Images per second of `count` processes of `threads` threads started together, added up."""
    command = [sys.executable, __file__, "--child", name, str(threads), "--seconds", str(args.seconds * 2),
               "--batch-size", str(args.batch_size)]
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(count)]
    return sum(float(c.communicate()[0]) for c in children)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.5, help="timed seconds per figure (part 2: twice this)")
    parser.add_argument("--batch-size", type=int, default=64, help="the fast recipe's batch (64)")
    parser.add_argument("--threads", default="1,2", help="thread counts of part 1, comma-separated")
    parser.add_argument("--networks", help="only these networks, comma-separated (default: all)")
    parser.add_argument("--parts", default="1,2", help="1: precision and format, 2: workers (default: both)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    import torch

    from resnet_bench.cpu import NATIVE_BF16_FLAGS, cpu_flags, cpu_name, native_bf16, physical_cores, probe_bf16_speedup
    from resnet_bench.profiling import count_on_meta

    flags = sorted(cpu_flags() & (NATIVE_BF16_FLAGS | {"avx512f", "avx2", "amx_tile"}))
    print(f"CPU: {cpu_name()}, {physical_cores()} physical cores; flags: {', '.join(flags) or 'none known'}; "
          f"torch {torch.__version__}")
    print(f"bf16 probe: {probe_bf16_speedup():.2f}x fp32's speed; precision auto chooses "
          f"{'bf16' if native_bf16() else 'fp32'} here")
    thread_counts = [int(t) for t in args.threads.split(",")]
    networks = args.networks.split(",") if args.networks else list(NETWORKS)
    parts = args.parts.split(",")
    cases = [(n, t, c) for n in networks for t in thread_counts for c in CONFIGS] if "1" in parts else []
    figures: dict[tuple, list[float]] = {case: [] for case in cases}
    for r in range(args.rounds):
        for case in cases if r % 2 == 0 else reversed(cases):
            name, threads, (precision, fmt) = case
            figures[case].append(images_per_second(NETWORKS[name], precision, fmt, threads, args.seconds,
                                                   args.batch_size))
    rows = []
    if cases:
        print(f"\n{'network':20} {'GFLOPs':>7} {'thr':>3} {'precision':9} {'format':13} {'img/s':>8} "
              f"{'vs fp32 nchw':>12}")
    for name in networks if cases else ():
        gflops = count_on_meta(f"{NETWORKS[name]},in_channels=1", 28).gflops
        for threads in thread_counts:
            base = statistics.median(figures[name, threads, ("fp32", "nchw")])
            for precision, fmt in CONFIGS:
                median = statistics.median(figures[name, threads, (precision, fmt)])
                rows.append({"part": "precision", "network": name, "gflops": round(gflops, 4), "threads": threads,
                             "precision": precision, "memory_format": fmt, "images_per_second": round(median, 1),
                             "vs_fp32_nchw": round(median / base, 2)})
                print(f"{name:20} {gflops:7.4f} {threads:3d} {precision:9} {fmt:13} {median:8.1f} "
                      f"{median / base:11.2f}x")

    if "2" in parts:
        print(f"\n{'network':20} {'GFLOPs':>7} {'1 x 2 threads':>14} {'2 x 1 thread':>13} {'ratio':>6}  "
              "(bf16 channels_last)")
    for name in networks if "2" in parts else ():
        one, two = [], []
        for r in range(args.rounds):
            pair = [(_processes, 1, 2, one), (_processes, 2, 1, two)]
            for run, count, threads, into in pair if r % 2 == 0 else reversed(pair):
                into.append(run(name, count, threads, args))
        gflops = count_on_meta(f"{NETWORKS[name]},in_channels=1", 28).gflops
        a, b = statistics.median(one), statistics.median(two)
        rows.append({"part": "workers", "network": name, "gflops": round(gflops, 4),
                     "one_worker_2_threads": round(a, 1),
                     "two_workers_1_thread": round(b, 1), "ratio": round(b / a, 2)})
        print(f"{name:20} {gflops:7.4f} {a:14.1f} {b:13.1f} {b / a:5.2f}x")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
