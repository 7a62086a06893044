"""``udc-export --jobs N``: export the components side by side in N worker processes.

Most of an int8 export is single-threaded Python: PT2E calibration and conversion, the recipe search, and
ExecuTorch's lowering passes (cProfile of a UDCformer int8 lowering: nearly all of it in ``torch.fx``
interpreters, fake-tensor dispatch and deep copies). With spare cores the components can run at once. Each
worker rebuilds what the serial export holds in memory: the model (the same checkpoint, or the same seeded random
init), the seeded calibration and held-out faces and their reference tensors. It then exports its components
into the bundle's work directory exactly as the serial loop does (:func:`udc.export.exporter.export_one`), and
sends back the component record. The parent loads every program for the parity report, so the bundle is the one
a serial export writes.

Each worker starts with ``1/N`` of the host's torch threads. When the parent has nothing left to hand out and a
worker exits, the workers still exporting take its share (:class:`ThreadShare`): the batched eager forwards of
the sensitivity ranking, where one component (the `paper` UDCformer: 121 layers) can outlast all the others by
half an hour, check their share before each layer (:func:`udc.export.quant.threads.rebalance`). A worker also
keeps freed memory in its heap (:func:`udc.export.heap.heap_reuse`), as a serial export does.

Workers are spawned, not forked: a fork of a process that already ran OpenMP or XNNPACK threads can hang.
Their log lines come back over their pipes. The first error in any worker, or a worker that dies, stops the
others; the bundle's work directory then goes away with the failed export.
"""
from __future__ import annotations

import pickle
import traceback
from pathlib import Path
from typing import Any, Callable

from udc.sdk.bench.host import default_threads

from .artifact import Artifact

#: Longest first, so that the long component does not start last. Measured on the `mobile` int8 export
#: (issue 16, 2 cores): udcformer 1,517 s, clip_image 458 s, denoiser 104 s, fpen_s2 74 s.
COST_ORDER = ("udcformer", "pipeline", "clip_image", "ddamfn", "denoiser", "fpen_s2")

#: How often the parent checks that its workers are still alive while it waits for their messages.
POLL_S = 5.0


def parallel_reason(req, coreml_like: bool, names: list[str]) -> str | None:
    """Why this export cannot use ``--jobs`` (None: it can)."""
    if coreml_like:
        return "Core ML components are converted in turn (their fp16 range check and emulation stay in one process)"
    if len(names) < 2:
        return "only one component to export"
    return None


