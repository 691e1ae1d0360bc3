"""The CPU path: precision and memory format resolved in one place, recorded with every run, forced from the study
file and the command line; the workers rule on hand-given machines; every process's threads set explicitly."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys

import optuna
import pytest
import torch

import resnet_bench as rb
from resnet_bench import cpu
from resnet_bench.devices import check_dtype, parse_memory_format, resolve_channels_last, resolve_precision
from resnet_bench.errors import BadInputError
from resnet_bench.recipe import Recipe
from resnet_bench.search.config import load_study_file
from resnet_bench.search.records import TrialRecord
from resnet_bench.search.storage import PRECISION, locate_study
from resnet_bench.search.study import study_precision
from resnet_bench.search.sweep import Sweep
from resnet_bench.search.workers import SMALL_NETWORK_GFLOPS, worker_plan
from resnet_bench.spec import ResNetSpec
from resnet_bench.train import spec_for_data, train

# conftest gives every test 2 idle cores; these tests read the machine's
REAL_PHYSICAL_CORES, REAL_IDLE_CORES = cpu.physical_cores, cpu.idle_cores

from .helpers import TINY_STUDY, run, small_splits, write


def machine(monkeypatch, *, native: bool) -> None:
    """A CPU with (or without) native bf16, as the detection would report it."""
    monkeypatch.setattr(cpu, "native_bf16", lambda: native)


# -- precision: the rule, and its detection ------------------------------------------------------------------

@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_on_a_cpu_with_and_without_native_bf16(monkeypatch, native, expected):
    machine(monkeypatch, native=native)
    assert resolve_precision("auto", "cpu") == expected
    assert check_dtype("auto", "cpu") == {"bf16": "bfloat16", "fp32": "float32"}[expected]  # profile's --dtype auto
    assert resolve_precision("auto", "cuda") == "bf16"  # a GPU always has it; no CPU probe asked
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"  # forced


def test_a_bad_precision_or_memory_format_names_the_accepted_values():
    with pytest.raises(BadInputError, match="precision='fp8' is not accepted; use one of: auto, bf16, fp32"):
        resolve_precision("fp8", "cpu")
    with pytest.raises(BadInputError, match="'NHWC' is not accepted; use one of: auto, channels_last, nchw"):
        parse_memory_format("NHWC")
    assert [parse_memory_format(n) for n in ("auto", "channels_last", "nchw")] == [None, True, False]
    assert resolve_channels_last(False) is False and resolve_channels_last(True) is True
    assert resolve_channels_last(None) is True  # the faster on every device measured


@pytest.fixture
def no_probe_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cpu._cached_probe.cache_clear()
    yield tmp_path
    cpu._cached_probe.cache_clear()


def test_no_bf16_flag_means_fp32_without_a_probe(monkeypatch, no_probe_cache):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"sse2", "avx2", "avx512f"}))
    monkeypatch.setattr(cpu, "_apple_bf16", lambda: False)
    monkeypatch.setattr(cpu, "probe_bf16_speedup", lambda: pytest.fail("probed a CPU without bf16 instructions"))
    assert cpu.native_bf16() is False


@pytest.mark.parametrize("speedup, native", [(1.9, True), (1.05, False), (0.4, False)])
def test_the_flag_is_confirmed_by_a_probe_cached_per_machine(monkeypatch, no_probe_cache, speedup, native):
    """A flag alone is not enough (a hypervisor may pass it while oneDNN emulates): bf16 must be PROBE_MIN_SPEEDUP
    times faster; the answer is kept per CPU model and torch version, and the probe runs once."""
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx512f", "amx_bf16"}))
    calls = []
    monkeypatch.setattr(cpu, "probe_bf16_speedup", lambda: calls.append(1) or speedup)
    assert cpu.native_bf16() is native and cpu.native_bf16() is native
    cpu._cached_probe.cache_clear()  # a new process: reads the file
    assert cpu.native_bf16() is native and len(calls) == 1
    cache = json.loads((no_probe_cache / "resnet-bench" / "cpu.json").read_text())
    assert [entry["bf16_speedup"] for entry in cache.values()] == [speedup]
    assert f"torch {torch.__version__}" in next(iter(cache))


def test_the_probe_is_fp32_time_over_bf16_time_the_median_of_its_runs(monkeypatch):
    # A stand-in clock: after the warm-up, fp32 steps take 2, 9 (an outlier) and 2 s, bf16 steps 1, 1 and 4 s:
    # medians 2 and 1, a ratio of exactly 2. A probe that averaged, or divided the other way, would not give 2.
    ticks = iter([0, 1, 1, 2] + [t for fp32, bf16 in ((2, 1), (9, 1), (2, 4)) for t in (0, fp32, 0, bf16)])
    monkeypatch.setattr(cpu.time, "perf_counter", lambda: next(ticks))
    assert cpu.probe_bf16_speedup(repeats=3) == 2.0
    monkeypatch.undo()
    real = cpu.probe_bf16_speedup(repeats=1)  # and on this machine's convolutions: a finite ratio
    assert isinstance(real, float) and math.isfinite(real) and real > 0


# -- what a run trains in, and its record ---------------------------------------------------------------------

TINY = ResNetSpec(layers=(1, 1), stem="cifar", stem_width=8)
ONE_EPOCH = Recipe(epochs=1, batch_size=128, lr=0.2, warmup_epochs=0.2, schedule="linear")


@pytest.fixture(scope="module")
def small():
    return small_splits(train=512, val=500)


@pytest.mark.parametrize("native, precision, channels_last, expected", [
    (True, "auto", None, ("bf16", "channels_last")),
    (False, "auto", None, ("fp32", "channels_last")),
    (True, "fp32", False, ("fp32", "nchw")),
    (False, "bf16", True, ("bf16", "channels_last")),
])
def test_a_run_records_the_precision_and_memory_format_it_trained_in(
        monkeypatch, small, native, precision, channels_last, expected):
    machine(monkeypatch, native=native)
    torch.manual_seed(0)
    model = rb.build_model(spec_for_data(TINY, small))
    result = train(model, small, dataclasses.replace(ONE_EPOCH, precision=precision, channels_last=channels_last),
                   "cpu")
    assert (result.precision, result.memory_format) == expected
    assert result.to_row()["precision"] == expected[0] and result.to_row()["memory_format"] == expected[1]
    conv = next(m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)
                and m.in_channels > 1)  # a 1x1 kernel or 1 channel is contiguous in both formats
    assert conv.dtype == torch.float32  # autocast: the weights stay fp32, the products run in bf16
    assert conv.is_contiguous(memory_format=torch.channels_last) == (expected[1] == "channels_last")


def test_bf16_trains_differently_from_fp32(small):
    """The precision is a real condition of the result (hence recorded): the same seed gives other weights."""
    runs = []
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        runs.append(train(rb.build_model(spec_for_data(TINY, small)), small,
                          dataclasses.replace(ONE_EPOCH, precision=precision), "cpu").history[0].train_loss)
    assert runs[0] != runs[1]


# -- a study trains every trial alike ------------------------------------------------------------------------

def tiny_config(tmp_path, recipe_lines: str = ""):
    text = TINY_STUDY.replace("batch_size = 256", "batch_size = 256\n" + recipe_lines).replace(
        'baselines = ["resnet20"]', "baselines = []")  # the sampled networks are tiny; resnet20 is not
    return load_study_file(write(tmp_path, text.replace("n_trials = 2", "n_trials = 1")))


def records(location) -> list[TrialRecord]:
    study = optuna.load_study(study_name=location.name, storage=location.storage)
    return [TrialRecord.from_attrs(t.user_attrs) for t in study.get_trials()]


def test_a_study_resolves_auto_once_and_every_machine_trains_in_it(monkeypatch, tmp_path):
    """Made on a CPU with native bf16, the study trains in bf16; a worker on a CPU without it joins the same study
    and still trains in bf16 (slower, but its results compare), never in its own choice."""
    config = tiny_config(tmp_path)
    location = locate_study("tiny", out=tmp_path)
    machine(monkeypatch, native=True)
    Sweep(config, location, device="cpu").run(n_trials=1)
    machine(monkeypatch, native=False)
    Sweep(config, location, device="cpu").run(n_trials=1)
    trained = [r for r in records(location) if r.status == "trained"]
    assert len(trained) == 2 and {r.precision for r in trained} == {"bf16"}
    assert {r.recipe["precision"] for r in trained} == {"auto"}  # the recipe as the study file gives it
    assert optuna.load_study(study_name="tiny", storage=location.storage).user_attrs[PRECISION] == "bf16"
    assert {r.memory_format for r in trained} == {"channels_last"} and all(r.threads for r in trained)


@pytest.mark.parametrize("device, recipe_precision, here, expected", [
    ("cpu", "auto", "bf16", "fp32"), ("cuda:0 (NVIDIA H100)", "auto", "fp32", "bf16"), ("cpu", "bf16", "fp32", "fp32")])
def test_a_study_of_an_earlier_release_keeps_what_its_trials_trained_in(device, recipe_precision, here, expected):
    """Its trials stored no precision: auto was then fp32 on the CPU and bf16 on CUDA, and the study goes on in
    that, whatever this machine would choose; a trial whose recipe forced its precision says nothing of auto."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    attrs = {"status": "trained", "device": device, "recipe": {**Recipe().to_dict(), "precision": recipe_precision}}
    study.add_trial(optuna.trial.create_trial(values=[0.5, 0.1], user_attrs=attrs))
    assert study_precision(study, lambda: here) == expected
    assert study.user_attrs[PRECISION] == expected
    assert study_precision(study, lambda: pytest.fail("resolved twice")) == expected  # stored: never again


