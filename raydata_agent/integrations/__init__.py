"""Selection inside host libraries' own training loops, through their own extension points.

- `raydata_agent.integrations.ultralytics`: a DetectionTrainer subclass for `YOLO(...).train(trainer=...)`.
- `raydata_agent.integrations.mmengine`: a Hook and a sampler in mmengine's registries, named in a config.
- `raydata_agent.integrations.mmcv_ops`: a pure-torch stand-in for `mmcv.ops`, which mmseg imports and
  mmcv-lite lacks; the segmentation task and the mmengine hook install it before mmseg loads.
Each hook module imports its host library when it is imported, never before: `import raydata_agent` stays light.
All of them run through the one `SelectionSession` (raydata_agent/session.py).
"""
