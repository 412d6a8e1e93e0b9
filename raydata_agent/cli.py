"""`raydata-agent run [--config FILE] [key=value ...]`, `resume RUN_ID`, `tune`, `report`.

Bad input found before Ray starts (config, tracking URI, data, checkpoint) prints one line and exits 2."""
from __future__ import annotations

import argparse
import sys

import raydata_agent as rda
from raydata_agent.checkpoint import CheckpointError  # a checkpoint error found before Ray: not a public name
from raydata_agent.progress import console  # the console handler: the CLI's own set-up, not a public name


def _run(args) -> int:
    cfg = rda.load_config(args.config, args.overrides)  # fails here, before Ray starts, on a bad key
    console().info(f"{cfg.task.name} on {cfg.data.name}, selector={cfg.selection.selector} "
                   f"ratio={cfg.selection.ratio}, {cfg.train.epochs} epochs, {cfg.train.num_workers} worker(s)")
    return _train(rda.run, cfg)


def _resume(args) -> int:
    console().info(f"resuming run {args.run_id}")
    return _train(lambda cfg: rda.resume(args.run_id, args.tracking_uri), None)


def _train(start, cfg) -> int:
    """Runs `start(cfg)` and prints its summary: the command's result (stdout) and a failure (stderr) are
    printed, not logged, so a caller's log set-up never hides them."""
    from raydata_agent.tracking import redact  # console masking: internal, not part of the public API

    try:
        result = start(cfg)
    except rda.RunInterrupted as err:
        print(f"\n[raydata-agent] INTERRUPTED: {err}", file=sys.stderr, flush=True)
        return 130  # the shell's code for a run stopped by a signal
    except rda.RunFailed as err:
        print(f"\n[raydata-agent] FAILED: {err}", file=sys.stderr)
        return 1
    final, task = result.final, result.task
    uri = redact(result.tracking_uri)
    print("\n[raydata-agent] summary")
    print(f"  run id          {result.run_id}")
    print(f"  final {task} metric  {final.get('val_metric', float('nan')):.4f}")
    print(f"  cost fraction   {final.get('cost_fraction', float('nan')):.3f} of full-data sample passes"
          + (f" (selection epochs: {final['selection_cost_fraction']:.3f})" if "selection_cost_fraction" in final else ""))
    print(f"  checkpoint      {result.checkpoint_path}")
    print(f"  MLflow          {uri}  experiment {result.experiment_id}, run {result.run_id}")
    print(f"  open            {open_hint(uri, result.experiment_id, result.run_id)}")
    return 0


def open_hint(uri: str, experiment_id: str, run_id: str) -> str:
    """Where to look at a run: a tracking server's own page, or the command that serves a local store."""
    from raydata_agent.tracking import ui_url  # console link: internal, not part of the public API

    return ui_url(uri, experiment_id, run_id) or (
        f"mlflow ui --backend-store-uri {uri}   then "
        f"{ui_url('http://127.0.0.1:5000', experiment_id, run_id)}")


def _tune(args) -> int:
    from raydata_agent.sweep import run_sweep  # `tune` is a CLI command; sweeps have no public API yet

    parent, summary = run_sweep(args.config, args.overrides)
    print("\n[raydata-agent] sweep summary (best first; * = Pareto front of metric vs cost)")
    print(summary)
    print(f"  MLflow parent run {parent}: summary/trials.csv, summary/trials.txt, summary/metric_vs_cost.png")
    return 0


def _report(args) -> int:
    from raydata_agent.report import report  # `report` is a CLI command; no public API yet

    uri = args.tracking_uri or rda.Config().tracking_uri
    try:
        text, path = report(args.experiment, uri, args.out)
    except (KeyError, ValueError) as err:
        print(f"report: {err.args[0]}", file=sys.stderr)
        return 2
    print(text)
    print(f"\nplot: {path}" if path else "\nplot: not written (the experiment's artifacts are not on this machine): "
          "pass --out PATH")
    return 0


