"""The report's files: trials.csv, front.csv, report.md, report.html (one self-contained page), two PNGs and
summary.json."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from resnet_bench.files import atomic_path, check_writable
from resnet_bench.report.analysis import Report
from resnet_bench.report.plots import hypervolume_chart, pareto_chart
from resnet_bench.report.text import (
    baselines_off_front,
    confirm_conditions,
    confirmed_rows,
    front_rows,
    names_a_baseline,
    network_name,
    percent_interval,
    published_rows,
    summary_lines,
    tau_text,
)
from resnet_bench.units import gflops_cell, plural

CONFIRMED = "Confirmed: the front and the baselines re-trained with more seeds"


def _confirmed_words(report: Report) -> str:
    return (f"Re-trained by `resnet-bench confirm` {confirm_conditions(report.confirmed)}, measured on the search's "
            "validation images; mean ± standard deviation over seeds, in points. "
            f"{tau_text(report.confirmed)}.")

FILES = ("trials.csv", "front.csv", "report.md", "report.html", "pareto.png", "hypervolume.png", "summary.json")


def write_report(report: Report, folder: Path) -> dict[str, Path]:
    """Write every file of the report into the folder; return them by name."""
    check_writable(folder)
    paths = {name: folder / name for name in FILES}
    # Each file whole or not at all (a full disk leaves the previous one): written beside, then renamed.
    with atomic_path(paths["trials.csv"]) as tmp:
        report.trials.to_csv(tmp, index=False)
    with atomic_path(paths["front.csv"]) as tmp:
        report.front.to_csv(tmp, index=False)
    images = {}
    for name, chart in (("pareto.png", pareto_chart), ("hypervolume.png", hypervolume_chart)):
        with atomic_path(paths[name]) as tmp:
            chart(report, tmp)
            images[name] = tmp.read_bytes()
    texts = {"report.md": markdown(report), "report.html": page(report, images),
             "summary.json": json.dumps(summary(report), indent=1) + "\n"}
    for name, text in texts.items():
        with atomic_path(paths[name]) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return paths


def summary(report: Report) -> dict[str, Any]:
    """The report's summary as plain JSON values: the summary's lines, the hypervolume (also against the training
    seconds spent) and the rung estimates' rank correlations (the terminal's --format json prints the trials; this
    file holds what is said of them)."""
    return {
        "study": report.study.name, "hypervolume": report.hypervolume,
        "reference_point": report.reference.point if report.reference is not None else None,
        "counts": report.counts, "train_seconds": report.train_seconds,
        "wall_seconds": report.wall_seconds, "running_seconds": report.running_seconds,
        "rung_taus": [r.to_dict() for r in report.rung_taus],
        # The anytime curve against compute (hypervolume.png's right panel): [training seconds, hypervolume].
        "hypervolume_by_train_seconds": [[float(s), float(h)] for s, h in report.by_seconds.itertuples(index=False)],
        "summary": {label: text for label, text in summary_lines(report)},
    }


# -- Markdown -----------------------------------------------------------------------------------------------

def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[dict[str, str]]) -> str:
    """A GitHub-flavoured Markdown table (numbers right-aligned)."""
    if not rows:
        return ""
    headers = list(rows[0])
    align = ["---" if h in ("network", "source", "notes") else "---:" for h in headers]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_md_cell(r[h]) for h in headers) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def markdown(report: Report) -> str:
    """report.md: the summary, the front, the charts (beside it as PNG files), the published results."""
    study = report.study
    parts = [f"# Pareto report: {study.name}\n", f"Storage: `{study.storage}`\n"]
    parts += ["## Summary\n", "".join(f"- **{label}**: {text}\n" for label, text in summary_lines(report))]
    parts.append(f"## Pareto front, cheapest first ({plural(len(report.front), 'network')})\n")
    rows = front_rows(report)
    parts.append(markdown_table(rows + baselines_off_front(report)) if rows
                 else "The front is empty: no trial has been trained yet.\n")
    if report.confirmed is not None:
        parts += [f"\n## {CONFIRMED}\n", f"{_confirmed_words(report)}\n\n",
                  markdown_table(confirmed_rows(report.confirmed))]
    parts.append("\n![Validation accuracy against GFLOPs](pareto.png)\n\n"
                 "![Hypervolume after each trial and against training time]"
                 "(hypervolume.png)\n")
    published = published_rows(report)
    if published:
        parts += [f"\n## Published results on {study.dataset}\n",
                  "Test accuracy as published; GFLOPs and parameters of the same network as our profiler "
                  "measures it on this data set's images.\n\n", markdown_table(published)]
    parts.append("\nAll trials, with their Pareto ranks and intervals: `trials.csv`; the front: `front.csv`.\n")
    return "\n".join(p.rstrip("\n") + "\n" for p in parts)


# -- HTML ---------------------------------------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; padding: 1rem;
       max-width: 72rem; color: #1a1a1a; background: #fff; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dt { font-weight: 600; } dd { margin: 0; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; font-size: .9rem; }
th, td { padding: .3rem .6rem; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }
th.text, td.text { text-align: left; white-space: normal; min-width: 12rem; overflow-wrap: anywhere; }
tr.baseline td { font-weight: 600; }
.item { white-space: nowrap; }
img { max-width: 100%; height: auto; display: block; margin: 1rem 0; }
code { overflow-wrap: anywhere; }
@media (max-width: 40rem) { body { font-size: 14px; padding: .6rem; } dl { grid-template-columns: 1fr; } }
"""
_TEXT_COLUMNS = ("network", "source", "notes", "spec", "reason")


