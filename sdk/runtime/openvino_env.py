"""Where ExecuTorch's OpenVINO delegate finds OpenVINO.

The executorch 1.5.1 wheel's runtime registers ``OpenvinoBackend`` but links no OpenVINO: at the first
OpenVINO-delegated program it ``dlopen``s ``libopenvino_c.so`` from ``OPENVINO_LIB_PATH`` (or the library search
path), and without it the program fails to load ("Init failed for backend OpenvinoBackend"). The ``openvino``
pip package (udc's ``openvino`` extra) ships that library under ``openvino/libs`` with a versioned name
(``libopenvino_c.so.2541``) that a plain ``dlopen("libopenvino_c.so")`` does not find, so udc points
``OPENVINO_LIB_PATH`` at it before loading a program. Nothing here imports openvino (the package is found by
its files), and a path the user set is left alone.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

ENV = "OPENVINO_LIB_PATH"
EXTRA = "pip install -e '.[openvino]'"  # udc's optional extra (pins in pyproject.toml)
_PATTERNS = {"linux": ("libopenvino_c.so", "libopenvino_c.so.*"), "darwin": ("libopenvino_c.dylib",
                                                                             "libopenvino_c.*.dylib"),
             "win32": ("openvino_c.dll",)}


def library(package_dir: str | Path | None = None) -> Path | None:
    """The OpenVINO C library of the installed ``openvino`` package (``None``: not installed, or no library in it).
    The unversioned name first, then the highest versioned one."""
    if package_dir is None:
        spec = importlib.util.find_spec("openvino")
        if spec is None or not spec.submodule_search_locations:
            return None
        package_dir = next(iter(spec.submodule_search_locations))
    libs = Path(package_dir) / "libs"
    if not libs.is_dir():
        return None
    for pattern in _PATTERNS.get(sys.platform, _PATTERNS["linux"]):
        found = sorted((p for p in libs.glob(pattern) if p.is_file()), key=lambda p: (len(p.name), p.name))
        if found:
            return found[-1]
    return None


def point_executorch_at_openvino() -> str | None:
    """Set ``OPENVINO_LIB_PATH`` to the installed package's library unless the user set it; the path in effect
    (``None``: unset and no package). Call it before the first OpenVINO-delegated program loads (the runtime
    reads the variable once, at that load)."""
    if os.environ.get(ENV):
        return os.environ[ENV]
    lib = library()
    if lib is None:
        return None
    os.environ[ENV] = str(lib)
    return str(lib)


def missing_hint() -> str:
    """What to tell a user whose OpenVINO-delegated program cannot load."""
    where = os.environ.get(ENV)
    if where and not Path(where).is_file():
        return f"{ENV}={where} is not a file: point it at libopenvino_c, or unset it and {EXTRA}"
    lib = library()
    if lib is None:
        return f"OpenVINO is not installed: {EXTRA} (openvino 2025.x, which executorch 1.5.1 loads)"
    return f"OpenVINO is installed ({lib}) but its runtime did not load this program"
