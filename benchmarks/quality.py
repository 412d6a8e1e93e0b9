"""Quality at equal cost: every selector at kept ratios (0.1 to 0.7) plus full data, over paired seeds.

Built on `raydata-agent tune` (raydata_agent/sweep.py): the grid selector x ratio x seed (plus one
full-data run per seed) runs as one sweep, 2 trials at a time on 2 CPUs, every trial nested under one
MLflow parent run. This script only writes the sweep and reads its trials back:
- a Table-1-shaped table (rows = selectors, columns = ratios): final val metric mean +- std over seeds,
  and the *realised* cost fraction of each cell (sample passes / full-data passes, whole run);
- paired differences against greedy, random_dynamic and infobatch at the same ratio (or the selectors
  of --against): mean over seeds of (selector - baseline) with a 95% t-interval (paired: same seed =
  same init, data order and data set);
- for data sets with ground truth ((b) digits with label noise, (c) mixture, the held-out (d), (e)): the
  share of the flipped, duplicate, hard and tail samples each selector trained on (mean over selection
  epochs; random gives ratio);
- on long-tailed sets ((d), (e)): the final mean recall of the rarest classes (`val_tail_recall`) beside
  the metric, with its own paired differences: selection must not starve the tail;
- the share of each selection epoch's budget forced by staleness (`selection_forced_share`, issue 30),
  where the run logged it (older runs did not: shown as "-");
- an accuracy-against-realised-cost plot; all of it logged on the sweep's parent run (quality/), and JSON.

Equal cost: every non-full selector follows the same schedule (selection.warmup_epochs full epochs,
then exactly ceil(ratio N) samples per epoch, then annealing on all data; docs/concepts/pool.md, "Cost accounting"),
so each cell's realised cost is the same across selectors; the table prints it so any deviation shows.

    .venv/bin/python benchmarks/quality.py --data a                 # shapes: agent + 3 baselines x 3 ratios x 5 seeds (~50 min on 2 CPUs)
    .venv/bin/python benchmarks/quality.py --data b --selectors data_agent greedy random_dynamic infobatch lead
    .venv/bin/python benchmarks/quality.py --data c --seeds 0 1 2 --epochs 10 --json /tmp/quality_c.json
    .venv/bin/python benchmarks/quality.py --task detection --variant noisy --ratios 0.5 0.7 0.9 --seeds 0 1 2
    .venv/bin/python benchmarks/quality.py --task segmentation --variant clean --ratios 0.5 --seeds 0 1 --epochs 4
    .venv/bin/python benchmarks/quality.py --data e --ratios 0.3 0.5 --selectors data_agent greedy random_dynamic infobatch lead  # held out
    .venv/bin/python benchmarks/quality.py --data b --ratios 0.1 0.2 --selectors data_agent cyclic random_dynamic  # issue 30
    .venv/bin/python benchmarks/quality.py --merge a_seeds012.json a_seeds34.json --json a.json   # pool earlier runs
    .venv/bin/python benchmarks/quality.py --merge a.json a_inv.json:random_dynamic=random_dynamic/inv  # a variant beside
    .venv/bin/python benchmarks/quality.py --merge b.json b_v.json:data_agent=data_agent/v --against data_agent  # ablation

Data sets: a = shapes (2000 train / 2000 val: one seed's SE at 95% is 0.49 pt); b = scikit-learn digits
with data.label_noise=0.3 (1437 / 360: digits has no more images, so one seed's SE is ~1.2 pt; the
paired intervals carry the comparison); c = mixture (3000 / 2000, label_noise 0.2).
(a)-(c) are the TUNING sets: every default was chosen on them. (d) and (e) are HELD OUT (HELD_OUT;
protocol in docs/guides/benchmarks.md): long-tailed (exponential profile), noisy training labels,
balanced clean validation (1000). d = shapes drawn long-tailed (imbalance 20, symmetric noise 0.2),
written once as JPEG files into a temp folder and read through data.name=imagefolder with its
standard recipe (RandomResizedCrop + flip, normalisation); e = textures (oriented gratings, in
memory; imbalance 20, class-pair noise 0.3: c -> c+1, the neighbouring orientation).
Detection and segmentation (--task, issue 29): generated sets (synthetic_det, synthetic_seg; 96 train /
32 val at 64 px, 6 epochs: sized for CPUs, too small for a 1-pt standard error), in two --variant:
clean (20% near-duplicates) and noisy (the same plus 30% of training images with one annotation
error); VARIANTS.
Extra `section.key=value` arguments go to every trial.

JSON keys (--json PATH):
  data, task, variant (detection, segmentation: clean | noisy; else null), epochs, seeds, ratios, selectors,
  command, machine, date, parent_run_id, tracking_uri, wall_s;
  held_out (bool: d, e);
  cells: [{selector, ratio, n, metric_mean, metric_std, cost_fraction, selection_cost_fraction,
           trained: {is_noisy|is_duplicate|is_hard|is_tail: share}, per_seed: {seed: metric},
           tail_recall_mean, tail_recall_std, forced_share}]  (full: ratio 1.0; the last three null where
           a trial did not log them);
  paired: [{selector, baseline, ratio, n, diff_mean, ci_low, ci_high}]   (95% t-interval over seeds);
  paired_tail_recall: the same for val_tail_recall (long-tailed sets);
  full_convergence: {seed: [val_metric of the last 3 epochs]}  (did full data converge?);
  rows: [{run_id, selector, seed, ratio, metric, cost_fraction, selection_cost_fraction, trained,
          tail_recall, forced_share}]  (one per finished trial: what --merge pools, so seeds added by a
        later run join the same table; rows of older JSON without the last two read as null).
"""
from __future__ import annotations

