"""ultralytics YOLO training with data selection: one added argument, `trainer=`.

Run: python examples/ultralytics_yolo.py [--epochs 3] [--images 32] [--imgsz 64]
It trains YOLOv8n (random init) on a generated detection set; each epoch trains on the images the
selector keeps, and the per-image box + cls + dfl losses go back to the pool.
"""
import argparse
from pathlib import Path

from raydata_agent.tasks.detection import configure_ultralytics

configure_ultralytics()  # offline and quiet, before ultralytics is imported (skip it if you have network)

from ultralytics import YOLO  # noqa: E402

from raydata_agent.data.synthetic_det import make_synthetic_detection  # noqa: E402
from raydata_agent.integrations.ultralytics import selection_trainer  # noqa: E402  + selection


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--imgsz", type=int, default=64)
    parser.add_argument("--out", default="runs/ultralytics_example")
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args(argv)

    data = make_synthetic_detection(Path(args.out) / "data", args.images, 8, args.imgsz, seed=0)
    model = YOLO("yolov8n.yaml")
    model.train(data=str(data), epochs=args.epochs, imgsz=args.imgsz, batch=8, workers=0, device="cpu",
                mosaic=0.0, plots=False, project=str(Path(args.out) / "yolo"), name="train", exist_ok=True,
                trainer=selection_trainer(selector="infobatch", ratio=0.5,  # + selection
                                          tracking_uri=args.tracking_uri, storage_path=str(Path(args.out) / "runs"),
                                          config={"selection.delta": 0.75}))
    return model.trainer.session


if __name__ == "__main__":
    main()
