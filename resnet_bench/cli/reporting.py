"""`resnet-bench report`: the Pareto report of a study, in the terminal and as files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from resnet_bench.cli.arguments import add_format, add_storage
from resnet_bench.cli.output import print_confirmation, print_front, print_records, status_spinner, stdout_console
from resnet_bench.files import check_writable
from resnet_bench.units import plural


def cmd_report(args: argparse.Namespace) -> None:
    # The study's constraints and reference point: the study file given here, else the one stored with the study.
    from resnet_bench.search.storage import study_to_read

    config, location = study_to_read(args.study_file, study_name=args.study_name, storage=args.storage, out=args.out)
    name = location.name
    from resnet_bench.report.analysis import build_report
    from resnet_bench.report.export import write_report
    from resnet_bench.report.references import published_points_for
    from resnet_bench.search.trials import load_trials

    with status_spinner(f"reading study {name}"):
        study = load_trials(location.storage, name, config)
        check_writable(location.folder)
        report = build_report(study, published_points_for(study))
        paths = write_report(report, location.folder)
    if args.format != "table":
        print_records(records(report.trials), args.format)
        return
    _render(report, paths)


def records(frame: Any) -> list[dict[str, Any]]:
    """Rows as plain JSON values: missing values become null, nullable integers plain integers."""
    return json.loads(frame.to_json(orient="records", double_precision=15))


def _render(report: Any, paths: dict[str, Path]) -> None:
    from rich.table import Table

    from resnet_bench.report.text import summary_lines, wrappable

    console = stdout_console()
    summary = Table(title=f"Pareto report of {report.study.name}", show_header=False, title_justify="left")
    summary.add_column(style="bold", no_wrap=True)
    summary.add_column(overflow="fold")
    for label, text in summary_lines(report):
        summary.add_row(label, wrappable(text))  # a spec wraps between its fields, never inside one
    console.print(summary)
    print_front(report)
    if report.confirmed is not None:
        print_confirmation(report.confirmed)
    folders = {Path(p).parent for p in paths.values()}
    if len(folders) == 1:  # one line that wraps between names at the terminal's width
        console.print(f"Wrote {plural(len(paths), 'file')} to {folders.pop()}/: "
                      + ", ".join(Path(p).name for p in paths.values()), highlight=False)
    else:
        console.print("Wrote " + ", ".join(str(p) for p in paths.values()), highlight=False)


def add_report_command(sub: Any) -> None:
    """`report`."""
    report = sub.add_parser("report", help="the Pareto report of a study: tables, CSV, Markdown, HTML and charts")
    report.add_argument("study_file", nargs="?", metavar="STUDY_FILE",
                        help="the study's file (.toml) or a shipped study; it names the study (default: the one "
                             "study in --storage, else quickstart)")
    add_storage(report, out=(
        "the folder of studies, as for sweep: reads DIR/S/study.db by default and writes the report of study S into "
        "DIR/S/ (reports)"))
    add_format(report)
    report.set_defaults(func=cmd_report)
