"""MLflow tracking: one run per training job, written by the driver and the score store.

The embedded default is a SQLite store next to the working directory (MLflow's plain file store
is in maintenance mode); `tracking.uri` points at a server instead.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse, urlunparse

from raydata_agent.config import ConfigError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

# mlflow (about 1.5 s of imports) loads on first use, not with this module: the score store actor's
# constructor, which a run's start waits for, then does not pay for it.

MAX_PARAM_LEN = 6000
# MLflow 3's UI opens an experiment in its GenAI view (traces, evaluations) unless the experiment's kind
# says it holds model training runs; this is the tag and value its UI sets from "Experiment type".
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
REACH_TIMEOUT_S = 5.0  # a tracking server that does not answer in this time is reported before Ray starts


# Credentials as they appear in command lines, URIs, config files and query strings. Each pattern keeps
# what says where the secret was (scheme, host, key name) and replaces the secret itself with ***.
_SECRET_WORDS = r"(?:password|passwd|token|secret|api[_-]?key|access[_-]?key|private[_-]?key|credential|signature)"
_SECRET_KEY = rf"(?<![\w.-])(?:[\w.-]*{_SECRET_WORDS}[\w.-]*|sig)"  # MLFLOW_TRACKING_PASSWORD, access_token, SAS sig
_SECRET_VALUE = r"""(?:'[^']*'|"[^"]*"|[^\s&'"]+)"""
_CREDENTIALS = [
    (re.compile(r"([a-z][a-z0-9+.-]*://)[^\s/@'\"]+@", re.I), r"\1***@"),  # scheme://user:password@ or token@
    (re.compile(r"(?<![\w.%+:/-])[\w.%+-]+:[^\s/@'\":]+@(?=[\w-])"), "***@"),  # user:password@host, no scheme
    (re.compile(rf"({_SECRET_KEY}\s*[=:]\s*){_SECRET_VALUE}", re.I), r"\1***"),  # KEY=value, ?token=, YAML key: value
    (re.compile(rf"((?<![\w.-])--?[\w.-]*{_SECRET_WORDS}[\w.-]*\s+){_SECRET_VALUE}", re.I), r"\1***"),  # --password x
    (re.compile(r"(\bBearer\s+)\S+", re.I), r"\1***"),  # an Authorization header
]


def redact(text: str) -> str:
    """`text` with every credential in it replaced by ***: what logs, tags, params, text artifacts and
    messages may show. Credentials belong in MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD /
    MLFLOW_TRACKING_TOKEN, but a command line or a URI may carry them too."""
    if not isinstance(text, str):
        return text
    for pattern, replacement in _CREDENTIALS:
        text = pattern.sub(replacement, text)
    return text


