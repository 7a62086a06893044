"""What the demo apps read from a bundle manifest, extracted from their sources, and the checks of it
against the manifest JSON Schema and against real manifests (used by tests/test_app_contract.py).

Each app keeps every manifest key it reads in one file of string constants (android_demo/.../ManifestKeys.kt,
ios_demo/UDCDemo/ManifestKeys.swift) as a *path*: segments split on '.', '*' = a component name, '[]' = an
array index (the apps resolve the same paths at run time). A trailing ``// optional`` marks a key the app can
do without. A second block (ManifestSyntax) holds values and syntax that are not key paths.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KOTLIN_DIR = ROOT / "android_demo" / "app" / "src" / "main" / "java" / "org" / "udc" / "demo"
SWIFT_DIR = ROOT / "ios_demo" / "UDCDemo"
KOTLIN_KEYS = KOTLIN_DIR / "ManifestKeys.kt"
SWIFT_KEYS = SWIFT_DIR / "ManifestKeys.swift"


@dataclass(frozen=True)
class Key:
    const: str  # the constant's name in the source
    path: str  # the manifest path it holds
    optional: bool


@dataclass
class AppKeys:
    lang: str  # "kotlin" | "swift"
    keys: list[Key]
    syntax: dict[str, str | int]

    def paths(self) -> dict[str, Key]:
        return {k.path: k for k in self.keys}


_DECL = {
    "kotlin": re.compile(r'^[ \t]*const val (\w+)[ \t]*=[ \t]*("(?:[^"\\\n]|\\.)*"|-?\d+)[ \t]*(//[ \t]*optional\b)?', re.M),
    "swift": re.compile(r'^[ \t]*static let (\w+)[ \t]*=[ \t]*("(?:[^"\\\n]|\\.)*"|-?\d+)[ \t]*(//[ \t]*optional\b)?', re.M),
}
_BLOCK = {
    "kotlin": re.compile(r"^object (ManifestKeys|ManifestSyntax)\s*\{(.*?)^\}", re.M | re.S),
    "swift": re.compile(r"^enum (ManifestKeys|ManifestSyntax)\s*\{(.*?)^\}", re.M | re.S),
}


def parse_keys(text: str, lang: str) -> AppKeys:
    """The ManifestKeys (paths) and ManifestSyntax (values) blocks of a ManifestKeys.kt / .swift source."""
    blocks = {name: body for name, body in _BLOCK[lang].findall(text)}
    if "ManifestKeys" not in blocks or "ManifestSyntax" not in blocks:
        raise ValueError(f"{lang} source has no ManifestKeys and ManifestSyntax blocks")
    keys = []
    for const, value, optional in _DECL[lang].findall(blocks["ManifestKeys"]):
        if not value.startswith('"'):
            raise ValueError(f"ManifestKeys.{const} is not a string path")
        keys.append(Key(const, value[1:-1], bool(optional)))
    syntax: dict[str, str | int] = {}
    for const, value, _ in _DECL[lang].findall(blocks["ManifestSyntax"]):
        syntax[const] = value[1:-1] if value.startswith('"') else int(value)
    if not keys:
        raise ValueError(f"no keys found in the {lang} ManifestKeys block")
    return AppKeys(lang, keys, syntax)


def load_app_keys(lang: str) -> AppKeys:
    return parse_keys((KOTLIN_KEYS if lang == "kotlin" else SWIFT_KEYS).read_text(), lang)


# ------------------------------------------------------------------------------------ schema


def _deref(node: dict, schema: dict) -> dict:
    """Follow ``$ref`` and merge ``allOf`` parts (properties and required) into one node."""
    while "$ref" in node:
        target: Any = schema
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **rest}
    if "allOf" in node:
        merged = {k: v for k, v in node.items() if k != "allOf"}
        props, required = dict(merged.get("properties", {})), list(merged.get("required", []))
        for sub in node["allOf"]:
            sub = _deref(sub, schema)
            props = {**sub.get("properties", {}), **props}
            required += [r for r in sub.get("required", []) if r not in required]
        merged["properties"], merged["required"] = props, required
        node = merged
    return node


def schema_problems(key: Key, schema: dict) -> list[str]:
    """Why ``key.path`` is not a path of the schema, or (for a key the app needs) not required along the way."""
    node = _deref(schema, schema)
    where = "manifest"
    problems = []
    for seg in key.path.split("."):
        if seg == "*":
            extra = node.get("additionalProperties")
            if not isinstance(extra, dict):
                return [f"{key.const} = {key.path!r}: '{where}' has no per-component entries in the schema"]
            node, where = _deref(extra, schema), f"{where}.*"
            continue
        name = seg[:-2] if seg.endswith("[]") else seg
        props, extra = node.get("properties", {}), node.get("additionalProperties")
        if name in props:
            child = props[name]
        elif isinstance(extra, dict) and name in node.get("required", []):
            child = extra  # a required key whose value the schema gives as additionalProperties (e.g. tools)
        else:
            return [f"{key.const} = {key.path!r}: the schema has no key '{name}' in '{where}'"]
        if not key.optional and name not in node.get("required", []):
            problems.append(f"{key.const} = {key.path!r}: '{name}' is optional in the schema ('{where}') "
                            "but the app needs it")
        node, where = _deref(child, schema), f"{where}.{name}"
        if seg.endswith("[]"):
            if "items" not in node:
                return [f"{key.const} = {key.path!r}: '{where}' is not an array in the schema"]
            node, where = _deref(node["items"], schema), f"{where}[]"
    return problems


# ------------------------------------------------------------------------------------ manifest


def manifest_problems(key: Key, manifest: dict, components: list[str] | None = None) -> list[str]:
    """Where ``key.path`` is missing from a real manifest (for every component and every array element).

    ``components``: the names '*' stands for (default: every component of the manifest)."""
    nodes: list[tuple[Any, str]] = [(manifest, "manifest")]
    problems: list[str] = []
    for seg in key.path.split("."):
        nxt: list[tuple[Any, str]] = []
        for node, where in nodes:
            if not isinstance(node, dict):
                problems.append(f"{key.const} = {key.path!r}: '{where}' is not an object")
                continue
            if seg == "*":
                names = components if components is not None else list(node)
                for n in names:
                    if n in node:
                        nxt.append((node[n], f"{where}.{n}"))
                    elif not key.optional:
                        problems.append(f"{key.const} = {key.path!r}: no '{n}' in '{where}'")
                continue
            name = seg[:-2] if seg.endswith("[]") else seg
            if name not in node:
                if not key.optional:
                    problems.append(f"{key.const} = {key.path!r}: the manifest has no '{name}' in '{where}'")
                continue
            value = node[name]
            if seg.endswith("[]"):
                if not isinstance(value, list) or not value:
                    problems.append(f"{key.const} = {key.path!r}: '{where}.{name}' is not a non-empty list")
                    continue
                nxt.extend((v, f"{where}.{name}[{i}]") for i, v in enumerate(value))
            else:
                if value is None and not key.optional:
                    problems.append(f"{key.const} = {key.path!r}: '{where}.{name}' is null")
                    continue
                nxt.append((value, f"{where}.{name}"))
        nodes = nxt
    return problems


def check_keys(app: AppKeys, schema: dict, manifest: dict | None = None) -> list[str]:
    out = []
    for k in app.keys:
        out += schema_problems(k, schema)
        if manifest is not None:
            out += manifest_problems(k, manifest)
    return out


# ------------------------------------------------------------------------------------ sources

_RAW_ACCESS = {
    # a manifest key written as a literal outside ManifestKeys: org.json getters / has / opt with a string
    "kotlin": re.compile(r'\.(?:get|opt|has)(?:String|Int|Long|Double|Boolean|JSONObject|JSONArray)?\(\s*"[A-Za-z_][\w.]*"'),
    # a dictionary subscript with a literal key: json["labels"]
    "swift": re.compile(r'\[\s*"[A-Za-z_][A-Za-z0-9_.]*"\s*\]'),
}
_USE = {"kotlin": "ManifestKeys.{}", "swift": "ManifestKeys.{}"}


def app_sources(lang: str) -> dict[str, str]:
    d, ext = (KOTLIN_DIR, "*.kt") if lang == "kotlin" else (SWIFT_DIR, "*.swift")
    return {p.name: p.read_text() for p in sorted(d.glob(ext))}


def raw_key_accesses(sources: dict[str, str], lang: str) -> list[str]:
    """Lines outside ManifestKeys.* that read the manifest with a literal key."""
    bad = []
    for name, text in sources.items():
        if name.startswith("ManifestKeys."):
            continue
        for i, line in enumerate(text.splitlines(), 1):
            if _RAW_ACCESS[lang].search(line.split("//")[0]):
                bad.append(f"{name}:{i}: {line.strip()}")
    return bad


def unused_keys(app: AppKeys, sources: dict[str, str]) -> list[str]:
    """Constants of ManifestKeys that no other file of the app uses (the list must be what the app reads)."""
    code = "\n".join(t for n, t in sources.items() if not n.startswith("ManifestKeys."))
    return [k.const for k in app.keys if not re.search(re.escape(_USE[app.lang].format(k.const)) + r"\b", code)]


# ------------------------------------------------------------------------------------ what the apps check


def app_checks(manifest: dict, fused: bool = False) -> list[str]:
    """The consistency the apps' BundleManifest.check() relies on, for a real manifest (same rules)."""
    p, d = manifest["preprocessing"], (manifest.get("diffusion") or {}).get("noise")
    ex = manifest["execution"]
    plan = [ex["fused"]] if fused and ex.get("fused") else list(ex["order"])
    s = p["crop_size"]
    app = {p["input"]: [1, 3, s, s], p["landmarks"]["input"]: list(p["landmarks"]["shape"])}
    problems, produced = [], {}
    family = manifest.get("family", "lrdif")
    if family not in ("lrdif", "ddamfn"):
        problems.append(f"family {family!r}: the apps run lrdif and ddamfn bundles")
    if d is not None:
        app[d["input"]] = list(d["shape"])
    elif family == "lrdif":
        problems.append("an lrdif bundle needs diffusion.noise (the apps refuse it)")
    if manifest.get("partial") is not None:
        problems.append("a partial bundle (some components only): the apps refuse it")
    points = p["landmarks"]["shape"][-2]
    if len(manifest["landmark_layout"]["mediapipe_to_68"]["indices"]) != points:
        problems.append("mediapipe_to_68 does not have one entry per landmark")
    if len(p["alignment"]["canonical_landmarks"]) != points:
        problems.append("canonical_landmarks does not have one point per landmark")
    if any(not 0 <= i < points for i in p["alignment"]["alignment_points"]):
        problems.append("alignment_points outside the landmarks")
    if any(i >= 478 for i in manifest["landmark_layout"]["mediapipe_to_68"]["indices"]):
        problems.append("mediapipe_to_68 indexes past MediaPipe's 478 points")
    for comp in plan:
        c = manifest["components"][comp]
        for t in c["inputs"]:
            src = manifest["wiring"].get(f"{comp}.{t['name']}")
            if src is None:
                problems.append(f"wiring has no {comp}.{t['name']}")
                continue
            if t["dtype"] != "float32":
                problems.append(f"{comp}.{t['name']} is {t['dtype']}, the apps feed float32")
            if src.startswith("input:"):
                want = app.get(src[len("input:"):])
            else:
                want = produced.get(src)
            if want is None:
                problems.append(f"{comp}.{t['name']} comes from {src!r}, which nothing before it makes")
            elif list(want) != list(t["shape"]):
                problems.append(f"{comp}.{t['name']} has shape {t['shape']}, the app's tensor {want}")
        for o in c["outputs"]:
            produced[f"{comp}.{o['name']}"] = o["shape"]
    last = manifest["components"][plan[-1]]
    out = [o for o in last["outputs"] if o["name"] == ex["result"]]
    if not out:
        problems.append(f"{plan[-1]} has no output {ex['result']!r}")
    elif math.prod(out[0]["shape"]) != len(manifest["labels"]):
        problems.append(f"{ex['result']!r} does not have one value per label")
    return problems


