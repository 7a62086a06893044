"""Keep third-party log noise away from the user unless they ask for it (``--verbose``).

What prints without this, measured on the CLIs: ExecuTorch's ``cpuinfo_utils.cpp`` lines and
absl's "WARNING: All log messages before absl::InitializeLog() are written to STDERR" (both from C++,
straight to file descriptor 2, so Python's ``sys.stderr`` cannot catch them), TFLite's "Created
TensorFlow Lite XNNPACK delegate for CPU" (MediaPipe), and tqdm progress bars (which belong on a
terminal, not in a log file).

    from udc.sdk.console.quiet import quiet_native, set_verbose, show_progress
    set_verbose(args.verbose)            # a CLI's --verbose flag; UDC_VERBOSE=1 does the same
    with quiet_native():                 # fd 2 goes to /dev/null around one noisy native call
        program = runtime.load_program(path)
    tqdm(..., disable=not show_progress())

Only the noisy calls are wrapped (a short window), never a whole command: errors the user must see
are raised as Python exceptions after the window closes.
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

VERBOSE_ENV = "UDC_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def set_verbose(on: bool) -> None:
    """Turn third-party logs on (``--verbose``) or off for this process and the processes it starts."""
    os.environ[VERBOSE_ENV] = "1" if on else "0"
    if on:
        for k in ("GLOG_minloglevel", "TF_CPP_MIN_LOG_LEVEL"):
            if os.environ.get(k) == "2":
                os.environ.pop(k)
    else:
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def show_progress(stream=None) -> bool:
    """Progress bars only on a terminal (a log file gets none); ``--verbose`` does not change this."""
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def quiet_native(fds: tuple[int, ...] = (2,)) -> Iterator[None]:
    """Send what native code writes to ``fds`` (default: stderr) to /dev/null for the ``with`` block,
    unless verbose. Python's own ``sys.stderr`` is flushed first, so nothing already written is lost."""
    if verbose():
        yield
        return
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except (AttributeError, ValueError, OSError):
            pass
    saved = []
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:  # pragma: no cover - no /dev/null: leave the streams alone
        yield
        return
    try:
        for fd in fds:
            try:
                saved.append((fd, os.dup(fd)))
                os.dup2(devnull, fd)
            except OSError:  # fd not open (a daemon): nothing to silence
                pass
        yield
    finally:
        for fd, copy in reversed(saved):
            try:
                os.dup2(copy, fd)
            finally:
                os.close(copy)
        os.close(devnull)


#: Python loggers that print on every command without being asked (measured): torchao's "Skipping import
#: of cpp extensions ..." and torch's pytree deprecation warning about ``KernelPreference`` (executorch import).
NOISY_LOGGERS = ("torchao", "torch.utils._pytree")


def quiet_python_logs() -> None:
    """Raise the noisy third-party Python loggers to ERROR (unless verbose); call before importing them."""
    if verbose():
        return
    import logging

    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def setup(verbose_flag: bool = False) -> None:
    """What a CLI calls first: ``--verbose`` (or ``UDC_VERBOSE=1``) shows third-party logs, else they are kept
    to a minimum (Python loggers, GLOG/TF levels for native code started later)."""
    set_verbose(verbose_flag or verbose())
    quiet_python_logs()


def progress(iterable, total: int | None = None, desc: str = "", unit: str = "it", enabled: bool = True,
             every_s: float = 30.0, stream=None):
    """Progress over ``iterable``: a tqdm bar on a terminal; elsewhere (a log file, CI) one plain line at
    most every ``every_s`` seconds and at the end (``desc: 120/3589 img (3%)``), never a bar's control codes."""
    import time

    stream = stream if stream is not None else sys.stderr
    if not enabled:
        yield from iterable
        return
    if show_progress(stream):
        from tqdm import tqdm

        yield from tqdm(iterable, total=total, desc=desc, unit=unit, file=stream)
        return
    total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
    t0 = last = time.monotonic()
    n = 0
    for item in iterable:
        yield item
        n += 1
        now = time.monotonic()
        if now - last >= every_s:
            last = now
            share = f" ({100 * n / total:.0f}%)" if total else ""
            print(f"{desc}: {n}/{total if total else '?'} {unit}{share}, {now - t0:.0f} s", file=stream, flush=True)
    if n and time.monotonic() - t0 >= every_s:
        print(f"{desc}: {n} {unit} done in {time.monotonic() - t0:.0f} s", file=stream, flush=True)
