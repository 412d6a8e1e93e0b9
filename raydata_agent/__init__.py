"""raydata_agent: training runs on Ray that choose their own data, epoch by epoch.

The public API for a training loop you own (stable names; everything else may change):

    session = raydata_agent.start_session(len(train_set), epochs=E, selector="infobatch", ratio=0.5)
    loader = DataLoader(raydata_agent.WithIds(train_set), batch_size=64, sampler=session.sampler())
    loss = session.record(ids, per_sample_loss)   # records the signals, returns the weighted mean loss

Host-library integrations live in `raydata_agent.integrations` (ultralytics, mmengine).
Names load lazily, so `import raydata_agent` stays cheap (torch is imported on first use).
"""

__version__ = "0.1.0"

_PUBLIC = {
    "start_session": "raydata_agent.session",
    "SelectionSession": "raydata_agent.session",
    "SelectedSampler": "raydata_agent.session",
    "WithIds": "raydata_agent.session",
    "NonFiniteLossError": "raydata_agent.session",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'raydata_agent' has no attribute {name!r}")
