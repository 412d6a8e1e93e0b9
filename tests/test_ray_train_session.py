"""A user's own Ray Train loop (2 DDP workers) with the session: the selection reaches each worker's
shard through Ray Data (get_dataset_shard) or through the session's sampler, and the per-sample
signals come back to the pool."""
import runpy
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("feed", ["ray_data", "sampler"])
def test_ray_train_example_trains_each_worker_on_its_share(ray_cluster, tmp_path, feed):
    main = runpy.run_path(str(EXAMPLES / "ray_train.py"), run_name="not_main")["main"]
    session = main(["--feed", feed, "--workers", "2", "--cpus-per-worker", "0.5", "--epochs", "3",
                    "--samples", "400", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                    "--storage-path", str(tmp_path / "runs")])
    history = session.history
    kept = [h["selected"] for h in history]
    print(f"ray_train ({feed}, 2 workers) kept per epoch:", kept, "passes:", [h["passes"] for h in history])
    assert len(kept) == 3 and kept[0] == 400  # warm-up epoch is full
    assert 150 <= kept[1] < 400  # infobatch pruned
    # Both workers' shards together covered the selection once: every selected sample was trained
    # (and recorded) once, up to the row an equal split drops (Ray Data) or pads (the sampler).
    for h in history:
        assert h["selected"] - 1 <= h["passes"] <= h["selected"] + 1