# A benchmark times internal parts (pool, store, tasks, data paths), so it imports them by module;
# whole runs go through the public API (`import raydata_agent as rda`).
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from quality_tables import tables  # noqa: E402  (the printed tables)

ALL_SELECTORS = ["data_agent", "lead", "greedy", "infobatch", "random_dynamic", "random_static", "ucb",
                 "eps_greedy", "cyclic"]
BASELINES = ("greedy", "random_dynamic", "infobatch")
# The default grid: the agent and the three baselines every table compares against. 4 selectors x
# 3 ratios x 5 seeds + 5 full-data runs = 65 trials, about 50 min at 2 trials at a time on 2 idle CPUs
# (45 s per shapes trial measured); pass --selectors for LEAD, UCB, eps-greedy, random_static.
DEFAULT_SELECTORS = ["data_agent", *BASELINES]
DATA = {  # data set flag -> run config overrides (sizes chosen so the default fits ~1 h on 2 CPUs)
    "a": {"data.name": "shapes", "data.num_samples": 2000, "data.val_samples": 2000, "train.epochs": 12},
    "b": {"data.name": "digits", "data.label_noise": 0.3, "train.epochs": 20},
    "c": {"data.name": "mixture", "data.label_noise": 0.2, "data.num_samples": 3000, "data.val_samples": 2000,
          "train.epochs": 15},
    # Held out: never used to choose a default (docs/guides/benchmarks.md). (d)'s files are written from
    # GENERATED["d"] (an in-memory set's data.* keys) once, then every trial reads them from disk.
    "d": {"data.name": "imagefolder", "data.image_size": 32, "train.epochs": 15},
    "e": {"data.name": "textures", "data.imbalance": 20, "data.label_noise": 0.3, "data.noise_kind": "pair",
          "data.num_samples": 3000, "data.val_samples": 1000, "train.epochs": 15},
}
HELD_OUT = ("d", "e")
GENERATED = {"d": {"name": "shapes", "imbalance": 20, "label_noise": 0.2, "noise_kind": "symmetric",
                   "num_samples": 3000, "val_samples": 1000}}