# ------------------------------------------------------------------------------------ the apps' preprocessing


def reference_preprocess(manifest: dict, rgb, mesh):
    """A line-for-line port (vectorised) of FacePreprocessor.kt / FacePreprocessor.swift, from manifest values
    only: MediaPipe mesh (normalized x, y per point) + RGB frame -> (NCHW float32 crop, [68, 2] crop units).

    Running it against udc.sdk's face pipeline checks the algorithm and the manifest values the apps use;
    the Kotlin and Swift code themselves are not executed on this machine."""
    import numpy as np

    p = manifest["preprocessing"]
    s, al = p["crop_size"], p["alignment"]
    h, w = rgb.shape[:2]
    pts = np.asarray(mesh, np.float64)[manifest["landmark_layout"]["mediapipe_to_68"]["indices"]] * [w, h]
    tpl = np.asarray(al["canonical_landmarks"], np.float64) * s
    idx = al["alignment_points"]
    src, dst = pts[idx], tpl[idx]
    ms, md = src.mean(0), dst.mean(0)
    sc, dc = src - ms, dst - md
    sxx = (sc ** 2).sum()
    a = (sc * dc).sum() / sxx
    b = (sc[:, 0] * dc[:, 1] - sc[:, 1] * dc[:, 0]).sum() / sxx
    m = np.array([[a, -b, md[0] - (a * ms[0] - b * ms[1])], [b, a, md[1] - (b * ms[0] + a * ms[1])]])
    det = a * a + b * b
    ia, ib = a / det, b / det
    itx, ity = -(ia * m[0, 2] + ib * m[1, 2]), -(-ib * m[0, 2] + ia * m[1, 2])
    cy, cx = np.mgrid[0:s, 0:s] + 0.5
    u, v = ia * cx + ib * cy + itx, -ib * cx + ia * cy + ity
    outside = (u < 0) | (v < 0) | (u >= w) | (v >= h)
    xf, yf = u - 0.5, v - 0.5
    xa, ya = np.floor(xf), np.floor(yf)
    dx, dy = (xf - xa)[..., None], (yf - ya)[..., None]
    x0, x1 = np.clip(xa, 0, w - 1).astype(int), np.clip(xa + 1, 0, w - 1).astype(int)
    y0, y1 = np.clip(ya, 0, h - 1).astype(int), np.clip(ya + 1, 0, h - 1).astype(int)
    img = rgb.astype(np.float64)
    top = img[y0, x0] * (1 - dx) + img[y0, x1] * dx
    bottom = img[y1, x0] * (1 - dx) + img[y1, x1] * dx
    value = np.floor(top * (1 - dy) + bottom * dy)
    value[outside] = p["alignment"]["fill"]
    mean, std = np.asarray(p["mean"]), np.asarray(p["std"])
    x = (value * p["scale"] - mean) / std
    landmarks = (pts @ m[:, :2].T + m[:, 2]) / s
    return x.transpose(2, 0, 1)[None].astype(np.float32), landmarks.astype(np.float32)
