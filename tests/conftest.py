import os

import pytest

os.environ.setdefault("RAY_DEDUP_LOGS", "1")


@pytest.fixture(scope="session")
def ray_cluster():
    """One small local Ray cluster for all integration tests: starting one costs seconds."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def run_dirs(tmp_path):
    """Overrides that keep a run's MLflow store and checkpoints inside the test's tmp dir."""
    return [f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", f"ray.storage_path={tmp_path / 'runs'}"]