def _redacted(data):
    """`data` (dicts, lists, scalars) with `redact` applied to every string in it."""
    if isinstance(data, dict):
        return {k: _redacted(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_redacted(v) for v in data]
    return redact(data)


def _http_get(url: str, timeout: float) -> tuple[int, bytes]:
    """The status and body of a GET; an HTTP error status is an answer too."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def check_reachable(uri: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """Fail in seconds, naming the URI, instead of after MLflow's ~4 minutes of retries once Ray is up.

    http(s): the server must answer within `timeout`, and MLflow's experiments/search endpoint with
    JSON (within MLflow's own request timeout: a new server sets up its store on the first call);
    401 and 403 count too (credentials are MLflow's business). Any other web server, or a proxy's
    404 or login page, is named as not an MLflow tracking server.
    sqlite / file: the folder must exist and be writable. Other schemes (databricks, ...) are left to MLflow.
    """
    import json
    import os

    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_TIMEOUT

    parts = urlparse(uri)
    if parts.scheme in ("http", "https"):
        base = urlunparse(parts._replace(netloc=f"{parts.hostname}" + (f":{parts.port}" if parts.port else ""),
                                         path=parts.path.rstrip("/"), query="", fragment=""))
        endpoint = "/api/2.0/mlflow/experiments/search"
        try:
            _http_get(f"{base}/health", timeout)
        except (OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise ConfigError(f"tracking.uri={redact(uri)} is not reachable within {timeout:g}s "
                              f"({reason}); start the MLflow server or fix the URI") from None
        api_timeout = MLFLOW_HTTP_REQUEST_TIMEOUT.get()
        try:
            status, body = _http_get(f"{base}{endpoint}?max_results=1", api_timeout)
        except (OSError, ValueError) as err:
            raise ConfigError(f"tracking.uri={redact(uri)} answered, but {endpoint} did not within "
                              f"{api_timeout:g}s ({getattr(err, 'reason', err)})") from None
        if status in (401, 403):
            return  # it answered, and wants credentials
        try:
            answer = json.loads(body)
        except ValueError:  # a web page, or nothing
            answer = None
        if status == 200 and isinstance(answer, dict):
            return
        if isinstance(answer, dict) and "error_code" in answer:  # MLflow, failing: say why now
            raise ConfigError(f"tracking.uri={redact(uri)} answered HTTP {status}: {answer['error_code']}: "
                              f"{redact(str(answer.get('message', '')))[:300]}")
        raise ConfigError(f"tracking.uri={redact(uri)} is not an MLflow tracking server ({endpoint} answered "
                          f"HTTP {status}{', not JSON' if status == 200 else ''}); fix the URI (host, port, "
                          f"and the path if MLflow is behind a proxy)")
    if parts.scheme in ("sqlite", "file", ""):
        path = Path(parts.path if parts.scheme else uri)
        folder = path.parent if parts.scheme == "sqlite" else path
        while not folder.exists() and folder != folder.parent:  # MLflow creates missing folders
            folder = folder.parent
        if not os.access(folder, os.W_OK):
            raise ConfigError(f"tracking.uri={redact(uri)}: {folder} is not writable")


def artifact_root(uri: str) -> str | None:
    """For a SQLite store, keep artifacts in `mlruns/` beside the database, whatever the process cwd."""
    if uri.startswith("sqlite:///"):
        return (Path(urlparse(uri).path).parent / "mlruns").resolve().as_uri()
    return None


def source_tags() -> dict[str, str]:
    """MLflow's "Source" for a run started from this process: the entry point (`jobs/train.py`,
    `raydata-agent run`), the git commit when the code is in a repository, and the command line.
    MLflow's own context providers give the commit, user and source type; the entry point is made
    readable (theirs is the full path of the script, or of the `raydata-agent` console script)."""
    import shlex
    import sys

    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils.git_utils import get_git_branch, get_git_commit

    argv0 = Path(sys.argv[0])
    if argv0.name in ("raydata-agent", "cli.py"):
        name, command = " ".join(["raydata-agent", *sys.argv[1:2]]), ["raydata-agent", *sys.argv[1:]]
    else:
        try:
            name = str(argv0.resolve().relative_to(Path.cwd()))
        except ValueError:
            name = str(argv0)
        command = ["python", name, *sys.argv[1:]]
    tags = {**resolve_tags(), "mlflow.source.name": name, "raydata_agent.command": shlex.join(command)[:5000]}
    code = str(Path(__file__).parent)  # the commit of the code that runs, wherever the entry point is
    submitted = ray_job_metadata()  # a Ray job's copy of the working dir has no usable .git: the submitter's word
    for key, value in (("mlflow.source.git.commit", submitted.get("git_commit") or get_git_commit(code)),
                       ("mlflow.source.git.branch", submitted.get("git_branch") or get_git_branch(code))):
        if value:
            tags[key] = value
    return tags


def ray_job_metadata() -> dict:
    """The metadata of the Ray job this driver runs as (`ray job submit --metadata-json`), else {}.
    Ray's job supervisor hands it to the entrypoint in RAY_JOB_CONFIG_JSON_ENV_VAR."""
    import json
    import os

    from ray._private.runtime_env.constants import RAY_JOB_CONFIG_JSON_ENV_VAR

    raw = os.environ.get(RAY_JOB_CONFIG_JSON_ENV_VAR)
    return (json.loads(raw).get("metadata") or {}) if raw else {}


def ui_url(uri: str, experiment_id: str, run_id: str | None = None) -> str | None:
    """The browser address of an experiment (or run) on a tracking server; None for a local store.
    `workflowType=machine_learning` opens MLflow 3's runs view even where the UI was last in GenAI mode."""
    if not uri.startswith(("http://", "https://")):
        return None
    page = f"experiments/{experiment_id}" + (f"/runs/{run_id}" if run_id else "")
    return f"{uri.rstrip('/')}/#/{page}?workflowType=machine_learning"


class Tracker:
    """A handle on one MLflow run; picklable, so Ray actors log to the same run."""

    def __init__(self, uri: str, run_id: str):
        self.uri = uri
        self.run_id = run_id
        self._client = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(self.uri)
        return self._client

    def __getstate__(self):
        return {"uri": self.uri, "run_id": self.run_id}

    def __setstate__(self, state):
        self.__init__(state["uri"], state["run_id"])

    @classmethod
    def start(cls, uri: str, experiment: str, run_name: str | None, params: dict,
              tags: dict | None = None) -> "Tracker":
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            exp_id = client.create_experiment(experiment, artifact_root(uri) and f"{artifact_root(uri)}/{experiment}",
                                              tags=EXPERIMENT_KIND)
        else:
            exp_id = exp.experiment_id
            if not any(k in exp.tags for k in EXPERIMENT_KIND):  # one made before, or by someone else: no kind yet
                client.set_experiment_tag(exp_id, *next(iter(EXPERIMENT_KIND.items())))
        run = client.create_run(exp_id, run_name=run_name, tags={k: redact(str(v)) for k, v in (tags or {}).items()})
        tracker = cls(uri, run.info.run_id)
        params = [Param(k, redact(str(v))[:MAX_PARAM_LEN]) for k, v in params.items()]
        client.log_batch(run.info.run_id, params=params)  # MLflow splits it into batches of its limits
        return tracker

    def log_metrics(self, metrics: dict, step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)]
        self.client.log_batch(self.run_id, metrics=items)  # MLflow splits it into batches of its limits

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, redact(text), artifact_file)

    def log_dict(self, data: dict, artifact_file: str) -> None:
        """A JSON or YAML artifact (by the file's extension), every string in it redacted."""
        self.client.log_dict(self.run_id, _redacted(data), artifact_file)

    def log_figure(self, fig, name: str, artifact_path: str = "plots") -> None:
        import matplotlib.pyplot as plt

        self.client.log_figure(self.run_id, fig, f"{artifact_path}/{name}",
                               save_kwargs={"dpi": 110, "bbox_inches": "tight"})
        plt.close(fig)

    def set_tag(self, key: str, value) -> None:
        self.client.set_tag(self.run_id, key, redact(str(value)))

    def end(self, status: str = "FINISHED") -> None:
        """MLflow prints "View run <name> at <server>/#/experiments/..." when a run on a server ends: a
        link without workflowType (it opens the GenAI view) and with any password in the URI. The run's
        owner prints ours instead (`ui_url`), so MLflow's is switched off for this call."""
        import os

        from mlflow.environment_variables import MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT

        name = MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT.name
        before = os.environ.get(name)
        os.environ[name] = "true"
        try:
            self.client.set_terminated(self.run_id, status)
        finally:
            if before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before

    @property
    def experiment_id(self) -> str:
        return self.client.get_run(self.run_id).info.experiment_id
