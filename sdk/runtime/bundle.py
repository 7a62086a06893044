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

Every path a manifest names stays inside the bundle: one plain name (no ``/``, no ``.``/``..``, no
leading dot), a regular file (or, for a ``.mlpackage``, a real directory of regular files); symlinks,
FIFOs and devices are refused without being followed or opened for reading. A component is loaded from
the very bytes that were verified (:meth:`Bundle.read_verified`) where its runtime accepts bytes.

``--force`` replaces only a real udc bundle (a ``manifest.json`` with ``"format": "udc-bundle"``) or an
empty directory. Hidden ``.NAME.udc.*.tmp`` directories a killed export left behind are removed by the
next export of the same name (:func:`clean_stale`).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

from ..errors import UdcError
from ..hashing import NotARegularFile, kind_of, read_regular, regular_sha256

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SUFFIX = ".udc"


class BundleError(UdcError, ValueError):
    """A bundle that cannot be used: missing, not a bundle, invalid manifest, missing/tampered file."""


# ---------------------------------------------------------------------------------------- paths, hashing
#: A file name a manifest may use: one path component, no leading dot (so never ``.`` or ``..``).
MEMBER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
HINT = "re-export the bundle (udc-export ... --force) or copy it again"


def member_path(root: str | Path, rel: Any) -> Path:
    """``root/rel`` for a file name a manifest gives; :class:`BundleError` unless it is one plain name."""
    if not isinstance(rel, str) or not MEMBER_NAME.match(rel):
        raise BundleError(f"{Path(root).name}: manifest file name {rel!r} is not a plain file name inside the bundle "
                          f"(allowed: {MEMBER_NAME.pattern}; no '/', '.', '..' or leading dot): {HINT}")
    return Path(root) / rel


def _tree_files(path: Path) -> list[tuple[str, Path]]:
    """``(relative posix path, path)`` of every file under the real directory ``path``, sorted; symlinks,
    FIFOs and other special files anywhere inside are refused (:class:`NotARegularFile`), never followed."""
    out: list[tuple[str, Path]] = []

    def walk(d: Path, rel: str) -> None:
        with os.scandir(d) as it:
            for e in it:
                r = f"{rel}{e.name}"
                if e.is_symlink():
                    raise NotARegularFile(f"{d / e.name} is a symlink")
                if e.is_dir(follow_symlinks=False):
                    walk(Path(e.path), r + "/")
                elif e.is_file(follow_symlinks=False):
                    out.append((r, Path(e.path)))
                else:
                    raise NotARegularFile(f"{d / e.name} is {kind_of(e.stat(follow_symlinks=False).st_mode)}")

    walk(path, "")
    return sorted(out)


def _lstat_kind(path: Path) -> str:
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if stat.S_ISREG(st.st_mode):
        return "file"
    raise NotARegularFile(f"{path} is {kind_of(st.st_mode)}")


def tree_sha256(path: str | Path) -> str:
    """sha256 of a directory: over ``relative/path\0<sha256 of the file>\n`` for every file, sorted."""
    path = Path(path)
    h = hashlib.sha256()
    for rel, p in _tree_files(path):
        h.update(rel.encode() + b"\0" + regular_sha256(p)[0].encode() + b"\n")
    return h.hexdigest()


def path_sha256(path: str | Path) -> str:
    path = Path(path)
    return tree_sha256(path) if _lstat_kind(path) == "dir" else regular_sha256(path)[0]


def path_size(path: str | Path) -> int:
    path = Path(path)
    if _lstat_kind(path) == "dir":
        return sum(os.lstat(p).st_size for _, p in _tree_files(path))
    return os.lstat(path).st_size


def file_entry(root: str | Path, rel: str) -> dict[str, Any]:
    """``{"file", "sha256", "size_bytes"}`` of ``root/rel`` (a file or a package directory)."""
    p = member_path(root, rel)
    return {"file": rel, "sha256": path_sha256(p), "size_bytes": path_size(p)}


# ---------------------------------------------------------------------------------------- manifest
@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(resources.files("udc.sdk").joinpath("data/manifest.schema.json").read_text())


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


