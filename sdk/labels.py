"""The canonical 7-expression label order every dataset loader, model head and bundle uses."""
from __future__ import annotations

LABELS: tuple[str, ...] = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger")

#: Text prompt for the CLIP text tower in stage 1 (E_L(y) in eq. 1).
PROMPT_TEMPLATE = "a photo of a face showing {label}."


def prompts(labels: tuple[str, ...] = LABELS) -> list[str]:
    return [PROMPT_TEMPLATE.format(label=label) for label in labels]
