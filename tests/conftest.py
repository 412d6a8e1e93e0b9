import os

import pytest

os.environ.setdefault("RAY_DEDUP_LOGS", "1")
# Ray Train's controller polls its workers every 2 s by default, at start and at the end of a run: about
# 7 of a small test run's 24 s are that wait. Clusters the tests start (here, or `ray start` in a test's
# shell) inherit this, so their controllers poll every 0.2 s instead.
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")


def pytest_collection_modifyitems(items):
    """A test that uses the shared cluster starts Ray: it is an integration test (`make test-fast` skips it)."""
    for item in items:
        if "ray_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def ray_cluster():
    """One small local Ray cluster for all integration tests (starting one costs seconds), started the
    way a run starts its own (`init_ray`): with the dashboard whose State API Ray Train's placement-group
    cleaner needs. Without it, a Tune trial that ASHA stops leaves its workers' CPUs reserved for good."""
    import ray

    from raydata_agent.config import Config, RayConfig
    from raydata_agent.cluster import init_ray

    init_ray(Config(ray=RayConfig(num_cpus=2)))
    yield
    ray.shutdown()


@pytest.fixture
def run_dirs(tmp_path):
    """Overrides that keep a run's MLflow store and checkpoints inside the test's tmp dir."""
    return [f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", f"ray.storage_path={tmp_path / 'runs'}"]
