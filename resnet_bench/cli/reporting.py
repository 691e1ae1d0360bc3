"""`resnet-bench report`: the Pareto report of a study, in the terminal and as files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from resnet_bench.cli.output import print_records, status_spinner, stdout_console
from resnet_bench.errors import BadInputError


def _cmd_report(args: argparse.Namespace) -> None:
    from resnet_bench.search.config import load_study_file

    # A study file names the study and its default storage; with --storage alone the study says the rest.
    config = load_study_file(args.study_file) if args.study_file or not args.storage else None
    study_name = args.study_name or (config.name if config is not None else None)
    storage = args.storage or f"sqlite:///{(Path('reports') / study_name / 'study.db').resolve()}"
    from resnet_bench.search.trials import load_trials, open_existing_storage, study_names

    if study_name is None:
        names = study_names(open_existing_storage(storage))
        if len(names) != 1:
            held = f"it holds {', '.join(names)}" if names else "it holds no study"
            raise BadInputError(f"--study-name is needed to choose a study in {storage}; {held}")
        study_name = names[0]
    from resnet_bench.report.analysis import build_report
    from resnet_bench.report.export import check_writable, write_report
    from resnet_bench.report.published import published_points_for

    out = Path(args.out) if args.out else Path("reports") / study_name
    check_writable(out)
    with status_spinner(f"reading study {study_name}"):
        study = load_trials(storage, study_name, config)
        report = build_report(study, published_points_for(study))
        paths = write_report(report, out)
    if args.format != "table":
        print_records(records(report.trials), args.format)
        return
    _render(report, paths)


def records(frame: Any) -> list[dict[str, Any]]:
    """Rows as plain JSON values: missing values become null, nullable integers plain integers."""
    return json.loads(frame.to_json(orient="records", double_precision=15))


def _render(report: Any, paths: dict[str, Path]) -> None:
    from rich.table import Table

    from resnet_bench.report.text import summary_lines

    console = stdout_console()
    summary = Table(title=f"Pareto report of {report.study.name}", show_header=False, title_justify="left")
    summary.add_column(style="bold", no_wrap=True)
    summary.add_column(overflow="fold")
    for label, text in summary_lines(report):
        summary.add_row(label, text)
    console.print(summary)
    print_front(report)
    if len(report.published):
        console.print(f"{len(report.published)} published results on {report.study.dataset} are on the chart "
                      "and in report.md.")
    console.print("Wrote " + ", ".join(str(p) for p in paths.values()), soft_wrap=True)


def print_front(report: Any, caption: str | None = None) -> None:
    """The front as a rich table, cheapest first, baselines in bold (what `report` and `sweep` show)."""
    from rich.table import Table

    from resnet_bench.report.text import front_rows

    console = stdout_console()
    rows = front_rows(report, test_interval=False)
    if not rows:
        console.print("The front is empty: no trial has been trained yet.")
        if caption:
            console.print(caption)
        return
    objectives = ", ".join(f"{d} {m}" for m, d in report.study.objectives)
    front = Table(title=f"Pareto front of {report.study.name}, cheapest first ({objectives}; baselines in bold)",
                  title_justify="left", caption=caption)
    for header in rows[0]:
        if header == "network":
            front.add_column(header, overflow="fold", ratio=1, min_width=12)
        else:  # numbers stay on one line; the network's one-line form folds
            front.add_column(header, justify="right", no_wrap=True)
    for row in rows:
        row["network"] = row["network"].replace(",", ", ")  # lets the one-line form wrap between its fields
        front.add_row(*row.values(), style="bold" if row["network"].endswith("(baseline)") else None)
    console.print(front)
