"""`resnet-bench reproduce degradation` and `resnet-bench responses`: the ResNet paper's own experiments."""

from __future__ import annotations

import argparse
from pathlib import Path

from resnet_bench.cli.arguments import add_device, add_format, add_storage, add_threads, positive_int
from resnet_bench.cli.output import StderrProgress, SweepProgress, print_records, stdout_console
from resnet_bench.cpu import use_threads
from resnet_bench.devices import resolve_device
from resnet_bench.experiments.degradation import (
    DEFAULT_DATASET,
    DEFAULT_DEPTHS,
    FILES,
    DegradationRun,
    effect,
    parse_depths,
)
from resnet_bench.files import check_writable
from resnet_bench.units import plural


def cmd_degradation(args: argparse.Namespace) -> None:
    from resnet_bench.search.storage import safe_url

    depths = parse_depths(args.depths)
    resolve_device(args.device)  # checked before anything is created
    check_writable(Path(args.out))
    use_threads(args.threads)
    run = DegradationRun(dataset=args.dataset, depths=depths, epochs=args.epochs, seed=args.seed,
                         val_size=args.val_size, out=args.out, storage=args.storage, device=args.device)
    note = StderrProgress().console
    note.print(f"{run.config.name}: {len(run.queued)} of {plural(len(run.config.baselines), 'network')} to train "
               f"({', '.join(run.queued) or 'none: every run is in the storage'})", highlight=False, soft_wrap=True)
    elsewhere = [b for b in run.todo if b not in run.queued]
    if elsewhere:
        note.print(f"running in another command (or killed less than two heartbeats ago; run again after): "
                   f"{', '.join(elsewhere)}", highlight=False, soft_wrap=True)
    with SweepProgress(max(len(run.queued), 1)) as progress:
        result = run.run(on_trial_start=progress.trial_start, on_epoch=progress.epoch,
                         on_trial_end=progress.trial_end, on_batch=progress.batch)
    rows = result.final.to_dict("records")
    if args.format != "table":
        print_records(rows, args.format)
        return
    from rich.table import Table

    table = Table(title=f"degradation on {run.config.dataset}: final errors after "
                        f"{plural(run.config.base_recipe().epochs, 'epoch')} (he2015, seed {run.config.seed})")
    for column in ("depth", "plain train", "plain test", "ResNet train", "ResNet test"):
        table.add_column(column, justify="right")
    for depth in depths:
        cells = []
        for kind in ("plain", "residual"):
            match = [r for r in rows if r["depth"] == depth and r["kind"] == kind]
            cells += [f"{match[0][k]:.2%}" if match else "-" for k in ("train_error", "test_error")]
        table.add_row(str(depth), *cells)
    console = stdout_console()
    console.print(table)
    for kind, text in effect(result.final).items():
        console.print(f"{'plain' if kind == 'plain' else 'ResNets'}: {text}", highlight=False, soft_wrap=True)
    if result.missing:
        console.print(f"not trained (failed; run the command again to retry): {', '.join(result.missing)}",
                      highlight=False, soft_wrap=True)
    console.print("files:", highlight=False)
    for name in FILES:
        console.print(f"  {result.folder / name}", highlight=False, soft_wrap=True)
    console.print("the runs as a study, and their checkpoints for `resnet-bench responses`:", highlight=False)
    storage = f" --storage {safe_url(result.storage)}" if args.storage else ""  # else the study's folder has it
    console.print(f"  resnet-bench report --out {Path(args.out) / 'degradation'} --study-name {result.name}{storage}",
                  highlight=False, soft_wrap=True)
    checkpoints = [r["checkpoint"] for r in rows if r["checkpoint"]]
    if checkpoints:
        console.print(f"  resnet-bench responses {' '.join(checkpoints)}", highlight=False, soft_wrap=True)


def cmd_responses(args: argparse.Namespace) -> None:
    from resnet_bench.experiments.responses import check_paths, measure_responses, write_files

    check_paths(args.checkpoints)
    resolve_device(args.device)
    out = Path(args.out)
    check_writable(out)
    use_threads(args.threads)
    results = measure_responses(args.checkpoints, dataset=args.dataset, device=args.device)
    files = write_files(results, out)
    rows = [row for r in results for row in r.rows()]
    if args.format != "table":
        print_records(rows, args.format)
        return
    from rich.table import Table

    table = Table(title=f"std of the 3x3 layers' responses over the test set of {results[0].dataset}")
    for column in ("checkpoint", "network", "layers", "mean std", "largest", "smallest"):
        table.add_column(column, justify="left" if column in ("checkpoint", "network") else "right")
    for r in results:
        stds = [s for _, s in r.layers]
        table.add_row(r.checkpoint, r.network, str(len(stds)), f"{sum(stds) / len(stds):.3f}", f"{max(stds):.3f}",
                      f"{min(stds):.3f}")
    console = stdout_console()
    console.print(table)
    console.print("files:", highlight=False)
    for path in files:
        console.print(f"  {path}", highlight=False, soft_wrap=True)


def add_experiment_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`reproduce degradation` and `responses`."""

    reproduce = sub.add_parser("reproduce", help="the ResNet paper's experiments: reproduce degradation")
    experiments = reproduce.add_subparsers(dest="experiment", metavar="EXPERIMENT", parser_class=type(reproduce))
    experiments.required = True
    degradation = experiments.add_parser(
        "degradation", help="plain against residual networks of growing depth: training and test error per epoch "
                            "(He et al. 2015, Figure 6)")
    degradation.add_argument("--dataset", default=DEFAULT_DATASET,
                             help=f"fashion-mnist, fashion-mnist-mini, cifar10, cifar100, imagefolder:PATH "
                                  f"({DEFAULT_DATASET})")
    degradation.add_argument("--depths", default=",".join(map(str, DEFAULT_DEPTHS)),
                             help="depths 6n+2, separated by commas (20,32,44,56)")
    degradation.add_argument("--epochs", type=positive_int("--epochs"),
                             help="epochs of each run, the he2015 recipe's schedule (lr /10 at 50%% and 75%%) "
                                  "scaled to them (default: the paper's 182)")
    degradation.add_argument("--seed", type=int, default=0, help="weights, validation split and training (0)")
    degradation.add_argument("--val-size", type=positive_int("--val-size"),
                             help="validation images held out of the training set (5000; 2000 on the mini set)")
    add_storage(degradation, default="a SQLite file in the study's folder", study_name=False,
                out="the runs' study, figure and tables go under DIR/degradation/ (reports)")
    add_device(degradation)
    add_threads(degradation)
    add_format(degradation)
    degradation.set_defaults(func=cmd_degradation, command="reproduce degradation")

    responses = sub.add_parser(
        "responses", help="std of each 3x3 layer's response of trained checkpoints (He et al. 2015, Figure 7)")
    responses.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                           help="files of `resnet-bench train --save` or of `reproduce degradation`; each carries "
                                "its spec")
    responses.add_argument("--dataset", help="the test set to measure on (default: each checkpoint's data set)")
    responses.add_argument("--out", default="reports/responses", metavar="DIR",
                           help="responses.png and responses.csv go here (reports/responses)")
    add_device(responses)
    add_threads(responses)
    add_format(responses)
    responses.set_defaults(func=cmd_responses)
    degradation.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the traceback of an error")