TASKS = {  # --task other than classification: its generated set, small enough for CPUs
    "detection": {"task.name": "detection", "data.name": "synthetic_det", "data.num_samples": 96,
                  "data.val_samples": 32, "data.image_size": 64, "train.batch_size": 16, "train.optimizer": "adamw",
                  "train.lr": 1e-3, "train.epochs": 6},
    "segmentation": {"task.name": "segmentation", "data.name": "synthetic_seg", "task.depth": 18,
                     "task.head_channels": 64, "data.num_samples": 96, "data.val_samples": 32, "data.image_size": 64,
                     "train.batch_size": 16, "train.optimizer": "adamw", "train.lr": 1e-3, "train.epochs": 6},
}
# --variant of a detection or segmentation set (issue 29). Near-duplicates in both: redundancy is in
# the wild either way. noisy: 30% of training images carry one annotation error (detection: wrong
# class, missing box, loose box; segmentation: class-swapped region, coarse mask, eroded mask).
# Validation is clean in both. The pool's is_noisy / is_duplicate give each cell's trained shares.
VARIANTS = {"clean": {"data.duplicates": 0.2},
            "noisy": {"data.label_noise": 0.3, "data.duplicates": 0.2}}
TRUTH = ("is_noisy", "is_duplicate", "is_hard", "is_tail")


def data_config(data: str) -> dict:
    """DATA[data], with a generated folder written first where the set is read from files (once per
    machine: a folder in the temp dir named by its settings, left alone when complete)."""
    flat = dict(DATA[data])
    if data in GENERATED:
        import hashlib

        from raydata_agent.data.jpeg_folder import write_data_folder

        spec = GENERATED[data]
        digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
        root = Path(tempfile.gettempdir()) / f"raydata_agent_quality_{data}_{digest}"
        flat["data.path"] = str(write_data_folder(root, spec))
    return flat


def sweep_file(args, out_dir: Path) -> Path:
    """The run config plus its sweep: section, exactly what `raydata-agent tune --config` reads."""
    if args.task == "classification":
        flat = data_config(args.data)
    else:
        flat = {**TASKS[args.task], **VARIANTS[args.variant]}
    if args.epochs:
        flat["train.epochs"] = args.epochs
    flat.update({"tracking.experiment": args.experiment, "tracking.log_snapshots": False,
                 "tracking.run_name": f"quality {args.task} {args.data if args.task == 'classification' else args.variant}",
                 "ray.storage_path": str(out_dir / "runs")})
    if args.device == "cuda":
        flat["train.use_gpu"] = True
    raw: dict = {}
    for key, value in flat.items():
        section, name = key.split(".")
        raw.setdefault(section, {})[name] = value
    raw["sweep"] = {"grid": {"selection.selector": args.selectors, "selection.ratio": args.ratios,
                             "train.seed": args.seeds},
                    "full_baseline": not args.no_full, "max_concurrent_trials": args.concurrent}
    path = out_dir / "quality_sweep.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def collect(tracking_uri: str, parent_run_id: str) -> list[dict]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    parent = client.get_run(parent_run_id)
    runs = client.search_runs([parent.info.experiment_id], max_results=5000,
                              filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")
    rows = []
    for run in runs:
        m, p = run.data.metrics, run.data.params
        if "val_metric" not in m or run.info.status != "FINISHED":
            continue
        full = p["selection.selector"] == "full"
        row = {"run_id": run.info.run_id, "selector": p["selection.selector"], "seed": int(p["train.seed"]),
               "ratio": 1.0 if full else float(p["selection.ratio"]), "metric": m["val_metric"],
               "cost_fraction": m.get("cost_fraction", float("nan")),
               "selection_cost_fraction": m.get("selection_cost_fraction", 1.0 if full else float("nan")),
               "trained": {t: m[f"selection_trained_{t}"] for t in TRUTH if f"selection_trained_{t}" in m},
               "tail_recall": m.get("val_tail_recall"), "forced_share": m.get("selection_forced_share")}
        if full:
            history = client.get_metric_history(run.info.run_id, "val_metric")
            row["last_vals"] = [h.value for h in sorted(history, key=lambda h: h.step)[-3:]]
        rows.append(row)
    return rows


def t_interval(diffs: np.ndarray) -> tuple[float, float, float]:
    from scipy import stats

    mean = float(diffs.mean())
    if len(diffs) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, len(diffs) - 1) * diffs.std(ddof=1) / np.sqrt(len(diffs)))
    return mean, mean - half, mean + half


