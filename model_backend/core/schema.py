"""The output schema of questions (DESIGN §4) and its shapefile mapping (standard library only: the
QGIS process uses it for its memory layers and exports, the headless writer for GeoPackage and
shapefile files).

Shapefile fields hold at most 254 bytes of text and names of at most 10 characters: names map through
``SHAPEFILE_NAMES``, and longer text is split over continuation fields ``answer``, ``answer_2``, ...
(``split_text``), which ``from_shapefile`` joins back. Nothing is ever truncated.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Dict, List, Sequence, Tuple

SHAPEFILE_TEXT_LIMIT = 254
LAYERS = ("prompts", "answers", "detections")
FIELDS: Dict[str, List[Tuple[str, str]]] = {
    "prompts": [("question_id", "str"), ("prompt_index", "int"), ("kind", "str")],
    "answers": [("answer_id", "str"), ("question_id", "str"), ("question", "str"), ("answer", "str"),
                ("task", "str"), ("modality", "str"), ("model", "str"), ("backend", "str"),
                ("quantization", "str"), ("raster_source", "str"), ("chip_resolution", "float"),
                ("finish_reason", "str"), ("created", "str")],
    "detections": [("answer_id", "str"), ("label", "str"), ("rank", "int"), ("kind", "str")],
}
#: GeoPackage field name -> shapefile field name (at most 10 characters)
SHAPEFILE_NAMES = {"question_id": "question_i", "prompt_index": "prompt_idx", "quantization": "quantizatn",
                   "raster_source": "raster_src", "chip_resolution": "chip_res", "finish_reason": "finish"}


def new_id() -> str:
    """A short random id for questions and answers."""
    return uuid.uuid4().hex[:12]


def utc_now() -> str:
    """The current time, UTC, ISO 8601 to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def part_name(short: str, k: int) -> str:
    """Continuation field names: answer, answer_2, answer_3, ... (at most 10 characters)."""
    if k == 0:
        return short
    suffix = f"_{k + 1}"
    return short[:10 - len(suffix)] + suffix


def complete(name: str, props: Dict[str, object]) -> Dict[str, object]:
    return {key: props.get(key) for key, _ in FIELDS[name]}


def to_shapefile(props: Dict[str, object]) -> Dict[str, object]:
    return {SHAPEFILE_NAMES.get(k, k): v for k, v in props.items()}


def text_parts(rows: Sequence[Dict[str, object]]) -> Dict[str, int]:
    """Number of 254-character parts each text field needs over ``rows``."""
    parts: Dict[str, int] = {}
    for row in rows:
        for key, value in row.items():
            if isinstance(value, str):
                parts[key] = max(parts.get(key, 1), len(utf8_chunks(value, SHAPEFILE_TEXT_LIMIT)))
    return parts


def split_text(row: Dict[str, object], parts: Dict[str, int]) -> Dict[str, object]:
    out: Dict[str, object] = {}
    for key, value in row.items():
        if isinstance(value, str) and parts.get(key, 1) > 1:
            chunks = utf8_chunks(value, SHAPEFILE_TEXT_LIMIT)
            for k in range(parts[key]):
                out[part_name(key, k)] = chunks[k] if k < len(chunks) else None
        else:
            out[key] = value
    return out


def utf8_chunks(text: str, limit: int) -> List[str]:
    """Split ``text`` into pieces of at most ``limit`` UTF-8 bytes, never inside a character and,
    where possible, never beside white space (DBF pads text with spaces and GDAL strips spaces at
    both ends of a value, so a piece that starts or ends with one would lose it)."""
    chunks: List[str] = []
    rest = text
    while rest:
        end, size = 0, 0
        while end < len(rest) and size + len(rest[end].encode("utf-8")) <= limit:
            size += len(rest[end].encode("utf-8"))
            end += 1
        if end < len(rest):
            cut = end
            while cut > 0 and (rest[cut - 1].isspace() or rest[cut].isspace()):
                cut -= 1
            end = cut or end
        chunks.append(rest[:end])
        rest = rest[end:]
    return chunks or [""]


def from_shapefile(props: Dict[str, object]) -> Dict[str, object]:
    """Shapefile fields back to full names, continuation fields joined."""
    long_names = {v: k for k, v in SHAPEFILE_NAMES.items()}
    out: Dict[str, object] = {}
    for layer_fields in FIELDS.values():
        for key, kind in layer_fields:
            short = SHAPEFILE_NAMES.get(key, key)
            if short not in props:
                continue
            if kind == "str":
                pieces, k = [], 0
                while part_name(short, k) in props:
                    pieces.append(props[part_name(short, k)] or "")
                    k += 1
                out[long_names.get(short, short)] = "".join(pieces) if any(pieces) else props[short]
            else:
                out[long_names.get(short, short)] = props[short]
    return out
