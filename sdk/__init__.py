"""udc.sdk: the bottom layer of udc (``udc.train`` and ``udc.export`` build on it; it imports neither).

The public API, for an app or a script::

    from udc.sdk import Recognizer                      # a bundle on any runtime: image in, expression out
    rec = Recognizer.load("face.udc")                   # verifies the manifest and every checksum first
    p = rec.predict("photo.jpg")                        # -> Prediction: p.label, p.confidence, p.probs, p.box

    from udc.sdk import build_model, get_config, load_checkpoint   # the PyTorch reference
    model = build_model(get_config("mobile"))

Its rooms, bottom to top (a room imports only the rooms below it; ``tests/test_layout.py`` checks it):

=========  ==================================================================================================
errors     the typed errors every part raises (``UdcError`` and its subclasses); ``labels``: the 7 classes;
           ``hashing``: SHA-256 of files and trees; ``data/``: the landmark layout and the manifest schema
console    what the user sees while a command runs: quiet third-party logs, progress, summary tables
faces      a photo or a video frame -> detected, landmarked, aligned face crop
models     the networks (``models.lrdif``, ``models.ddamfn``), their configs, checkpoints, the four on-device
           components, parameter/MAC counts
runtime    a bundle on disk: format and checksums, a runner per runtime, the on-device chain, ``Recognizer``
parity     a bundle against its PyTorch reference, failing closed
bench      latency on this host and on phones (Android over adb, iOS over devicectl)
cli        the command lines: ``udc``, ``udc-predict``, ``udc-parity``, ``udc-bench``
=========  ==================================================================================================
"""
from .labels import LABELS
from .models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .models.components import COMPONENTS, on_device_components
from .models.config import LRDifConfig, get_config
from .models.lrdif.clip_checkpoint import CLIPCheckpointError
from .models.lrdif.model import LRDif, build_model

#: names imported on first use: the runtime side pulls in MediaPipe, ExecuTorch and ONNX Runtime
_LAZY = {"Recognizer": "runtime.recognizer", "Prediction": "runtime.recognizer", "load_bundle": "runtime.bundle",
         "Bundle": "runtime.bundle", "BundleError": "runtime.bundle", "UdcError": "errors"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Bundle", "BundleError", "COMPONENTS", "CLIPCheckpointError", "CheckpointError", "LABELS", "LRDif", "LRDifConfig",
    "Prediction", "Recognizer", "UdcError", "build_model", "get_config", "load_bundle", "load_checkpoint",
    "on_device_components", "save_checkpoint",
]
