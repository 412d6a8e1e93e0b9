"""raydata_agent: training runs on Ray that choose their own data, epoch by epoch.

The public API (stable names; everything else may change). Our recipe on Ray Train:

    cfg = raydata_agent.load_config("run.yaml", ["selection.ratio=0.3"])
    result = raydata_agent.run(cfg)                # raises RunFailed / RunInterrupted; resume(run_id) continues

A training loop you own:

    session = raydata_agent.start_session(len(train_set), epochs=E, selector="infobatch", ratio=0.5)
    loader = DataLoader(raydata_agent.WithIds(train_set), batch_size=64, sampler=session.sampler())
    loss = session.record(ids, per_sample_loss)   # records the signals, returns the weighted mean loss

Host-library integrations live in `raydata_agent.integrations` (ultralytics, mmengine).
Names load lazily, so `import raydata_agent` stays cheap (torch is imported on first use).
"""

__version__ = "0.1.0"

_PUBLIC = {
    "run": "raydata_agent.runner",
    "resume": "raydata_agent.runner",
    "RunResult": "raydata_agent.runner",
    "RunFailed": "raydata_agent.errors",
    "RunInterrupted": "raydata_agent.errors",
    "NonFiniteLossError": "raydata_agent.errors",
    "load_config": "raydata_agent.config",
    "Config": "raydata_agent.config",
    "ConfigError": "raydata_agent.config",
    "start_session": "raydata_agent.session_factory",
    "SelectionSession": "raydata_agent.session",
    "SelectedSampler": "raydata_agent.sampling",
    "WithIds": "raydata_agent.sampling",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'raydata_agent' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
