"""What a person sees of a run in MLflow: its name, source, params, the experiment's kind, the plots;
no credentials anywhere in it; and a tracking URI that is not MLflow named before Ray starts."""
import http.server
import json
import threading

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from raydata_agent import plots
from raydata_agent.cli import main
from raydata_agent.config import ConfigError, load_config
from raydata_agent.tracking import EXPERIMENT_KIND, Tracker, check_reachable, redact, source_tags, ui_url


def test_params_are_those_the_task_and_selector_read():
    greedy = load_config(None, ["selection.selector=greedy"]).run_params()
    assert "reward.variant" in greedy and "selection.sampling" in greedy and "train.lr" in greedy
    assert not [k for k in greedy if k.startswith(("agent.", "selection.lead", "task.depth", "task.aux"))]
    assert "selection.ucb.c" not in greedy and "selection.infobatch.max_prune" not in greedy
    assert "train.resume_from" not in greedy and "selection.lead.gamma" not in greedy
    assert load_config(None, ["selection.lead.gamma=0.2"]).run_params()["selection.lead.gamma"] == 0.2  # set: shown
    agent = load_config(None, ["selection.selector=data_agent"]).run_params()
    assert "agent.lr" in agent and "agent.payoff" in agent
    infobatch = load_config(None, []).run_params()
    assert "selection.infobatch.max_prune" in infobatch and "reward.variant" not in infobatch
    seg = load_config(None, ["task.name=segmentation"]).run_params()
    assert "task.depth" in seg and "data.reduce_zero_label" in seg and "data.label_noise" not in seg
    assert len(greedy) <= 42 < len(load_config(None, []).flat())  # 42 with max_forced_share, data.imbalance


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


SECRET = "s3cretPassw0rd"


def test_credentials_are_masked_anywhere_in_a_string():
    command = (f"MLFLOW_TRACKING_PASSWORD={SECRET} raydata-agent run tracking.uri=http://alice:{SECRET}@h:5000/x "
               f"--password {SECRET} --api-key={SECRET} --tracking-uri alice:{SECRET}@h:5000 "
               f"data.path='s3://b/d?X-Amz-Signature={SECRET}&token={SECRET}&sig={SECRET}&v=1'")
    masked = redact(command)
    assert SECRET not in masked, masked
    assert masked.startswith("MLFLOW_TRACKING_PASSWORD=*** raydata-agent run tracking.uri=http://***@h:5000/x ")
    assert "--password *** --api-key=*** --tracking-uri ***@h:5000 " in masked and "&v=1" in masked
    assert redact(f"tracking:\n  password: {SECRET}\nAuthorization: Bearer {SECRET}") == (
        "tracking:\n  password: ***\nAuthorization: Bearer ***")
    assert redact("https://token@host") == "https://***@host"
    # nothing else changes: every config value, e-mail and git addresses, a sweep's summary tag
    plain = [str(v) for v in load_config(None, []).flat().values()] + [
        "raydata-agent run agent.warm_start_passes=2 agent.replay_passes=1 selection.ratio=0.3",
        "alice@example.com", "git@github.com:org/repo.git", "greedy r0.3 s0: 0.8123 at cost 0.300"]
    assert [redact(text) for text in plain] == plain


def test_no_credential_reaches_a_tag_param_or_text_artifact(tmp_path):
    """Every tag, param and text artifact goes through Tracker: grep all the store holds afterwards."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = f"raydata-agent run tracking.uri=http://alice:{SECRET}@h:5000 MLFLOW_TRACKING_TOKEN={SECRET}"
    tracker = Tracker.start(uri, "creds", "r", {"tracking.uri": f"http://alice:{SECRET}@h:5000",
                                                "data.path": f"s3://b/d?token={SECRET}"},
                            tags={"raydata_agent.command": command})
    tracker.set_tag("resumed_from", f"https://bob:{SECRET}@h/ckpt")
    tracker.log_text(f"tracking:\n  uri: http://alice:{SECRET}@h:5000\n  password: {SECRET}\n", "config.yaml")
    tracker.log_dict({"tracking": {"uri": f"http://alice:{SECRET}@h:5000"}, "data": {"path": [f"s3://b?sig={SECRET}"]}},
                     "run_config.yaml")  # the config artifact `resume` reads is a log_dict
    tracker.end()
    tags = MlflowClient(uri).get_run(tracker.run_id).data.tags
    assert tags["raydata_agent.command"] == "raydata-agent run tracking.uri=http://***@h:5000 MLFLOW_TRACKING_TOKEN=***"
    leaks = [str(p) for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert not leaks, leaks


class _NotMlflow(http.server.BaseHTTPRequestHandler):
    """A web server that is not MLflow; the URI's first path segment picks how it answers."""
    ANSWERS = {"/missing": (404, "text/html", "<h1>Not Found</h1>"),  # a proxy with no route for MLflow
               "/page": (200, "text/html", "<html>It works!</html>"),  # any web server
               "/login": (401, "application/json", "{}"),  # MLflow behind auth, no credentials sent
               "/broken": (500, "application/json", '{"error_code": "INTERNAL_ERROR", "message": "db locked"}'),
               "/mlflowlike": (200, "application/json", '{"experiments": []}')}

    def do_GET(self):
        code, kind, body = self.ANSWERS["/" + self.path.split("/")[1]]
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def web_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotMlflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_web_server_that_is_not_mlflow_is_named_before_ray(web_server, monkeypatch, capsys, tmp_path):
    import raydata_agent.cluster

    for path, answer in (("missing", "HTTP 404"), ("page", "HTTP 200, not JSON")):
        with pytest.raises(ConfigError) as err:
            check_reachable(f"{web_server}/{path}")
        assert str(err.value) == (
            f"tracking.uri={web_server}/{path} is not an MLflow tracking server (/api/2.0/mlflow/experiments/search "
            f"answered {answer}); fix the URI (host, port, and the path if MLflow is behind a proxy)")
    with pytest.raises(ConfigError, match="answered HTTP 500: INTERNAL_ERROR: db locked"):
        check_reachable(f"{web_server}/broken")
    check_reachable(f"{web_server}/login")  # credentials are MLflow's business
    check_reachable(f"{web_server}/mlflowlike")

    def refuse(cfg):
        raise AssertionError("Ray was started before the bad tracking URI was found")

    monkeypatch.setattr(raydata_agent.cluster, "init_ray", refuse)
    assert main(["run", f"tracking.uri=http://alice:{SECRET}@{web_server[7:]}/page",
                 f"ray.storage_path={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"config error: tracking.uri=http://***@{web_server[7:]}/page is not an MLflow tracking "
                          "server"), err
