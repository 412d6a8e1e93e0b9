"""mmengine / mmsegmentation: selection from a config, through mmengine's registries.

An mmseg config gains selection with two entries:

    train_dataloader = dict(..., sampler=dict(type="SelectionSampler", shuffle=True))
    custom_hooks = [dict(type="SelectionHook", selector="infobatch", ratio=0.5)]

(plus `custom_imports = dict(imports=["raydata_agent.integrations.mmengine"])` in a config file, or an
import of this module before the Runner is built). The hook starts the session when training starts,
hands it to the sampler, and routes the segmentor's training loss through the session: the
per-image losses (decode + auxiliary head, each image's mean over its labelled pixels, as
tasks/segmentation.py computes them) and the mean pixel uncertainty go to the pool, and the loss
mmengine back-propagates is their selection-weighted mean. Single process (launcher="none").
Use epoch-based parameter schedulers: a selected epoch has fewer iterations than a full one.
"""
from __future__ import annotations

from raydata_agent.integrations import mmcv_ops

mmcv_ops.install()  # before mmseg is imported: mmcv-lite has no compiled mmcv.ops

from mmengine.hooks import Hook  # noqa: E402
from mmengine.model import is_model_wrapper  # noqa: E402
from mmengine.registry import DATA_SAMPLERS, HOOKS  # noqa: E402

from raydata_agent.session import SelectedSampler, SelectionSession  # noqa: E402
from raydata_agent.session_factory import start_session  # noqa: E402
from raydata_agent.tasks.segmentation import per_image_loss, pixel_signals  # noqa: E402  (imports mmseg)


@DATA_SAMPLERS.register_module()
class SelectionSampler(SelectedSampler):
    """The training sampler: each epoch's selected indices. SelectionHook attaches the session."""

    def __init__(self, dataset, shuffle: bool = True, seed: int | None = None):
        super().__init__(session=None, shuffle=shuffle)
        self.dataset = dataset

    def __iter__(self):
        if self.session is None:
            raise RuntimeError("SelectionSampler needs custom_hooks=[dict(type='SelectionHook', ...)] in the config")
        return super().__iter__()

    def __len__(self) -> int:
        if self.session is None:  # mmengine sizes the loop before training starts: epoch 0 is full data
            return len(self.dataset)
        return super().__len__()


@HOOKS.register_module()
class SelectionHook(Hook):
    """Starts selection with the run, closes each epoch in the pool, ends the MLflow run.

    Keyword arguments are `raydata_agent.start_session`'s (selector, ratio, tracking_uri, config, ...),
    and `val_metric`: the key of the validation metrics (mmengine's val loop) logged as the run's
    val_metric, which metric_vs_cost.png plots against cost.
    """

    priority = "NORMAL"

    def __init__(self, val_metric: str = "mIoU", **session_options):
        self.val_metric = val_metric
        self.options = session_options
        self.session: SelectionSession | None = None
        self.ids_by_path: dict[str, int] = {}

    def before_train(self, runner) -> None:
        loader = runner.train_dataloader
        if not isinstance(loader.sampler, SelectionSampler):
            raise TypeError("SelectionHook needs train_dataloader.sampler=dict(type='SelectionSampler'); "
                            f"the config's sampler is {type(loader.sampler).__name__}")
        dataset = loader.dataset
        self.ids_by_path = {dataset.get_data_info(i)["img_path"]: i for i in range(len(dataset))}
        self.session = start_session(len(dataset), epochs=runner.max_epochs, sources=list(self.ids_by_path),
                                     **{"integration": "mmengine", **self.options})
        loader.sampler.session = self.session
        segmentor = runner.model.module if is_model_wrapper(runner.model) else runner.model
        segmentor.loss = lambda inputs, data_samples: self.selected_loss(segmentor, inputs, data_samples)

    def selected_loss(self, segmentor, inputs, data_samples) -> dict:
        """The segmentor's training loss under selection (replaces EncoderDecoder.loss)."""
        feats = segmentor.extract_feat(inputs)
        logits = segmentor.decode_head(feats)
        label = segmentor.decode_head._stack_batch_gt(data_samples).squeeze(1)  # [B, H, W], 255 = ignored
        loss = per_image_loss(segmentor.decode_head, logits, label)
        if segmentor.with_auxiliary_head:
            loss = loss + per_image_loss(segmentor.auxiliary_head, segmentor.auxiliary_head(feats), label)
        ids = [self.ids_by_path[sample.img_path] for sample in data_samples]
        features = feats[-1].detach().mean((2, 3)) if self.session.needs_features else None
        uncertainty, fit = pixel_signals(logits, label)
        weighted = self.session.record(ids, loss, uncertainty=uncertainty, features=features, fit=fit)
        return {"loss": weighted}  # mmengine's parse_losses sums the keys named loss*

    def before_train_epoch(self, runner) -> None:
        runner.train_dataloader.sampler.set_epoch(runner.epoch)

    def after_train_epoch(self, runner) -> None:
        if runner.val_loop is None:  # else after_val_epoch closes it (an epoch not validated: the next plan)
            self.session.end_epoch()

    def after_val_epoch(self, runner, metrics: dict | None = None) -> None:
        if self.session is None or self.session.epoch is None:  # validation outside training
            return
        if self.val_metric not in (metrics or {}):
            raise KeyError(f"SelectionHook(val_metric={self.val_metric!r}): the validation metrics are "
                           f"{sorted(metrics or {})}")
        self.session.end_epoch(val_metric=metrics[self.val_metric])

    def after_train(self, runner) -> None:
        if self.session is not None:
            self.session.close()
