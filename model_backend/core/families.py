"""Model families and their coordinate conventions (DESIGN §2, §5; stdlib only).

A family says how a model reads and writes coordinates, how its images are resized, how to ask it for
boxes, and which parser reads its answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

from .encoding import Convention
from .errors import InvalidArgumentError


@dataclass(frozen=True)
class Family:
    """name: ``model_type`` of the transformers config. resize_factor: the processor resizes images to
    multiples of this (patch size x spatial merge); 1 when the model does not care. grounding_format:
    the sentence that asks for boxes, ``{instruction}`` standing for what to find."""

    name: str
    convention: Convention
    parse_style: str
    resize_factor: int
    coordinate_note: str
    grounding_format: str


#: the wording of the Qwen2.5-VL and Qwen3-VL cookbooks (spatial_understanding / 2d_grounding notebooks),
#: so the model answers in the form it was trained on: a ```json list of {"bbox_2d": [...], "label": ...}
QWEN_GROUNDING = ('locate every instance that belongs to the following categories: "{instruction}". '
                  'Report bbox coordinates in JSON format.')

_REL_1000_NOTE = "Coordinates are relative to the image, from 0 to 1000."

FAMILIES: Dict[str, Family] = {
    # Qwen3-VL and its MoE checkpoints (30B-A3B, 235B-A22B); the Qwen3.5 generation (Qwen3.5, 3.6, 3.8:
    # dense and MoE), which reads images through the same processor (patch 16, merge 2) and coordinates
    "qwen3_vl": Family("qwen3_vl", Convention.REL_1000, "qwen", 32, _REL_1000_NOTE, QWEN_GROUNDING),
    "qwen3_vl_moe": Family("qwen3_vl_moe", Convention.REL_1000, "qwen", 32, _REL_1000_NOTE, QWEN_GROUNDING),
    "qwen3_5": Family("qwen3_5", Convention.REL_1000, "qwen", 32, _REL_1000_NOTE, QWEN_GROUNDING),
    "qwen3_5_moe": Family("qwen3_5_moe", Convention.REL_1000, "qwen", 32, _REL_1000_NOTE, QWEN_GROUNDING),
    "qwen2_5_vl": Family("qwen2_5_vl", Convention.RESIZED_PIXELS, "qwen", 28,
                         "Coordinates are in pixels of the image.", QWEN_GROUNDING),
    "earthgptx": Family("earthgptx", Convention.SQUARE_UNIT, "sphinx", 1,
                        "Coordinates are normalised to 0-1 after padding the image to a square.",
                        "Find all {instruction} in the image. Answer with each phrase in <p></p> followed by its "
                        "boxes [x1,y1,x2,y2;...]."),
}


def family(name: str) -> Family:
    """The family of a transformers ``model_type`` (e.g. ``qwen3_vl``), or a clear error."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise InvalidArgumentError(
            f"unsupported model type {name!r}; supported: {', '.join(sorted(FAMILIES))}") from None
