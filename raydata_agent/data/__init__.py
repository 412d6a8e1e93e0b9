"""Data sets, all local: nothing is downloaded at run time.

The classification readers live in `classification.py`, the file checks every reader shares in
`files.py`; detection (`yolo.py`) and segmentation (`ade20k.py`) have their own. This face keeps
the names callers import from `raydata_agent.data`.
"""
from raydata_agent.data.classification import ImageData, load_dataset
from raydata_agent.data.files import DataError, not_utf8, printable_path

__all__ = ["DataError", "ImageData", "load_dataset", "not_utf8", "printable_path"]
