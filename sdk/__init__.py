"""udc.sdk: the bottom layer. The LRDif reference model in PyTorch, its configs, checkpoints and
on-device components. ``udc.train`` and ``udc.export`` build on it; it imports neither."""
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .components import COMPONENTS, on_device_components
from .config import LRDifConfig, get_config
from .labels import LABELS
from .models.clip_checkpoint import CLIPCheckpointError
from .models.lrdif import LRDif, build_model

__all__ = [
    "COMPONENTS", "CLIPCheckpointError", "CheckpointError", "LABELS", "LRDif", "LRDifConfig",
    "build_model", "get_config", "load_checkpoint", "on_device_components", "save_checkpoint",
]
