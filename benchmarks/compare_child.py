"""One row of ``benchmarks/compare.py``, in its own process (its peak RSS is its own).

    python benchmarks/compare_child.py '{"kind": "sdk", ...}'   # prints one ``UDC-COMPARE-ROW {json}`` line

Kinds:

* ``sdk``: a bundle through the SDK as an app runs it (``udc.sdk.bench.host.bench_runtime``), on ``runtime``
  ``torch`` (eager, or ``compile: true`` = every component through ``torch.compile``, inductor),
  ``executorch`` (``fused``: the bundle's one ``pipeline`` program) or ``onnxruntime`` (``ort_tuning``:
  the session options of :data:`udc.sdk.runtime.onnx_runtime.TUNED`, and the transformer optimizer on the
  fp32 graphs where it fuses anything).
* ``litert-export``: the bundle's reference model, all four components as one program, converted by
  ``litert_torch.convert`` (fp32), or quantized first (``int8``: PT2E, litert-torch's own
  ``PT2EQuantizer`` with the symmetric per-channel config, calibrated on the same faces the ExecuTorch export
  used) -> ``.tflite``. Runs in the LiteRT environment (``make litert-env``).
* ``litert``: that ``.tflite`` through ``ai_edge_litert``'s ``Interpreter`` (XNNPACK, ``num_threads``),
  behind the SDK's preprocessing and softmax (``Recognizer.run_model``), timed like ``bench_runtime``.

Every ``sdk``/``litert`` row also writes the logits of the faces in ``faces`` (an ``.npz`` of aligned
``crops`` and crop-unit ``landmarks``) to ``logits_out``: the parent scores agreement and accuracy.
"""
from __future__ import annotations

import json
import os
import sys
import time
import warnings

os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")
warnings.filterwarnings("ignore")

MARK = "UDC-COMPARE-ROW "


def _face_logits(rec, faces_path: str, out_path: str) -> float:
    """Logits of every face (saved to ``out_path``); returns the first face's milliseconds (compile/first call)."""
    import numpy as np

    d = np.load(faces_path)
    crops, lms = d["crops"], d["landmarks"]
    if len(crops) == 0:
        raise ValueError(f"{faces_path}: no faces")
    out, first = [], None
    for c, lm in zip(crops, lms):
        t0 = time.perf_counter()
        out.append(rec.run_model(c, lm)[0])
        if first is None:
            first = (time.perf_counter() - t0) * 1e3
    np.save(out_path, np.stack(out).astype(np.float32))
    return float(first)


def _tuned_ort(a: dict) -> dict:
    """Switch the SDK's ONNX Runtime sessions to the tuned options; fp32 graphs also through the transformer optimizer."""
    from udc.sdk.runtime import onnx_runtime

    onnx_runtime.set_tuning({**onnx_runtime.TUNED, "transformer_optimizer": a.get("quant") == "fp32"})
    return onnx_runtime.tuning_report()


def run_sdk(a: dict) -> dict:
    import numpy as np

    from udc.sdk.bench.host import bench_runtime
    from udc.sdk.runtime.bundle import load_bundle
    from udc.sdk.runtime.chain import load_chain
    from udc.sdk.console.quiet import quiet_native
    from udc.sdk.runtime.recognizer import Recognizer

    extra: dict = {}
    if a.get("compile"):
        import torch

        from udc.sdk.runtime import torch_runtime

        plain = torch_runtime.from_module

        def compiled(module, *args, **kw):
            return plain(torch.compile(module), *args, **kw)

        torch_runtime.from_module = compiled  # load_chain looks it up at call time
        extra["how"] = "torch.compile(component) for each of the four components (inductor, default mode)"
    if a.get("ort_tuning"):
        extra["ort"] = _tuned_ort(a)
    if a["runtime"] == "torch":
        import torch

        torch.set_num_threads(int(a["threads"]))
    first_ms = None
    if a.get("faces"):
        b = load_bundle(a["bundle"], verify=True)
        with quiet_native():
            chain = load_chain(b, a["runtime"], threads=a["threads"], fused=a.get("fused", False))
        first_ms = _face_logits(Recognizer(b, chain), a["faces"], a["logits_out"])
        del chain
    row = bench_runtime(a["bundle"], a["runtime"], a["warmup"], a["iters"], a["threads"], fused=a.get("fused", False),
                        progress=False)
    if a.get("ort_tuning"):
        from udc.sdk.runtime import onnx_runtime

        extra["ort"] = onnx_runtime.tuning_report()  # now with what the optimizer fused per graph
    e2e = row["latency_ms"]["end_to_end"]
    return {"p50_ms": e2e["p50"], "p90_ms": e2e["p90"], "sdk_overhead_pct": row["sdk_overhead_pct"],
            "peak_rss_mb": row["memory_mb"]["peak_rss"], "first_call_ms": first_ms,
            "components": row["components"], **extra}