def test_precision_and_memory_format_forced_from_the_study_file(monkeypatch, tmp_path):
    machine(monkeypatch, native=True)
    config = tiny_config(tmp_path, 'precision = "fp32"\nchannels_last = false')
    location = locate_study("tiny", out=tmp_path)
    Sweep(config, location, device="cpu").run(n_trials=1)
    trained = [r for r in records(location) if r.status == "trained"]
    assert [(r.precision, r.memory_format) for r in trained] == [("fp32", "nchw")]


def test_precision_a_study_file_cannot_take(capsys, tmp_path):
    code, out, err = run(capsys, "sweep", str(write(tmp_path, TINY_STUDY.replace(
        "batch_size = 256", 'batch_size = 256\nprecision = "fp16"'))), "--dry-run")
    assert code == 2 and "recipe.precision='fp16'" in err and "auto, bf16, fp32" in err


def test_train_forces_precision_and_memory_format_from_the_command_line(capsys, monkeypatch):
    machine(monkeypatch, native=True)
    code, out, err = run(capsys, "train", "block=basic,layers=1-1,stem=cifar,stem_width=4", "--epochs", "1",
                         "--device", "cpu", "--precision", "fp32", "--memory-format", "nchw", "--threads", "1",
                         "--format", "json")
    assert code == 0, err
    row = json.loads(out)[0]
    assert (row["precision"], row["memory_format"], row["threads"]) == ("fp32", "nchw", 1)
    code, _, err = run(capsys, "train", "resnet20", "--precision", "fp16")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--precision" in err and "fp32" in err


