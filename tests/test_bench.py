"""udc-bench: the host benchmark's stable JSON, and the Android flow against a fake ``adb`` on PATH that
records its arguments (no phone here); no adb / no device / no macOS exit 2 with one clear line."""
from __future__ import annotations

import json
import os
import platform
import stat
import sys

import pytest
from click.testing import CliRunner

from sdk_bundles import export_bundle
from udc.sdk.bench.android import parse_devices, parse_runner_output, summarize_etdump
from udc.sdk.bench.host import SCHEMA, STATS
from udc.sdk.cli.bench import main as bench_main
from udc.sdk.cli.parity import main as parity_main

#: needs the session's exported bundle (tens of seconds to minutes on 2 cores): not in `make test-quick`
SLOW = pytest.mark.slow

FAKE_ADB = r'''#!{python}
"""A stand-in for adb: appends its argv to $FAKE_ADB_LOG and answers like adb and executor_runner do."""
import json, os, re, shutil, sys
args = sys.argv[1:]
with open(os.environ["FAKE_ADB_LOG"], "a") as f:
    f.write(json.dumps(args) + "\n")
if args == ["devices"]:
    print("List of devices attached")
    for d in filter(None, os.environ.get("FAKE_ADB_DEVICES", "").split(",")):
        s, st = d.split(":")
        print(f"{{s}}\t{{st}}")
    sys.exit(0)
assert args[0] == "-s", args
cmd, rest = args[2], args[3:]
if cmd == "shell":
    line = rest[0]
    if line.startswith("getprop"):
        print({{"ro.product.model": "Pixel Fake", "ro.build.version.release": "15"}}.get(line.split()[1], ""))
    elif "./executor_runner --" in line:
        prog = re.search(r"--model_path=(\S+)", line).group(1)
        n = int(re.search(r"--num_executions=(\d+)", line).group(1))
        base = {{"clip_image": 4.0, "fpen_s2": 0.5, "denoiser": 1.0, "udcformer": 10.0}}[os.path.basename(prog).split(".")[0]]
        print("I 00:00:00.001 executorch:executor_runner.cpp:301] Model loaded in 12.500000 ms.")
        for i in range(n):
            print(f"I 00:00:00.0{{i}} executorch:executor_runner.cpp:512] Iteration {{i + 1}} of {{n}}: {{base + i:f}} ms")
        print(f"I 00:00:00.1 executorch:executor_runner.cpp:530] Model executed successfully {{n}} time(s) in 1.0 ms.")
        if prog.endswith(".bpte"):
            print("I 00:00:00.2 executorch:executor_runner.cpp:600]  max_absolute_error:  0.000001")
            print("I 00:00:00.2 executorch:executor_runner.cpp:600]  mean_absolute_error: 0.000000")
            verdict = os.environ.get("FAKE_VERDICT", "PASS")
            print(f"I 00:00:00.2 executorch:executor_runner.cpp:610] TEST: BundleIO index[0] Test_result: {{verdict}}")
            sys.exit(0 if verdict == "PASS" else 1)
elif cmd == "push":
    print(f"{{rest[0]}}: 1 file pushed")
elif cmd == "pull":
    shutil.copy(os.environ["FAKE_ETDUMP"], rest[1])
'''


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return export_bundle(tmp_path_factory.mktemp("bundles"), "executorch")


@pytest.fixture(scope="module")
def etdump(bundle, tmp_path_factory):
    """A real ETDump, written by the host ExecuTorch runtime (3 runs of fpen_s2)."""
    import torch
    from executorch.runtime import Runtime

    out = tmp_path_factory.mktemp("etdump") / "fpen_s2.etdp"
    prog = Runtime.get().load_program(bundle / "fpen_s2.pte", enable_etdump=True)
    method = prog.load_method("forward")
    for _ in range(3):
        method.execute([torch.randn(1, 32)])
    prog.write_etdump_result_to_file(str(out), str(out.with_suffix(".bin")))
    return out


