"""Load a script of ``benchmarks/`` (plain scripts, not a package) as a module, for the tests of its functions."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(file: str, name: str | None = None) -> ModuleType:
    """``benchmarks/<file>`` executed as module ``name`` (default: ``udc_bench_<stem>``)."""
    spec = importlib.util.spec_from_file_location(name or f"udc_bench_{Path(file).stem}", BENCHMARKS / file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
