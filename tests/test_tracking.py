"""What a person sees of a run in MLflow: its name, source, params, the experiment's kind, the plots."""
import numpy as np
from mlflow.tracking import MlflowClient

from raydata_agent import plots
from raydata_agent.config import load_config
from raydata_agent.tracking import EXPERIMENT_KIND, Tracker, source_tags, ui_url


def test_params_are_those_the_task_and_selector_read():
    greedy = load_config(None, ["selection.selector=greedy"]).run_params()
    assert "reward.variant" in greedy and "selection.sampling" in greedy and "train.lr" in greedy
    assert not [k for k in greedy if k.startswith(("agent.", "selection.lead", "task.depth", "task.aux"))]
    assert "selection.ucb_c" not in greedy and "selection.infobatch_max_prune" not in greedy
    assert "train.resume_from" not in greedy and "selection.lead_gamma" not in greedy
    assert load_config(None, ["selection.lead_gamma=0.2"]).run_params()["selection.lead_gamma"] == 0.2  # set: shown
    agent = load_config(None, ["selection.selector=data_agent"]).run_params()
    assert "agent.lr" in agent and "agent.payoff" in agent
    infobatch = load_config(None, []).run_params()
    assert "selection.infobatch_max_prune" in infobatch and "reward.variant" not in infobatch
    seg = load_config(None, ["task.name=segmentation"]).run_params()
    assert "task.depth" in seg and "data.reduce_zero_label" in seg and "data.label_noise" not in seg
    assert len(greedy) < 40 < len(load_config(None, []).flat())


def test_run_names_and_ui_urls():
    assert load_config(None, ["selection.selector=data_agent", "selection.ratio=0.5"]).run_name() == "data_agent r0.5 s0"
    assert ui_url("sqlite:////tmp/x.db", "1") is None
    assert ui_url("http://h:5000/", "3", "abc") == "http://h:5000/#/experiments/3/runs/abc?workflowType=machine_learning"


def test_experiment_opens_on_runs_and_source_is_filled(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.create_experiment("made_elsewhere")  # an experiment someone else made: no kind yet
    for name in ("new_one", "made_elsewhere"):
        tracker = Tracker.start(uri, name, "greedy r0.3 s0", {"a": 1}, tags=source_tags())
        assert client.get_experiment_by_name(name).tags.items() >= EXPERIMENT_KIND.items()
    tags = client.get_run(tracker.run_id).data.tags
    assert tags["mlflow.runName"] == "greedy r0.3 s0"
    assert tags["mlflow.source.name"] and len(tags["mlflow.source.git.commit"]) == 40  # this checkout's commit


def _history(epochs=4, classes=3):
    rng = np.random.default_rng(0)
    rows = []
    for e in range(epochs):
        q = np.sort(rng.uniform(0.50, 0.53, 9)) if e else np.ones(9)
        rows.append({"epoch": e, "val_metric": 0.2 * e, "cumulative_cost_epochs": 1 + 0.5 * e, "adaptive_w": 0.7,
                     "full_epoch": int(e == 0), "weight_quantiles": q.tolist(), "weight_fit_hist": [1, 3, 2],
                     "weight_fit_range": [float(q[1]), float(q[7])],
                     "class_selected_fraction": rng.uniform(size=classes).tolist()})
    return rows


def test_plots_number_epochs_from_one_and_fit_the_weights():
    history = _history()
    fig = plots.weight_histograms(history, "run 1a2b3c4d: data_agent, ratio 0.5")
    ax = fig.axes[0]
    assert "data_agent, ratio 0.5" in fig._suptitle.get_text()
    lo, hi = ax.get_ylim()
    assert 0.49 < lo and hi < 0.54  # the selecting epochs' band, not [0, 1]
    ticks = [t for t in ax.get_xticks() if lo <= t]
    assert all(float(t).is_integer() for t in ticks) and min(ax.get_xlim()) > 0  # epochs 1..4
    fig = plots.class_selection(history, "t", ["disc", "square", "triangle"])
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["disc", "square", "triangle"]
    fig = plots.metric_vs_cost(history, "t")
    assert len(fig.axes[0].lines) == 1  # this run only: no second curve that reads as a baseline


def test_a_ray_job_tags_the_submitted_git_state_and_keeps_its_store_outside_the_working_dir(monkeypatch, tmp_path):
    """What Ray's job supervisor hands a job's entrypoint (RAY_JOB_CONFIG_JSON_ENV_VAR): the metadata of
    `ray job submit --metadata-json`. The job's working dir is a temporary copy without a usable .git."""
    import json

    monkeypatch.chdir(tmp_path)
    assert load_config(None, []).tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"  # not a job: the cwd
    metadata = {"job_submission_id": "raysubmit_1", "git_commit": "0" * 40, "git_branch": "feature"}
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"runtime_env": {}, "metadata": metadata}))
    tags = source_tags()
    assert tags["mlflow.source.git.commit"] == "0" * 40 and tags["mlflow.source.git.branch"] == "feature"
    storage = tmp_path / "results"
    assert load_config(None, [f"ray.storage_path={storage}"]).tracking_uri == f"sqlite:///{storage / 'mlflow.db'}"