def _mean_std(values: list) -> tuple[float | None, float | None]:
    """Mean and std over seeds, or (None, None) where a seed lacks the value (older runs)."""
    if not values or any(v is None for v in values):
        return None, None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def paired_diffs(rows: list[dict], against=BASELINES, key: str = "metric") -> list[dict]:
    """Paired differences of row[key] of every selector against each of `against`, over common seeds
    where both have the value."""
    keys = sorted({(r["selector"], r["ratio"]) for r in rows})
    by_cell = {k: {r["seed"]: r for r in rows if (r["selector"], r["ratio"]) == k and r.get(key) is not None}
               for k in keys}
    paired = []
    for (selector, ratio), seeds in by_cell.items():
        for base in against:
            ref = by_cell.get((base, ratio))
            if selector == base or ref is None or selector == "full":
                continue
            common = sorted(set(seeds) & set(ref))
            if not common:
                continue
            diffs = np.array([seeds[s][key] - ref[s][key] for s in common])
            mean, lo, hi = t_interval(diffs)
            paired.append({"selector": selector, "baseline": base, "ratio": ratio, "n": len(common),
                           "diff_mean": mean, "ci_low": lo, "ci_high": hi})
    return paired


def analyse(rows: list[dict], against=BASELINES) -> tuple[list[dict], list[dict], dict]:
    """Cells, paired differences of every selector against each of `against`, and full data's convergence."""
    cells = []
    keys = sorted({(r["selector"], r["ratio"]) for r in rows})
    by_cell = {k: {r["seed"]: r for r in rows if (r["selector"], r["ratio"]) == k} for k in keys}
    for (selector, ratio), seeds in by_cell.items():
        metrics = np.array([r["metric"] for r in seeds.values()])
        trained = {t: float(np.mean([r["trained"][t] for r in seeds.values()]))
                   for t in TRUTH if all(t in r["trained"] for r in seeds.values())}
        tail_mean, tail_std = _mean_std([r.get("tail_recall") for r in seeds.values()])
        cells.append({"selector": selector, "ratio": ratio, "n": len(seeds), "metric_mean": float(metrics.mean()),
                      "metric_std": float(metrics.std(ddof=1)) if len(metrics) > 1 else 0.0,
                      "cost_fraction": float(np.mean([r["cost_fraction"] for r in seeds.values()])),
                      "selection_cost_fraction": float(np.mean([r["selection_cost_fraction"] for r in seeds.values()])),
                      "trained": trained, "per_seed": {s: r["metric"] for s, r in sorted(seeds.items())},
                      "tail_recall_mean": tail_mean, "tail_recall_std": tail_std,
                      "forced_share": _mean_std([r.get("forced_share") for r in seeds.values()])[0]})
    convergence = {r["seed"]: r["last_vals"] for r in rows if r["selector"] == "full"}
    return cells, paired_diffs(rows, against), convergence