def _check_entry(root: Path, what: str, entry: dict[str, Any], package: bool) -> None:
    """Size and sha256 of one listed file, read without following links; :class:`BundleError` otherwise."""
    p = member_path(root, entry["file"])
    hint = HINT
    if not os.path.lexists(p):
        raise BundleError(f"{root.name}: {what} file {entry['file']} is missing: {hint}")
    try:
        kind = _lstat_kind(p)
        if kind == "dir" and not package:
            raise NotARegularFile(f"{p} is a directory")
        if kind == "dir":
            size, digest = path_size(p), None
        else:
            digest, size = regular_sha256(p)
    except NotARegularFile as e:
        raise BundleError(f"{root.name}: {what} file {entry['file']} is refused: {e} (a bundle holds regular files "
                          f"only): {hint}") from None
    except OSError as e:
        raise BundleError(f"{root.name}: {what} file {entry['file']} cannot be read ({e.strerror}): {hint}") from None
    if size != entry["size_bytes"]:
        raise BundleError(f"{root.name}: {what} file {entry['file']} is truncated or altered: {size} bytes, "
                          f"the manifest says {entry['size_bytes']}: {hint}")
    if digest is None:
        try:
            digest = tree_sha256(p)
        except NotARegularFile as e:
            raise BundleError(f"{root.name}: {what} package {entry['file']} is refused: {e} (a bundle holds regular "
                              f"files only): {hint}") from None
    if digest != entry["sha256"]:
        raise BundleError(f"{root.name}: {what} file {entry['file']} does not match its sha256 "
                          f"(tampered or corrupted: {digest[:12]}... != {entry['sha256'][:12]}...): {hint}")


def verify_files(root: str | Path, manifest: dict[str, Any]) -> None:
    """Check that every listed file is a regular file inside the bundle (a ``.mlpackage`` component: a real
    directory of regular files) with its size and sha256; :class:`BundleError` otherwise."""
    root = Path(root)
    for what, entry in listed_files(manifest):
        package = entry.get("format") == "mlpackage" or str(entry["file"]).endswith(".mlpackage")
        _check_entry(root, what, entry, package and "bundled program" not in what)


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"bundle {path} does not exist (expected a NAME{SUFFIX} directory)")
    mf = path / MANIFEST
    if not os.path.lexists(mf):
        raise BundleError(f"{path} is not a udc bundle: it has no {MANIFEST}")
    try:
        manifest = json.loads(read_regular(mf).decode("utf-8"))
    except NotARegularFile as e:
        raise BundleError(f"{path.name}/{MANIFEST} is refused: {e}") from None
    except OSError as e:
        raise BundleError(f"{path.name}/{MANIFEST} cannot be read ({e.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path.name}/{MANIFEST} is not valid JSON ({e}): the manifest is damaged, re-export") from e
    if not isinstance(manifest, dict):
        raise BundleError(f"{path.name}/{MANIFEST} is not a udc manifest (a JSON object): the manifest is damaged")
    validate_manifest(manifest, f"{path.name}/{MANIFEST}")
    return manifest


@dataclass
class Bundle:
    path: Path
    manifest: dict[str, Any]

    @property
    def components(self) -> list[str]:
        return list(self.manifest["components"])

    def entry(self, component: str) -> dict[str, Any]:
        try:
            return self.manifest["components"][component]
        except KeyError:
            raise BundleError(f"{self.path.name} has no component {component!r}; it has "
                              f"{', '.join(self.components)}") from None

    def file(self, component: str) -> Path:
        """The component's path, confined to the bundle (one plain file name)."""
        return member_path(self.path, self.entry(component)["file"])

    def read_verified(self, component: str) -> bytes | None:
        """The component file's bytes, read once (a regular file, links not followed) and checked against the
        manifest's size and sha256: what a runtime that accepts bytes should load, so the program that runs
        is the one that was verified. ``None`` for a package directory (``.mlpackage``)."""
        e = self.entry(component)
        p = self.file(component)
        try:
            if _lstat_kind(p) == "dir":
                _check_entry(self.path, component, e, package=True)
                return None
            data = read_regular(p)
        except NotARegularFile as err:
            raise BundleError(f"{self.path.name}: {component} file {e['file']} is refused: {err} (a bundle holds "
                              f"regular files only): {HINT}") from None
        except OSError as err:
            raise BundleError(f"{self.path.name}: {component} file {e['file']} cannot be read "
                              f"({err.strerror}): {HINT}") from None
        if len(data) != e["size_bytes"] or hashlib.sha256(data).hexdigest() != e["sha256"]:
            raise BundleError(f"{self.path.name}: {component} file {e['file']} changed since it was verified "
                              f"(size or sha256 differ from the manifest): {HINT}")
        return data

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
#: A temporary directory left by an export that cannot be shown to be alive is stale after this long.
STALE_AGE_S = 6 * 3600
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"


