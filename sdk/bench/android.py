"""Run a bundle's ExecuTorch programs on an Android phone over ``adb`` with ExecuTorch's ``executor_runner``.

    adb = Adb.connect(serial=None)                     # DeviceUnavailable: no adb, no device, unauthorized
    with AndroidSession(adb, runner="cmake-out-android/executor_runner") as s:
        res = s.run(Path("face.udc/udcformer.pte"), warmup=10, iters=100, threads=4, etdump_to=Path("out"))
        res.iteration_ms, res.load_ms, res.verdict

The flow is the documented one (ExecuTorch "Building and running on Android"): ``adb -s SERIAL shell
mkdir -p /data/local/tmp/udc-XXXX``, ``adb push`` the runner (``chmod 755``) and each ``.pte``/``.bpte``,
``adb shell 'cd DIR && ./executor_runner --model_path=... --num_executions=N --cpu_threads=T
--etdump_path=...'``, ``adb pull`` the ETDump when asked, then ``adb shell rm -rf DIR`` (also on error).

The runner's log lines parsed (``examples/portable/executor_runner/executor_runner.cpp``): ``Model loaded
in X ms``, ``Iteration i of N: X ms``, ``Model executed successfully N time(s) in X ms``, and for
bundled programs (``.bpte``, runner built with ``EXECUTORCH_BUILD_DEVTOOLS``/bundle IO) the error
stats ``max_absolute_error: X`` and ``Test_result: PASS|FAIL``. The runner has no warm-up flag:
warm-up + iterations run in one process and the first ``warmup`` iterations are dropped.

No phone was available where this was written: the command sequence is tested against a fake ``adb``
on ``PATH`` that records its arguments; the ETDump parser is tested on an ETDump written by the
host ExecuTorch runtime.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UdcError

DEVICE_ROOT = "/data/local/tmp"
RUNNER_NAME = "executor_runner"


class DeviceUnavailable(UdcError, RuntimeError):
    """No adb / no device / no macOS: the CLIs print the message and exit 2."""


class AdbError(UdcError, RuntimeError):
    """An adb command failed on a connected device."""


def find_adb() -> str:
    exe = shutil.which("adb")
    if exe is None:
        raise DeviceUnavailable("adb not found on PATH: install Android platform-tools (Debian: apt install adb), "
                                "connect a phone with USB debugging on, and check it with 'adb devices'")
    return exe


def parse_devices(text: str) -> list[tuple[str, str]]:
    """``adb devices`` output -> ``[(serial, state)]`` (state: device, unauthorized, offline, ...)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("List of devices") or line.startswith("*"):
            continue
        parts = line.split()
        if len(parts) >= 2:
            out.append((parts[0], parts[1]))
    return out