def plot(cells: list[dict], title: str):
    from raydata_agent import plots  # noqa: F401  (headless backend)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for s in sorted({c["selector"] for c in cells}):
        pts = sorted((c for c in cells if c["selector"] == s), key=lambda c: c["cost_fraction"])
        ax.errorbar([c["cost_fraction"] for c in pts], [100 * c["metric_mean"] for c in pts],
                    yerr=[100 * c["metric_std"] for c in pts], marker="*" if s == "full" else "o", capsize=3,
                    label=s, ms=10 if s == "full" else 5)
    ax.set_xlabel("realised cost fraction (sample passes / full-data passes)")
    ax.set_ylabel("final validation metric (%), mean +- std over seeds")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def merge(specs: list[str], json_path: str | None, against=BASELINES) -> None:
    """Pool the trials of earlier runs' JSON files (their `rows`) and report them as one table.
    A trial (selector, ratio, seed) found in two files is an error: which one counts is not ours to pick."""
    rows, sources, seen = [], [], {}
    for spec in specs:
        name, _, renames = spec.partition(":")
        rename = dict(pair.split("=", 1) for pair in renames.split(",") if pair)
        result = json.loads(Path(name).read_text())
        if "rows" not in result:
            raise SystemExit(f"{name}: no 'rows' (written before --merge existed); rewrite it with "
                             f"--analyse {result.get('parent_run_id')} --tracking-uri {result.get('tracking_uri')} --json ...")
        for row in result["rows"]:
            row["selector"] = rename.get(row["selector"], row["selector"])
            key = (row["selector"], row["ratio"], row["seed"])
            if key in seen:
                raise SystemExit(f"{name}: trial {key} is also in {seen[key]}")
            seen[key] = name
            rows.append(row)
        sources.append({"json": name, "renamed": rename, "command": result.get("command"), "date": result.get("date"),
                        "parent_run_id": result.get("parent_run_id")})
    cells, paired, convergence = analyse(rows, against)
    paired_tail = paired_diffs(rows, against, "tail_recall")
    ratios = sorted({r["ratio"] for r in rows if r["selector"] != "full"})
    seeds = sorted({r["seed"] for r in rows})
    text = tables(cells, paired, ratios, against, paired_tail)
    print(f"quality: {len(rows)} trials pooled from {len(sources)} runs, seeds {seeds}\n{text}")
    if json_path:
        Path(json_path).write_text(json.dumps({"merged_from": sources, "seeds": seeds, "ratios": ratios,
                                               "command": " ".join(sys.argv), "trials_finished": len(rows),
                                               "cells": cells, "paired": paired, "paired_tail_recall": paired_tail,
                                               "full_convergence": convergence, "rows": rows}, indent=1))
        print(f"[quality] JSON: {json_path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=sorted(DATA), default="a",
                        help="tuning sets: a shapes, b digits+noise, c mixture; held out (never tune on them): "
                             "d long-tailed shapes from JPEG files (imagefolder), e long-tailed textures")
    parser.add_argument("--task", choices=["classification", *TASKS], default="classification")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default=None,
                        help="detection, segmentation: clean (near-duplicates only; the default) or noisy (30%% of "
                             "training images with an annotation error, and the near-duplicates)")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.3, 0.5, 0.7], help="kept ratios, e.g. 0.1 0.2")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=None, help="default: per data set (see DATA)")
    parser.add_argument("--selectors", nargs="+", default=DEFAULT_SELECTORS, choices=ALL_SELECTORS)
    parser.add_argument("--concurrent", type=int, default=2, help="trials side by side")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--out", default=None, help="folder for the sweep's MLflow store and runs (default: a temp dir)")
    parser.add_argument("--tracking-uri", default=None, help="default: sqlite:///<out>/mlflow.db")
    parser.add_argument("--experiment", default="quality")
    parser.add_argument("--json", default=None)
    parser.add_argument("--no-full", action="store_true", help="skip the full-data runs (e.g. measured already)")
    parser.add_argument("--analyse", metavar="PARENT_RUN_ID", default=None,
                        help="only read back an earlier (or interrupted) sweep's finished trials and report them")
    parser.add_argument("--merge", nargs="+", metavar="JSON", default=None,
                        help="run nothing: pool the trials (`rows`) of earlier runs' --json files into one "
                             "table, e.g. seeds or ratios added later with the same code. JSON:OLD=NEW,... "
                             "renames that file's selectors, e.g. to set a variant run with other overrides "
                             "beside the default (c.json:random_dynamic=random_dynamic/inv)")
    parser.add_argument("--against", nargs="+", metavar="SELECTOR", default=list(BASELINES),
                        help="the selectors every other is paired against (default: the three baselines). "
                             "An ablation: --merge default.json variant.json:data_agent=data_agent/v --against data_agent")
    parser.add_argument("overrides", nargs="*", help="extra section.key=value for every trial")
    args = parser.parse_args()
    args.selectors = [s for s in args.selectors if s != "full"]  # full data is the sweep's baseline run
    if args.variant and args.task == "classification":
        parser.error("--variant applies to --task detection or segmentation; --data picks a classification set")
    args.variant = args.variant or ("clean" if args.task != "classification" else None)
    if args.merge:
        merge(args.merge, args.json, args.against)
        return

    import ray

    from raydata_agent.sweep import run_sweep

    out_dir = Path(args.out or tempfile.mkdtemp(prefix="quality_")).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    uri = args.tracking_uri or f"sqlite:///{out_dir / 'mlflow.db'}"
    n_trials = len(args.selectors) * len(args.ratios) * len(args.seeds) + (0 if args.no_full else len(args.seeds))
    start = time.perf_counter()
    if args.analyse:
        parent_id = args.analyse
    else:
        path = sweep_file(args, out_dir)
        data = args.data if args.task == "classification" else f"{TASKS[args.task]['data.name']} {args.variant}"
        print(f"[quality] {n_trials} trials ({args.task}, data {data}); sweep file {path}; MLflow {uri}", flush=True)
        parent_id, _ = run_sweep(str(path), [f"tracking.uri={uri}", *args.overrides])
        ray.shutdown()
    wall = time.perf_counter() - start

    rows = collect(uri, parent_id)
    cells, paired, convergence = analyse(rows, args.against)
    paired_tail = paired_diffs(rows, args.against, "tail_recall")
    text = tables(cells, paired, args.ratios, args.against, paired_tail)
    held_out = args.task == "classification" and args.data in HELD_OUT
    data = args.data if args.task == "classification" else args.variant
    title = f"quality: {args.task} data {data}{' (held out)' if held_out else ''}, {len(args.seeds)} seeds"
    print(f"\n{title}  ({len(rows)}/{n_trials} trials finished, {wall / 60:.1f} min)\n{text}")
    print("full data, val metric of the last 3 epochs per seed (convergence): "
          + "; ".join(f"{s}: {', '.join(f'{100 * v:.1f}' for v in vals)}" for s, vals in sorted(convergence.items())))
    result = {"data": args.data, "task": args.task, "variant": args.variant, "epochs": args.epochs, "seeds": args.seeds,
              "ratios": args.ratios, "selectors": args.selectors, "command": " ".join(sys.argv), "machine": f"{os.cpu_count()} CPUs "
              f"({platform.processor() or platform.machine()}), device {args.device}",
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "parent_run_id": parent_id,
              "tracking_uri": uri, "wall_s": wall, "trials_finished": len(rows), "trials": n_trials,
              "held_out": held_out, "cells": cells, "paired": paired, "paired_tail_recall": paired_tail,
              "full_convergence": convergence, "rows": rows}

    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    client.log_text(parent_id, text + "\n", "quality/table.txt")
    client.log_dict(parent_id, result, "quality/quality.json")
    client.log_figure(parent_id, plot(cells, title), "quality/accuracy_vs_cost.png")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
        print(f"[quality] JSON: {args.json}")
    print(f"[quality] MLflow parent run {parent_id}: quality/table.txt, quality/quality.json, "
          f"quality/accuracy_vs_cost.png")


if __name__ == "__main__":
    main()
