"""``udc-synth --preview``: one picture, the clean face beside its UDC version under every profile."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .degrade import UDCDegrader
from .profiles import PROFILES


def face_or_center_crop(image, size: int) -> tuple[np.ndarray, str]:
    """The aligned face crop when a face is found, else a centre square crop of the image."""
    from udc.sdk.errors import NoFaceError
    from udc.sdk.faces.pipeline import FacePipeline
    from udc.sdk.faces.images import load_image

    rgb = load_image(image)
    try:
        return FacePipeline(size)(rgb).image, "aligned face crop"
    except NoFaceError:
        h, w = rgb.shape[:2]
        s = min(h, w)
        sq = rgb[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        return np.asarray(Image.fromarray(sq).resize((size, size), Image.LANCZOS)), "no face found: centre crop"


def make_preview(image, out: str | Path, size: int = 224, seed: int = 0, profiles=None) -> tuple[Path, str]:
    crop, how = face_or_center_crop(image, size)
    names = list(profiles or PROFILES)
    tiles = [("clean", crop)] + [
        (n, UDCDegrader(PROFILES[n], size)(crop[None], [seed])[0]) for n in names
    ]
    label_h = 18
    cols = min(4, len(tiles))
    rows = (len(tiles) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * size, rows * (size + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (name, tile) in enumerate(tiles):
        x, y = (i % cols) * size, (i // cols) * (size + label_h)
        sheet.paste(Image.fromarray(tile), (x, y + label_h))
        draw.text((x + 4, y + 3), name, fill="black")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out, how
