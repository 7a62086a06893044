"""Procedural synthetic expression faces: the embedded default dataset (no download).

Each face is an :class:`~.identity.Identity` (proportions, colours, hair, glasses) making an
:class:`~.expressions.Expression` (action-unit-like intensities drawn around one of seven class
prototypes) in a small random :class:`~.geometry.Pose`. :mod:`.geometry` turns these into the 68
iBUG landmarks, :mod:`.render` draws the face through those landmarks with PIL, and
:mod:`.dataset` writes (or returns in memory) a reproducible, split-disjoint dataset.

    >>> import numpy as np
    >>> image, landmarks = render_face(np.random.default_rng(0), label=1, size=128)  # happiness

``python -m udc.train.synthetic --help`` writes a dataset or a contact sheet from the shell.
"""
from __future__ import annotations

from .dataset import GENERATOR_VERSION, generate_arrays, generate_dataset
from .render import render_face

__all__ = ["GENERATOR_VERSION", "generate_arrays", "generate_dataset", "render_face"]