def split(total: int, jobs: int) -> int:
    """Each worker's share of ``total`` threads (at least 1)."""
    return max(1, total // jobs)


class ThreadShare:
    """A worker's share of the host's ``total`` torch threads now: ``total // busy`` (at least 1), where ``busy``
    (a shared ``multiprocessing.Value``, counted down by the parent) is the number of workers still exporting."""

    def __init__(self, total: int, busy):
        self.total, self.busy = total, busy

    def __call__(self) -> int:
        return split(self.total, max(1, self.busy.value))


def export_parallel(req, backend: str, quant: str, names: list[str], root: Path, hints: dict[str, Any],
                    log: Callable[[str], None]) -> list[Artifact]:
    """Export ``names`` in ``min(req.jobs, len(names))`` worker processes; the artifacts in ``names`` order,
    without host runners (the caller attaches them). Each worker talks to the parent over its own pipe (no
    shared queues: their named semaphores outlived the export as "leaked" warnings): it says when it is ready,
    the parent hands it the next component (longest first), and it sends back log lines and the result."""
    import multiprocessing as mp
    from collections import deque
    from multiprocessing.connection import wait

    jobs = min(req.jobs, len(names))
    ctx = mp.get_context("spawn")
    todo = deque(sorted(names, key=lambda n: COST_ORDER.index(n) if n in COST_ORDER else len(COST_ORDER)))
    threads = split(req.threads, jobs)
    total_threads = default_threads()  # the CPUs this process may run on (a cpuset or taskset limits them)
    torch_threads = split(total_threads, jobs)
    busy = ctx.Value("i", jobs)  # workers still exporting: a finished worker's threads go to the others
    log(f"exporting {len(names)} components in {jobs} worker processes ({threads} runtime thread(s), "
        f"{torch_threads} torch thread(s) each)")
    procs, live = [], {}  # live: the pipe of each worker still exporting -> its process
    out: dict[str, Artifact] = {}
    try:
        for i in range(jobs):
            here, there = ctx.Pipe()
            p = ctx.Process(target=_work, args=(req, backend, quant, str(root), hints, threads,
                                                    ThreadShare(total_threads, busy), there),
                            daemon=True, name=f"udc-export-{i}")
            p.start()
            there.close()  # the worker holds its end: the parent sees EOF if the worker dies
            procs.append(p)
            live[here] = p
        while len(out) < len(names):
            if not live:
                raise RuntimeError("the export workers stopped without exporting "
                                   f"{', '.join(n for n in names if n not in out)}")
            for conn in wait(list(live), timeout=POLL_S):
                try:
                    kind, name, payload = conn.recv()
                except EOFError:
                    p = live.pop(conn)
                    p.join(5)
                    raise RuntimeError(f"an export worker died (exit code {p.exitcode}) before finishing; nothing "
                                       "was written (rerun without --jobs to see where)") from None
                if kind == "log":
                    log(payload)
                elif kind in ("ready", "done"):
                    if kind == "done":
                        out[name] = payload
                    nxt = todo.popleft() if todo else None
                    conn.send(nxt)
                    if nxt is None:  # nothing left for this worker: it exits, and its pipe's EOF is not a death
                        with busy.get_lock():
                            busy.value -= 1
                        live.pop(conn)
                        conn.close()
                else:  # "error": the worker's exception, re-raised here with the worker's traceback as its cause
                    exc, tb = payload
                    raise exc from _WorkerTraceback(f"in the export worker for {name}:\n{tb}")
    finally:
        for p in procs:
            if p.is_alive() and len(out) < len(names):
                p.terminate()
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
        for conn in live:
            conn.close()
    return [out[n] for n in names]


class _WorkerTraceback(Exception):
    """Carries a worker's traceback text (as the ``__cause__`` of the error re-raised in the parent)."""


def _work(req, backend, quant, root, hints, threads, share: ThreadShare, conn) -> None:
    """A worker: rebuild model and faces once, then export the components the parent hands it until it is handed
    ``None``."""
    name = None
    try:
        import time
        import warnings

        from contextlib import ExitStack

        from udc.sdk.console.quiet import quiet_native, setup, verbose

        setup(verbose())  # the parent's --verbose reaches here through UDC_VERBOSE in the environment
        if not verbose():
            warnings.filterwarnings("ignore")  # as the CLI does in the parent
        import torch

        from .heap import heap_reuse
        from .quant.threads import rebalance, set_share

        life = ExitStack()  # for the worker's whole life (it only exports; the process ends with it)
        life.enter_context(heap_reuse())
        # everything a worker says goes through its pipe; its stderr would carry only the ExecuTorch runtime's
        # cpuinfo/threadpool lines from C++ (kept with --verbose)
        life.enter_context(quiet_native())
        torch.set_num_threads(share())

        def log(s: str) -> None:
            conn.send(("log", name, s))

        def on_change(old: int, new: int) -> None:
            log(f"  {name}: {new} torch threads from here (was {old}): other export workers are done")

        set_share(share, on_change)
        from .exporter import components_of, done_line, export_one, face_sets, load_model
        from .reference import reference_io

        model = load_model(req)[0]
        comps = {c.name: c for c in components_of(req, model)}
        calib_set, held_set = face_sets(req, model, quant)
        calib = reference_io(model, calib_set) if quant == "int8" else None
        held = reference_io(model, held_set)
        conn.send(("ready", None, None))
        while (name := conn.recv()) is not None:
            rebalance()
            t0 = time.perf_counter()
            a = export_one(req, comps[name], model, backend, quant, Path(root), calib, held, threads, log,
                           hints.get(name))
            a.seconds = time.perf_counter() - t0
            a.runner = None  # a closure over this process's runtime: the parent loads its own
            log(done_line(a))
            conn.send(("done", name, a))
    except BaseException as e:  # noqa: BLE001 - every failure goes to the parent, which decides
        try:
            pickle.dumps(e)
            exc = e
        except Exception:  # noqa: BLE001 - an exception that cannot cross processes: its text does
            exc = RuntimeError(f"{type(e).__name__}: {e}")
        try:
            conn.send(("error", name, (exc, traceback.format_exc())))
        except OSError:  # the parent is gone (it stopped the export): nothing to tell
            pass
    finally:
        conn.close()
