"""The udc bundle: a directory ``NAME.udc/`` with ``manifest.json`` and one file per component.

    bundle = load_bundle("face.udc")            # validates the manifest, checks every sha256
    path = bundle.file("clip_image")            # face.udc/clip_image.pte
    bundle.manifest["preprocessing"]["crop_size"]

    with BundleWriter("face.udc", force=False) as w:    # refuses an existing bundle without force
        export_to(w.path("clip_image.pte"))
        entry = w.entry("clip_image.pte")               # {"file", "sha256", "size_bytes"}
        w.commit(manifest)                              # validate, verify, rename into place

Writing is atomic: everything goes into a hidden temporary directory beside the destination and is
renamed into place by :meth:`BundleWriter.commit`; an exception (or leaving the ``with`` block without
committing) removes the temporary directory, so a failed export leaves nothing behind. A bundle
replaced with ``force`` is swapped out only after the new one is complete.

Reading verifies every file the manifest lists (component files and their bundled test programs):
missing, truncated (size differs) and tampered (sha256 differs) files are refused with a
:class:`BundleError` that names the file and what to do. The manifest's JSON Schema is
``data/manifest.schema.json``. Core ML packages are directories: their ``sha256`` is
:func:`tree_sha256` (over the sorted relative paths and contents of every file inside).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

from .errors import UdcError
from .hashing import file_sha256

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SUFFIX = ".udc"


class BundleError(UdcError, ValueError):
    """A bundle that cannot be used: missing, not a bundle, invalid manifest, missing/tampered file."""


# ---------------------------------------------------------------------------------------- hashing


def _tree_files(path: Path) -> list[Path]:
    return sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix())


def tree_sha256(path: str | Path) -> str:
    """sha256 of a directory: over ``relative/path\\0<sha256 of the file>\\n`` for every file, sorted."""
    path = Path(path)
    h = hashlib.sha256()
    for p in _tree_files(path):
        h.update(p.relative_to(path).as_posix().encode() + b"\0" + file_sha256(p).encode() + b"\n")
    return h.hexdigest()


def path_sha256(path: str | Path) -> str:
    path = Path(path)
    return tree_sha256(path) if path.is_dir() else file_sha256(path)


def path_size(path: str | Path) -> int:
    path = Path(path)
    return sum(p.stat().st_size for p in _tree_files(path)) if path.is_dir() else path.stat().st_size


def file_entry(root: str | Path, rel: str) -> dict[str, Any]:
    """``{"file", "sha256", "size_bytes"}`` of ``root/rel`` (a file or a package directory)."""
    p = Path(root) / rel
    return {"file": rel, "sha256": path_sha256(p), "size_bytes": path_size(p)}


# ---------------------------------------------------------------------------------------- manifest
@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("data/manifest.schema.json").read_text())


def validate_manifest(manifest: dict[str, Any], where: str = "manifest") -> None:
    """Raise :class:`BundleError` (first problem, with its JSON path) unless ``manifest`` fits the schema."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        loc = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise BundleError(f"{where}: invalid at {loc}: {e.message}{more}")
    if manifest["schema_version"] > SCHEMA_VERSION:
        raise BundleError(f"{where}: schema version {manifest['schema_version']} is newer than this udc reads "
                          f"({SCHEMA_VERSION}): upgrade udc")


