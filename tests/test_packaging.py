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
    """Every folder under sdk/ train/ export/ is listed: code packages (an __init__.py) and data-only folders
    (which setuptools treats as packages, and warns about when they are left out)."""
    tools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tools["packages"])
    found = set()
    for top in ("sdk", "train", "export"):
        for folder in [ROOT / top, *(ROOT / top).rglob("*")]:
            if folder.is_dir() and folder.name != "__pycache__" and any(folder.iterdir()):
                found.add(".".join(("udc", *folder.relative_to(ROOT).parts)))
    assert found == listed
    data_only = {p for p in listed if not (ROOT / Path(*p.split(".")[1:]) / "__init__.py").exists()}
    assert data_only <= set(tools["package-data"]), "a data-only folder needs its package-data pattern"


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
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v", "-w",
                            str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-2000:]
    assert "absent from the `packages` configuration" not in build.stdout + build.stderr  # the setuptools wall
    wheel = next((tmp_path / "dist").glob("udc-*.whl"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True)
    code = ("import udc.sdk, udc.train, udc.export, udc.sdk.models.lrdif.model; "
            "print(udc.sdk.__file__); from udc.sdk.models.config import tiny; from udc.sdk import LRDif; LRDif(tiny()); "
            "from importlib.resources import files; import json; "
            "[json.loads(files('udc.sdk').joinpath('data', n).read_text()) "
            "for n in ('manifest.schema.json', 'landmarks68.json')]")
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-S", "-c", f"import site, sys; sys.path[:0] = [{str(target)!r}]; "
                          f"site.main(); {code}"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(target))