# ------------------------------------------------------------------------------------------------ LiteRT
def _pipeline(bundle_path: str, checkpoint: str | None):
    from udc.sdk.runtime.bundle import load_bundle
    from udc.sdk.models.components import on_device_components
    from udc.sdk.runtime.reference import reference_model

    b = load_bundle(bundle_path, verify=True)
    model, _ = reference_model(b, checkpoint)
    model = model.eval()
    comps = on_device_components(model, fuse=True)  # LRDif: the four as one "pipeline"; DDAMFN: its one program
    comp = next((c for c in comps if c.name == "pipeline"), comps[-1])
    return b, model, comp


def run_litert_export(a: dict) -> dict:
    import torch

    import litert_torch

    torch.set_num_threads(int(a["threads"]))
    t0 = time.perf_counter()
    _, model, comp = _pipeline(a["bundle"], a.get("checkpoint"))
    names = list(comp.inputs)
    args = tuple(comp.inputs[n] for n in names)
    module = comp.module.eval()
    how = "litert_torch.convert, fp32"
    with torch.no_grad():
        if a["quant"] == "int8":
            from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
            from litert_torch.quantize.quant_config import QuantConfig
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

            from udc.export.quant.calibration import calibration_sets

            calib, _ = calibration_sets(model.cfg, a.get("calib"), int(a["calib_n"]), int(a.get("eval_n", 1)),
                                        seed=int(a["seed"]))  # the same faces the ExecuTorch export calibrated on
            quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
            prepared = prepare_pt2e(torch.export.export(module, args).module(), quantizer)
            for i in range(len(calib)):
                feed = {"image": calib.images[i:i + 1], "landmarks": calib.landmarks[i:i + 1],
                        "noise": calib.noise[i:i + 1]}
                prepared(*(feed[n] for n in names))
            qmodel = convert_pt2e(prepared, fold_quantize=False)
            edge = litert_torch.convert(qmodel, args, quant_config=QuantConfig(pt2e_quantizer=quantizer))
            how = (f"PT2E static int8 (litert_torch PT2EQuantizer, symmetric per-channel weights, int8 activations), "
                   f"{len(calib)} calibration faces ({calib.describe().get('kind')}) -> litert_torch.convert")
        else:
            edge = litert_torch.convert(module, args)
    edge.export(a["tflite"])
    return {"export_s": time.perf_counter() - t0, "size_mb": os.path.getsize(a["tflite"]) / 1e6, "inputs": names,
            "how": how}


