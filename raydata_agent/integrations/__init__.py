"""Selection inside host libraries' own training loops, through their own extension points.

- `raydata_agent.integrations.ultralytics`: a DetectionTrainer subclass for `YOLO(...).train(trainer=...)`.
- `raydata_agent.integrations.mmengine`: a Hook and a sampler in mmengine's registries, named in a config.
Each module imports its host library when it is imported, never before: `import raydata_agent` stays light.
All of them run through the one `SelectionSession` (raydata_agent/session.py).
"""
