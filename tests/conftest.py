import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("RAY_DEDUP_LOGS", "1")
# Ray Train's controller polls its workers every 2 s by default, at start and at the end of a run: about
# 7 of a small test run's 24 s are that wait. Clusters the tests start (here, or `ray start` in a test's
# shell) inherit this, so their controllers poll every 0.2 s instead.
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
# Every cluster this session starts (ray.init, a CLI run in a subprocess, Tune, `ray start`) keeps its
# session folder here, not in the shared /tmp/ray: pytest_runtest_call below sees a new one appear. Short,
# because Ray's unix sockets live under it (107 characters at most).
# A head that `raydata-agent up` left running on this machine is not joined by the tests' runs (cluster.init_ray):
# they look for its state in a home of their own.
_OWN_HOME = os.environ["RAYDATA_AGENT_HOME"] = tempfile.mkdtemp(prefix="rda_home_")
_OWN_RAY_TMPDIR = "RAY_TMPDIR" not in os.environ
if _OWN_RAY_TMPDIR:
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="rt", dir="/tmp")
RAY_TMPDIR = os.environ["RAY_TMPDIR"]


def pytest_collection_modifyitems(items):
    """A test that uses the shared cluster starts Ray: it is an integration test (`make test-fast` skips it)."""
    for item in items:
        if "ray_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


def _ray_sessions() -> set[str]:
    return {p.name for p in (Path(RAY_TMPDIR) / "ray").glob("session_2*")}


def _ray_initialized() -> bool:
    import sys

    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """A test not marked integration that starts Ray (in this process or a child: a CLI run, Tune,
    `ray start`) fails: `make test-fast` promises that none of its tests does."""
    if item.get_closest_marker("integration"):
        yield
        return
    before, was_up = _ray_sessions(), _ray_initialized()
    outcome = yield
    started = _ray_sessions() - before
    if (started or (_ray_initialized() and not was_up)) and outcome.excinfo is None:
        outcome.force_exception(pytest.fail.Exception(
            f"{item.nodeid} started a Ray cluster ({', '.join(sorted(started)) or 'ray.init'}) but is not "
            f"marked integration: add @pytest.mark.integration (or use the ray_cluster fixture)", pytrace=False))


def pytest_sessionfinish(session):
    """This session's own Ray folder goes with it (unless the caller chose RAY_TMPDIR)."""
    shutil.rmtree(_OWN_HOME, ignore_errors=True)
    if _OWN_RAY_TMPDIR:
        shutil.rmtree(RAY_TMPDIR, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster():
    """One small local Ray cluster for all integration tests (starting one costs seconds), started the
    way a run starts its own (`init_ray`): with the dashboard whose State API Ray Train's placement-group
    cleaner needs. Without it, a Tune trial that ASHA stops leaves its workers' CPUs reserved for good."""
    import ray

    from raydata_agent.config import Config, RayConfig
    from raydata_agent.cluster import init_ray

    for attempt in range(2):  # Ray gives the raylet 30 s to register (fixed in node.py); a loaded 2-CPU
        try:  # host can miss that, and then every integration test of the session would error: once more
            init_ray(Config(ray=RayConfig(num_cpus=2)))
            break
        except Exception as err:
            if attempt or "timed out during startup" not in str(err):
                raise
            ray.shutdown()
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory) -> Path:
    """An empty MLflow SQLite store, its tables created once: MLflow builds a new store by running all
    its schema migrations, seconds of CPU and fsyncs that every run's fresh store would repeat."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_uri(tmp_path, mlflow_template) -> str:
    """A fresh MLflow store (SQLite) in the test's tmp dir: a copy of the migrated empty one."""
    path = tmp_path / "mlflow.db"
    shutil.copyfile(mlflow_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def run_dirs(tmp_path, mlflow_uri):
    """Overrides that keep a run's MLflow store and checkpoints inside the test's tmp dir."""
    return [f"tracking.uri={mlflow_uri}", f"ray.storage_path={tmp_path / 'runs'}"]
