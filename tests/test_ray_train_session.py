"""A user's own Ray Train loop (2 DDP workers) with the session: the selection reaches each worker's
shard through Ray Data (get_dataset_shard), and the per-sample signals come back to the pool."""
import runpy
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_ray_train_example_with_ray_data_trains_on_the_selected_share(ray_cluster, tmp_path):
    main = runpy.run_path(str(EXAMPLES / "ray_train.py"), run_name="not_main")["main"]
    session = main(["--feed", "ray_data", "--workers", "2", "--cpus-per-worker", "0.5", "--epochs", "3",
                    "--samples", "400", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                    "--storage-path", str(tmp_path / "runs")])
    history = session.history
    kept = [h["selected"] for h in history]
    print("ray_train (ray_data, 2 workers) kept per epoch:", kept)
    assert len(kept) == 3 and kept[0] == 400  # warm-up epoch is full
    assert 150 <= kept[1] < 400  # infobatch pruned
    # Both workers' shards together covered the selection once: every selected sample was
    # trained (and recorded) exactly once, up to the few rows an equal split drops.
    for h in history:
        assert h["selected"] - 2 <= h["passes"] <= h["selected"]
