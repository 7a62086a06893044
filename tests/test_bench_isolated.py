"""Issue 14 item 15: benchmark rows a user can trust. Each row's peak RSS is its own process's; "model"
time is the runtime's execute call alone (not the SDK's conversions around it); every row runs with the
same thread count, and the report says which."""
from __future__ import annotations

import time

import numpy as np
import pytest

from sdk_bundles import export_bundle


# ----------------------------------------------------------------------------- execute time alone (no bundle)
class _Method:
    def execute(self, args):
        time.sleep(0.02)  # the runtime's own work
        return [np.zeros((1, 7), np.float32)]


class _Runner:
    def __init__(self):
        self._method = _Method()

    def __call__(self, inputs):
        time.sleep(0.03)  # SDK glue around the runtime (conversions, copies)
        return self._method.execute(list(inputs.values()))


class _Opaque:
    def __call__(self, inputs):
        time.sleep(0.01)
        return [np.zeros((1, 7), np.float32)]


def test_instrument_execute_times_the_runtime_call_alone():
    from udc.sdk.bench.host import instrument_execute
    from udc.sdk.runtime.chain import Chain, Step

    chain = Chain("executorch", [Step("a", _Runner(), ["image"], {}, ["out"]), Step("b", _Opaque(), ["image"], {},
                                                                                      ["out"])])
    sink, missing = instrument_execute(chain)
    assert missing == ["b"]  # a runner whose runtime object is unknown: reported, not guessed
    _, ms = chain.run({"image": np.zeros((1, 3), np.float32)})
    assert 15 <= sink["a"] < 45 and ms["a"] >= 45  # the step (glue + execute) vs the execute call alone
    assert "b" not in sink


# ----------------------------------------------------------------------------- a real bundle
@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return export_bundle(tmp_path_factory.mktemp("bench-iso"), "executorch", "fp32")


@pytest.mark.slow  # needs an exported session bundle
def test_rows_run_in_their_own_process_with_one_thread_count(bundle):
    from udc.sdk.bench.host import default_threads, host_bench, rss_mb
    from udc.sdk.cli.bench import table

    ballast = np.ones(700 * 2 ** 20, np.uint8)  # 700 MB resident in this process only
    parent_rss = rss_mb()
    r = host_bench(bundle, ["executorch"], warmup=1, iters=3, progress=False)
    assert ballast[-1] == 1
    row = r["rows"][0]
    assert r["isolated_rows"] and row["memory_mb"]["peak_is_per_runtime"]
    # in this process the peak would include the ballast; the row's own process never saw it
    assert row["memory_mb"]["peak_rss"] < parent_rss - 500, (row["memory_mb"], parent_rss)
    assert row["threads"] == r["device"]["threads"] == default_threads()
    lat = row["latency_ms"]
    assert lat["model"]["min"] > 0 and lat["end_to_end"]["min"] >= lat["model"]["min"]
    assert row["model_time"] == "runtime execute only"
    assert f"{default_threads()} thread(s) for every row" in table(r)


@pytest.mark.slow  # needs an exported session bundle
def test_in_process_rows_share_the_given_thread_count(bundle):
    from udc.sdk.bench.host import host_bench

    r = host_bench(bundle, ["executorch", "torch"], warmup=0, iters=2, threads=1, progress=False, isolate=False)
    assert [row["threads"] for row in r["rows"]] == [1, 1] and r["device"]["threads"] == 1
    assert all(row["model_time"] == "runtime execute only" for row in r["rows"])


def test_isolated_row_error_is_one_typed_line(tmp_path):
    from udc.sdk.bench.host import bench_runtime_isolated
    from udc.sdk.errors import UdcError

    with pytest.raises(UdcError) as e:
        bench_runtime_isolated(tmp_path / "missing.udc", "executorch", 0, 1, 1, progress=False)
    assert "\n" not in str(e.value)


def test_default_threads_follow_the_cpu_affinity(monkeypatch):
    """A process limited to some CPUs (cpuset, taskset) sizes its threads (bench rows, the export's workers) to
    them, not to the host's count."""
    import os

    from udc.sdk.bench import host

    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert host.default_threads() == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set())
    assert host.default_threads() == 1  # never zero


def test_every_table_names_the_cpus_matrix_features():
    """The same bundle runs at very different speeds on an AVX2, an AVX-512 VNNI and an AMX host, so every table's host
    line names the matrix features /proc/cpuinfo reports (x86 ``flags``, Arm ``Features``), in a fixed order, and says
    so where nothing reports them."""
    from udc.sdk.bench.host import cpu_features, describe_cpu, host_info

    x86 = ("processor\t: 0\nmodel name\t: Test Xeon\nflags\t\t: fpu sse2 amx_int8 avx512_vnni fma avx2 amx_tile avx512f "
           "amx_bf16 avx512bw\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert cpu_features(x86) == ["avx2", "fma", "avx512f", "avx512_vnni", "amx_bf16", "amx_int8"]  # the first CPU's
    arm = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes asimddp i8mm sve bf16\n"
    assert cpu_features(arm) == ["asimd", "asimddp", "i8mm", "bf16", "sve"]
    assert cpu_features("") == [] and cpu_features("model name\t: no flags line\n") == []
    assert cpu_features("flags\t\t: fpu sse2\n") == []  # none of the matrix features: nothing claimed
    assert describe_cpu({"cpu": "Test Xeon", "isa": ["avx2", "amx_int8"]}) == "Test Xeon [avx2 amx_int8]"
    assert describe_cpu({"cpu": "Test Xeon", "isa": []}) == "Test Xeon [ISA unknown]"
    assert describe_cpu({"cpu": "Test Xeon"}) == "Test Xeon [ISA unknown]"  # a report from before the field existed
    assert host_info(2)["isa"] == cpu_features()
