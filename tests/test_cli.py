"""The `resnet-bench` command end to end: results on stdout, one-line errors on stderr, exit codes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from resnet_bench.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own exits
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_profile_json_is_one_document(capsys):
    code, out, err = run(capsys, "profile", "resnet50", "block=basic,layers=3-3-3,stem=cifar,stem_width=16,num_classes=10",
                         "--format", "json")
    assert code == 0 and err == ""
    rows = json.loads(out)
    assert [r["params"] for r in rows] == [25_557_032, 272_474]
    assert rows[0]["spec"] == "block=bottleneck,layers=3-4-6-3"


def test_models_csv_lists_every_preset(capsys):
    from resnet_bench import presets

    code, out, _ = run(capsys, "models", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["name"] for r in rows] == presets.names()
    code, out, _ = run(capsys, "models", "--family", "wrn", "--format", "json")
    assert [r["name"] for r in json.loads(out)] == ["wrn16_8", "wrn28_10", "wrn40_4"]


def test_table_goes_to_stdout(capsys):
    code, out, err = run(capsys, "profile", "resnet20")
    assert code == 0 and "269,722" in out and err == ""


@pytest.mark.parametrize(
    "argv, words",
    [
        (["profile", "resnet51"], ["unknown model 'resnet51'", "resnet50"]),
        (["profile", "block=bottleneck,groups=0"], ["groups=0", ">= 1"]),
        (["profile", "block=basic,layers=3-0-3"], ["layers[1]=0"]),
        (["profile", "block=dense,layers=2"], ["block='dense'", "preact_bottleneck"]),
        (["profile", "block=basic,shortcut=D"], ["shortcut='D'", "none"]),
        (["profile", "block=basic,depth=3"], ["unknown spec field 'depth'"]),
        (["profile", "block=basic,groups=32"], ["groups=32 is a bottleneck option"]),
        (["profile", "missing.json"], ["'missing.json' does not exist"]),
        (["profile", "resnet20", "--format", "xml"], ["--format 'xml'", "table, json, csv"]),
        (["models", "--family", "vgg"], ["--family 'vgg'", "torchvision"]),
        (["frobnicate"], ["invalid choice"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, words):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err
    assert "Traceback" not in err


def test_bad_json_file(capsys, tmp_path):
    path = tmp_path / "net.json"
    path.write_text("{not json")
    code, _, err = run(capsys, "profile", str(path))
    assert code == 2 and "does not parse" in err and len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback(capsys):
    from resnet_bench.presets import UnknownPresetError

    with pytest.raises(UnknownPresetError):
        main(["--debug", "profile", "resnet51"])


def test_python_dash_m_and_version():
    done = subprocess.run([sys.executable, "-m", "resnet_bench", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("resnet-bench ")
