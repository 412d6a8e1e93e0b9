"""A real ultralytics `model.train()` with the SelectionTrainer: each epoch trains on the selected images."""
import runpy
from pathlib import Path

import pytest
from plot_pixels import assert_plot_has_data

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_yolo_train_with_selection_trainer(tmp_path, capsys, monkeypatch):
    main = runpy.run_path(str(EXAMPLES / "ultralytics_yolo.py"), run_name="not_main")["main"]
    from ultralytics.models.yolo.detect import DetectionTrainer  # after the example configured ultralytics

    validate = DetectionTrainer.validate

    def validate_marked(trainer):  # 3 epochs on 32 images score mAP 0: give each epoch's a known value
        metrics, fitness = validate(trainer)
        return {**metrics, "metrics/mAP50-95(B)": 0.1 * (trainer.epoch + 1)}, fitness

    monkeypatch.setattr(DetectionTrainer, "validate", validate_marked)
    session = main(["--epochs", "3", "--images", "32", "--imgsz", "64", "--out", str(tmp_path),
                    "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    history = session.history
    kept = [h["selected"] for h in history]
    print("ultralytics kept per epoch:", kept)
    assert kept[0] == 32  # warm-up: every image gets a loss once
    assert kept[1] == kept[2] == 16  # infobatch keeps ratio 0.5 of 32 images
    assert [h["passes"] for h in history] == kept  # ultralytics' loop trained exactly the selected images
    # Each epoch closed after ultralytics' validation of that epoch, with its mAP50-95 as val_metric.
    assert [h["val_metric"] for h in history] == pytest.approx([0.1, 0.2, 0.3])
    assert_plot_has_data(session.tracking_uri, session.run_id, tmp_path)  # metric_vs_cost.png is not blank
    out = capsys.readouterr().out
    assert "epoch 3/3  kept 16/32" in out and f"MLflow run {session.run_id}" in out
