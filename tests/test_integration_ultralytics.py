"""A real ultralytics `model.train()` with the SelectionTrainer: each epoch trains on the selected images."""
import runpy
from pathlib import Path

import pytest
from plot_pixels import assert_plot_has_data

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_yolo_train_with_selection_trainer(tmp_path, capsys):
    main = runpy.run_path(str(EXAMPLES / "ultralytics_yolo.py"), run_name="not_main")["main"]
    session = main(["--epochs", "3", "--images", "32", "--imgsz", "64", "--out", str(tmp_path),
                    "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    history = session.history
    kept = [h["selected"] for h in history]
    print("ultralytics kept per epoch:", kept)
    assert kept[0] == 32  # warm-up: every image gets a loss once
    assert kept[1] == kept[2] == 16  # infobatch keeps ratio 0.5 of 32 images
    assert [h["passes"] for h in history] == kept  # ultralytics' loop trained exactly the selected images
    assert all(h["val_metric"] >= 0.0 for h in history)  # the epoch closed after ultralytics' validation
    assert_plot_has_data(session.tracking_uri, session.run_id, tmp_path)  # metric_vs_cost.png is not blank
    out = capsys.readouterr().out
    assert "epoch 3/3  kept 16/32" in out and f"MLflow run {session.run_id}" in out