def listed_files(manifest: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(component/role, entry)`` for every file the manifest lists."""
    for name, comp in manifest["components"].items():
        yield name, comp
        if comp.get("bundled_program"):
            yield f"{name} (bundled program)", comp["bundled_program"]


def verify_files(root: str | Path, manifest: dict[str, Any]) -> None:
    """Check that every listed file exists with its size and sha256; :class:`BundleError` otherwise."""
    root = Path(root)
    for what, entry in listed_files(manifest):
        p = root / entry["file"]
        hint = "re-export the bundle (udc-export ... --force) or copy it again"
        if not p.exists():
            raise BundleError(f"{root.name}: {what} file {entry['file']} is missing: {hint}")
        size = path_size(p)
        if size != entry["size_bytes"]:
            raise BundleError(f"{root.name}: {what} file {entry['file']} is truncated or altered: {size} bytes, "
                              f"the manifest says {entry['size_bytes']}: {hint}")
        digest = path_sha256(p)
        if digest != entry["sha256"]:
            raise BundleError(f"{root.name}: {what} file {entry['file']} does not match its sha256 "
                              f"(tampered or corrupted: {digest[:12]}... != {entry['sha256'][:12]}...): {hint}")


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"bundle {path} does not exist (expected a NAME{SUFFIX} directory)")
    mf = path / MANIFEST
    if not mf.is_file():
        raise BundleError(f"{path} is not a udc bundle: it has no {MANIFEST}")
    try:
        manifest = json.loads(mf.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path.name}/{MANIFEST} is not valid JSON ({e}): the manifest is damaged, re-export") from e
    validate_manifest(manifest, f"{path.name}/{MANIFEST}")
    return manifest


@dataclass
class Bundle:
    path: Path
    manifest: dict[str, Any]

    @property
    def components(self) -> list[str]:
        return list(self.manifest["components"])

    def file(self, component: str) -> Path:
        try:
            return self.path / self.manifest["components"][component]["file"]
        except KeyError:
            raise BundleError(f"{self.path.name} has no component {component!r}; it has "
                              f"{', '.join(self.components)}") from None

    def io(self, component: str) -> tuple[list[dict], list[dict]]:
        c = self.manifest["components"][component]
        return c["inputs"], c["outputs"]

    def verify(self) -> None:
        verify_files(self.path, self.manifest)


def load_bundle(path: str | Path, verify: bool = True) -> Bundle:
    """Read and validate ``path/manifest.json``; with ``verify`` check every file's size and sha256."""
    path = Path(path)
    bundle = Bundle(path, read_manifest(path))
    if verify:
        bundle.verify()
    return bundle


# ---------------------------------------------------------------------------------------- writing
def _is_bundle_or_empty(path: Path) -> bool:
    return path.is_dir() and ((path / MANIFEST).is_file() or not any(path.iterdir()))


class BundleWriter:
    """Assemble a bundle in a temporary directory; :meth:`commit` renames it into place."""

    def __init__(self, dest: str | Path, force: bool = False):
        self.dest = Path(dest).absolute()
        if self.dest.suffix != SUFFIX:
            raise BundleError(f"bundle name {self.dest.name!r} must end in {SUFFIX} (e.g. face{SUFFIX})")
        if self.dest.exists() or self.dest.is_symlink():
            if not force:
                raise BundleError(f"{self.dest} already exists: pass --force to replace it")
            if not _is_bundle_or_empty(self.dest):
                raise BundleError(f"{self.dest} exists and is not a udc bundle: not replacing it, even with --force "
                                  "(remove it yourself or choose another name)")
        self.force = force
        self.tmp: Path | None = None
        self.committed = False

    def __enter__(self) -> "BundleWriter":
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.", suffix=".tmp", dir=self.dest.parent))
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.abort()

    def abort(self) -> None:
        if self.tmp is not None and not self.committed:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = None

    @property
    def root(self) -> Path:
        if self.tmp is None:
            raise RuntimeError("BundleWriter is not open (use it in a with block)")
        return self.tmp

    def path(self, rel: str) -> Path:
        return self.root / rel

    def entry(self, rel: str) -> dict[str, Any]:
        return file_entry(self.root, rel)

    def commit(self, manifest: dict[str, Any]) -> Path:
        """Validate ``manifest``, check it against the files written, write it, swap the bundle in."""
        root = self.root
        validate_manifest(manifest, f"{self.dest.name}/{MANIFEST}")
        verify_files(root, manifest)
        listed = {e["file"].split("/")[0] for _, e in listed_files(manifest)}
        stray = sorted(p.name for p in root.iterdir() if p.name not in listed)
        if stray:
            raise BundleError(f"files written but not in the manifest: {stray}")
        tmp_manifest = root / f".{MANIFEST}.tmp"
        tmp_manifest.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
        os.replace(tmp_manifest, root / MANIFEST)
        os.chmod(root, 0o755)  # mkdtemp made it private; a bundle is meant to be shared
        old: Path | None = None
        if self.dest.exists():
            if not self.force or not _is_bundle_or_empty(self.dest):  # re-checked: it may have appeared meanwhile
                raise BundleError(f"{self.dest} already exists: pass --force to replace it")
            old = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.", suffix=".old", dir=self.dest.parent))
            os.replace(self.dest, old / "bundle")
        try:
            os.replace(root, self.dest)
        except BaseException:
            if old is not None:
                os.replace(old / "bundle", self.dest)
                shutil.rmtree(old, ignore_errors=True)
            raise
        self.committed = True
        self.tmp = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.dest
