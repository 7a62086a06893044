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


MEDIAPIPE_MESH_POINTS = 478  # FaceLandmarker: 468 mesh points + 10 iris points (ManifestSyntax in both apps)


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
    if any(not 0 <= i < MEDIAPIPE_MESH_POINTS for i in manifest["landmark_layout"]["mediapipe_to_68"]["indices"]):
        problems.append(f"mediapipe_to_68 indexes outside MediaPipe's {MEDIAPIPE_MESH_POINTS} points")
    for comp in plan:
        if comp not in manifest["components"]:
            problems.append(f"{comp!r} (execution) is not a component of the manifest")
            return problems
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


# ------------------------------------------------------------------------------------ source rules (issue 17)
# What can be checked about the apps from their sources alone (nothing here compiles or runs them): every call
# that can fail on a frame, a load or a benchmark sits inside a try/catch (directly, or every call of the
# function that makes it does); window insets are handled; the camera permission is asked for; the pinned
# versions agree everywhere they are written.

ANDROID_DIR = ROOT / "android_demo"
IOS_DIR = ROOT / "ios_demo"

# file -> calls that can throw on a frame, a bundle load, the landmarker set-up, the camera or a benchmark
FRAME_PATHS: dict[str, dict[str, list[str]]] = {
    "kotlin": {"MainActivity.kt": [
        r"\.detectForVideo\(", r"\.run\(\)", r"\bUdcRunner\(", r"FaceLandmarker\.createFromOptions\(",
        r"BundleManifest\.load\(", r"\.check\(fused\)", r"\.verifyFiles\(", r"ExecutorchCompat\.message\(",
        r"\.process\(mesh", r"copyPixelsFromBuffer\(", r"future\.get\(\)", r"bindToLifecycle\(",
    ]},
    "swift": {"DemoModel.swift": [
        r"\.detect\(", r"runner\.run\(\)", r"CoreMLRunner\.load\(", r"FaceLandmarkerService\(\)",
        r"camera\.configure\(\)", r"BundleManifest\(directory", r"\.process\(mesh",
    ]},
}


def strip_code(text: str) -> str:
    """``text`` with comments and string literals blanked (same length, newlines kept), so braces and calls
    are only found in code. Kotlin/Swift: // and /* */ comments, "..." and triple-quoted strings."""
    out, i, n = list(text), 0, len(text)

    def blank(a: int, b: int) -> None:
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            blank(i, j)
            i = j
        elif text.startswith('"""', i):
            j = text.find('"""', i + 3)
            j = n if j < 0 else j + 3
            blank(i + 3, j - 3)
            i = j
        elif text[i] == '"':
            j, depth = i + 1, 0
            while j < n and text[j] != "\n":  # an interpolation's braces ("${a}", "\(a)") stay inside the string
                if text[j] == "\\":
                    j += 2
                    continue
                if text[j] == '"' and depth == 0:
                    break
                j += 1
            blank(i + 1, j)
            i = j + 1
        else:
            i += 1
    return "".join(out)


def _block_end(code: str, open_brace: int) -> int:
    """Offset just past the brace that closes the one at ``open_brace``."""
    depth = 0
    for k in range(open_brace, len(code)):
        if code[k] == "{":
            depth += 1
        elif code[k] == "}":
            depth -= 1
            if depth == 0:
                return k + 1
    return len(code)


_FUNC = {"kotlin": re.compile(r"\bfun\s+(?:<[^>]*>\s*)?(\w+)\s*\("), "swift": re.compile(r"\bfunc\s+(\w+)\s*(?:<[^>]*>)?\s*\(")}


def functions(code: str, lang: str) -> list[tuple[str, int, int]]:
    """(name, body start, body end) of every function with a braced body (Kotlin expression bodies skipped)."""
    found = []
    for m in _FUNC[lang].finditer(code):
        depth, k = 1, m.end()
        while k < len(code) and depth:  # to the end of the parameter list
            depth += {"(": 1, ")": -1}.get(code[k], 0)
            k += 1
        nxt = re.compile(r"[{=]").search(code, k)  # the body's brace, or '=' of an expression body
        if nxt and code[nxt.start()] == "{":
            found.append((m.group(1), nxt.start(), _block_end(code, nxt.start())))
    return found


