"""A contact sheet for eyeballing the generator: one column per expression, one row per identity."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from udc.sdk.labels import LABELS

from .render import render_face


def contact_sheet(rows: int = 6, size: int = 128, seed: int = 0, landmarks: bool = False) -> Image.Image:
    """Row r shows one person (same identity, pose and scene) making each of the 7 expressions."""
    head = 14
    sheet = Image.new("RGB", (size * len(LABELS), head + size * rows), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for col, name in enumerate(LABELS):
        draw.text((col * size + 4, 1), name, fill=(0, 0, 0))
    for row in range(rows):
        for col in range(len(LABELS)):
            img, lm = render_face(np.random.default_rng([seed, row]), col, size)
            tile = Image.fromarray(img)
            if landmarks:
                d = ImageDraw.Draw(tile)
                for x, y in lm:
                    d.point((float(x), float(y)), fill=(0, 255, 0))
            sheet.paste(tile, (col * size, head + row * size))
    return sheet


def save_contact_sheet(path: str | Path, rows: int = 6, size: int = 128, seed: int = 0,
                       landmarks: bool = False) -> Path:
    path = Path(path)
    contact_sheet(rows, size, seed, landmarks).save(path)
    return path
