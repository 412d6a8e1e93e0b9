"""An mmsegmentation config with data selection: two config entries (marked `# + selection`).

Run: python examples/mmseg_upernet.py [--epochs 3] [--images 24]
A small UperNet (ResNet-18, random init) trains on a generated segmentation set with mmengine's own
Runner; each epoch trains on the images the selector keeps, and mmseg's validation mIoU is the run's val_metric.
"""
import argparse
from pathlib import Path

import raydata_agent.integrations.mmengine  # noqa: F401  + selection: registers SelectionHook and SelectionSampler
from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from raydata_agent.config import DataConfig  # noqa: E402
from raydata_agent.data.synthetic_seg import CLASSES, ensure_synthetic_seg  # noqa: E402
from raydata_agent.tasks.segmentation import upernet_config  # noqa: E402


def build_config(data_root: str, work_dir: str, epochs: int, tracking_uri: str | None) -> Config:
    model = upernet_config(len(CLASSES), depth=18, head_channels=32)
    model["data_preprocessor"] = dict(type="SegDataPreProcessor", mean=[123.675, 116.28, 103.53],
                                      std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(32, 32))
    pipeline = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations"), dict(type="PackSegInputs")]

    def dataset(split: str) -> dict:
        return dict(type="BaseSegDataset", data_root=data_root, metainfo=dict(classes=CLASSES),
                    data_prefix=dict(img_path=f"images/{split}", seg_map_path=f"annotations/{split}"),
                    img_suffix=".jpg", seg_map_suffix=".png", reduce_zero_label=True, pipeline=pipeline)

    return Config(dict(
        default_scope="mmseg",
        custom_imports=dict(imports=["raydata_agent.integrations.mmengine"]),  # + selection (config files)
        model=model,
        work_dir=work_dir,
        train_dataloader=dict(
            batch_size=4, num_workers=0,
            dataset=dataset("training"),
            sampler=dict(type="SelectionSampler", shuffle=True)),  # + selection
        train_cfg=dict(type="EpochBasedTrainLoop", max_epochs=epochs, val_interval=1),
        val_dataloader=dict(batch_size=4, num_workers=0, dataset=dataset("validation"),
                            sampler=dict(type="DefaultSampler", shuffle=False)),
        val_evaluator=dict(type="IoUMetric", iou_metrics=["mIoU"]),
        val_cfg=dict(type="ValLoop"),
        optim_wrapper=dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=5e-4)),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=epochs),
                           logger=dict(type="LoggerHook", interval=5)),
        custom_hooks=[dict(type="SelectionHook", selector="infobatch", ratio=0.5, val_metric="mIoU",  # + selection
                           tracking_uri=tracking_uri, storage_path=str(Path(work_dir) / "runs"),
                           config={"selection.delta": 0.75})],
        launcher="none",
    ))


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--out", default="runs/mmseg_example")
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args(argv)

    data_root = ensure_synthetic_seg(DataConfig(name="synthetic_seg", path=str(Path(args.out) / "data"),
                                                num_samples=args.images, val_samples=4, image_size=32))
    runner = Runner.from_cfg(build_config(str(data_root), str(Path(args.out) / "work"), args.epochs,
                                          args.tracking_uri))
    runner.train()
    return next(h for h in runner.hooks if type(h).__name__ == "SelectionHook").session


if __name__ == "__main__":
    main()