def is_udc_manifest(path: Path) -> bool:
    """``path/manifest.json`` is a regular file holding a udc manifest (``"format": "udc-bundle"``)."""
    try:
        data = json.loads(read_regular(path / MANIFEST).decode("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == "udc-bundle" and isinstance(data.get("schema_version"), int)


def _is_bundle_or_empty(path: Path) -> bool:
    """A real directory (not a symlink) that is a udc bundle or is empty: what ``--force`` may replace."""
    if path.is_symlink() or not path.is_dir():
        return False
    return is_udc_manifest(path) or not any(path.iterdir())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(dest: str | Path, now: float | None = None) -> list[str]:
    """Remove the hidden work directories (``.NAME.udc.*.tmp`` / ``.old``) that earlier exports of ``dest`` left
    behind when they were killed: those whose process (same host) is gone, or older than ``STALE_AGE_S``.
    A ``.old`` directory holding the only copy of a replaced bundle (``dest`` missing) is moved back to ``dest``.
    Returns the names removed or restored."""
    dest = Path(dest).absolute()
    parent, now = dest.parent, time.time() if now is None else now
    if not parent.is_dir():
        return []
    mine = re.compile(re.escape(f".{dest.name}.") + r"(?:(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)\.)?[a-z0-9_]+\.(?P<kind>tmp|old)$")
    done = []
    for p in parent.iterdir():
        m = mine.match(p.name)
        if not m or p.is_symlink() or not p.is_dir():
            continue
        try:
            age = now - os.lstat(p).st_mtime
        except OSError:
            continue
        dead = m["pid"] is not None and m["host"] == _HOST and not _pid_alive(int(m["pid"]))
        if m["pid"] is not None and m["host"] == _HOST and int(m["pid"]) == os.getpid():
            continue  # this process's own work directory
        if not (dead or age > STALE_AGE_S):
            continue
        if m["kind"] == "old" and not os.path.lexists(dest) and _is_bundle_or_empty(p / "bundle"):
            os.replace(p / "bundle", dest)  # a commit killed between its two renames: put the old bundle back
            done.append(f"{p.name} (restored to {dest.name})")
        else:
            done.append(p.name)
        shutil.rmtree(p, ignore_errors=True)
    return done


class BundleWriter:
    """Assemble a bundle in a temporary directory; :meth:`commit` renames it into place."""

    def __init__(self, dest: str | Path, force: bool = False):
        self.dest = Path(dest).absolute()
        if self.dest.suffix != SUFFIX:
            raise BundleError(f"bundle name {self.dest.name!r} must end in {SUFFIX} (e.g. face{SUFFIX})")
        #: hidden work directories of earlier, killed exports of this name that were removed
        self.cleaned = clean_stale(self.dest)
        if self.dest.exists() or self.dest.is_symlink():
            if not force:
                raise BundleError(f"{self.dest} already exists: pass --force to replace it")
            self._check_replaceable()
        self.force = force
        self.tmp: Path | None = None
        self.committed = False
        #: the manifest of the bundle that :meth:`commit` replaced (``None``: nothing was replaced)
        self.replaced: dict[str, Any] | None = None

    def _check_replaceable(self) -> None:
        if self.dest.is_symlink():
            raise BundleError(f"{self.dest} is a symlink: not replacing it, even with --force (remove it yourself or "
                              "choose another name)")
        if not _is_bundle_or_empty(self.dest):
            raise BundleError(f"{self.dest} exists and is not a udc bundle: not replacing it, even with --force "
                              "(it has no manifest.json with format 'udc-bundle'; remove it yourself or choose "
                              "another name)")

    def existing_manifest(self) -> dict[str, Any] | None:
        """The manifest of the bundle now at the destination (``None``: none, or unreadable)."""
        try:
            data = json.loads(read_regular(self.dest / MANIFEST).decode("utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def __enter__(self) -> "BundleWriter":
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=self._work_prefix(), suffix=".tmp", dir=self.dest.parent))
        return self

    def _work_prefix(self) -> str:
        # host and pid in the name: clean_stale() can tell a killed export's leftovers from a running one
        return f".{self.dest.name}.{_HOST}-{os.getpid()}."

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
        if self.dest.exists() or self.dest.is_symlink():
            if not self.force:  # re-checked: it may have appeared meanwhile
                raise BundleError(f"{self.dest} already exists: pass --force to replace it")
            self._check_replaceable()
            self.replaced = self.existing_manifest() or {}
            old = Path(tempfile.mkdtemp(prefix=self._work_prefix(), suffix=".old", dir=self.dest.parent))
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