def test_profile_train_forces_dtype_and_memory_format(capsys):
    code, out, err = run(capsys, "profile", "block=basic,layers=1-1,stem=cifar,stem_width=4", "--train",
                         "--runs", "1", "--batch-size", "4", "--dtype", "bfloat16", "--memory-format",
                         "channels_last", "--threads", "1", "--format", "json")
    assert code == 0, err
    row = json.loads(out)[0]
    assert (row["dtype"], row["memory_format"], row["threads"]) == ("bfloat16", "channels_last", 1)
    code, out, err = run(capsys, "profile", "resnet20", "--latency", "--runs", "1", "--batch-size", "2",
                         "--format", "json")
    row = json.loads(out)[0]
    assert code == 0 and (row["dtype"], row["memory_format"]) == ("float32", "nchw")  # defaults as before


# -- workers and threads ---------------------------------------------------------------------------------------

def plan(cores, gflops, *, gpus=0, latency=False, n_trials=None, workers=None, threads=None, idle=None):
    p = worker_plan(workers=workers, trials_per_gpu=None, threads=threads, cores=cores, gpus=gpus,
                    largest_gflops=gflops, needs_latency=latency, n_trials=n_trials, idle=idle)
    return p.workers, p.threads


def test_the_workers_rule_on_hand_given_machines():
    small, large = SMALL_NETWORK_GFLOPS / 10, SMALL_NETWORK_GFLOPS * 4
    assert plan(2, small) == (2, 1)  # the quickstart on the project's machine: two single-thread workers
    assert plan(16, small) == (16, 1)
    assert plan(16, small, n_trials=3) == (3, 5)  # never more workers than trials; the cores still all used
    assert plan(2, large) == (1, 2) and plan(4, large) == (2, 2) and plan(16, large) == (4, 4)
    assert plan(16, None) == (4, 4)  # no bound on GFLOPs: as for large networks
    assert plan(1, small) == (1, 1) and plan(1, large) == (1, 1)
    assert plan(16, small, latency=True) == (1, 16)  # latency is measured alone
    assert plan(16, small, gpus=2) == (2, 8)  # one worker per GPU
    assert plan(16, small, workers=3) == (3, 5) and plan(16, small, workers=3, threads=2) == (3, 2)  # as asked
    # Another process keeps cores busy: no worker gets more threads than the idle cores, the workers stay.
    assert plan(2, large, idle=1) == (1, 1) and plan(2, small, idle=1) == (2, 1) and plan(16, large, idle=3) == (4, 3)
    assert plan(16, small, latency=True, idle=5) == (1, 5) and plan(16, small, workers=2, threads=8, idle=1) == (2, 8)
    for cores in (1, 2, 3, 4, 6, 8, 12, 64):
        for gflops in (small, large, None):
            workers, threads = plan(cores, gflops)
            assert workers * threads <= cores  # never oversubscribed


