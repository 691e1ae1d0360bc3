"""`resnet-bench models` and `resnet-bench profile`."""

from __future__ import annotations

import argparse
from typing import Any

from resnet_bench import presets
from resnet_bench.cli.arguments import add_device, add_format, add_threads, positive_int
from resnet_bench.cli.output import print_records, status_spinner, stdout_console
from resnet_bench.cpu import use_threads
from resnet_bench.devices import DTYPES, MEMORY_FORMATS, parse_memory_format
from resnet_bench.errors import BadInputError
from resnet_bench.preset_costs import preset_costs
from resnet_bench.profiling import profile
from resnet_bench.published import published_for
from resnet_bench.units import gflops_cell

# The data sets of the published table, in the order of the models table's error columns, with their headers.
_ERROR_COLUMNS = {"imagenet": "ImageNet", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "fashion-mnist": "F-MNIST"}
_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def cmd_models(args: argparse.Namespace) -> None:
    families = sorted({presets.family(n) for n in presets.names()})
    if args.family is not None and args.family not in families:
        raise BadInputError(f"--family {args.family!r} is not accepted; use one of: {', '.join(families)}")
    costs = preset_costs()
    rows, published = [], {}
    for name in presets.names(args.family):
        row = {**costs[name], "spec": presets.get(name).format()}
        for dataset in _ERROR_COLUMNS:  # one error column per data set, each figure with its own source
            result = next(iter(published_for(name, dataset)), None)
            published[name, dataset] = result
            key = dataset.replace("-", "_")
            row[f"top1_error_pct_{key}"] = result.error_pct if result else None
            row[f"source_{key}"] = (f"{result.source}, {result.location}; {result.notes}".rstrip("; ")
                                    if result else None)
        rows.append(row)
    if args.format != "table":
        print_records(rows, args.format)
        return
    _print_models(rows, published)


def _print_models(rows: list[dict[str, Any]], published: dict[tuple[str, str], Any]) -> None:
    """The presets by family, with their published top-1 errors, one column per data set, each figure marked
    with its source: the figures of one column come from different papers and recipes."""
    from rich import box
    from rich.table import Table

    datasets = [d for d in _ERROR_COLUMNS if any(published[r["name"], d] for r in rows)]
    sources: dict[str, int] = {}  # a source and its recipe -> its number in the legend

    def cell(result: Any) -> str:
        if result is None:
            return ""
        label = _source_label(result)
        number = sources.setdefault(label, len(sources) + 1)
        return f"{result.error_pct:.2f}{str(number).translate(_SUPERSCRIPT)}"

    table = Table(title="presets", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True)
    for column in ("name", "params", "GFLOPs", *(_ERROR_COLUMNS[d] for d in datasets)):
        table.add_column(column, justify="left" if column == "name" else "right", no_wrap=True)
    family = None
    for r in rows:
        if r["family"] != family:  # one section per family, headed by its name
            family = r["family"]
            if table.row_count:
                table.add_section()
            table.add_row(f"[bold]{family}[/bold]")
        table.add_row(r["name"], f"{r['params'] / 1e6:.2f}M", gflops_cell(r["gflops"]),
                      *(cell(published[r["name"], d]) for d in datasets))
    console = stdout_console()
    console.print(table)
    console.print("GFLOPs: conv + linear, 1 multiply-add = 1 FLOP, at the input size of the stem (imagenet and "
                  "deep 224 px, cifar 32 px). Errors: top-1 "
                  "test error %, as published; a figure's mark is its source (each with its own recipe):",
                  highlight=False)
    for label, number in sources.items():
        console.print(f"  {number}. {label}", highlight=False)


def _source_label(result: Any) -> str:
    """A published result's source and recipe in a few words: torchvision's weights by recipe, a paper by table
    (the row's own notes, such as the number of runs, are in --format json and csv)."""
    if result.source.startswith("torchvision"):
        recipe = "newer recipe" if "newer recipe" in result.notes else "original recipe"
        return f"torchvision's weights, {recipe} (ImageNet-1k val, one 224 crop)"
    return f"{result.source.split(',')[0]}, {result.location}"


