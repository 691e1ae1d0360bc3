"""The main job on this CPU: `resnet-bench sweep` (the quickstart, fresh storage) with the previous release's CPU
settings forced, then with today's defaults, from the same commit, per seed; then the same networks again.

    python benchmarks/main_job_cpu.py [--seeds 0 1] [--out bench-main-job] [--parts searches,same] [--json F]

- before: the quickstart study with `precision = "fp32"` and `channels_last = false` in its [recipe], run as one
  worker with all the physical cores (`--workers 1 --threads N`): what the previous release did on a CPU;
- after: `resnet-bench sweep` as a user runs it (precision and memory format auto, workers by the rule).
Each pair runs the study's seed (the sampler, the split, the weights); the pairs alternate which goes first. For
each run: the command's wall time, its trained trials, their training seconds and the front's hypervolume from the
study's reference point. The workers' samplers draw other candidates than a single worker's, so the hypervolumes
compare the two searches, each one draw of a seed; the spread between seeds is the yardstick.

The same networks (part `same`): a search's wall time depends on the networks it happens to draw (seed 1's
before-run drew a tenth of the GFLOPs of seed 0's), so the networks the `before` run of the first seed trained are
enqueued, in its order, into two fresh studies of the same file, one with the previous release's settings forced
and one under today's defaults (`resnet-bench sweep` as a user runs it, its workers by the rule), which the sweep
then trains one after the other: the same work in one run, so the wall times compare. The
same enqueued networks under the next seed (another split, other weights) give the spread between seeds that the
per-network accuracy differences between fp32 and bf16 are set beside.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from resnet_bench.cpu import physical_cores
from resnet_bench.search.config import load_study_file
from resnet_bench.search.trials import load_trials


def study_text(seed: int, name: str, old: bool) -> str:
    text = load_study_file("quickstart").source
    text = text.replace('name = "quickstart"', f'name = "{name}"', 1).replace("seed = 0 ", f"seed = {seed} ", 1)
    if old:
        text = text.replace('name = "fast"\n', 'name = "fast"\nprecision = "fp32"\nchannels_last = false\n', 1)
    data = tomllib.loads(text)  # the copy reads as intended
    assert data["name"] == name and data["seed"] == seed and (data["recipe"].get("precision") == "fp32") == old
    return text


def sweep(out: Path, seed: int, old: bool) -> dict:
    name = f"quickstart-{'before' if old else 'after'}-seed{seed}"
    path = out / f"{name}.toml"
    path.write_text(study_text(seed, name, old))
    command = [sys.executable, "-m", "resnet_bench", "sweep", str(path), "--out", str(out), "--device", "cpu",
               "--format", "json"]
    if old:
        command += ["--workers", "1", "--threads", str(physical_cores())]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    from resnet_bench.report.analysis import build_report

    storage = f"sqlite:///{out / name / 'study.db'}"
    report = build_report(load_trials(storage, name))
    trained = report.trials[report.trials["status"] == "trained"]
    return {"name": name, "seed": seed, "settings": "before" if old else "after", "seconds": round(seconds, 1),
            "trained": len(trained), "train_seconds": round(float(trained["train_seconds"].sum()), 1),
            "hypervolume": round(float(report.hypervolume), 6), "precision": sorted(set(trained["precision"])),
            "threads": sorted({int(t) for t in trained["threads"]}),
            "best_val": round(float(trained["val_accuracy"].max()), 4),
            "storage": storage}


def replay(out: Path, source: dict, seed: int, old: bool = False) -> dict:
    """`resnet-bench sweep` with today's defaults (or, `old`, the previous release's settings forced, as `sweep`
    forces them) on a fresh study whose first trials are `source`'s trained networks, enqueued in its order (the
    baselines are enqueued by the study itself); its wall time and its trials."""
    import optuna

    from resnet_bench.search.study import open_study

    name = f"quickstart-same-{'before' if old else 'after'}-seed{seed}"
    path = out / f"{name}.toml"
    path.write_text(study_text(seed, name, old=old))
    storage = f"sqlite:///{out / name / 'study.db'}"
    (out / name).mkdir()
    study = open_study(load_study_file(path), storage, name)
    trained = [t for t in optuna.load_study(study_name=source["name"], storage=source["storage"]).get_trials()
               if t.user_attrs.get("status") == "trained"]
    for t in trained:
        if not t.user_attrs.get("baseline"):
            study.enqueue_trial(t.params)
    started = time.perf_counter()
    forced = ["--workers", "1", "--threads", str(physical_cores())] if old else []
    subprocess.run([sys.executable, "-m", "resnet_bench", "sweep", str(path), "--out", str(out), "--device", "cpu",
                    "--n-trials", str(len(trained)), "--format", "json", *forced], check=True,
                   stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    by_spec = {t.user_attrs["spec"]: t.user_attrs["val_accuracy"] for t in optuna.load_study(
        study_name=name, storage=storage).get_trials() if t.user_attrs.get("status") == "trained"}
    return {"name": name, "seed": seed, "seconds": round(seconds, 1), "val_accuracy": by_spec,
            "source_val_accuracy": {t.user_attrs["spec"]: t.user_attrs["val_accuracy"] for t in trained}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", default="bench-main-job", help="a fresh folder for the studies")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--parts", default="searches,same", help="searches, same, or both (default)")
    args = parser.parse_args()
    out = Path(args.out)
    parts = args.parts.split(",")
    runs = []
    if "searches" in parts:
        out.mkdir(parents=True, exist_ok=False)  # fresh storage: a resumed study would measure nothing
        for i, seed in enumerate(args.seeds):
            order = (True, False) if i % 2 == 0 else (False, True)
            pair = {old: sweep(out, seed, old) for old in order}
            runs += [pair[True], pair[False]]
            b, a = pair[True], pair[False]
            print(f"seed {seed}: before {b['seconds']:.1f} s (hypervolume {b['hypervolume']:.6f}, {b['trained']} "
                  f"trained, {b['train_seconds']:.0f} s of training, {b['precision']}, threads {b['threads']}); after "
                  f"{a['seconds']:.1f} s (hypervolume {a['hypervolume']:.6f}, {a['trained']} trained, "
                  f"{a['train_seconds']:.0f} s of training, {a['precision']}, threads {a['threads']}); "
                  f"{b['seconds'] / a['seconds']:.2f}x faster", flush=True)
    figures: dict = {"searches": runs}
    if "same" in parts:
        name = f"quickstart-before-seed{args.seeds[0]}"
        before = next((r for r in runs if r["name"] == name), None) or {
            "name": name, "storage": f"sqlite:///{out / name / 'study.db'}"}
        if "seconds" not in before:  # a searches part of an earlier run of this script, in the same --out
            before["seconds"] = float(json.loads((out / "searches.json").read_text())[name]["seconds"])
        # Both settings on the same networks, in this run: the previous release's, then today's (and today's under
        # the next seed, for the spread of accuracies between seeds).
        forced = replay(out, before, args.seeds[0], old=True)
        same = [replay(out, before, seed) for seed in args.seeds[:2]]
        first = same[0]
        print(f"the same {len(first['val_accuracy'])} networks: the previous release's settings {forced['seconds']:.1f}"
              f" s (the search that drew them: {before['seconds']:.1f} s), today's defaults {first['seconds']:.1f} s: "
              f"{forced['seconds'] / first['seconds']:.2f}x faster")
        rows = [{"spec": spec, "fp32": fp32, "bf16": first["val_accuracy"][spec],
                 "bf16_next_seed": same[-1]["val_accuracy"].get(spec)}
                for spec, fp32 in first["source_val_accuracy"].items()]
        for r in rows:
            print(f"  fp32 {r['fp32']:.2%}  bf16 {r['bf16']:.2%}  bf16 next seed {r['bf16_next_seed']:.2%}  "
                  f"{r['spec'][:70]}")
        gap = [r["bf16"] - r["fp32"] for r in rows]
        spread = [r["bf16_next_seed"] - r["bf16"] for r in rows if r["bf16_next_seed"] is not None]
        print(f"bf16 - fp32, same seed: mean {statistics.mean(gap):+.2%}, "
              f"mean |.| {statistics.mean(map(abs, gap)):.2%}, "
              f"max |.| {max(map(abs, gap)):.2%}; next seed - seed, bf16: mean |.| "
              f"{statistics.mean(map(abs, spread)):.2%}, max |.| {max(map(abs, spread)):.2%}")
        figures["same"] = {"search_seconds": before["seconds"], "before": forced, "runs": same, "rows": rows,
                           "speedup": round(forced["seconds"] / first["seconds"], 2)}
    if runs:
        (out / "searches.json").write_text(json.dumps({r["name"]: r for r in runs}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
