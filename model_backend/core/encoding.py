"""Prompt encodings and their inverse: chip pixels <-> a model family's coordinate convention.

numpy and standard library only. Conventions (DESIGN §2, §5):

- ``chip_pixels``: chip pixel space itself (GDAL convention, x = column, y = row).
- ``square_unit`` (EarthGPT-X / SPHINX): the chip is padded to a square of side max(W, H), centred
  (as LLaVA's expand2square), and coordinates are divided by that side: 0–1, two decimals.
- ``rel_1000`` (Qwen3-VL): x / W * 1000 and y / H * 1000, integers; decoded values are clamped to
  0–1000 (some answers use 0–999).
- ``resized_pixels`` (Qwen2.5-VL): integer pixel coordinates of the chip resized to
  ``resized_width`` x ``resized_height`` (from the processor's ``image_grid_thw`` x patch size).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .affine import Affine
from .errors import InvalidArgumentError
from .prompts import PromptKind, VisualPrompt


#: the longest side over the shortest that every family's image processor takes (Qwen-VL's refuse 200)
MAX_ASPECT = 100


def pad_to_aspect(image: np.ndarray, max_aspect: int = MAX_ASPECT) -> np.ndarray:
    """``image`` (H, W, ...) with black rows at the bottom or columns at the right so that its long
    side is at most ``max_aspect`` times its short side; the same array when it already is."""
    h, w = image.shape[:2]
    if max(w, h) <= max_aspect * min(w, h):
        return image
    pad_h, pad_w = max(0, -(-w // max_aspect) - h), max(0, -(-h // max_aspect) - w)
    return np.pad(image, ((0, pad_h), (0, pad_w)) + ((0, 0),) * (image.ndim - 2))


class Convention(str, enum.Enum):
    CHIP_PIXELS = "chip_pixels"
    SQUARE_UNIT = "square_unit"
    REL_1000 = "rel_1000"
    RESIZED_PIXELS = "resized_pixels"


@dataclass(frozen=True)
class CoordinateFrame:
    """How one model sees coordinates on a ``chip_width`` x ``chip_height`` chip.

    ``image_width`` x ``image_height`` (default: the chip's) is the image the model is given: the chip
    at its top-left corner, padded on the right and bottom (``pad_to_aspect``). Coordinates are
    relative to that image; parsed regions are clamped to the chip (``models.parsing``).
    """

    convention: Convention
    chip_width: int
    chip_height: int
    resized_width: Optional[int] = None
    resized_height: Optional[int] = None
    image_width: Optional[int] = None
    image_height: Optional[int] = None

    def __post_init__(self) -> None:
        if self.chip_width < 1 or self.chip_height < 1:
            raise InvalidArgumentError(f"chip size must be positive, got {self.chip_width}x{self.chip_height}")
        if (self.image_width or self.chip_width) < self.chip_width or (
                self.image_height or self.chip_height) < self.chip_height:
            raise InvalidArgumentError("the padded image must hold the chip")
        if self.convention is Convention.RESIZED_PIXELS and not (
                self.resized_width and self.resized_height and self.resized_width > 0 and self.resized_height > 0):
            raise InvalidArgumentError("the resized_pixels convention needs the resized image size")

    # -- forward: chip pixels -> model numbers -------------------------------------------------
    def _linear(self) -> Tuple[float, float, float, float]:
        """(scale_x, offset_x, scale_y, offset_y) with model = chip * scale + offset."""
        w, h = float(self.image_width or self.chip_width), float(self.image_height or self.chip_height)
        c = self.convention
        if c is Convention.CHIP_PIXELS:
            return 1.0, 0.0, 1.0, 0.0
        if c is Convention.SQUARE_UNIT:
            side = max(w, h)
            return 1.0 / side, (side - w) / 2.0 / side, 1.0 / side, (side - h) / 2.0 / side
        if c is Convention.REL_1000:
            return 1000.0 / w, 0.0, 1000.0 / h, 0.0
        return self.resized_width / w, 0.0, self.resized_height / h, 0.0

    @property
    def model_range(self) -> Tuple[float, float, float, float]:
        """``(minx, miny, maxx, maxy)`` of valid model coordinates (clamping range on decode)."""
        c = self.convention
        if c is Convention.CHIP_PIXELS:
            return 0.0, 0.0, float(self.chip_width), float(self.chip_height)
        if c is Convention.SQUARE_UNIT:
            return 0.0, 0.0, 1.0, 1.0
        if c is Convention.REL_1000:
            return 0.0, 0.0, 1000.0, 1000.0
        return 0.0, 0.0, float(self.resized_width), float(self.resized_height)

    def to_model(self, xs, ys) -> Tuple[np.ndarray, np.ndarray]:
        """Chip pixels -> model coordinates, unrounded."""
        sx, ox, sy, oy = self._linear()
        return np.asarray(xs, float) * sx + ox, np.asarray(ys, float) * sy + oy

    def from_model(self, xs, ys) -> Tuple[np.ndarray, np.ndarray]:
        """Model coordinates -> chip pixels, clamped to the convention's range first."""
        x0, y0, x1, y1 = self.model_range
        xs = np.clip(np.asarray(xs, float), x0, x1)
        ys = np.clip(np.asarray(ys, float), y0, y1)
        sx, ox, sy, oy = self._linear()
        return (xs - ox) / sx, (ys - oy) / sy

    def round(self, values) -> np.ndarray:
        """Round model coordinates the way the model writes them."""
        values = np.asarray(values, float)
        if self.convention is Convention.SQUARE_UNIT:
            return np.round(values, 2)
        if self.convention is Convention.CHIP_PIXELS:
            return np.round(values, 1)
        return np.round(values)

    def format_number(self, v: float) -> str:
        r = float(self.round(v))
        if self.convention is Convention.SQUARE_UNIT:
            return f"{r:.2f}"
        if self.convention is Convention.CHIP_PIXELS:
            return f"{r:.1f}"
        return str(int(r))

    # -- prompts ---------------------------------------------------------------------------------
    def encode(self, prompt: VisualPrompt, max_vertices: int = 32) -> List:
        """A chip-pixel prompt as model numbers: point [x, y]; box [x1, y1, x2, y2];
        polygon or scribble [[x, y], ...] with at most ``max_vertices`` vertices."""
        if prompt.kind is PromptKind.POINT:
            (x, y), = prompt.vertices
            mx, my = self.to_model(x, y)
            return [float(self.round(mx)), float(self.round(my))]
        if prompt.kind is PromptKind.BOX:
            (x1, y1), (x2, y2) = prompt.vertices
            mx, my = self.to_model([x1, x2], [y1, y2])
            mx, my = self.round(mx), self.round(my)
            return [float(mx[0]), float(my[0]), float(mx[1]), float(my[1])]
        verts = resample_vertices(np.array(prompt.vertices, float), max_vertices,
                                  closed=prompt.kind is PromptKind.POLYGON)
        mx, my = self.to_model(verts[:, 0], verts[:, 1])
        return [[float(a), float(b)] for a, b in zip(self.round(mx), self.round(my))]

    def format_prompt(self, prompt: VisualPrompt, max_vertices: int = 32) -> str:
        """Text form of ``encode``: ``[x, y]``, ``[x1, y1, x2, y2]`` or ``[[x, y], ...]``."""
        enc = self.encode(prompt, max_vertices)
        if prompt.kind in (PromptKind.POINT, PromptKind.BOX):
            return "[" + ", ".join(self.format_number(v) for v in enc) + "]"
        return "[" + ", ".join("[" + self.format_number(x) + ", " + self.format_number(y) + "]" for x, y in enc) + "]"

    # -- inverse: model numbers -> chip pixels ---------------------------------------------------
    def decode_point(self, x: float, y: float) -> Tuple[float, float]:
        cx, cy = self.from_model(x, y)
        return float(cx), float(cy)

    def decode_box(self, x1: float, y1: float, x2: float, y2: float) -> Tuple[float, float, float, float]:
        """A model box -> chip-pixel ``(minx, miny, maxx, maxy)``; corner order is normalised."""
        cx, cy = self.from_model([x1, x2], [y1, y2])
        return float(cx.min()), float(cy.min()), float(cx.max()), float(cy.max())

    def decode_vertices(self, vertices: Sequence[Sequence[float]]) -> np.ndarray:
        """Model vertices [[x, y], ...] -> chip pixels (N, 2)."""
        v = np.asarray(vertices, float).reshape(-1, 2)
        cx, cy = self.from_model(v[:, 0], v[:, 1])
        return np.column_stack([cx, cy])


def resample_vertices(vertices: np.ndarray, max_vertices: int, closed: bool) -> np.ndarray:
    """At most ``max_vertices`` vertices evenly spaced by arc length along the line or ring (N, 2).

    Vertices are kept unchanged when there are few enough.
    """
    if max_vertices < 2:
        raise InvalidArgumentError("max_vertices must be at least 2")
    n = len(vertices)
    if n <= max_vertices:
        return vertices
    pts = np.vstack([vertices, vertices[:1]]) if closed else vertices
    seg = np.hypot(*np.diff(pts, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    targets = np.linspace(0.0, cum[-1], max_vertices, endpoint=not closed)
    xs = np.interp(targets, cum, pts[:, 0])
    ys = np.interp(targets, cum, pts[:, 1])
    return np.column_stack([xs, ys])


def box_corners(minx: float, miny: float, maxx: float, maxy: float) -> np.ndarray:
    """The 4 corners (4, 2) of an axis-aligned box, top-left first, clockwise in a y-down space."""
    return np.array([(minx, miny), (maxx, miny), (maxx, maxy), (minx, maxy)], float)


def chip_to_crs(vertices: np.ndarray, chip_affine: Affine) -> np.ndarray:
    """Chip pixel vertices (N, 2) -> CRS coordinates (N, 2) through the chip's affine."""
    xs, ys = chip_affine.apply(vertices[:, 0], vertices[:, 1])
    return np.column_stack([xs, ys])


def crs_to_chip(vertices: np.ndarray, chip_affine: Affine) -> np.ndarray:
    """CRS coordinates (N, 2) -> chip pixel vertices (N, 2)."""
    return chip_to_crs(vertices, chip_affine.inverse())

