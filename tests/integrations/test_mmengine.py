"""A real mmengine Runner (mmseg UperNet) with SelectionHook + SelectionSampler named in its config."""
import runpy
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from plot_pixels import assert_plot_has_data

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_mmseg_runner_with_selection_hook_and_sampler(tmp_path, capsys):
    main = runpy.run_path(str(EXAMPLES / "mmseg_upernet.py"), run_name="not_main")["main"]
    session = main(["--epochs", "3", "--images", "24", "--out", str(tmp_path),
                    "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    history = session.history
    kept = [h["selected"] for h in history]
    print("mmengine kept per epoch:", kept)
    assert kept == [24, 12, 12]  # warm-up full, then infobatch keeps ratio 0.5
    assert [h["passes"] for h in history] == kept  # mmengine's loop trained exactly the selected images
    snapshot = sorted((tmp_path / "work" / "runs" / session.run_id / "pool").glob("pool_epoch_*.parquet"))[-1]
    pool = pq.read_table(snapshot, columns=["difficulty", "uncertainty"]).to_pandas()
    # Pixel uncertainty and difficulty reached the pool: without the hook's uncertainty it would be 0.
    assert (pool["uncertainty"] > 0).all() and pool["difficulty"].std() > 0
    assert all(0.0 <= h["val_metric"] <= 100.0 for h in history)  # mmseg's validation mIoU (percent), every epoch
    assert_plot_has_data(session.tracking_uri, session.run_id, tmp_path)  # metric_vs_cost.png is not blank
    out = capsys.readouterr().out
    assert "epoch 2/3  kept 12/24" in out and f"MLflow run {session.run_id}" in out
