"""`resnet-bench models` and `resnet-bench profile`."""

from __future__ import annotations

import argparse
from typing import Any

from resnet_bench.cli.output import print_records, status_spinner, stdout_console
from resnet_bench.errors import BadInputError


def cmd_models(args: argparse.Namespace) -> None:
    from resnet_bench import presets
    from resnet_bench.preset_costs import preset_costs
    from resnet_bench.published import published_for

    families = sorted({presets.family(n) for n in presets.names()})
    if args.family is not None and args.family not in families:
        raise BadInputError(f"--family {args.family!r} is not accepted; use one of: {', '.join(families)}")
    costs = preset_costs()
    rows = []
    for name in presets.names(args.family):
        published = published_for(name)
        row = {**costs[name], "spec": presets.get(name).format()}
        first = published[0] if published else None
        row["published_error_pct"] = first.error_pct if first else None
        row["published_dataset"] = first.dataset if first else None
        row["published_source"] = f"{first.source}, {first.location}" if first else None
        rows.append(row)
    if args.format != "table":
        print_records(rows, args.format)
        return
    from rich.table import Table

    table = Table(
        title="presets", caption="GFLOPs: conv + linear, 1 multiply-add = 1 FLOP, at the native input size. "
        "Sources: --format json or csv",
    )
    for column in ("name", "params", "GFLOPs", "input", "error %", "data set"):
        table.add_column(column, justify="left" if column in ("name", "data set") else "right", no_wrap=True)
    family = None
    for r in rows:
        if r["family"] != family:  # one section per family, headed by its name
            family = r["family"]
            if table.row_count:
                table.add_section()
            table.add_row(f"[bold]{family}[/bold]")
        error = f"{r['published_error_pct']:g}" if r["published_dataset"] else ""
        table.add_row(
            r["name"], f"{r['params'] / 1e6:.2f}M", f"{r['gflops']:.3f}", str(r["input_size"]), error,
            r["published_dataset"] or "",
        )
    stdout_console().print(table)


def cmd_profile(args: argparse.Namespace) -> None:
    from resnet_bench.profiling import profile

    speed = args.latency or args.train
    results = []
    with status_spinner(f"profiling {len(args.models)} model(s)"):
        for model in args.models:
            results.append(
                profile(
                    model, input_size=args.input_size, in_channels=args.in_channels, speed=speed,
                    device=args.device, dtype=args.dtype, batch_size=args.batch_size, runs=args.runs, train=args.train,
                )
            )
    if args.format == "json":
        print_records([{**p.to_row(), "stages": p.stage_rows()} for p in results], "json")
    elif args.format == "csv":
        print_records([r for p in results for r in p.stage_rows()] if args.by_stage else
                       [p.to_row() for p in results], "csv")
    else:
        _print_profiles(results, args.by_stage)


def _print_profiles(results: list[Any], by_stage: bool) -> None:
    from rich.table import Table

    console = stdout_console()
    table = Table(title="cost", caption="GFLOPs: fvcore, 1 multiply-add = 1 FLOP, conv + linear; then all it counts")
    table.add_column("")
    for p in results:
        table.add_column(p.model, justify="right", overflow="fold")
    lines = [
        ("input", lambda p: f"{p.cost.in_channels}x{p.cost.input_size}x{p.cost.input_size}"),
        ("params", lambda p: f"{p.cost.params:,}"),
        ("GFLOPs", lambda p: f"{p.cost.gflops:.3f}"),
        ("GFLOPs, all", lambda p: f"{p.cost.gflops_total:.3f}"),
        ("activations", lambda p: f"{p.cost.activations / 1e6:.2f}M"),
    ]
    if any(p.speed for p in results):
        lines += [
            ("device", lambda p: p.speed.device),
            ("dtype", lambda p: p.speed.dtype),
            ("CPU threads", lambda p: str(p.speed.threads)),
            ("latency, batch 1, ms (IQR)", lambda p: f"{p.speed.latency_ms:.2f} ({p.speed.latency_iqr_ms:.2f})"),
            (f"img/s, batch {results[0].speed.batch_size}", lambda p: f"{p.speed.throughput:,.0f}"),
        ]
        if any(p.speed.train_throughput for p in results):
            lines.append(("training img/s", lambda p: f"{p.speed.train_throughput:,.0f}"))
        if any(p.speed.peak_memory_mb for p in results):
            lines.append(("peak memory, MiB", lambda p: f"{p.speed.peak_memory_mb:,.0f}"))
    for label, cell in lines:
        table.add_row(label, *(cell(p) for p in results))
    console.print(table)
    if by_stage:
        for p in results:
            stages = Table(title=f"{p.model} by stage")
            for column in ("part", "output", "params", "GFLOPs", "activations"):
                stages.add_column(column, justify="left" if column == "part" else "right")
            for s in p.cost.stages:
                stages.add_row(
                    s.name, "x".join(map(str, s.output_shape)), f"{s.params:,}", f"{s.gflops:.3f}",
                    f"{s.activations / 1e6:.2f}M",
                )
            console.print(stages)