def _guard_blocks(code: str, lang: str) -> list[tuple[int, int]]:
    """Ranges of try (Kotlin) / do (Swift) blocks followed by a catch that takes everything:
    Kotlin ``catch (e: Throwable)`` or ``catch (e: Exception)``, Swift a bare ``catch {``."""
    opener = re.compile(r"\btry\s*\{" if lang == "kotlin" else r"\bdo\s*\{")
    catch_all = (re.compile(r"catch\s*\(\s*\w+\s*:\s*(?:Throwable|Exception)\s*\)\s*\{") if lang == "kotlin"
                 else re.compile(r"catch\s*\{"))
    any_catch = re.compile(r"\s*catch\b[^{]*\{")
    blocks = []
    for m in opener.finditer(code):
        start = m.end() - 1
        end = _block_end(code, start)
        k, ok = end, False
        while True:  # the chain of catch clauses after the block
            c = any_catch.match(code, k)
            if not c:
                break
            if catch_all.search(c.group(0)):
                ok = True
            k = _block_end(code, c.end() - 1)
        if ok:
            blocks.append((start, end))
    return blocks


def unguarded_calls(text: str, lang: str, patterns: list[str], depth: int = 2) -> list[str]:
    """Calls matching ``patterns`` that no try/catch covers: not inside a guarded block of their function,
    and their function has an unguarded call site (or none) in the same file (followed ``depth`` levels)."""
    code = strip_code(text)
    funcs = functions(code, lang)
    guards = _guard_blocks(code, lang)

    def guarded(pos: int) -> bool:
        return any(a < pos < b for a, b in guards)

    def enclosing(pos: int):
        inside = [f for f in funcs if f[1] < pos < f[2]]
        return min(inside, key=lambda f: f[2] - f[1]) if inside else None

    def covered(pos: int, level: int) -> bool:
        if guarded(pos):
            return True
        if lang == "swift" and re.search(r"\btry\?[^\n;]*$", code[code.rfind("\n", 0, pos) + 1:pos]):
            return True  # try? turns the error into nil
        f = enclosing(pos)
        if f is None or level == 0:
            return False
        name, a, b = f
        sites = [m.start() for m in re.finditer(rf"(?<![\w]){re.escape(name)}\s*\(", code)
                 if not (a <= m.start() < b) and not re.search(r"\b(?:fun|func)\s+$", code[max(0, m.start() - 6):m.start()])]
        return bool(sites) and all(covered(s, level - 1) for s in sites)

    bad = []
    for pat in patterns:
        for m in re.finditer(pat, code):
            if not covered(m.start(), depth):
                line = text.count("\n", 0, m.start()) + 1
                f = enclosing(m.start())
                bad.append(f"line {line} ({f[0] if f else 'top level'}): {text.splitlines()[line - 1].strip()}")
    return bad


def frame_path_problems(lang: str, sources: dict[str, str] | None = None) -> list[str]:
    sources = sources or app_sources(lang)
    problems = []
    for name, patterns in FRAME_PATHS[lang].items():
        text = sources[name]
        for p in patterns:
            if not re.search(p, strip_code(text)):
                problems.append(f"{name}: no call matches {p!r} (the rule list is out of date)")
        problems += [f"{name}: not inside a try/catch: {b}" for b in unguarded_calls(text, lang, patterns)]
    return problems