def _make_imagefolder(args) -> int:
    from raydata_agent.data.jpeg_folder import write_image_folder  # a CLI utility, not public API

    root = write_image_folder(args.path, args.train, args.val, args.size, args.seed, progress=True)
    console().info(f"imagefolder set in {root.resolve()}: train with data.name=imagefolder "
                   f"data.path={root.resolve()} data.image_size={args.size}")
    return 0


def _up(args) -> int:
    from raydata_agent import local_cluster

    state, started = local_cluster.up(args.num_cpus, args.num_gpus)
    console().info(f"{'started' if started else 'already up:'} a local Ray cluster at {state['address']} "
                   f"(dashboard {state['dashboard']}); runs on this machine join it until `raydata-agent down`")
    return 0


def _down(args) -> int:
    from raydata_agent import local_cluster

    ended = local_cluster.down()
    console().info(f"ended the local Ray cluster ({ended} processes)" if ended else "no local Ray cluster was up")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="raydata-agent", description="Training that chooses its own data, on Ray.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="train one model with a data selector")
    p_run.add_argument("--config", help="YAML config file (sections: task, data, selection, reward, agent, "
                                        "train, tracking, ray)")
    p_run.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. selection.ratio=0.3")
    p_resume = sub.add_parser("resume", help="continue a run whose driver died, into the same MLflow run")
    p_resume.add_argument("run_id", help="the MLflow run id (printed at the start and in the summary)")
    p_resume.add_argument("--tracking-uri", help="default: sqlite:///$PWD/mlflow.db")
    p_tune = sub.add_parser("tune", help="a Ray Tune sweep: every trial is one training run")
    p_tune.add_argument("--config", help="run config with a `sweep:` section (see jobs/configs/sweep_shapes.yaml)")
    p_tune.add_argument("overrides", nargs="*", help="section.key=value overrides for every trial")
    p_report = sub.add_parser("report", help="compare the runs of an MLflow experiment: table and plot")
    p_report.add_argument("experiment")
    p_report.add_argument("--tracking-uri", help="default: sqlite:///$PWD/mlflow.db")
    p_report.add_argument("--out", help="plot path (default: report_<experiment>.png in the experiment's "
                                        "artifact folder, e.g. mlruns/<experiment>/ beside mlflow.db)")
    p_folder = sub.add_parser("make-imagefolder", help="write a generated imagefolder set of JPEG files "
                                                       "(the shapes classes) for data.name=imagefolder")
    p_folder.add_argument("path", help="root folder: PATH/{train,val}/<class>/<image>.jpg")
    p_folder.add_argument("--train", type=int, default=20_000, help="training images (default 20000)")
    p_folder.add_argument("--val", type=int, default=2_000, help="validation images (default 2000)")
    p_folder.add_argument("--size", type=int, default=224, help="image side in pixels (default 224)")
    p_folder.add_argument("--seed", type=int, default=0)
    p_up = sub.add_parser("up", help="start a local Ray cluster that later runs on this machine join (faster starts)")
    p_up.add_argument("--num-cpus", type=int, help="default: every CPU")
    p_up.add_argument("--num-gpus", type=int, help="default: every GPU")
    sub.add_parser("down", help="end the local Ray cluster `up` started (its processes only)")
    args = parser.parse_args(argv)
    try:
        return {"run": _run, "resume": _resume, "tune": _tune, "report": _report,
                "make-imagefolder": _make_imagefolder, "up": _up, "down": _down}[args.command](args)
    except rda.ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        from raydata_agent.data import DataError  # imports torch: loaded by now, not for a config error (internal)

        if not isinstance(err, (DataError, CheckpointError)):
            raise
        print(f"{'data' if isinstance(err, DataError) else 'checkpoint'} error: {err}", file=sys.stderr)
        return 2  # found before Ray starts: one line, no traceback


if __name__ == "__main__":
    sys.exit(main())
