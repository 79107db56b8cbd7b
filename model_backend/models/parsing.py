"""Answer parsing: the regions a model wrote in its answer text, mapped to CHIP PIXELS.

numpy and standard library only. ``parse_regions`` reads the model's numbers in the convention of
its ``CoordinateFrame`` (``rel_1000``, ``resized_pixels``, ``square_unit`` or ``chip_pixels``),
decodes them to chip pixels and clamps them into ``[0, W] x [0, H]``. It never raises for any text:
every coordinate group that clearly tried to be a point, box or polygon but cannot become one
(wrong count, non-numeric, NaN/inf, zero area after clamping, cut off by the token limit, ...) is
counted as dropped instead. Only the first ``MAX_TEXT_CHARS`` characters are read; polygons with
more than ``MAX_POLYGON_VERTICES`` vertices are resampled to that many.

Styles:

- ``qwen`` (Qwen3-VL, Qwen2.5-VL, Qwen2-VL): JSON(-ish) objects with a geometry key, Qwen2-VL
  ``<|object_ref_start|>..<|box_start|>(x1,y1),(x2,y2)<|box_end|>`` tags and, only when neither
  was found, bare ``[x, y]`` / ``[x1, y1, x2, y2]`` lists in prose.
- ``sphinx`` (EarthGPT-X / SPHINX): ``<p>label</p>[x1,y1,x2,y2;x,y;...]``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core.encoding import CoordinateFrame, resample_vertices
from ..core.errors import InvalidArgumentError
from ..core.interface import Region
from ..core.prompts import VisualPrompt

STYLES = ("qwen", "sphinx")
MAX_TEXT_CHARS = 200_000
MAX_POLYGON_VERTICES = 256  # longer polygons are resampled (the validity check is O(N^2))

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUM_RE = re.compile(_NUM)

# -- qwen: JSON objects -------------------------------------------------------------------------
_GEOMETRY_KEYS = {"bbox_2d": "box", "bbox": "box", "box": "box", "point_2d": "point", "point": "point",
                  "polygon": "polygon", "points": "polygon"}
_KEY_RE = re.compile(r"""(["'])(bbox_2d|bbox|box|point_2d|point|polygon|points)\1\s*:\s*""")
_LABEL_RE = re.compile(r"""(["'])(?:label|name|category|text|object_name|object|class)\1\s*:\s*"""
                       r"""(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")
_LABEL_OBJECT_RE = re.compile(r"""(["'])(?:label|labels|name|names|category)\1\s*:\s*(\{[^{}]{0,2000}\})""")
_STRING_RE = {'"': re.compile(r'"(?:[^"\\]|\\.)*"'), "'": re.compile(r"'(?:[^'\\]|\\.)*'")}
# the longest stretch an array value can span: numbers, NaN/null-like words, separators, brackets
_ARRAY_RUN_RE = re.compile(r"\[[\w\s.+\-,\[\]]*")
_TRAILING_COMMA_RE = re.compile(r",\s*\]")

# -- qwen: Qwen2-VL tags and prose lists ---------------------------------------------------------
_BOX_START = "<|box_start|>"
_TAG_RE = re.compile(r"(?:<\|object_ref_start\|>([^<]{0,1000})<\|object_ref_end\|>\s*)?"
                     r"<\|box_start\|>([^<]{0,4000})<\|box_end\|>")
_TAG_JOIN_RE = re.compile(r"[\s,;]*")
_XML_POINTS_RE = re.compile(r"<points?\b([^<>]{0,2000})>([^<]{0,1000})</points?>")
_XML_ATTR_RE = re.compile(r"""\b(\w+)\s*=\s*["']([^"']*)["']""")
#: Qwen2.5-VL's plain-text form, one box per line: "43,378,996,957 cakes"
_PLAIN_LINE_RE = re.compile(rf"^[ \t]*({_NUM})[ \t]*,[ \t]*({_NUM})[ \t]*,[ \t]*({_NUM})[ \t]*,[ \t]*({_NUM})"
                            r"[ \t]+([^\d\s,\[\]{}][^\n]{0,200}?)[ \t]*$", re.MULTILINE)
_PROSE_RE = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*(?:,\s*({_NUM})\s*,\s*({_NUM})\s*)?\]")

# -- sphinx -------------------------------------------------------------------------------------
_SPHINX_RE = re.compile(r"(?:<p>([^<]{0,1000})</p>\s*)?\[([^\[\]]*)(\]?)")
#: a count written before the phrase, "<p>13 ships</p>": the label is the phrase
_COUNT_RE = re.compile(r"^\d+\s+(?=\D)")
_COORDLIKE_RE = re.compile(r"(?:[\s\d.,;+\-eE]|nan|inf(?:inity)?)*", re.IGNORECASE)

Geometry = Tuple[str, List[float]]  # ("point" | "box" | "polygon", flat model numbers x, y, x, y, ...)
Candidate = Tuple[Optional[Geometry], str, Tuple[int, int]]  # (geometry, None when it failed; label; span)


def parse_regions(text: str, frame: CoordinateFrame, style: str) -> Tuple[List[Region], int]:
    """Regions (chip pixels, in order of appearance) written in ``text``, and how many coordinate
    groups were dropped.

    Spans are ``(start, end)`` offsets into ``text``: a whole JSON object (or ``"key": [..]`` pair
    outside any object), a whole Qwen2-VL tag (reference included), a prose bracket list, or, for
    sphinx, the numbers of one ``;``-separated group. Raises ``InvalidArgumentError`` only for an
    unknown ``style``.
    """
    if style not in STYLES:
        raise InvalidArgumentError(f"unknown answer style {style!r}; expected one of {STYLES}")
    text = text[:MAX_TEXT_CHARS]
    parsed = _parse_qwen(text) if style == "qwen" else _parse_sphinx(text)
    regions: List[Region] = []
    dropped = 0
    for geometry, label, span in parsed:
        shape = _shape(frame, geometry) if geometry is not None else None
        if shape is None:
            dropped += 1
        else:
            regions.append(Region(shape, label, span))
    regions.sort(key=lambda r: r.span[0])
    return regions, dropped


def _parse_qwen(text: str) -> List[Candidate]:
    """JSON geometry keys and Qwen2-VL tags; otherwise prose ``[x, y]`` / ``[x1, y1, x2, y2]`` lists
    and Qwen2.5-VL's plain lines ``x1,y1,x2,y2 label``."""
    found = _json_candidates(text) + _tag_candidates(text) + _xml_point_candidates(text)
    if found:
        return found
    prose = [(_flat_geometry(_finite([g for g in m.groups() if g is not None]), polygons=False), "", m.span())
             for m in _PROSE_RE.finditer(text)]
    plain = [(("box", [float(g) for g in m.groups()[:4]]), m.group(5).strip(), m.span())
             for m in _PLAIN_LINE_RE.finditer(text)]
    return prose + plain


def _json_candidates(text: str) -> List[Candidate]:
    """One candidate per geometry key. Its label is the object's label key; in an object holding
    several geometries (``{"name": "a", "bbox": [..], "name": "b", "bbox": [..]}``) the label key
    written just before the geometry, else just after, else the object's first. A key in an unclosed (truncated) object
    counts only when its array and a label before it are whole."""
    keys = []   # (key match, value, value end, object start, object end, closed)
    obj_start, obj_end, closed = 0, 0, True
    for m in _KEY_RE.finditer(text):
        value, value_end = _scan_array(text, m.end())
        if m.start() >= obj_end:  # not another key of the object already measured
            obj_start, obj_end, closed = _enclosing_object(text, m.start(), value_end, obj_end)
        keys.append((m, value, value_end, obj_start, obj_end, closed))
    objects: dict = {}
    rank = []   # each key's place among its object's geometry keys
    for k, key in enumerate(keys):
        rank.append(len(objects.setdefault(key[3], [])))
        objects[key[3]].append(k)
    out: List[Candidate] = []
    object_labels: Dict[int, str] = {}   # each object's first label, found once
    for k, (m, value, value_end, start, end, closed) in enumerate(keys):
        siblings = objects[start]
        at = rank[k]
        lo = keys[siblings[at - 1]][2] if at else start
        hi = keys[siblings[at + 1]][0].start() if at + 1 < len(siblings) else end
        before = _label(text, lo, m.start())
        if len(siblings) == 1:
            label = before or _label(text, value_end, end)
        else:
            if start not in object_labels:
                object_labels[start] = _label(text, start, end)
            label = before or _label(text, value_end, hi) or object_labels[start]
        whole = closed or (before and value is not None)
        geometry = _json_geometry(value, _GEOMETRY_KEYS[m.group(2)]) if whole and value is not None else None
        out.append((geometry, label, (start, end)))
    return out


def _scan_array(text: str, pos: int) -> Tuple[Optional[list], int]:
    """The nested list starting at ``text[pos]`` and the index just past it.

    None (with where the scan stopped) when there is no list, it is unclosed, nested deeper than
    two levels or not JSON once trailing commas are removed.
    """
    run = _ARRAY_RUN_RE.match(text, pos)
    if run is None:
        return None, pos
    depth = max_depth = 0
    for i in range(pos, run.end()):
        c = text[i]
        if c == "[":
            depth += 1
            max_depth = max(max_depth, depth)
        elif c == "]":
            depth -= 1
            if depth == 0:
                end = i + 1
                break
    else:
        return None, run.end()
    if max_depth > 2:
        return None, end
    try:
        return json.loads(_TRAILING_COMMA_RE.sub("]", text[pos:end])), end
    except ValueError:
        return None, end


def _enclosing_object(text: str, key_start: int, value_end: int, lo: int) -> Tuple[int, int, bool]:
    """``(start, end, closed)`` of the ``{...}`` around the key at ``key_start``, attribute objects
    inside it (``"attrs": {...}``) included; searches back no further than ``lo``. A key outside any
    object stands alone (closed)."""
    start, depth = -1, 0
    for j in range(key_start - 1, lo - 1, -1):      # back over attribute objects closed before the key
        if text[j] == "}":
            depth += 1
        elif text[j] == "{":
            if not depth:
                start = j
                break
            depth -= 1
    if start < 0:
        return key_start, value_end, True
    i, n, depth, brackets = value_end, len(text), 0, 0
    while i < n:
        c = text[i]
        if c == "}":
            if not depth:
                return start, i + 1, True
            depth -= 1
        elif c == "[":
            brackets += 1
        elif c == "]" and brackets:
            brackets -= 1
        elif c == "{":
            j = i - 1
            while j > value_end and text[j].isspace():
                j -= 1
            if text[j] != ":" and not brackets:
                break                       # the next object of a list: this one was never closed
            depth += 1                      # a value: {"bbox_2d": .., "attrs": {..}, "parts": [{..}]}
        if c in _STRING_RE:
            s = _STRING_RE[c].match(text, i)
            if s is None:
                return start, n, False
            i = s.end()
        else:
            i += 1
    return start, i, False


def _label(text: str, start: int, end: int) -> str:
    """The first label/name/category/text string value in ``text[start:end]`` (of a label object
    ``{"en": "ship", ...}``: its English, else its first text), else ""."""
    m = _LABEL_RE.search(text, start, end)
    if m is None:
        nested = _LABEL_OBJECT_RE.search(text, start, end)
        try:
            names = json.loads(nested.group(2)) if nested else {}
        except ValueError:
            names = {}
        texts = [v for v in ([names.get("en")] + list(names.values())) if isinstance(v, str) and v.strip()]
        return texts[0].strip() if texts else ""
    if m.group(3) is not None:
        return m.group(3).replace("\\'", "'").strip()
    try:
        return json.loads(f'"{m.group(2)}"').strip()
    except ValueError:
        return m.group(2).strip()


def _json_geometry(value: object, kind: str) -> Optional[Geometry]:
    """Flat ``[x1, y1, x2, y2]`` / ``[x, y]`` or nested ``[[x, y], ...]`` read as the key's kind."""
    if not isinstance(value, list):
        return None
    if value and all(isinstance(v, list) and len(v) == 2 for v in value):
        nums = _finite([c for v in value for c in v])
        pairs = len(value)
    else:
        nums = _finite(value)
        pairs = len(value) // 2 if len(value) % 2 == 0 else -1
    if nums is None:
        return None
    wanted = {"point": pairs == 1, "box": pairs == 2, "polygon": pairs >= 3}
    return (kind, nums) if wanted[kind] else None


def _finite(values: Sequence[object]) -> Optional[List[float]]:
    """Finite floats from JSON numbers or numeral strings; None when any value is not one."""
    out = []
    for v in values:
        if isinstance(v, str) and _NUM_RE.fullmatch(v.strip()):
            v = v.strip()
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        try:
            f = float(v)
        except OverflowError:  # an integer beyond float range
            return None
        if not math.isfinite(f):
            return None
        out.append(f)
    return out


def _xml_point_candidates(text: str) -> List[Candidate]:
    """Molmo-style point tags, as Qwen3-VL also writes when asked to point: ``<point x="61" y="40"
    alt="a">a</point>`` and ``<points x1=".." y1=".." x2=".." y2=".." alt="a">a</points>``, one point
    per numbered pair, labelled by the element's text (else its ``alt``)."""
    out: List[Candidate] = []
    for m in _XML_POINTS_RE.finditer(text):
        attrs = dict(_XML_ATTR_RE.findall(m.group(1)))
        label = (m.group(2) or attrs.get("alt", "")).strip()
        pairs = [("", "")] if "x" in attrs else [(str(k), str(k)) for k in range(1, 1000) if f"x{k}" in attrs]
        for xk, yk in pairs:
            nums = _finite([attrs.get("x" + xk, ""), attrs.get("y" + yk, "")])
            out.append((("point", nums) if nums else None, label, m.span()))
    return out


def _tag_candidates(text: str) -> List[Candidate]:
    """Qwen2-VL tags; a tag with no reference right after another (only separators between)
    shares its label. An unterminated ``<|box_start|>`` fails (its span is the marker)."""
    out: List[Candidate] = []
    owned = set()
    label, last_end = "", -1
    for m in _TAG_RE.finditer(text):
        if m.group(1) is not None:
            label = m.group(1).strip()
        elif last_end < 0 or _TAG_JOIN_RE.fullmatch(text, last_end, m.start()) is None:
            label = _object_label(text, m.start(), m.end())
        last_end = m.end()
        owned.add(m.start(2) - len(_BOX_START))
        nums = _finite(re.sub(r"[()\[\]]", " ", m.group(2)).split(","))
        out.append((_flat_geometry(nums, polygons=True), label, m.span()))
    i = text.find(_BOX_START)
    while i >= 0:
        if i not in owned:
            out.append((None, "", (i, i + len(_BOX_START))))
        i = text.find(_BOX_START, i + 1)
    return out


def _object_label(text: str, start: int, end: int) -> str:
    """The label key of the JSON-ish object around ``text[start:end]`` (a tag a model wrote as a value),
    else ""."""
    opened = text.rfind("{", max(0, start - 2000), start)
    if opened < 0 or "}" in text[opened:start]:
        return ""
    closed = text.find("}", end, end + 2000)
    return _label(text, opened, closed if closed >= 0 else min(len(text), end + 2000))


def _flat_geometry(nums: Optional[List[float]], polygons: bool) -> Optional[Geometry]:
    """2 numbers -> point, 4 -> box and, when ``polygons``, an even count >= 6 -> polygon."""
    if nums is None:
        return None
    n = len(nums)
    if n in (2, 4):
        return ("point" if n == 2 else "box"), nums
    return ("polygon", nums) if polygons and n >= 6 and n % 2 == 0 else None


def _parse_sphinx(text: str) -> List[Candidate]:
    """Bracket lists, labelled by an immediately preceding ``<p>..</p>``.

    An unlabelled list counts only when it looks like coordinates (numbers and separators, with a
    comma). A list cut off by the end of the text keeps its groups before the last ``;``; the cut
    group fails.
    """
    out: List[Candidate] = []
    for m in _SPHINX_RE.finditer(text):
        label, content, closed = m.group(1), m.group(2), bool(m.group(3))
        coordlike = _COORDLIKE_RE.fullmatch(content) is not None
        if not closed and (m.end() < len(text) or not coordlike):
            continue  # a stray "[", not a list cut off by the end of the answer
        if label is None and not (coordlike and "," in content):
            continue
        groups = content.split(";")
        offset = m.start(2)
        for k, group in enumerate(groups):
            g_start = offset + len(group) - len(group.lstrip())
            g_end = offset + len(group.rstrip())
            offset += len(group) + 1
            if not group.strip():
                continue
            cut = not closed and k == len(groups) - 1
            nums = _finite(group.split(","))
            # 8 numbers: an oriented box, its four corners (as EarthGPT-X's training data writes them)
            geometry = None if cut else _flat_geometry(nums, polygons=nums is not None and len(nums) == 8)
            out.append((geometry, _COUNT_RE.sub("", (label or "").strip()), (g_start, g_end)))
    return out


def _shape(frame: CoordinateFrame, geometry: Geometry) -> Optional[VisualPrompt]:
    """Model numbers -> a chip-pixel shape clamped into the chip; None when it degenerates."""
    kind, nums = geometry
    w, h = float(frame.chip_width), float(frame.chip_height)
    try:
        if kind == "box":
            x1, y1, x2, y2 = frame.decode_box(*nums)
            return VisualPrompt.box(min(max(x1, 0.0), w), min(max(y1, 0.0), h),
                                    min(max(x2, 0.0), w), min(max(y2, 0.0), h))
        verts = np.clip(frame.decode_vertices(np.reshape(nums, (-1, 2))), 0.0, [w, h])
        if kind == "point":
            return VisualPrompt.point(*verts[0])
        return VisualPrompt.polygon(resample_vertices(verts, MAX_POLYGON_VERTICES, closed=True))
    except ValueError:  # InvalidPromptError: zero area, too few distinct vertices, self-crossing
        return None