def inset_problems(text: str) -> list[str]:
    """MainActivity.kt handles window insets (edge to edge, targetSdk 35): a listener on the root view pads the
    status text by the system bars' top and the controls by their bottom, and onCreate installs it."""
    code = strip_code(text)
    problems = []
    listener = re.search(r"ViewCompat\.setOnApplyWindowInsetsListener\(\s*binding\.root\s*\)\s*\{", code)
    if not listener:
        return ["no ViewCompat.setOnApplyWindowInsetsListener(binding.root) { ... }"]
    body = code[listener.end() - 1:_block_end(code, listener.end() - 1)]
    if "WindowInsetsCompat.Type.systemBars()" not in body:
        problems.append("the insets listener does not read WindowInsetsCompat.Type.systemBars()")
    if not re.search(r"binding\.status\.updatePadding\([^)]*\btop\s*=", body):
        problems.append("the status text is not padded by the top inset")
    if not re.search(r"binding\.controls\.updatePadding\([^)]*\bbottom\s*=", body):
        problems.append("the controls are not padded by the bottom inset")
    f = [x for x in functions(code, "kotlin") if x[1] < listener.start() < x[2]]
    on_create = [x for x in functions(code, "kotlin") if x[0] == "onCreate"]
    if not f or not on_create or not re.search(rf"\b{f[0][0]}\s*\(\)", code[on_create[0][1]:on_create[0][2]]):
        problems.append("onCreate does not install the insets listener")
    if not re.search(r"WindowCompat\.setDecorFitsSystemWindows\(\s*window\s*,\s*false\s*\)|enableEdgeToEdge\(", code):
        problems.append("the window is not made edge to edge on every version (setDecorFitsSystemWindows(window, false))")
    return problems


def permission_problems(lang: str, text: str, declaration: str) -> list[str]:
    """The camera permission is checked, asked for, and a refusal is explained (iOS: with a Settings link);
    ``declaration``: AndroidManifest.xml / project.yml, which must declare it."""
    code = strip_code(text)
    if lang == "kotlin":
        need = {r"checkSelfPermission\(\s*this\s*,\s*Manifest\.permission\.CAMERA\s*\)": "checks the CAMERA permission",
                r"registerForActivityResult\(\s*ActivityResultContracts\.RequestPermission\(\)\s*\)": "asks for it",
                r"\.launch\(\s*Manifest\.permission\.CAMERA\s*\)": "launches the request"}
        declared = '<uses-permission android:name="android.permission.CAMERA"' in declaration
    else:
        need = {r"AVCaptureDevice\.authorizationStatus\(\s*for:\s*\.video\s*\)": "checks authorizationStatus",
                r"AVCaptureDevice\.requestAccess\(\s*for:\s*\.video\s*\)": "asks with requestAccess",
                r"case\s+\.denied": "handles a denial"}
        declared = re.search(r"^\s*NSCameraUsageDescription:\s*\S", declaration, re.M) is not None
    problems = [f"the app never {what} ({pat})" for pat, what in need.items() if not re.search(pat, code)]
    if not declared:
        problems.append("the camera permission / usage description is not declared")
    return problems


# ------------------------------------------------------------------------------------ pinned versions


def executorch_verdict(exporter: str, runtime: str) -> str:
    """Port of ExecutorchCompat.verdict (RuntimeChecks.kt): ExecuTorch runtime/COMPATIBILITY.md, a .pte from
    X.Y loads on X.Y and at least the next minor release; an older runtime is not supported."""
    def mm(v: str):
        parts = v.strip().split(".")
        if len(parts) < 2 or not parts[0].isdigit():
            return None
        minor = re.match(r"\d+", parts[1])
        return (int(parts[0]), int(minor.group())) if minor else None

    e, r = mm(exporter), mm(runtime)
    if e is None or r is None:
        return "UNKNOWN"
    if r < e:
        return "RUNTIME_TOO_OLD"
    if r[0] == e[0] and r[1] <= e[1] + 1:
        return "OK"
    return "BEYOND_GUARANTEE"


# Android Gradle Plugin -> the minimum Gradle (developer.android.com, AGP release notes / compatibility table)
AGP_MIN_GRADLE = {"8.7": "8.9", "8.8": "8.10.2", "8.9": "8.11.1", "8.10": "8.11.1"}


def version_texts() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"^## Demo apps.*?(?=^## )", readme, re.M | re.S)
    return {
        "app_gradle": (ANDROID_DIR / "app" / "build.gradle.kts").read_text(),
        "root_gradle": (ANDROID_DIR / "build.gradle.kts").read_text(),
        "wrapper": (ANDROID_DIR / "gradle" / "wrapper" / "gradle-wrapper.properties").read_text(),
        "podfile": (IOS_DIR / "Podfile").read_text(),
        "android_readme": (ANDROID_DIR / "README.md").read_text(),
        "ios_readme": (IOS_DIR / "README.md").read_text(),
        "readme_apps": m.group(0) if m else "",
        "pyproject": (ROOT / "pyproject.toml").read_text(),
        "main_activity": (KOTLIN_DIR / "MainActivity.kt").read_text(),
    }