@pytest.fixture
def fake_adb(tmp_path, monkeypatch, etdump):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "adb"
    exe.write_text(FAKE_ADB.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "adb.log"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_LOG", str(log))
    monkeypatch.setenv("FAKE_ADB_DEVICES", "FAKE123:device")
    monkeypatch.setenv("FAKE_ETDUMP", str(etdump))
    runner = tmp_path / "executor_runner"
    runner.write_bytes(b"\x7fELF fake runner")

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return runner, calls


def _invoke(main, args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in res.output, res.output
    return res


@SLOW
def test_no_adb_exits_2(bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no adb
    for main in (bench_main, parity_main):
        res = _invoke(main, [bundle, "--device", "android", "--runner", tmp_path / "r"])
        assert res.exit_code == 2
        assert res.output.strip().count("\n") == 0 and "adb not found on PATH" in res.output


@pytest.mark.parametrize("devices,message", [("", "no Android device connected"),
                                             ("ABC:unauthorized", "ABC is unauthorized"),
                                             ("A:device,B:device", "2 Android devices connected")])
@SLOW
def test_no_usable_device_exits_2(bundle, fake_adb, monkeypatch, devices, message):
    runner, calls = fake_adb
    monkeypatch.setenv("FAKE_ADB_DEVICES", devices)
    res = _invoke(bench_main, [bundle, "--device", "android", "--runner", runner])
    assert res.exit_code == 2 and message in res.output, res.output
    assert calls() == [["devices"]]  # nothing pushed or run


@SLOW
def test_android_bench_adb_sequence(bundle, fake_adb, tmp_path):
    runner, calls = fake_adb
    res = _invoke(bench_main, [bundle, "--device", "android", "--runner", runner, "--serial", "FAKE123",
                               "--warmup", 2, "--iters", 3, "--threads", 4, "--etdump", tmp_path / "dumps", "--json"])
    assert res.exit_code == 0, res.output
    seq = calls()
    assert seq[0] == ["devices"]
    assert all(c[:2] == ["-s", "FAKE123"] for c in seq[1:])
    ops = [c[2:] for c in seq[1:]]
    workdir = ops[0][1].split()[-1]
    assert ops[0] == ["shell", f"mkdir -p {workdir}"] and workdir.startswith("/data/local/tmp/udc-")
    assert ops[1] == ["push", str(runner), f"{workdir}/executor_runner"]
    assert ops[2] == ["shell", f"chmod 755 {workdir}/executor_runner"]
    assert ops[-1] == ["shell", f"rm -rf {workdir}"]  # cleaned up
    for comp in ("clip_image", "fpen_s2", "denoiser", "udcformer"):
        i = ops.index(["push", str(bundle / f"{comp}.pte"), f"{workdir}/{comp}.pte"])
        run = ops[i + 1]
        assert run == ["shell", f"cd {workdir} && ./executor_runner --model_path={workdir}/{comp}.pte "
                                "--num_executions=5 --print_output=none --cpu_threads=4 "
                                f"--etdump_path={workdir}/{comp}.etdp"]
        assert ops[i + 2] == ["pull", f"{workdir}/{comp}.etdp", str(tmp_path / "dumps" / f"{comp}.etdp")]
    r = json.loads(res.stdout)
    assert r["schema"] == SCHEMA and r["device"]["kind"] == "android" and r["device"]["model"] == "Pixel Fake"
    row = r["rows"][0]
    lat = row["latency_ms"]
    # the fake runner's iterations take base + i ms; the first 2 (warm-up) are dropped
    assert lat["udcformer"]["min"] == 12.0 and lat["udcformer"]["max"] == 14.0 and lat["udcformer"]["p50"] == 13.0
    assert lat["end_to_end"]["p50"] == pytest.approx(4 + 0.5 + 1 + 10 + 4 * 3)  # per-iteration sum, median iteration
    assert set(lat["clip_image"]) == set(STATS)
    assert row["load_ms"]["total"] == pytest.approx(4 * 12.5)
    assert row["per_component"]["fpen_s2"]["etdump_summary"]["execute_ms"]  # a real ETDump was parsed


@SLOW
def test_android_parity_reads_the_runner_verdict(bundle, fake_adb, monkeypatch):
    runner, calls = fake_adb
    res = _invoke(parity_main, [bundle, "--device", "android", "--runner", runner, "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["passed"] and {c["verdict"] for c in r["components"]} == {"PASS"}
    runs = [c for c in calls() if len(c) > 3 and c[2] == "shell" and "executor_runner --model_path" in c[3]]
    assert len(runs) == 4 and all(".bpte --num_executions=1" in c[3] and "--bundleio_atol=" in c[3] for c in runs)
    monkeypatch.setenv("FAKE_VERDICT", "FAIL")
    res = _invoke(parity_main, [bundle, "--device", "android", "--runner", runner])
    assert res.exit_code == 1 and "FAIL" in res.output


def test_runner_output_and_devices_parsing():
    text = ("I 00:00:00.000 executorch:executor_runner.cpp:289] Model loaded in 3.250000 ms.\n"
            + "".join(f"I 00:00:00.0 executorch:executor_runner.cpp:500] Iteration {i} of 4: {i}.5 ms\n" for i in range(1, 5))
            + "I 00:00:00.1 executorch:executor_runner.cpp:510] Model executed successfully 4 time(s) in 14.0 ms.\n")
    r = parse_runner_output(text, "x.pte", warmup=1)
    assert r.load_ms == 3.25 and r.iteration_ms == [2.5, 3.5, 4.5] and r.executions == 4 and r.verdict is None
    old = parse_runner_output("Model executed successfully 2 time(s) in 10.0 ms.", "x.pte")
    assert old.iteration_ms == [5.0, 5.0]  # a runner without per-iteration lines: the mean
    assert parse_devices("List of devices attached\nR58M\tdevice\nemulator-5554\toffline\n\n") == [
        ("R58M", "device"), ("emulator-5554", "offline")]


@SLOW
def test_etdump_summary_of_a_real_dump(etdump):
    s = summarize_etdump(etdump)
    assert len(s["execute_ms"]) == 3 and all(v >= 0 for v in s["execute_ms"])
    assert s["events"] > 0


@SLOW
def test_ios_needs_macos(bundle):
    if platform.system() == "Darwin":
        pytest.skip("on macOS the iOS path looks for a real device")
    res = _invoke(bench_main, [bundle, "--device", "ios"])
    assert res.exit_code == 2 and "needs macOS" in res.output


@SLOW
def test_host_bench_json_schema(bundle):
    res = _invoke(bench_main, [bundle, "--warmup", 1, "--iters", 3, "--threads", 1, "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["schema"] == SCHEMA and r["device"]["kind"] == "host" and r["iters"] == 3
    assert [row["runtime"] for row in r["rows"]] == ["executorch", "torch"]  # the bundle's runtime + the reference
    for row in r["rows"]:
        assert set(row["latency_ms"]) == {"clip_image", "fpen_s2", "denoiser", "udcformer", "model", "end_to_end",
                                          "sdk_overhead"}
        for s in row["latency_ms"].values():
            assert set(s) == set(STATS) and s["min"] <= s["p50"] <= s["max"]
        assert row["latency_ms"]["end_to_end"]["min"] >= row["latency_ms"]["model"]["min"] * 0.999
        assert row["load_ms"]["total"] > 0 and row["throughput_fps"] > 0 and row["memory_mb"]["peak_rss"] > 0
    et, ref = r["rows"]  # the bundle's runtime's speedup is the reference's p50 over its own (not torch vs torch)
    p50 = {row["runtime"]: row["latency_ms"]["end_to_end"]["p50"] for row in r["rows"]}
    assert et["speedup_vs_torch"] == pytest.approx(p50["torch"] / p50["executorch"], rel=1e-3)
    res = _invoke(bench_main, [bundle, "--warmup", 0, "--iters", 2, "--runtime", "executorch", "--no-reference"])
    assert res.exit_code == 0 and "end_to_end" in res.output
    assert not [line for line in res.output.splitlines() if line.startswith("torch ")]  # no reference row
