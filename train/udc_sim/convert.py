"""Convert a dataset tree into its UDC-degraded twin, file by file, resumably.

Every image under SRC is degraded and written to the same relative path under DST (same format;
JPEG at quality 95); every other file (label lists, csv, ``landmarks68.npz``) is copied, so labels
and landmarks survive for every dataset format. FERPlus's ``fer2013.csv`` keeps its pixels inline:
its ``pixels`` column is degraded in place. Each output file is written atomically, so an
interrupted run leaves only complete files and a rerun skips them (resume). The run's parameters
are pinned in ``DST/.udc-synth-run.json`` until it completes; a rerun with other parameters is
refused. At the end ``DST/udc_synth_manifest.json`` records profile, parameters, seed and counts.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from udc.sdk.console.quiet import show_progress  # progress bars on a terminal only, never in a log file

from .degrade import UDCDegrader
from .profiles import PROFILES, DeviceProfile, get_profile

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
RUN_FILE = ".udc-synth-run.json"
MANIFEST_FILE = "udc_synth_manifest.json"
RANDOM_VARIANTS = 3  # jittered variants per profile in "random" mode


class SynthError(ValueError):
    pass


def image_seed(seed: int, key: str) -> int:
    """A stable 63-bit seed per (run seed, relative path): independent of order and batching."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "little") >> 1


class DegraderBank:
    """Degraders by (profile, image size), built lazily; ``random`` draws a jittered device per image."""

    def __init__(self, profile: str, seed: int, psf: np.ndarray | None = None, flare: bool = True):
        if profile != "random":
            get_profile(profile)
        if psf is not None and profile == "random":
            raise SynthError("a measured PSF (--psf) needs one named --profile, not 'random'")
        self.profile, self.seed, self.psf, self.flare = profile, seed, psf, flare
        self._cache: dict[tuple[str, int], UDCDegrader] = {}
        rng = np.random.default_rng(seed)
        self.variants: list[DeviceProfile] = [
            p.jittered(rng) if i else p for p in PROFILES.values() for i in range(RANDOM_VARIANTS)
        ] if profile == "random" else [get_profile(profile)]

    def choose(self, key: str) -> DeviceProfile:
        if len(self.variants) == 1:
            return self.variants[0]
        return self.variants[image_seed(self.seed + 1, key) % len(self.variants)]

    def get(self, prof: DeviceProfile, size: int) -> UDCDegrader:
        k = (f"{prof.name}:{id(prof)}", size)
        if k not in self._cache:
            self._cache[k] = UDCDegrader(prof, size, psf=self.psf, flare=self.flare)
        return self._cache[k]

    def degrade(self, images: list[np.ndarray], keys: list[str]) -> tuple[list[np.ndarray], list[str]]:
        """Degrade same-size uint8 RGB images; returns the images and the profile used for each."""
        out: list[np.ndarray | None] = [None] * len(images)
        names = [""] * len(images)
        groups: dict[tuple, list[int]] = {}
        for i, (img, key) in enumerate(zip(images, keys)):
            prof = self.choose(key)
            groups.setdefault((id(prof), img.shape), []).append(i)
            names[i] = prof.name
        for (_, shape), idx in groups.items():
            prof = self.choose(keys[idx[0]])
            deg = self.get(prof, shape[1])
            res = deg(np.stack([images[i] for i in idx]), [image_seed(self.seed, keys[i]) for i in idx])
            for j, i in enumerate(idx):
                out[i] = res[j]
        return out, names  # type: ignore[return-value]


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _encode(img: np.ndarray, suffix: str) -> bytes:
    buf = io.BytesIO()
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP",
           ".tif": "TIFF", ".tiff": "TIFF"}[suffix.lower()]
    kw = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    Image.fromarray(img).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _read_rgb(path: Path) -> np.ndarray:
    from udc.sdk.faces.images import load_image

    return load_image(path)


@dataclass
class ConvertStats:
    degraded: int = 0
    skipped_done: int = 0
    copied: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    per_profile: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _run_params(profile: str, seed: int, psf_path: str | None, flare: bool) -> dict:
    sha = hashlib.sha256(Path(psf_path).read_bytes()).hexdigest() if psf_path else None
    return {"profile": profile, "seed": seed, "psf": psf_path, "psf_sha256": sha, "flare": flare}


