"""The house: udc.sdk's rooms import only the rooms below them, every room says what it offers, no room holds
more than a dozen modules, and the public API is what udc.sdk's docstring promises."""
from __future__ import annotations

import ast
import collections
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SDK = ROOT / "sdk"

#: bottom to top; a room may import only rooms earlier in this list (and the root modules)
ROOMS = ["console", "faces", "models", "runtime", "parity", "bench", "cli"]
ROOT_MODULES = {"__init__", "errors", "labels", "hashing"}


def _module_name(p: Path, base: Path) -> tuple[str, list[str]]:
    parts = ["udc", *p.relative_to(base).with_suffix("").parts]
    pkg_parts = parts[:-1]
    if parts[-1] == "__init__":
        parts = parts[:-1]
        pkg_parts = parts
    return ".".join(parts), pkg_parts


def _room(mod: str) -> str | None:
    parts = mod.split(".")
    if parts[:2] != ["udc", "sdk"] or len(parts) < 3:
        return None
    return parts[2] if parts[2] in ROOMS else None  # root modules (errors, labels, hashing) are below every room


def room_graph(sdk: Path = SDK) -> dict[str, set[str]]:
    """``room -> rooms it imports`` from every import statement under ``sdk`` (function-level ones too)."""
    graph: dict[str, set[str]] = collections.defaultdict(set)
    for p in sdk.rglob("*.py"):
        if "__pycache__" in p.parts:
            continue
        me, pkg = _module_name(p, sdk.parent)
        mine = _room(me)
        for node in ast.walk(ast.parse(p.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = ".".join(pkg[: len(pkg) - node.level + 1]) if node.level else ""
                mod = ".".join(x for x in (base, node.module or "") if x)
                targets = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                theirs = _room(t)
                if theirs and theirs != mine:
                    graph[mine or "(root)"].add(theirs)
    return graph


def layering_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for room, deps in graph.items():
        for dep in deps:
            if room == "(root)":
                if dep not in ("models",):  # the public API re-exports models eagerly, the rest lazily
                    bad.append(f"sdk/__init__ -> {dep} (only models eagerly; the rest through _LAZY)")
            elif ROOMS.index(dep) > ROOMS.index(room):
                bad.append(f"{room} -> {dep}")
    return sorted(bad)


def test_rooms_import_only_downwards():
    assert not layering_violations(room_graph())


def test_the_checker_sees_an_upward_import(tmp_path):
    """The check must be able to fail: a faces module importing runtime is caught."""
    fake = tmp_path / "sdk"
    (fake / "faces").mkdir(parents=True)
    (fake / "runtime").mkdir()
    (fake / "faces" / "x.py").write_text("def f():\n    from ..runtime.bundle import load_bundle\n")
    (fake / "runtime" / "bundle.py").write_text("from ..faces import x\n")
    assert layering_violations(room_graph(fake)) == ["faces -> runtime"]


def test_every_room_says_what_it_offers_and_holds_at_most_a_dozen_modules():
    for d in [p for top in ("sdk", "train", "export") for p in [ROOT / top, *(ROOT / top).rglob("*")]
              if p.is_dir() and p.name not in ("__pycache__", "data")]:
        init = d / "__init__.py"
        assert init.exists(), f"{d.relative_to(ROOT)} has no __init__.py"
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init.relative_to(ROOT)}: no docstring"
        modules = [p for p in d.glob("*.py") if p.name != "__init__.py"]
        assert len(modules) <= 12, f"{d.relative_to(ROOT)} holds {len(modules)} modules: give it rooms"
    loose = {p.stem for p in SDK.glob("*.py")}
    assert loose == ROOT_MODULES, f"loose modules in sdk/: {sorted(loose - ROOT_MODULES)}"


def test_no_training_loss_in_the_sdk():
    assert not list(SDK.rglob("losses*.py"))


def test_public_api():
    import udc.sdk as sdk

    for name in sdk.__all__:
        assert getattr(sdk, name) is not None, name
    from udc.sdk import Recognizer, build_model, get_config, load_bundle  # noqa: F401

    assert Recognizer.__module__ == "udc.sdk.runtime.recognizer"
    with pytest.raises(AttributeError):
        sdk.no_such_name  # noqa: B018
