"""Typed errors of the SDK: each says what went wrong and what to do, in one line."""
from __future__ import annotations


class UdcError(Exception):
    """Base class of every error the SDK raises on bad input."""


class ImageError(UdcError, ValueError):
    """The input is not a decodable image (missing, not an image, truncated, unsupported)."""


class NoFaceError(UdcError, ValueError):
    """No face was found in the image."""


class MissingDependencyError(UdcError, ImportError):
    """An optional runtime (MediaPipe, a backend) is not installed."""


class LandmarksError(NoFaceError):
    """The landmarks given for a face cannot place it: not finite (a record where no face was found is
    cached as NaN points), the wrong shape, or all at one spot. A subclass of :class:`NoFaceError`, so
    code that skips faceless images skips these too."""
