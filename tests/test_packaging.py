"""The distribution: folders map to udc.sdk / udc.train / udc.export in both wheel and editable
installs; sdk is the bottom layer and imports neither train nor export."""
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_source_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for top in ("sdk", "train", "export"):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT).parts
            found.add(".".join(("udc", *rel)))
    assert found == listed


def test_sdk_imports_neither_train_nor_export():
    offenders = []
    for py in (ROOT / "sdk").rglob("*.py"):
        text = py.read_text()
        if re.search(r"^\s*(from|import)\s+(udc\.(train|export)|\.\.+(train|export))\b", text, re.MULTILINE):
            offenders.append(str(py.relative_to(ROOT)))
    assert not offenders


def test_editable_install_imports_from_the_checkout():
    import udc.export
    import udc.sdk
    import udc.train

    for mod, folder in ((udc.sdk, "sdk"), (udc.train, "train"), (udc.export, "export")):
        assert Path(mod.__file__).resolve().parent == ROOT / folder


@pytest.mark.slow
def test_wheel_installs_and_imports(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True)
    wheel = next((tmp_path / "dist").glob("udc-*.whl"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True)
    code = ("import udc.sdk, udc.train, udc.export, udc.sdk.models.lrdif; "
            "print(udc.sdk.__file__); from udc.sdk.config import tiny; from udc.sdk import LRDif; LRDif(tiny())")
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-S", "-c", f"import site, sys; sys.path[:0] = [{str(target)!r}]; "
                          f"site.main(); {code}"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(target))