def cmd_profile(args: argparse.Namespace) -> None:
    speed = args.latency or args.train
    if speed:
        use_threads(args.threads)
    results = []
    with status_spinner(f"profiling {len(args.models)} model(s)"):
        for model in args.models:
            results.append(
                profile(
                    model, input_size=args.input_size, in_channels=args.in_channels, speed=speed,
                    device=args.device, dtype=args.dtype, batch_size=args.batch_size, runs=args.runs, train=args.train,
                    stages=args.by_stage or args.format == "json",
                    channels_last=parse_memory_format(args.memory_format),
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
    sources = {p.cost_source for p in results}
    source = ("from the shipped preset table (fvcore traces; --by-stage traces now)" if sources == {"table"} else
              "traced now by fvcore" if sources == {"trace"} else "presets from the shipped table, others traced now")
    table = Table(title="cost")
    table.add_column("")
    for p in results:
        table.add_column(p.model, justify="right", overflow="fold")
    lines = [
        ("input", lambda p: f"{p.cost.in_channels}x{p.cost.input_size}x{p.cost.input_size}"),
        ("params", lambda p: f"{p.cost.params:,}"),
        ("GFLOPs", lambda p: gflops_cell(p.cost.gflops)),
        ("GFLOPs, all", lambda p: gflops_cell(p.cost.gflops_total)),
        ("activations", lambda p: f"{p.cost.activations / 1e6:.2f}M"),
    ]
    if any(p.speed for p in results):
        lines += [
            ("device", lambda p: p.speed.device),
            ("dtype", lambda p: p.speed.dtype),
            ("memory format", lambda p: p.speed.memory_format),
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
    # Below the table, wrapped between words at the terminal's width (a caption wraps at the table's).
    console.print(f"GFLOPs: fvcore's, 1 multiply-add = 1 FLOP, conv + linear; then all it counts. Cost: {source}.",
                  highlight=False)
    if by_stage:
        for p in results:
            stages = Table(title=f"{p.model} by stage")
            for column in ("part", "output", "params", "GFLOPs", "activations"):
                stages.add_column(column, justify="left" if column == "part" else "right")
            for s in p.cost.stages:
                stages.add_row(
                    s.name, "x".join(map(str, s.output_shape)), f"{s.params:,}", gflops_cell(s.gflops),
                    f"{s.activations / 1e6:.2f}M",
                )
            console.print(stages)


def add_cost_commands(sub: Any) -> None:
    """`models` and `profile`."""

    models = sub.add_parser("models", help="list the presets with parameters, GFLOPs and published errors")
    models.add_argument("--family", help="only this family (torchvision, cifar-resnet, wrn, ...)")
    add_format(models)
    models.set_defaults(func=cmd_models)

    profile = sub.add_parser("profile", help="cost of one or more models, side by side")
    profile.add_argument(
        "models", nargs="+", metavar="MODEL",
        help="a preset name, a one-line spec (block=bottleneck,layers=3-4-6-3) or a path to a JSON spec",
    )
    profile.add_argument("--by-stage", action="store_true", help="also the cost of the stem, each stage and the head")
    profile.add_argument(
        "--input-size", type=positive_int("--input-size"), metavar="PIXELS",
        help="input height = width (default: 224 for the imagenet stem, 32 for the cifar stem)",
    )
    profile.add_argument(
        "--in-channels", type=positive_int("--in-channels"), metavar="N", help="input channels (default: the spec's)"
    )
    speed = profile.add_argument_group("measured speed")
    speed.add_argument("--latency", action="store_true", help="measure latency (batch 1) and throughput")
    speed.add_argument("--train", action="store_true", help="also measure training throughput (implies --latency)")
    add_device(speed, default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    speed.add_argument("--batch-size", type=positive_int("--batch-size"), default=64, help="for throughput (64)")
    speed.add_argument("--dtype", choices=DTYPES, default="float32",
                       help="float32 (default), an autocast dtype, or auto: what training would use here")
    speed.add_argument("--memory-format", choices=MEMORY_FORMATS, default="nchw",
                       help="nchw (default), channels_last, or auto: what training would use here")
    add_threads(speed)
    speed.add_argument("--runs", type=positive_int("--runs"), default=10, help="timed runs per figure (10)")
    add_format(profile)
    profile.set_defaults(func=cmd_profile)
