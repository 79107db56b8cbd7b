"""The output schema of questions (DESIGN §4) and its shapefile mapping (standard library only: the
QGIS process uses it for its memory layers and exports, the headless writer for GeoPackage and
shapefile files).

Shapefile fields hold at most 254 bytes of text and names of at most 10 characters: names map through
``SHAPEFILE_NAMES``, and longer text is split over continuation fields ``answer``, ``answer_2``, ...
(``split_text``), which ``from_shapefile`` joins back. Nothing is ever truncated.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import Dict, List, Optional, Sequence, Tuple

SHAPEFILE_TEXT_LIMIT = 254
LAYERS = ("prompts", "answers", "detections", "masks")
#: layers written only once something goes in them (outputs of questions without outlines stay as they were)
OPTIONAL_LAYERS = ("masks",)
FIELDS: Dict[str, List[Tuple[str, str]]] = {
    "prompts": [("question_id", "str"), ("prompt_index", "int"), ("kind", "str")],
    "answers": [("answer_id", "str"), ("question_id", "str"), ("question", "str"), ("answer", "str"),
                ("task", "str"), ("modality", "str"), ("model", "str"), ("backend", "str"),
                ("quantization", "str"), ("raster_source", "str"), ("chip_resolution", "float"),
                ("finish_reason", "str"), ("created", "str")],
    "detections": [("answer_id", "str"), ("label", "str"), ("rank", "int"), ("kind", "str")],
    # outlines (segmentation masks as polygons): of a detection (answer_id, rank) or of a prompt
    # (question_id, prompt_index); prompt_kind: point, box, polygon, detection or phrase; area_m2:
    # geodesic for a geographic CRS
    "masks": [("answer_id", "str"), ("question_id", "str"), ("label", "str"), ("score", "float"),
              ("area_m2", "float"), ("prompt_index", "int"), ("rank", "int"), ("prompt_kind", "str"),
              ("model", "str")],
}
#: GeoPackage field name -> shapefile field name (at most 10 characters)
SHAPEFILE_NAMES = {"question_id": "question_i", "prompt_index": "prompt_idx", "quantization": "quantizatn",
                   "raster_source": "raster_src", "chip_resolution": "chip_res", "finish_reason": "finish",
                   "prompt_kind": "prompt_knd"}


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


#: characters a GeoPackage or shapefile cannot hold as text (NUL ends a string in GDAL, a lone surrogate
#: has no UTF-8 form), written as the escape ``\uXXXX`` instead
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def escape_unstorable(props: Dict[str, object]) -> Tuple[Dict[str, object], List[str]]:
    """``props`` with NUL and lone surrogates in text written as ``\\uXXXX``, and the names of the fields
    that were changed (reported to the user: never a silent change)."""
    out, changed = dict(props), []
    for key, value in props.items():
        if isinstance(value, str) and _UNSTORABLE.search(value):
            out[key] = _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
            changed.append(key)
    return out, changed


def trim_for_shapefile(row: Dict[str, object]) -> Tuple[Dict[str, object], List[str]]:
    """``row`` with spaces at both ends of its text removed (a shapefile cannot keep them: GDAL strips
    them when it reads), and the names of the fields that had some (reported, never silent)."""
    out, trimmed = dict(row), []
    for key, value in row.items():
        if isinstance(value, str) and value != value.strip(" "):
            out[key] = value.strip(" ")
            trimmed.append(key)
    return out, trimmed


#: the DBF format's limits: fields per record and bytes per record; widest field of each kind, bytes
DBF_MAX_FIELDS = 255
DBF_MAX_RECORD = 65535
_DBF_WIDTH = {"str": SHAPEFILE_TEXT_LIMIT, "int": 18, "float": 24}


def shapefile_refusal(name: str, rows: Sequence[Dict[str, object]], parts: Dict[str, int]) -> Optional[str]:
    """Why ``rows`` of schema layer ``name`` (shapefile field names), with text continued over ``parts``,
    cannot be stored exactly in a shapefile, or ``None``: too many fields or bytes for DBF, or a text
    piece that starts or ends with a space (GDAL strips those when it reads)."""
    extra = sum(n - 1 for n in parts.values())
    fields = len(FIELDS[name]) + extra
    size = sum(_DBF_WIDTH[kind] for _, kind in FIELDS[name]) + SHAPEFILE_TEXT_LIMIT * extra
    if fields > DBF_MAX_FIELDS or size > DBF_MAX_RECORD:
        return "a text is too long for a shapefile (more than about 60 KB)"
    for row in rows:
        for key, value in row.items():
            if isinstance(value, str) and value:
                if any(piece != piece.strip(" ") for piece in utf8_chunks(value, SHAPEFILE_TEXT_LIMIT)):
                    return f"the field {key!r} has a run of spaces a shapefile cannot keep"
    return None


def has_shapefile_fields(layer: str, names: Sequence[str]) -> bool:
    """True when shapefile field ``names`` are exactly those of schema layer ``layer`` (short names,
    text fields possibly continued over ``NAME_2``, ...): how a set written before sets were listed is
    recognised as ours."""
    if layer not in FIELDS:
        return False
    ours = {SHAPEFILE_NAMES.get(k, k): kind for k, kind in FIELDS[layer]}
    continued = {part_name(s, k) for s, kind in ours.items() if kind == "str" for k in range(1, DBF_MAX_FIELDS)}
    return set(ours) <= set(names) <= set(ours) | continued