def _ver(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v))


def pinned_versions(t: dict[str, str]) -> dict[str, str | None]:
    def one(pattern: str, text: str) -> str | None:
        m = re.search(pattern, text, re.M)
        return m.group(1) if m else None

    return {
        "executorch_android": one(r'^val executorchVersion = "([^"]+)"', t["app_gradle"]),
        "tasks_vision": one(r'^val mediapipeVersion = "([^"]+)"', t["app_gradle"]),
        "agp": one(r'id\("com\.android\.application"\) version "([^"]+)"', t["root_gradle"]),
        "gradle": one(r"distributionUrl=.*gradle-([\d.]+)-(?:bin|all)\.zip", t["wrapper"]),
        "pod": one(r"pod 'MediaPipeTasksVision', '([^']+)'", t["podfile"]),
        "executorch_python": one(r'"executorch==([^"]+)"', t["pyproject"]),
    }


def version_problems(t: dict[str, str]) -> list[str]:
    """The versions pinned in Gradle and the Podfile are the ones every README names; the runtime the app
    ships can load what the pinned Python executorch exports (no version warning on this project's own
    bundles), and the app's check compares the manifest with the runtime Gradle pins (BuildConfig)."""
    v = pinned_versions(t)
    problems = [f"{k}: not found where it is pinned" for k, x in v.items() if x is None]
    if problems:
        return problems
    et, mp, pod = v["executorch_android"], v["tasks_vision"], v["pod"]
    wants = {
        "android_readme": [f"org.pytorch:executorch-android:{et}", f"com.google.mediapipe:tasks-vision:{mp}",
                           f"{v['agp']} / {v['gradle']}"],
        "ios_readme": [f"`MediaPipeTasksVision` {pod}"],
        "readme_apps": [f"executorch-android` {et}", f"tasks-vision` {mp}", f"MediaPipeTasksVision` {pod}"],
    }
    for where, needles in wants.items():
        for needle in needles:
            if needle not in t[where]:
                problems.append(f"{where} does not say {needle!r} (the pinned version)")
    for where in ("android_readme", "readme_apps"):  # a stale dependency coordinate left behind in the text
        for old in set(re.findall(r"com\.google\.mediapipe:tasks-vision:([\d.]+\d)", t[where])) - {mp}:
            problems.append(f"{where} still names com.google.mediapipe:tasks-vision:{old}")
        for old in set(re.findall(r"org\.pytorch:executorch-android:([\d.]+\d)", t[where])) - {et}:
            problems.append(f"{where} still names org.pytorch:executorch-android:{old}")
    verdict = executorch_verdict(v["executorch_python"], et)
    if verdict != "OK":
        problems.append(f"a bundle exported with executorch {v['executorch_python']} (pyproject.toml) on the app's "
                        f"runtime {et}: {verdict}")
    minimum = AGP_MIN_GRADLE.get(".".join(v["agp"].split(".")[:2]))
    if minimum is None:
        problems.append(f"AGP {v['agp']}: minimum Gradle unknown to this check (add it to AGP_MIN_GRADLE)")
    elif _ver(v["gradle"]) < _ver(minimum):
        problems.append(f"Gradle {v['gradle']} is older than AGP {v['agp']} needs ({minimum})")
    if 'buildConfigField("String", "EXECUTORCH_VERSION", "\\"$executorchVersion\\"")' not in t["app_gradle"]:
        problems.append("BuildConfig.EXECUTORCH_VERSION is not the pinned executorchVersion")
    if not re.search(r"ExecutorchCompat\.message\([^)]*BuildConfig\.EXECUTORCH_VERSION\s*\)", strip_code(t["main_activity"])):
        problems.append("MainActivity does not check the bundle's tools.executorch against BuildConfig.EXECUTORCH_VERSION")
    return problems
