"""``udc-bench --device ios``: a Core ML bundle on a connected iPhone/iPad, from a Mac.

Uses coremltools' remote-device utilities (``coremltools.models.ml_program.experimental``, 9.0):
``Device.get_connected_devices`` (``xcrun devicectl list devices``), ``prepare_for_model_debugging``
(builds, signs, installs and launches coremltools' ``modelrunner`` app with ``xcodebuild`` and
``xcrun devicectl``) and ``MLModelBenchmarker`` (load and predict durations measured on the device).

Needs macOS with Xcode, a device in developer mode and a signing team (``--team``). No macOS and no
Apple device were available where this was written: only the "cannot run here" paths are tested.
"""
from __future__ import annotations

import platform
import shutil
from typing import Any

from .android import DeviceUnavailable


def check_host() -> None:
    system = platform.system()
    if system != "Darwin":
        raise DeviceUnavailable(f"--device ios needs macOS with Xcode (xcrun devicectl); this host is {system}")
    if shutil.which("xcrun") is None:
        raise DeviceUnavailable("--device ios needs Xcode's command-line tools (xcrun devicectl): xcode-select --install")


def ios_bench(bundle, warmup: int, iters: int, team: str | None = None, serial: str | None = None) -> dict[str, Any]:
    """Per-component load and predict durations on the device (ms), in the ``udc-bench/1`` row layout."""
    import asyncio

    check_host()
    m = bundle.manifest
    if m["target"] != "coreml":
        raise DeviceUnavailable(f"--device ios runs Core ML bundles; {bundle.path.name} is a {m['target']} bundle "
                                "(export it with udc-export --target coreml)")
    from coremltools.models import MLModel
    from coremltools.models.ml_program.experimental.perf_utils import MLModelBenchmarker
    from coremltools.models.ml_program.experimental.remote_device import (AppSigningCredentials, Device,
                                                                          DeviceType)

    devices = [d for t in (DeviceType.IPHONE, DeviceType.IPAD) for d in Device.get_connected_devices(t)]
    if serial is not None:
        devices = [d for d in devices if serial in (d.identifier, d.udid, d.name)]
    if not devices:
        raise DeviceUnavailable("no connected iPhone/iPad in developer mode (xcrun devicectl list devices)"
                                + (f" matching {serial}" if serial else ""))
    if len(devices) > 1:
        raise DeviceUnavailable("several Apple devices connected: pass --serial (name, identifier or UDID)")

    async def run() -> dict[str, Any]:
        device = await devices[0].prepare_for_model_debugging(credentials=AppSigningCredentials(development_team=team or ""))
        comps = {}
        for name in (m.get("execution") or {}).get("order") or ["clip_image", "fpen_s2", "denoiser", "udcformer"]:
            bench = MLModelBenchmarker(MLModel(str(bundle.file(name))), device=device)
            load = await bench.benchmark_load(iterations=1)
            for _ in range(max(0, warmup - 1)):
                await bench.benchmark_predict(iterations=1)
            pred = await bench.benchmark_predict(iterations=iters, warmup=warmup > 0)
            comps[name] = {"load_ms": load.samples[0], "samples": pred.samples}
        return {"device": {"kind": "ios", "name": device.name, "os": device.os_version, "identifier": device.identifier},
                "components": comps}

    return asyncio.run(run())