@dataclass
class Adb:
    exe: str
    serial: str
    timeout: float = 600.0

    @classmethod
    def connect(cls, serial: str | None = None, timeout: float = 600.0) -> "Adb":
        """Find adb and the device (``serial``, or the only one connected); :class:`DeviceUnavailable` otherwise."""
        exe = find_adb()
        try:
            res = subprocess.run([exe, "devices"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise DeviceUnavailable(f"adb devices failed ({e}): restart the adb server (adb kill-server)") from None
        if res.returncode != 0:
            raise DeviceUnavailable(f"adb devices failed: {(res.stderr or res.stdout).strip()}")
        devices = parse_devices(res.stdout)
        ready = [s for s, st in devices if st == "device"]
        if serial is not None:
            state = dict(devices).get(serial)
            if state is None:
                raise DeviceUnavailable(f"no Android device {serial} connected (adb devices lists "
                                        f"{', '.join(s for s, _ in devices) or 'none'})")
            if state != "device":
                raise DeviceUnavailable(f"Android device {serial} is {state}: unlock it and accept the USB debugging prompt")
            return cls(exe, serial, timeout)
        if not ready:
            if devices:
                raise DeviceUnavailable("no usable Android device: " + ", ".join(f"{s} is {st}" for s, st in devices)
                                        + " (unlock it and accept the USB debugging prompt)")
            raise DeviceUnavailable("no Android device connected (adb devices lists none): connect a phone with USB "
                                    "debugging on, or pass --serial")
        if len(ready) > 1:
            raise DeviceUnavailable(f"{len(ready)} Android devices connected ({', '.join(ready)}): pass --serial")
        return cls(exe, ready[0], timeout)

    def cmd(self, *args: str) -> list[str]:
        return [self.exe, "-s", self.serial, *args]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        try:
            res = subprocess.run(self.cmd(*args), capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise AdbError(f"adb {' '.join(args[:2])} timed out after {self.timeout:.0f} s") from None
        if check and res.returncode != 0:
            raise AdbError(f"adb {' '.join(args)} failed (exit {res.returncode}): "
                           f"{(res.stderr or res.stdout).strip()[-400:]}")
        return res

    def shell(self, command: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("shell", command, check=check)

    def push(self, local: Path, remote: str) -> None:
        self.run("push", str(local), remote)

    def pull(self, remote: str, local: Path) -> None:
        self.run("pull", remote, str(local))

    def getprop(self, name: str) -> str:
        return self.shell(f"getprop {name}", check=False).stdout.strip()


# ------------------------------------------------------------------------------------ runner output
_LOADED = re.compile(r"Model loaded in ([0-9.]+) ms")
_ITER = re.compile(r"Iteration (\d+) of (\d+): ([0-9.]+) ms")
_TOTAL = re.compile(r"Model executed successfully (\d+) time\(s\) in ([0-9.]+) ms")
_RESULT = re.compile(r"Test_result: (PASS|FAIL)")
_STAT = re.compile(r"(mean_absolute_error|max_absolute_error|mean_relative_error|max_relative_error):\s*([-0-9.eE+naif]+)")


@dataclass
class RunnerResult:
    program: str
    load_ms: float | None
    iteration_ms: list[float]  # after dropping the warm-up iterations
    total_ms: float | None
    executions: int | None
    verdict: str | None  # "PASS" / "FAIL" for bundled programs, else None
    error_stats: dict[str, float] = field(default_factory=dict)
    etdump: str | None = None
    etdump_summary: dict[str, Any] | None = None
    log_tail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("program", "load_ms", "iteration_ms", "total_ms", "executions",
                                              "verdict", "error_stats", "etdump", "etdump_summary")}


def parse_runner_output(text: str, program: str, warmup: int = 0) -> RunnerResult:
    loaded = _LOADED.search(text)
    iters = [float(m.group(3)) for m in _ITER.finditer(text)]
    total = _TOTAL.search(text)
    executions = int(total.group(1)) if total else None
    if not iters and total and executions:  # an older runner without per-iteration lines: the mean only
        iters = [float(total.group(2)) / executions] * executions
    verdicts = _RESULT.findall(text)
    stats = {m.group(1): float(m.group(2)) for m in _STAT.finditer(text)}
    return RunnerResult(program, float(loaded.group(1)) if loaded else None, iters[warmup:],
                        float(total.group(2)) if total else None, executions,
                        ("FAIL" if "FAIL" in verdicts else "PASS") if verdicts else None, stats,
                        log_tail="\n".join(text.strip().splitlines()[-8:]))


def summarize_etdump(path: str | Path, top: int = 10) -> dict[str, Any]:
    """Per-run ``Method::execute`` times and the slowest operators/delegate events of an ETDump."""
    import warnings

    from executorch.devtools import Inspector

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ins = Inspector(etdump_path=str(path))
    execute_ms: list[float] = []
    ops: dict[str, float] = {}
    for block in ins.event_blocks:
        for ev in block.events:
            if ev.perf_data is None:
                continue
            if ev.name == "Method::execute":
                execute_ms += [float(v) for v in ev.perf_data.raw]
            elif block.name == "Execute":
                ops[ev.name] = ops.get(ev.name, 0.0) + float(sum(ev.perf_data.raw))
    slow = sorted(ops.items(), key=lambda kv: -kv[1])[:top]
    return {"execute_ms": execute_ms, "events": len(ops), "top_ops_total_ms": [[k, round(v, 4)] for k, v in slow]}


# ------------------------------------------------------------------------------------ session
class AndroidSession:
    """A scratch directory on the phone holding the runner and the programs; removed on exit."""

    def __init__(self, adb: Adb, runner: str | Path, workdir: str | None = None):
        self.adb = adb
        self.runner = Path(runner)
        if not self.runner.is_file():
            raise DeviceUnavailable(f"--runner {self.runner}: no such file (build ExecuTorch's executor_runner for "
                                    "Android arm64-v8a with the Android NDK, see the notes)")
        self.workdir = workdir or f"{DEVICE_ROOT}/udc-{uuid.uuid4().hex[:8]}"
        self.pushed: dict[str, str] = {}

    def __enter__(self) -> "AndroidSession":
        self.adb.shell(f"mkdir -p {shlex.quote(self.workdir)}")
        remote = f"{self.workdir}/{RUNNER_NAME}"
        self.adb.push(self.runner, remote)
        self.adb.shell(f"chmod 755 {shlex.quote(remote)}")
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        self.adb.shell(f"rm -rf {shlex.quote(self.workdir)}", check=False)

    def push(self, local: Path) -> str:
        key = str(local)
        if key not in self.pushed:
            remote = f"{self.workdir}/{local.name}"
            self.adb.push(local, remote)
            self.pushed[key] = remote
        return self.pushed[key]

    def run(self, program: Path, warmup: int = 10, iters: int = 100, threads: int | None = None,
            etdump_to: Path | None = None, atol: float | None = None, rtol: float | None = None) -> RunnerResult:
        """Run ``program`` (.pte or .bpte) ``warmup + iters`` times in one runner process."""
        remote = self.push(program)
        flags = [f"--model_path={remote}", f"--num_executions={warmup + iters}", "--print_output=none"]
        if threads:
            flags.append(f"--cpu_threads={int(threads)}")
        etdump_remote = None
        if etdump_to is not None:
            etdump_remote = f"{self.workdir}/{program.stem}.etdp"
            flags.append(f"--etdump_path={etdump_remote}")
        if atol is not None:
            flags.append(f"--bundleio_atol={atol:g}")
        if rtol is not None:
            flags.append(f"--bundleio_rtol={rtol:g}")
        line = f"cd {shlex.quote(self.workdir)} && ./{RUNNER_NAME} " + " ".join(shlex.quote(f) for f in flags)
        res = self.adb.shell(line, check=False)
        text = (res.stdout or "") + "\n" + (res.stderr or "")
        out = parse_runner_output(text, program.name, warmup)
        if res.returncode != 0 and out.verdict != "FAIL":
            raise AdbError(f"{RUNNER_NAME} failed on {program.name} (exit {res.returncode}): {out.log_tail[-400:]}")
        if etdump_remote is not None:
            etdump_to.mkdir(parents=True, exist_ok=True)
            local = etdump_to / f"{program.stem}.etdp"
            self.adb.pull(etdump_remote, local)
            out.etdump = str(local)
            try:
                out.etdump_summary = summarize_etdump(local)
            except Exception as e:  # noqa: BLE001 - a dump the Inspector cannot read: keep the file, say why
                out.etdump_summary = {"error": f"could not parse: {e}"}
        return out

    def device_info(self) -> dict[str, str]:
        return {"serial": self.adb.serial, "model": self.adb.getprop("ro.product.model"),
                "soc": self.adb.getprop("ro.soc.model"), "android": self.adb.getprop("ro.build.version.release"),
                "abi": self.adb.getprop("ro.product.cpu.abi")}


# ------------------------------------------------------------------------------------ bench
def android_bench(bundle, serial: str | None, runner: str | Path | None, warmup: int, iters: int,
                  threads: int | None, etdump_dir: Path | None = None) -> dict[str, Any]:
    """Each component's ``.pte`` run ``warmup + iters`` times by executor_runner on the phone.

    Returns ``{"device": {...}, "components": {name: RunnerResult dict}}``; the caller builds the
    ``udc-bench/1`` row. Every program runs in its own runner process, so the end-to-end figure is the
    per-iteration sum of the components (a fused ``pipeline`` component, when present, is run too).
    """
    m = bundle.manifest
    if m["target"] != "executorch":
        raise DeviceUnavailable(f"--device android runs ExecuTorch bundles; {bundle.path.name} is a {m['target']} "
                                "bundle (export it with udc-export --target executorch)")
    if m.get("backend") == "coreml":
        raise DeviceUnavailable(f"{bundle.path.name} is delegated to Core ML (iOS only): export --backend xnnpack for Android")
    adb = Adb.connect(serial)
    if runner is None:
        raise DeviceUnavailable("--device android needs --runner PATH: ExecuTorch's executor_runner built for Android "
                                "(arm64-v8a, XNNPACK linked in); the minibench app is not driven by udc-bench yet")
    results = {}
    with AndroidSession(adb, runner) as s:
        info = s.device_info()
        for name in m["components"]:
            results[name] = s.run(bundle.file(name), warmup=warmup, iters=iters, threads=threads,
                                  etdump_to=etdump_dir).to_dict()
    return {"device": {"kind": "android", **info}, "components": results}
