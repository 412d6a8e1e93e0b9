"""Every GPU figure in one command: agent overhead, orchestration tax, bf16, input throughput, store
throughput and data-parallel scaling, measured in one run on one machine (about 8 minutes on one
H100 or H200 with 16 cores, by estimate: no GPU has run it yet).

    python benchmarks/gpu_suite.py                  # on a GPU machine; --budget-s 480 by default
    python benchmarks/gpu_suite.py --dry-run        # the same code at tiny sizes on CPU (tests/benchmarks/test_gpu_suite.py)

On this workplace's device machine, from the repository root (it writes into $OUT there):

    PYTHONUNBUFFERED=1 PYTHONPATH=$PWD python3 benchmarks/gpu_suite.py --budget-s 480

Its image has torch, torchvision, pyarrow and numpy but not Ray, MLflow or gymnasium: they travel as
cp312 wheels (/work/.library/device/README.md, "Notes"). Ray's wheel alone is 79 MB, above the 64 MiB
a call carries; 32 MB of it is ray/jars (Java), which these runs do not use. Not yet run on a device.

Sections, in this order; each figure is a ratio against a baseline measured in the same run, beside
its absolute numbers:
  overhead  a Data Agent run (overhead.py): ResNet-18, 32 px shapes, 50k samples, ratio 0.5, bf16;
            the selection machinery's seconds (signals, acting, sends, flush, plan, selector update,
            snapshot, MLflow) over the selection epoch's wall time.
  tax       the same set under Ray Train + pool + greedy against a plain PyTorch loop on the same
            subset (orchestration_tax.py): Ray epoch / plain epoch.
  bf16      the plain loop's epoch in fp32 over its epoch in bf16 (orchestration_tax.plain_epoch).
  input     224 px JPEG images/s to a training step (input_throughput.py): decode threads + prefetch,
            a torch DataLoader and data.pipeline=ray_data, each over the synchronous path.
  store     8 simulated workers recording into the score store at 1M rows (bench_store.py): data_agent
            over greedy samples/s.
  scaling   an epoch at 1, 2 and 4 Train workers, as many as there are GPUs (input_throughput.scaling):
            speedup over 1 worker.

Output, in --out (default: $OUT when set, else benchmarks/results/gpu; not committed): results.json
and results.md, both rewritten as soon as each section is measured, so a run stopped at any point keeps
what it measured. A section whose estimated time does not fit in what is left of --budget-s is skipped,
and the table says so; one that fails is recorded with its error, and the suite goes on (exit status 1).
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
import traceback
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

# Sizes of the real suite and of --dry-run (the same code on CPU, where bf16 convolutions are slow:
# the small CNN).
FULL = {"samples": 50_000, "val": 2_000, "model": "resnet18", "epochs": 3, "batch": 256, "images": 1024,
        "size": 224, "input_model": "resnet18", "threads": 8, "loader_workers": 4, "store_rows": 1_000_000,
        "store_workers": 8, "store_dim": 512, "store_max_s": 30.0, "scale_images": 2048}
DRY = {"samples": 128, "val": 32, "model": "small_cnn", "epochs": 2, "batch": 64, "images": 64, "size": 48,
       "input_model": "small_cnn", "threads": 2, "loader_workers": 1, "store_rows": 2_000,
       "store_workers": 1, "store_dim": 16, "store_max_s": 5.0, "scale_images": 64}
# Estimated seconds per section (the full ones are guesses until the first GPU run): a section is
# skipped when its estimate exceeds what is left of --budget-s.
ESTIMATE_S = {"overhead": 120, "tax": 90, "bf16": 30, "input": 90, "store": 90, "scaling": 150}
ESTIMATE_DRY_S = {"overhead": 40, "tax": 30, "bf16": 5, "input": 30, "store": 20, "scaling": 40}
# overhead.py's critical-path items that are the selection machinery, not training or validation.
MACHINERY = ["signals_s", "act_s", "send_s", "flush_s", "plan_wait_s", "selector_update_s", "snapshot_s",
             "mlflow_log_s"]


def classification(sizes: dict) -> list[str]:
    """The 32 px set of the overhead, tax and bf16 sections: generated once, cached in ./data_cache."""
    return ["data.name=shapes", f"data.num_samples={sizes['samples']}", f"data.val_samples={sizes['val']}",
            f"task.model={sizes['model']}", "selection.ratio=0.5", "train.precision=bf16",
            f"train.epochs={sizes['epochs']}", f"train.batch_size={sizes['batch']}"]


def overhead_section(sizes: dict, device: str, context: dict) -> dict:
    import overhead

    m = overhead.measure([*classification(sizes), "selection.selector=data_agent"], device, progress=False)
    mean = m["selection_mean"]
    machinery = sum(mean[k] for k in MACHINERY)
    context["train_samples_per_s"] = sizes["samples"] * 0.5 / max(mean["forward_s"] + mean["backward_s"], 1e-9)
    return {"ratio": machinery / mean["epoch_wall_s"], "means": "selection machinery / selection epoch",
            "absolute": f"machinery {machinery:.2f} s of {mean['epoch_wall_s']:.2f} s; forward "
                        f"{mean['forward_s']:.2f} s, backward {mean['backward_s']:.2f} s, act {mean['act_s']:.2f} s,"
                        f" selector update {mean['selector_update_s']:.2f} s",
            "raw": m}


def tax_section(sizes: dict, device: str, context: dict) -> dict:
    import orchestration_tax

    m = orchestration_tax.measure([*classification(sizes), "selection.selector=greedy"], device)
    return {"ratio": m["ratio_train"], "means": "Ray Train + pool + greedy epoch / plain loop epoch",
            "absolute": f"{m['subset_size']} samples: Ray {m['ray_epoch_train_s']:.2f} s (with epoch end "
                        f"{m['ray_epoch_critical_s']:.2f} s), plain {m['plain_epoch_s']:.2f} s",
            "raw": m}


def bf16_section(sizes: dict, device: str, context: dict) -> dict:
    import numpy as np
    from orchestration_tax import plain_epoch

    from raydata_agent.config import load_config

    cfg = load_config(None, classification(sizes))
    ids = np.random.default_rng(0).permutation(sizes["samples"])[:sizes["samples"] // 2]
    seconds = {precision: plain_epoch(cfg, ids, device, precision) for precision in ("fp32", "bf16")}
    return {"ratio": seconds["fp32"] / seconds["bf16"], "means": "fp32 epoch / bf16 epoch (plain loop)",
            "absolute": f"{len(ids)} samples: fp32 {seconds['fp32']:.2f} s, bf16 {seconds['bf16']:.2f} s",
            "raw": seconds}


def input_args(sizes: dict, device: str, work: str) -> argparse.Namespace:
    import input_throughput

    return input_throughput.build_parser().parse_args([
        "--images", str(sizes["images"]), "--size", str(sizes["size"]), "--model", sizes["input_model"],
        "--threads", str(sizes["threads"]), "--loader-workers", str(sizes["loader_workers"]),
        "--device", device, "--folder", work, "--scale-size", str(sizes["size"])])


def input_section(sizes: dict, device: str, context: dict) -> dict:
    import input_throughput
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))  # as input_throughput.py runs
    args = input_args(sizes, device, context["work"])
    name, overrides = input_throughput.jpeg_set(args)
    records = input_throughput.measure_sets({name: overrides}, args, context["work"])
    ratios = input_throughput.ratios_of(records, [name])
    epoch = {r["path"]: r["images_per_s"] for r in records if r["measure"] == "epoch"}
    others = {k.split("/")[-1]: v for k, v in ratios.items() if k.startswith(f"{name}/epoch/")}
    return {"ratio": ratios[f"{name}/epoch"], "means": f"{name} epoch: threads + prefetch / synchronous",
            "absolute": "epoch img/s: " + ", ".join(f"{path} {ips:.0f}" for path, ips in epoch.items())
                        + "; over synchronous: " + ", ".join(f"{path} {v:.2f}x" for path, v in others.items()),
            "raw": {"records": records, "ratios": ratios}}


def store_section(sizes: dict, device: str, context: dict) -> dict:
    import bench_store

    args = bench_store.build_parser().parse_args([
        "--workers", str(sizes["store_workers"]), "--max-seconds", str(sizes["store_max_s"]), "--device", device])
    worker_cls = bench_store.make_worker_class()
    root = tempfile.mkdtemp(prefix="store_", dir=context["work"])
    records = {selector: bench_store.measure(selector, sizes["store_dim"], sizes["store_rows"], args, worker_cls, root)
               for selector in ("greedy", "data_agent")}
    rate = {s: r["samples_per_s"] for s, r in records.items()}
    trainer = context.get("train_samples_per_s")
    return {"ratio": rate["data_agent"] / rate["greedy"], "means": "data_agent / greedy samples/s into the store",
            "absolute": f"{sizes['store_workers']} workers, {sizes['store_rows']:,} rows, d={sizes['store_dim']}: "
                        + ", ".join(f"{s} {r['samples_per_s']:,.0f}/s (epoch end {r['critical_path_s']:.2f} s"
                                    + ("" if r["epoch_complete"] else ", epoch not complete") + ")"
                                    for s, r in records.items())
                        + (f"; trainer (overhead section) {trainer:,.0f}/s" if trainer else ""),
            "raw": records}


def start_ray() -> None:
    """Join the Ray cluster already started in this process, or start a local one on every CPU (and GPU):
    only once a section runs."""
    from raydata_agent.cluster import init_ray  # starts Ray as a run would: a helper, not public API
    from raydata_agent.config import Config, RayConfig

    init_ray(Config(ray=RayConfig(num_cpus=os.cpu_count() or 2)))


def scaling_counts(device: str) -> list[int]:
    """1, 2 and 4 Train workers, as many as the machine has: GPUs, or on CPU the Ray cluster's CPUs
    beside one CPU for the Ray Data decode tasks."""
    import ray
    import torch

    start_ray()
    have = torch.cuda.device_count() if device == "cuda" else int(ray.cluster_resources().get("CPU", 1)) - 1
    return [n for n in (1, 2, 4) if n <= have]


def scaling_section(sizes: dict, device: str, context: dict) -> dict:
    import input_throughput

    args = input_args({**sizes, "images": sizes["scale_images"]}, device, context["work"])
    args.scaling_workers = scaling_counts(device)  # on CPU (dry run) maybe 1 alone: the code runs, no speedup
    args.stream_cpus = 0.5
    rows = input_throughput.scaling(args, context["work"])
    last = rows[-1]
    return {"ratio": last["speedup"], "means": f"epoch at {last['workers']} workers: speedup over 1",
            "absolute": ", ".join(f"{r['workers']}: {r['images_per_s']:.0f} img/s ({r['of_linear']:.2f} of linear)"
                                  for r in rows),
            "raw": rows}


SECTIONS = {"overhead": overhead_section, "tax": tax_section, "bf16": bf16_section, "input": input_section,
            "store": store_section, "scaling": scaling_section}


def machine(device: str) -> dict:
    import ray
    import torch

    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none (CPU dry run)"
    return {"gpu": gpu, "gpus": torch.cuda.device_count() if device == "cuda" else 0, "cpus": os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "ray": ray.__version__}


def write(out: Path, report: dict) -> None:
    """results.json and results.md, each replaced whole (a stop mid-write leaves the previous one)."""
    lines = [f"# GPU suite{' (dry run)' if report['dry_run'] else ''}", "",
             f"{report['machine']['gpu']} x{report['machine']['gpus']}, {report['machine']['cpus']} CPUs; "
             f"torch {report['machine']['torch']}, Ray {report['machine']['ray']}; {report['date']}", "",
             f"`{report['command']}`", "",
             "| section | ratio | what the ratio is | absolute | seconds | status |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, s in report["sections"].items():
        ratio = f"{s['ratio']:.2f}x" if s.get("ratio") is not None else ""
        lines.append(f"| {name} | {ratio} | {s.get('means', '')} | {s.get('absolute', '')} | "
                     f"{s.get('seconds', 0):.0f} | {s['status']} |")
    for name, text in (("results.json", json.dumps(report, indent=1, default=str)),
                       ("results.md", "\n".join(lines) + "\n")):
        partial = out / f".{name}.partial"
        partial.write_text(text)
        os.replace(partial, out / name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None, help="folder of results.json and results.md "
                                                    "(default: $OUT, else benchmarks/results/gpu)")
    parser.add_argument("--budget-s", type=float, default=480.0, help="skip a section whose estimate does not fit")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on CPU: checks the code, measures nothing")
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_suite: no CUDA device here: run it on a GPU machine, or with --dry-run", file=sys.stderr)
        return 2
    out = Path(args.out or os.environ.get("OUT") or ROOT / "benchmarks" / "results" / "gpu")
    out.mkdir(parents=True, exist_ok=True)
    device = "cpu" if args.dry_run else "cuda"
    sizes, estimates = (DRY, ESTIMATE_DRY_S) if args.dry_run else (FULL, ESTIMATE_S)

    import ray

    own_cluster = not ray.is_initialized()  # else: the caller's cluster (a test's), left running
    command = " ".join(["benchmarks/gpu_suite.py", *(sys.argv[1:] if argv is None else argv)])
    report = {"dry_run": args.dry_run, "machine": machine(device), "command": command,
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "budget_s": args.budget_s,
              "sizes": sizes, "sections": {}}
    context = {"work": tempfile.mkdtemp(prefix="gpu_suite_")}
    report["sections"] = {name: {"status": "not run yet"} for name in args.sections}
    write(out, report)  # stopped before a section ends, the table still says which ones never ran
    failed = False
    try:
        for name in args.sections:
            left = max(0.0, args.budget_s - (time.perf_counter() - started))
            if estimates[name] > left:
                report["sections"][name] = {"status": f"skipped: needs ~{estimates[name]} s, {left:.0f} s left "
                                                      f"of --budget-s {args.budget_s:.0f}"}
            elif name == "scaling" and len(counts := scaling_counts(device)) < (1 if args.dry_run else 2):
                report["sections"][name] = {"status": f"skipped: needs 2+ GPUs for 2 workers (this machine: "
                                                      f"{torch.cuda.device_count()})"}
            else:
                print(f"[gpu_suite] {name} ...", flush=True)
                start = time.perf_counter()
                try:
                    start_ray()
                    result = SECTIONS[name](sizes, device, context)
                    report["sections"][name] = {**result, "status": "done"}
                except Exception as err:  # the other sections still run; the table says what broke
                    failed = True
                    traceback.print_exc()
                    report["sections"][name] = {"status": f"failed: {type(err).__name__}: {str(err)[:200]}"}
                report["sections"][name]["seconds"] = time.perf_counter() - start
            print(f"[gpu_suite] {name}: {report['sections'][name]['status']}", flush=True)
            write(out, report)
    finally:
        if own_cluster:
            ray.shutdown()
    print((out / "results.md").read_text())
    print(f"[gpu_suite] {out / 'results.json'}, {out / 'results.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