def test_use_threads_sets_intra_and_inter_op_threads_in_a_fresh_process():
    code = ("from resnet_bench.cpu import physical_cores, use_threads; import torch; n = use_threads(None); "
            "print(n, physical_cores(), torch.get_num_threads(), torch.get_num_interop_threads()); "
            "print(use_threads(3), torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    chosen, cores, intra, inter, asked, now = map(int, out)
    assert 1 <= chosen <= cores and chosen == intra and inter == 1  # the idle cores, of the physical ones
    assert asked == now == 3  # as asked


@pytest.mark.parametrize("busy, expected", [((0.0, 0.0), 2), ((1.0, 0.0), 1), ((1.0, 1.0), 1), ((0.6, 0.3), 1)])
def test_threads_never_exceed_the_cores_other_processes_leave_idle(monkeypatch, busy, expected):
    """/proc/stat's ticks over the sample: a core another process keeps busy is not one of ours to use."""
    samples = iter([{0: (1000, 5000), 1: (1000, 5000)},
                    {cpu: (1000 + round(100 * b), 5000 + round(100 * (1 - b))) for cpu, b in enumerate(busy)}])
    monkeypatch.setattr(cpu, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(cpu.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(cpu, "_threads_per_core", lambda: 1)
    assert REAL_IDLE_CORES() == expected


def test_cpu_times_read_every_logical_cpu():
    times = cpu._cpu_times()
    assert set(os.sched_getaffinity(0)) <= set(times)
    assert all(busy >= 0 and idle >= 0 for busy, idle in times.values())


def test_physical_cores_counts_smt_siblings_once(monkeypatch):
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setattr(cpu, "_threads_per_core", lambda: 2)
    assert REAL_PHYSICAL_CORES() == 4


@pytest.mark.slow
def test_sweep_chooses_its_workers_and_their_threads_by_the_rule(tmp_path):
    """No --workers: a study of small networks runs single-thread workers, one per core (at most one per trial),
    and each worker's trials record the threads the rule gave it."""
    text = TINY_STUDY.replace("max_params = 300000", "max_params = 300000\nmax_gflops = 0.05").replace(
        "n_trials = 2", "n_trials = 3")
    storage = f"sqlite:///{tmp_path / 'w.db'}"
    done = subprocess.run([sys.executable, "-m", "resnet_bench", "sweep", str(write(tmp_path, text)), "--storage",
                           storage, "--out", str(tmp_path), "--device", "cpu", "--format", "json"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    expected = worker_plan(workers=None, trials_per_gpu=None, threads=None, cores=REAL_PHYSICAL_CORES(), gpus=0,
                           largest_gflops=0.05, needs_latency=False, n_trials=3)
    trained = [r for r in records(locate_study("tiny", storage=storage)) if r.status == "trained"]
    # The threads are the rule's, or fewer where other processes (other tests) kept cores busy at the start.
    assert len(trained) == 3 and len({r.threads for r in trained}) == 1 and trained[0].threads <= expected.threads
    if expected.workers > 1:
        assert f"{expected.workers} worker processes of" in done.stderr and "worker 2:" in done.stderr


def test_workers_that_start_together_each_find_the_folder_writable(tmp_path):
    """Default workers start at once and each checks the study's folder: their write probes never collide (they
    once shared one name, and a worker whose probe another removed failed with 'cannot be written')."""
    import threading

    from resnet_bench.files import check_writable

    errors = []

    def check() -> None:
        for _ in range(200):
            try:
                check_writable(tmp_path / "study")
            except BadInputError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=check) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and list((tmp_path / "study").iterdir()) == []


def test_what_a_run_of_an_earlier_release_trained_in():
    """Records and checkpoints before this release stored no precision: auto then meant bf16 on CUDA only."""
    from resnet_bench.recipe import precision_trained

    assert precision_trained("bf16", "auto", "cpu") == "bf16"  # stored: as stored
    assert precision_trained("", "auto", "cpu") == "fp32" and precision_trained("", "auto", "cuda:0 (H100)") == "bf16"
    assert precision_trained("", "bf16", "cpu") == "bf16" and precision_trained("", "auto", "") == ""
