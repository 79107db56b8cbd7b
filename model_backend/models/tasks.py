"""Task prompt templates: the one place where the text sent to a model is written (stdlib only).

A user message is three parts, joined by spaces:

1. the modality preamble (``MODALITY_PREAMBLES``), so SAR and thermal chips are not read as photos;
2. one sentence per visual prompt (``describe_prompt``): what is marked on the chip and its coordinates
   in the model family's convention (prompts are both drawn as numbered marks and written as text);
3. the task template (``TEMPLATES``), with ``{instruction}`` (the analyst's text), ``{region}`` (the
   first prompt's index), ``{regions}`` (all indexes, e.g. "1 and 2") and ``{grounding_format}`` (the
   family's own request for boxes, with the instruction in it: the wording its cookbooks use) filled in.

``template_table()`` renders the templates as the Markdown table shown in the README.
"""

from __future__ import annotations

from typing import Dict, Sequence

MODALITY_PREAMBLES: Dict[str, str] = {
    "optical": "This is an optical remote-sensing image.",
    "sar": ("This is a synthetic aperture radar (SAR) image shown as grey backscatter in decibels: "
            "bright pixels are strong radar returns (metal, buildings, ships), dark pixels are smooth surfaces "
            "such as calm water."),
    "infrared": ("This is a thermal infrared image shown in grey: brighter pixels are warmer, darker pixels "
                 "are cooler."),
}

TEMPLATES: Dict[str, str] = {
    "scene_classification": "What type of scene is this? {instruction} Answer with the scene category only.",
    "captioning": "Describe this image in detail. {instruction}",
    "vqa": "{instruction} Answer concisely.",
    "region_captioning": "Describe region {region} in detail. {instruction}",
    "referring_classification": "What is the object in region {region}? {instruction} "
                                "Answer with its category name only.",
    "relation": "What is the relationship between regions {regions}? {instruction}",
    "grounding": "{grounding_format}",
    "chat": "{instruction}",
}

_KIND_WORDS = {
    "point": "a dot at {coords}",
    "box": "a box {coords}",
    "polygon": "a free-form outline through {coords}",
    "scribble": "a scribble along {coords}",
}


def describe_prompt(kind: str, index: int, coords: str, numbered: bool) -> str:
    """One sentence for one visual prompt, e.g. 'Region 2 is marked on the image with a box [..].'"""
    what = _KIND_WORDS[kind].format(coords=coords)
    if numbered:
        return f"Region {index} is marked on the image, labelled {index}, with {what}."
    return f"Region {index} is marked on the image with {what}."


def join_indexes(indexes: Sequence[int]) -> str:
    """'1', '1 and 2', '1, 2 and 3'."""
    names = [str(i) for i in indexes]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def render_task(task: str, instruction: str, indexes: Sequence[int], grounding_format: str) -> str:
    """The task part of a user message, with placeholders filled and spare spaces removed."""
    text = TEMPLATES[task].format(instruction=instruction.strip(), region=indexes[0] if indexes else 1,
                                  regions=join_indexes(indexes) if indexes else "1 and 2",
                                  grounding_format=grounding_format.format(instruction=instruction.strip()))
    return " ".join(text.split())


def template_table() -> str:
    """The templates as a Markdown table (used in this module's docstring and the README)."""
    return "\n".join(f"| {task} | {text} |" for task, text in TEMPLATES.items())