def html_table(rows: list[dict[str, str]], table_id: str, baseline_key: str | None = None) -> str:
    """An escaped HTML table in a horizontally scrolling box (phones)."""
    if not rows:
        return ""
    headers = list(rows[0])

    def cls(h: str) -> str:
        return ' class="text"' if h in _TEXT_COLUMNS else ""
    head = "".join(f"<th{cls(h)}>{html.escape(h)}</th>" for h in headers)
    body = []
    for r in rows:
        mark = ' class="baseline"' if baseline_key and names_a_baseline(r.get(baseline_key, "")) else ""
        body.append(f"<tr{mark}>" + "".join(f"<td{cls(h)}>{_cell(h, r[h])}</td>" for h in headers) + "</tr>")
    return (f'<div class="scroll"><table id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _cell(header: str, text: str) -> str:
    """An escaped cell; a network's one-line form may break after a comma only, never at a hyphen (layers=1-2-1)."""
    if header not in ("network", "spec"):
        return html.escape(text)
    return ",<wbr>".join(f'<span class="item">{html.escape(part)}</span>' for part in text.split(","))


def _epochs(row: dict) -> str:
    """Epochs trained, of the recipe's: a stopped trial's last rung."""
    if row["epochs"] is None:
        return ""
    return f"{row['epochs']} of {row['recipe_epochs']}" if row["recipe_epochs"] is not None else str(row["epochs"])


def _image(png: bytes, alt: str, image_id: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img id="{image_id}" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def page(report: Report, images: dict[str, bytes]) -> str:
    """report.html: one file with its images embedded, no scripts, nothing fetched: it opens offline anywhere."""
    study = report.study
    summary = "".join(f"<dt>{html.escape(label)}</dt><dd>{html.escape(text)}</dd>"
                      for label, text in summary_lines(report))
    rows = front_rows(report)
    front = (html_table(rows + baselines_off_front(report), "front", "network") if rows
             else '<p id="front-empty">The front is empty: no trial has been trained yet.</p>')
    confirmed_html = ""
    if report.confirmed is not None:
        table = html_table(confirmed_rows(report.confirmed), "confirmed", "network")
        confirmed_html = f"<h2>{html.escape(CONFIRMED)}</h2><p>{html.escape(_confirmed_words(report))}</p>{table}"
    published = published_rows(report)
    published_html = ""
    if published:
        published_html = (f"<h2>Published results on {html.escape(study.dataset)}</h2><p>Test accuracy as published; "
                          "GFLOPs and parameters of the same network as our profiler measures it on this data set's "
                          f"images.</p>{html_table(published, 'published')}")
    trials = [{"#": str(r["number"]), "status": str(r["status"]), "rank": "" if r["rank"] is None else str(r["rank"]),
               "network": network_name(r),
               "epochs": _epochs(r),
               "val acc": percent_interval(r["val_accuracy"], None, None),
               "GFLOPs": "" if r["gflops"] is None else gflops_cell(r["gflops"]),
               "reason": str(r["reason"] or "")}
              for r in report.trials.astype(object).where(report.trials.notna(), None).to_dict("records")]
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pareto report: {html.escape(study.name)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>Pareto report: {html.escape(study.name)}</h1>
<p>Storage: <code>{html.escape(study.storage)}</code></p>
<h2>Summary</h2>
<dl id="summary">{summary}</dl>
<h2>Pareto front, cheapest first ({plural(len(report.front), 'network')})</h2>
{front}
{confirmed_html}
{_image(images["pareto.png"], "Validation accuracy against GFLOPs", "pareto")}
<h2>Hypervolume after each trial and against training time</h2>
{_image(images["hypervolume.png"], "Hypervolume after each trial and against training time", "hypervolume")}
{published_html}
<details><summary>All {len(report.trials)} trials</summary>
{html_table(trials, "trials")}
</details>
</body>
</html>
"""
