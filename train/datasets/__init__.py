"""Face-expression datasets in the formats users download, mapped to the canonical 7 labels."""
from .base import DatasetError, DatasetIndex, FaceRecord
from .registry import FORMATS, detect_format, open_dataset

__all__ = ["DatasetError", "DatasetIndex", "FaceRecord", "FORMATS", "detect_format", "open_dataset"]