class _LiteRTRunner:
    """The ``.tflite`` program as a chain step: inputs by signature position (the converter names them args_N)."""

    def __init__(self, path: str, names: list[str], threads: int):
        from ai_edge_litert.interpreter import Interpreter

        self.interp = Interpreter(model_path=path, num_threads=int(threads))
        self.runner = self.interp.get_signature_runner()
        sig = self.interp.get_signature_list()
        key = next(iter(sig))
        self.sig_inputs = list(sig[key]["inputs"])
        self.sig_outputs = list(sig[key]["outputs"])
        if len(self.sig_inputs) != len(names):
            raise ValueError(f"{path}: the program takes {len(self.sig_inputs)} inputs, the chain feeds {names}")
        self.input_names = names
        self.output_names = ["logits"]
        self.model_ms: list[float] = []
        # an int8 program takes and gives int8 tensors (scale, zero point): quantized/dequantized here, as an app does
        self.in_q = self.runner.get_input_details()
        self.out_q = self.runner.get_output_details()

    @staticmethod
    def _io(d: dict):
        import numpy as np

        q = d.get("quantization") or (0.0, 0)
        return np.dtype(d["dtype"]), float(q[0]), int(q[1])

    def __call__(self, inputs):
        import numpy as np

        feed = {}
        for s, n in zip(sorted(self.sig_inputs, key=_argn), self.input_names):
            x = np.ascontiguousarray(inputs[n], np.float32)
            dt, scale, zp = self._io(self.in_q[s])
            if dt != np.float32 and scale > 0:
                info = np.iinfo(dt)
                x = np.clip(np.round(x / scale) + zp, info.min, info.max).astype(dt)
            feed[s] = x
        t0 = time.perf_counter()
        out = self.runner(**feed)
        self.model_ms.append((time.perf_counter() - t0) * 1e3)
        y = out[self.sig_outputs[0]]
        dt, scale, zp = self._io(self.out_q[self.sig_outputs[0]])
        if dt != np.float32 and scale > 0:
            y = (y.astype(np.float32) - zp) * scale
        return [y]


def _argn(name: str) -> int:
    """``args_3`` -> 3 (the converter's positional names sort numerically, not as strings)."""
    tail = name.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def run_litert(a: dict) -> dict:
    import numpy as np

    from udc.sdk.bench.host import peak_rss_mb, reset_peak_rss, stats
    from udc.sdk.bench.host import bench_face
    from udc.sdk.runtime.bundle import load_bundle
    from udc.sdk.runtime.chain import Chain, Step
    from udc.sdk.runtime.recognizer import Recognizer, softmax

    import ai_edge_litert.interpreter  # noqa: F401 - import is not load time (as bench_runtime)

    first_ms = None
    b = load_bundle(a["bundle"], verify=True)
    names = list(a["inputs"])
    if a.get("faces"):
        step = Step("pipeline", _LiteRTRunner(a["tflite"], names, a["threads"]), names,
                    {n: f"input:{n}" for n in names}, ["logits"])
        first_ms = _face_logits(Recognizer(b, Chain("litert", [step])), a["faces"], a["logits_out"])
        del step
    reset_peak_rss()
    runner = _LiteRTRunner(a["tflite"], names, a["threads"])
    rec = Recognizer(b, Chain("litert", [Step("pipeline", runner, names, {n: f"input:{n}" for n in names},
                                              ["logits"])]))
    crop, lm, _ = bench_face(rec.crop_size)
    e2e, model = [], []
    for i in range(a["warmup"] + a["iters"]):
        runner.model_ms.clear()
        s = time.perf_counter()
        logits, _ = rec.run_model(crop, lm)
        softmax(logits)
        total = (time.perf_counter() - s) * 1e3
        if i >= a["warmup"]:
            e2e.append(total)
            model.append(sum(runner.model_ms))
    over = [x - y for x, y in zip(e2e, model)]
    st = stats(e2e)
    return {"p50_ms": st["p50"], "p90_ms": st["p90"],
            "sdk_overhead_pct": 100.0 * float(np.mean(over)) / max(1e-9, float(np.mean(model))),
            "peak_rss_mb": peak_rss_mb(), "first_call_ms": first_ms, "components": ["pipeline"],
            "litert_version": _version("ai-edge-litert")}


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


KINDS = {"sdk": run_sdk, "litert-export": run_litert_export, "litert": run_litert}


def main(argv: list[str]) -> int:
    a = json.loads(argv[0])
    from udc.sdk.console.quiet import quiet_native, setup

    setup(False)
    try:
        with quiet_native():
            out = KINDS[a["kind"]](a)
    except Exception as e:  # noqa: BLE001 - one failing row must not hide the others
        msg = f"{type(e).__name__}: {e}".splitlines()[0][:200]
        print(MARK + json.dumps({"error": msg}), flush=True)
        return 2
    from udc.sdk.console.table import json_safe

    print(MARK + json.dumps(json_safe(out)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
