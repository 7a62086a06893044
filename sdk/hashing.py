"""File hashing shared by checkpoints and bundles, and the safe reads bundles need.

``file_sha256`` hashes any path it is given (a checkpoint the user names). ``read_regular`` and
``regular_sha256`` are for files a *manifest* names: they refuse anything but a regular file (a symlink,
a FIFO, a device, a directory) without following links and without blocking on a FIFO.
"""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path


class NotARegularFile(OSError):
    """The path is a symlink, FIFO, socket, device or directory where a regular file was expected."""


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return name
    return "not a regular file"


def _open_regular(path: str | Path) -> int:
    """A read-only descriptor of ``path`` if it is a regular file (not followed if a symlink; a FIFO is not
    waited on); :class:`NotARegularFile` otherwise, :class:`FileNotFoundError` if it does not exist."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotARegularFile(f"{path} is {kind_of(st.st_mode)}, not a regular file")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:  # swapped for a symlink since the lstat (ELOOP)
        raise NotARegularFile(f"{path} changed while being opened ({e.strerror})") from None
    st2 = os.fstat(fd)
    if not stat.S_ISREG(st2.st_mode) or (st2.st_dev, st2.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        raise NotARegularFile(f"{path} changed while being opened")
    return fd


def read_regular(path: str | Path) -> bytes:
    """The bytes of a regular file (see :func:`_open_regular`)."""
    fd = _open_regular(path)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def regular_sha256(path: str | Path, chunk: int = 1 << 20) -> tuple[str, int]:
    """``(sha256, size in bytes)`` of a regular file, read once through one descriptor."""
    fd = _open_regular(path)
    h, n = hashlib.sha256(), 0
    with os.fdopen(fd, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
            n += len(block)
    return h.hexdigest(), n
