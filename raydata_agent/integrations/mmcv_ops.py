"""A pure-torch stand-in for `mmcv.ops`, so mmsegmentation imports on top of mmcv-lite.

Why it exists: mmseg 1.x imports `mmcv.ops` at start (`point_sample` in `mmseg.models.utils`, focal
loss, a few heads), but `mmcv.ops` needs mmcv's compiled extension (`mmcv._ext`), which mmcv-lite
does not ship, and building full mmcv 2.x takes over an hour on 2 cores and fails on C++17 here
(docs/design.md#stack-constraints). UperNet with a ResNet backbone uses none of the compiled ops; the one op mmseg's
import-time code paths call, `point_sample`, is `F.grid_sample` and is implemented here.

Every other name mmseg (or mmengine, for mmseg models) imports from `mmcv.ops` exists so that the
import succeeds, and raises `NotImplementedError` naming the op when it is called or instantiated.

`install()` registers this module as `mmcv.ops` only when a real `mmcv.ops` cannot be imported, so
installing a full mmcv build (`pip install mmcv==2.1.0` built from source against this torch) wins
with no change here. The segmentation task calls `install()` before its first mmseg import, in the
driver and in every Ray Train worker (each worker builds the task itself).
"""
from __future__ import annotations

import importlib
import logging
import sys

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

IS_STAND_IN = True  # the real mmcv.ops has no such attribute: `getattr(mmcv.ops, "IS_STAND_IN", False)`

_HINT = ("raydata_agent's pure-torch mmcv.ops stand-in (mmcv-lite has no compiled ops) does not "
         "implement it; install a full mmcv build (mmcv==2.1.0, compiled for this torch) to use it")


def point_sample(input: torch.Tensor, points: torch.Tensor, align_corners: bool = False,
                 **kwargs) -> torch.Tensor:
    """Sample `input` [N, C, H, W] at `points` given in [0, 1] x [0, 1] (x, y) coordinates.

    `points` is [N, P, 2] (returns [N, C, P]) or [N, Hg, Wg, 2] (returns [N, C, Hg, Wg]). The same
    contract and code path as mmcv's `point_sample`: `F.grid_sample` on the grid mapped to [-1, 1].
    """
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    output = F.grid_sample(input, points * 2.0 - 1.0, align_corners=align_corners, **kwargs)
    return output.squeeze(3) if add_dim else output


def _unsupported_function(name: str):
    def op(*args, **kwargs):
        raise NotImplementedError(f"mmcv.ops.{name}: {_HINT}")

    op.__name__ = op.__qualname__ = name
    op.__doc__ = "Not available without compiled mmcv: calling it raises NotImplementedError."
    return op


def _unsupported_module(name: str) -> type:
    """A class, so `isinstance(m, Op)` checks work, that cannot be instantiated."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError(f"mmcv.ops.{name}: {_HINT}")

    return type(name, (nn.Module,), {"__init__": __init__, "__module__": __name__,
                                     "__doc__": "Not available without compiled mmcv."})


# Names imported from mmcv.ops by mmseg 1.2.2 (focal_loss, cc_head, psa_head) and by mmengine
# 0.10.7 code that mmseg models reach (optimizer constructors, SyncBN conversion). The last two are
# guarded by `mmcv_full_available()`, which checks for `mmcv._ext` and so stays False here.
sigmoid_focal_loss = _unsupported_function("sigmoid_focal_loss")
softmax_focal_loss = _unsupported_function("softmax_focal_loss")
CrissCrossAttention = _unsupported_module("CrissCrossAttention")
PSAMask = _unsupported_module("PSAMask")
DeformConv2d = _unsupported_module("DeformConv2d")
ModulatedDeformConv2d = _unsupported_module("ModulatedDeformConv2d")
SyncBatchNorm = _unsupported_module("SyncBatchNorm")


def get_compiler_version() -> str:
    """mmcv's `collect_env` asks for these; there is no compiled extension to describe."""
    return "n/a (raydata_agent mmcv.ops stand-in)"


def get_compiling_cuda_version() -> str:
    return "n/a (raydata_agent mmcv.ops stand-in)"


def install() -> bool:
    """Make `import mmcv.ops` work: a real build if one imports, else this module.

    Returns True when the stand-in is in use. Idempotent; cheap after the first call.
    """
    current = sys.modules.get("mmcv.ops")
    if current is not None:
        return getattr(current, "IS_STAND_IN", False)
    try:
        importlib.import_module("mmcv.ops")
        return False  # a full mmcv: use it
    except (ImportError, OSError) as err:  # no mmcv._ext, or one built for another torch
        reason = err
    # The failed import leaves half-imported `mmcv.ops.*` submodules behind; drop them.
    for name in [n for n in sys.modules if n == "mmcv.ops" or n.startswith("mmcv.ops.")]:
        del sys.modules[name]
    import mmcv

    sys.modules["mmcv.ops"] = sys.modules[__name__]
    mmcv.ops = sys.modules[__name__]
    log.info("mmcv.ops is raydata_agent's pure-torch stand-in (%s); install a full mmcv for compiled ops", reason)
    return True
