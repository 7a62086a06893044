"""``--recipes-from BUNDLE``: start each component's int8 recipe search from what an earlier export chose.

The recipe search (:func:`udc.export.quant.recipes.choose_recipe`) is most of an int8 export's time: on the
``mobile`` UDCformer it scored three recipes that missed, ranked every layer's sensitivity and scored two more
before ``gemm-int8-sensitive-2`` passed. Re-exporting the same architecture (new weights after more training, new
calibration faces, another seed) usually lands on the same recipe, so a hint from the earlier bundle is tried
first. It is only a starting point, never trusted: the hinted recipe is calibrated on *this* export's faces and
must pass the same thresholds, in simulation and (ExecuTorch) once lowered; if it misses, the full search runs as
if no hint had been given. The manifest records the hint and whether it held (``recipe_hint``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from udc.sdk.errors import UdcError
from udc.sdk.runtime.bundle import read_manifest

from .recipes import RECIPES, SENSITIVE

LAYER = "layer "  # how float_kept names a layer kept float (udc.export.quant.recipes.float_kept)


class RecipeHintError(UdcError, ValueError):
    """A ``--recipes-from`` bundle that cannot guide this export (not int8, another model, damaged)."""


@dataclass(frozen=True)
class RecipeHint:
    recipe: str
    kept_paths: tuple[str, ...]  # the layers kept float (sensitive-K recipes; empty otherwise)
    source: str  # the bundle the hint came from

    def record(self) -> dict[str, Any]:
        return {"from": self.source, "recipe": self.recipe, "kept_layers": list(self.kept_paths)}

    def check_layers(self, component: str, layers: list[str]) -> None:
        """Refuse a hint that keeps float a layer ``component`` does not have (a bundle of another model)."""
        missing = [p for p in self.kept_paths if p not in layers]
        if missing:
            raise RecipeHintError(f"--recipes-from {self.source}: {component}'s recipe {self.recipe} keeps float "
                                  f"{', '.join(missing)}, which this model's {component} does not have")


def _known(recipe: str) -> bool:
    if recipe in RECIPES:
        return True
    k = recipe[len(SENSITIVE):] if recipe.startswith(SENSITIVE) else ""
    return k.isdigit() and int(k) >= 1


def read_hints(path: str | Path, family: str, config: str, components: list[str]) -> dict[str, RecipeHint]:
    """The int8 recipe of each of ``components`` in the bundle at ``path`` (a component the bundle lacks gets no
    hint). Refused with :class:`RecipeHintError`: a bundle that is not int8, or was exported from another model
    family or config (its layers are not this model's), or whose recipe records are incomplete."""
    path = Path(path)
    if not path.is_dir():
        raise RecipeHintError(f"--recipes-from {path}: no such bundle directory")
    try:
        m = read_manifest(path)
    except UdcError as e:
        raise RecipeHintError(f"--recipes-from {path}: {e}") from None
    if m.get("quant") != "int8":
        raise RecipeHintError(f"--recipes-from {path.name}: a {m.get('quant')} bundle has no int8 recipes; give an "
                              "int8 bundle (udc-export ... --quant int8)")
    model = m.get("model") or {}
    theirs = (m.get("family"), model.get("config"))
    if theirs != (family, config):
        raise RecipeHintError(f"--recipes-from {path.name}: exported from a {theirs[0]} '{theirs[1]}' model, this is a "
                              f"{family} '{config}' model; its recipes name layers this model does not have")
    hints = {}
    for name in components:
        comp = (m.get("components") or {}).get(name)
        if comp is None:
            continue
        q = comp.get("quantization") or {}
        recipe = q.get("recipe")
        kept = tuple(s[len(LAYER):] for s in q.get("float_kept") or [] if isinstance(s, str) and s.startswith(LAYER))
        if not isinstance(recipe, str) or not _known(recipe):
            raise RecipeHintError(f"--recipes-from {path.name}: component {name} records no known int8 recipe "
                                  f"({recipe!r}); the manifest is damaged or from another udc version")
        if recipe.startswith(SENSITIVE) and len(kept) != int(recipe[len(SENSITIVE):]):
            raise RecipeHintError(f"--recipes-from {path.name}: component {name}'s recipe {recipe} keeps "
                                  f"{recipe[len(SENSITIVE):]} layers float but its record names {len(kept)}")
        hints[name] = RecipeHint(recipe, kept if recipe.startswith(SENSITIVE) else (), path.name)
    return hints