def convert_tree(src: str | Path, dst: str | Path, profile: str, seed: int = 0, psf_path: str | None = None,
                 flare: bool = True, batch: int = 32, force: bool = False, progress: bool = True) -> dict:
    from tqdm import tqdm

    from .psf import load_psf

    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise SynthError(f"{src} is not a directory")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise SynthError("DST must not be SRC or inside it")
    params = _run_params(profile, seed, psf_path, flare)
    run_file, manifest_file = dst / RUN_FILE, dst / MANIFEST_FILE
    if manifest_file.exists() and not force:
        old = json.loads(manifest_file.read_text())
        if {k: old.get(k) for k in params} == params:
            raise SynthError(f"{dst} is already complete for these parameters ({MANIFEST_FILE}); use --force to redo it")
        raise SynthError(f"{dst} holds a finished conversion with other parameters; choose another DST or --force")
    if run_file.exists() and not force:
        old = json.loads(run_file.read_text())
        if old != params:
            raise SynthError(f"{dst} holds an unfinished run with other parameters {old}; use --force to start over")
    if force and dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True, exist_ok=True)
    run_file.write_text(json.dumps(params, indent=2))

    bank = DegraderBank(profile, seed, load_psf(psf_path) if psf_path else None, flare)
    stats = ConvertStats()
    t0 = time.perf_counter()
    files = sorted(p for p in src.rglob("*") if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTS]
    for p in files:
        if p.suffix.lower() in IMAGE_EXTS:
            continue
        out = dst / p.relative_to(src)
        if p.name == "fer2013.csv":
            if not out.exists():
                _convert_fer_csv(p, out, bank, stats)
            else:
                stats.skipped_done += 1
            continue
        if not out.exists() or out.stat().st_size != p.stat().st_size:
            _atomic_write_bytes(out, p.read_bytes())
            stats.copied += 1
    todo = []
    for p in images:
        if (dst / p.relative_to(src)).exists():
            stats.skipped_done += 1
        else:
            todo.append(p)
    if len(bank.variants) > 1:  # random mode: batch images of the same device variant together (one FFT group
        # per batch instead of up to 18); results do not depend on order (each image has its own seed)
        slot = {id(v): k for k, v in enumerate(bank.variants)}
        todo.sort(key=lambda p: (slot[id(bank.choose(p.relative_to(src).as_posix()))], p))
    bar = tqdm(total=len(todo), desc=f"udc-synth {profile}", unit="img", disable=not (progress and show_progress()))
    for i in range(0, len(todo), batch):
        chunk, imgs, keys = todo[i:i + batch], [], []
        for p in chunk:
            key = p.relative_to(src).as_posix()
            try:
                imgs.append(_read_rgb(p))
                keys.append(key)
            except Exception as e:  # noqa: BLE001 - a bad file is reported, not fatal
                stats.failed[key] = str(e)
        outs, names = bank.degrade(imgs, keys) if imgs else ([], [])
        for img, key, name in zip(outs, keys, names):
            _atomic_write_bytes(dst / key, _encode(img, Path(key).suffix))
            stats.degraded += 1
            stats.per_profile[name] = stats.per_profile.get(name, 0) + 1
        bar.update(len(chunk))
    bar.close()
    stats.seconds = time.perf_counter() - t0
    manifest = {
        **params, "tool": "udc-synth", "source": str(src),
        "profiles": {p.name: p.to_dict() for p in bank.variants} if profile != "random"
        else {n: PROFILES[n].to_dict() for n in PROFILES},
        "random_variants_per_profile": RANDOM_VARIANTS if profile == "random" else None,
        "counts": {"images_degraded": stats.degraded, "images_already_done": stats.skipped_done,
                   "files_copied": stats.copied, "failed": len(stats.failed), "per_profile": stats.per_profile},
        "failed": stats.failed, "seconds": round(stats.seconds, 2),
    }
    _atomic_write_bytes(manifest_file, json.dumps(manifest, indent=2).encode())
    run_file.unlink(missing_ok=True)
    return manifest


def _convert_fer_csv(src: Path, dst: Path, bank: DegraderBank, stats: ConvertStats, batch: int = 256) -> None:
    """Degrade the inline 48x48 grayscale faces of FERPlus's fer2013.csv (gray -> RGB -> UDC -> gray)."""
    with open(src, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    col = header.index("pixels")
    for i in range(0, len(body), batch):
        chunk = body[i:i + batch]
        imgs = [np.repeat(np.array(r[col].split(), dtype=np.uint8).reshape(48, 48)[:, :, None], 3, axis=2)
                for r in chunk]
        keys = [f"fer2013.csv:{i + j}" for j in range(len(chunk))]
        outs, names = bank.degrade(imgs, keys)
        for r, img, name in zip(chunk, outs, names):
            gray = (img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) + 0.5).astype(np.uint8)
            r[col] = " ".join(map(str, gray.ravel().tolist()))
            stats.per_profile[name] = stats.per_profile.get(name, 0) + 1
        stats.degraded += len(chunk)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header] + body)
    _atomic_write_bytes(dst, buf.getvalue().encode())
