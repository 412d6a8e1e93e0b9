"""A run's checkpoint on disk: three files and a manifest that proves they are whole.

    model.pt       model, optimizer, LR schedule, fp16 loss scale, epoch and RNG states (torch.save)
    pool.parquet   the sample pool (every column)
    store.pkl      selector and agent state, epoch history, cost so far
    manifest.json  size and SHA-256 of the three, written last

Each file is written to a temporary name and renamed, and the manifest comes last, so a folder with
a manifest that matches is complete. Ray Train then copies the folder into the run's storage; a copy
cut short (a killed worker or driver, a full disk) no longer matches its manifest, and `read` names
the file instead of loading half a pool.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

FILES = ("model.pt", "pool.parquet", "store.pkl")
MANIFEST = "manifest.json"


class CheckpointError(ValueError):
    """A checkpoint folder that is missing, torn or corrupt; the message names the file."""


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write(directory: str | os.PathLike, model_state: dict, pool: pa.Table, store_state: dict) -> None:
    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _atomic_write(directory / "model.pt", lambda f: torch.save(model_state, f))
    _atomic_write(directory / "pool.parquet", lambda f: pq.write_table(pool, f, compression="zstd"))
    _atomic_write(directory / "store.pkl", lambda f: f.write(pickle.dumps(store_state)))  # agent tensors too
    manifest = {name: {"bytes": (directory / name).stat().st_size, "sha256": _digest(directory / name)}
                for name in FILES}
    _atomic_write(directory / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=1).encode()))


def verify(directory: str | os.PathLike) -> Path:
    """The folder, if it holds a whole checkpoint; else CheckpointError naming what is wrong."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint {directory} is not a directory")
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {directory} has no {MANIFEST}: it is not a raydata_agent checkpoint, "
                              f"or its writing was cut short") from None
    except (OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint {directory / MANIFEST} is corrupt: {err}") from None
    for name in FILES:
        path = directory / name
        expected = manifest.get(name, {})
        if not path.is_file():
            raise CheckpointError(f"checkpoint file {path} is missing")
        if path.stat().st_size != expected.get("bytes") or _digest(path) != expected.get("sha256"):
            raise CheckpointError(f"checkpoint file {path} is truncated or corrupt "
                                  f"({path.stat().st_size} bytes, manifest says {expected.get('bytes')})")
    return directory


def read(directory: str | os.PathLike, parts: tuple[str, ...] = ("model", "pool", "store")) -> dict:
    """{"model": ..., "pool": pa.Table, "store": ...} for the parts asked, after `verify`."""
    import torch

    directory = verify(directory)
    out = {}
    loaders = {"model": ("model.pt", lambda b: torch.load(io.BytesIO(b), map_location="cpu", weights_only=False)),
               "pool": ("pool.parquet", lambda b: pq.read_table(pa.BufferReader(b))),
               "store": ("store.pkl", pickle.loads)}  # our own checkpoint, verified: trusted
    for part in parts:
        name, load = loaders[part]
        try:
            out[part] = load((directory / name).read_bytes())
        except Exception as err:  # verified bytes that still do not load: another version wrote them
            raise CheckpointError(f"checkpoint file {directory / name} cannot be loaded: "
                                  f"{type(err).__name__}: {err}") from None
    return out


def latest(run_dir: str | os.PathLike) -> Path | None:
    """The newest whole checkpoint under a run's storage folder (Ray Train's checkpoint_* folders),
    skipping torn ones; None if there is none."""
    run_dir = Path(run_dir)
    for candidate in sorted(run_dir.glob("checkpoint_*"), reverse=True):  # names start with a timestamp
        try:
            return verify(candidate)
        except CheckpointError:
            continue
    return None
