"""Face-expression datasets in the formats users download, mapped to the canonical 7 labels."""
from .base import DatasetIndex, FaceRecord

__all__ = ["DatasetIndex", "FaceRecord"]
