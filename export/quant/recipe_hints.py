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

from .recipes import PER_COMPONENT, RECIPES, SENSITIVE

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


@dataclass(frozen=True)
class ComposedRecipe:
    """The fused ``pipeline``'s int8 recipe composed from the four programs' of the same export (``--fuse --quant
    int8``): each component's part of the fused graph quantized as its own program was. Tried first, never
    trusted: the lowered pipeline must meet the bundle's thresholds on the calibration faces, or the pipeline's
    own recipe search runs as before."""
    parts: tuple[tuple[str, str, tuple[str, ...]], ...]  # (component, recipe, float-kept layers relative to it)

    def record(self) -> dict[str, Any]:
        return {c: {"recipe": r, "kept_layers": list(k)} for c, r, k in self.parts}


def composed_from(quantization: dict[str, dict[str, Any]], components: tuple[str, ...]) -> ComposedRecipe | None:
    """The :class:`ComposedRecipe` of ``components`` from their programs' quantization records (``recipe``,
    ``float_kept``); None when one is missing or records no known recipe (then the pipeline searches its own)."""
    parts = []
    for name in components:
        recipe, kept, problem = recorded(quantization.get(name) or {})
        if problem:
            return None
        parts.append((name, recipe, kept))
    return ComposedRecipe(tuple(parts))


def recorded(q: dict[str, Any], who: str = "the component") -> tuple[str, tuple[str, ...], str | None]:
    """``(recipe, float-kept layers, problem)`` of one program's quantization record (``who``: how the problem names
    it): the layers only for a sensitive-K recipe; ``problem`` says why the record cannot be trusted (an unknown
    recipe, a K that disagrees with the layers named), else None."""
    recipe = q.get("recipe")
    if not isinstance(recipe, str) or not _known(recipe):
        return recipe, (), (f"{who} records no known int8 recipe ({recipe!r}); the manifest is damaged or from "
                            "another udc version")
    if not recipe.startswith(SENSITIVE):
        return recipe, (), None
    kept = tuple(s[len(LAYER):] for s in q.get("float_kept") or [] if isinstance(s, str) and s.startswith(LAYER))
    if len(kept) != int(recipe[len(SENSITIVE):]):
        return recipe, kept, (f"{who}'s recipe {recipe} keeps {recipe[len(SENSITIVE):]} layers float but its record "
                              f"names {len(kept)}")
    return recipe, kept, None


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
        if q.get("recipe") == PER_COMPONENT:  # a fused pipeline composed from the four: composed again from this export's
            continue
        recipe, kept, problem = recorded(q, f"component {name}")
        if problem:
            raise RecipeHintError(f"--recipes-from {path.name}: {problem}")
        hints[name] = RecipeHint(recipe, kept, path.name)
    return hints
