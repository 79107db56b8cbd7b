"""Visual marks: prompt index masks and prompts drawn onto a chip image (numpy/stdlib only).

All coordinates are CHIP PIXELS, GDAL convention: x = column, y = row, (0, 0) the top-left corner of
the top-left pixel, so the centre of pixel (col, row) is (col + 0.5, row + 0.5). Rasterisation tests
pixel centres. Images are uint8 (H, W, 3) RGB. Prompts partly or wholly outside the chip are clipped:
what falls inside is kept, nothing raises. Every rasteriser works on the prompt's bounding window only.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .errors import InvalidArgumentError, InvalidPromptError
from .prompts import PromptKind, VisualPrompt

RGB = Tuple[int, int, int]
Shape = Tuple[int, int]

#: Saturated mark colours, in order of preference when two contrast equally.
PALETTE: Tuple[RGB, ...] = (
    (255, 0, 0),      # red
    (255, 255, 0),    # yellow
    (0, 255, 255),    # cyan
    (255, 0, 255),    # magenta
    (0, 255, 0),      # lime green
    (0, 64, 255),     # blue
    (255, 128, 0),    # orange
    (255, 255, 255),  # white
)
BLACK: RGB = (0, 0, 0)
WHITE: RGB = (255, 255, 255)

_CONTRAST_PERCENTILE = 10.0
_MAX_COLOUR_SAMPLES = 8192

_DIGIT_ROWS = (
    (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),  # 0
    ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),  # 1
    (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),  # 2
    ("#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."),  # 3
    ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),  # 4
    ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),  # 5
    ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),  # 6
    ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),  # 7
    (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),  # 8
    (".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."),  # 9
)
#: 5x7 bitmap font for the digits 0-9: DIGIT_GLYPHS[d] is a (7, 5) bool array, True = ink.
DIGIT_GLYPHS: np.ndarray = np.array([[[c == "#" for c in row] for row in g] for g in _DIGIT_ROWS], dtype=bool)


# --------------------------------------------------------------------------------------------------
# sizes


def default_point_radius(width: int, height: int) -> float:
    """Point disk radius in chip pixels: max(2, round(1% of the larger chip side))."""
    return float(max(2, round(0.01 * max(width, height))))


def default_line_width(width: int, height: int) -> float:
    """Scribble width in chip pixels for masks: max(2, round(0.5% of the larger chip side))."""
    return float(max(2, round(0.005 * max(width, height))))


def mark_line_width(width: int, height: int) -> int:
    """Drawn outline thickness in chip pixels: max(2, round(0.4% of the larger chip side))."""
    return int(max(2, round(0.004 * max(width, height))))


def label_scale(width: int, height: int) -> int:
    """Integer magnification of the 5x7 digit font: 1 up to 350 px chips, +1 per 350 px."""
    return max(1, math.ceil(max(width, height) / 350))


# --------------------------------------------------------------------------------------------------
# rasterisers: each returns a full-size (H, W) bool mask, computed on the prompt's window only


def _window(minx: float, miny: float, maxx: float, maxy: float, shape: Shape):
    """Pixel index ranges (r0, r1, c0, c1), half-open, of the pixels whose centres lie in
    [minx, maxx] x [miny, maxy], clipped to the chip; None when empty."""
    h, w = shape
    c0, c1 = max(0, math.ceil(minx - 0.5)), min(w, math.floor(maxx - 0.5) + 1)
    r0, r1 = max(0, math.ceil(miny - 0.5)), min(h, math.floor(maxy - 0.5) + 1)
    if c0 >= c1 or r0 >= r1:
        return None
    return r0, r1, c0, c1


def _centres(r0: int, r1: int, c0: int, c1: int) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates of a window: xs (1, C) and ys (R, 1)."""
    return (np.arange(c0, c1, dtype=float) + 0.5)[None, :], (np.arange(r0, r1, dtype=float) + 0.5)[:, None]


def _box_cells(x1: float, y1: float, x2: float, y2: float, shape: Shape) -> np.ndarray:
    """Pixels whose centres lie in the closed box [x1, x2] x [y1, y2]."""
    out = np.zeros(shape, dtype=bool)
    win = _window(x1, y1, x2, y2, shape)
    if win is not None:
        r0, r1, c0, c1 = win
        out[r0:r1, c0:c1] = True
    return out


def _disk_cells(cx: float, cy: float, radius: float, shape: Shape) -> np.ndarray:
    """Pixels whose centres lie within ``radius`` of (cx, cy)."""
    out = np.zeros(shape, dtype=bool)
    win = _window(cx - radius, cy - radius, cx + radius, cy + radius, shape)
    if win is not None:
        r0, r1, c0, c1 = win
        xs, ys = _centres(*win)
        out[r0:r1, c0:c1] = (xs - cx) ** 2 + (ys - cy) ** 2 <= radius * radius
    return out


def _polygon_cells(ring: np.ndarray, shape: Shape) -> np.ndarray:
    """Pixels whose centres lie inside the ring (N, 2) by the even-odd rule.

    Scanline over the ring's window: each edge crossing a row's centre line flips the parity of every
    pixel whose centre lies right of the crossing (a half-open rule on y, so vertices count once).
    """
    out = np.zeros(shape, dtype=bool)
    ring = np.asarray(ring, dtype=float)
    win = _window(ring[:, 0].min(), ring[:, 1].min(), ring[:, 0].max(), ring[:, 1].max(), shape)
    if win is None:
        return out
    r0, r1, c0, c1 = win
    ncols = c1 - c0
    ys = np.arange(r0, r1, dtype=float)[:, None] + 0.5
    (ax, ay), (bx, by) = ring.T[:, None, :], np.roll(ring, -1, axis=0).T[:, None, :]
    rows, edges = np.nonzero((ay <= ys) != (by <= ys))
    ax, ay, bx, by = ax[0, edges], ay[0, edges], bx[0, edges], by[0, edges]
    xc = ax + (ys[rows, 0] - ay) * (bx - ax) / (by - ay)
    # first window column whose centre is strictly right of the crossing
    first = np.clip(np.floor(xc - 0.5) + 1 - c0, 0, ncols).astype(np.int64)
    flips = np.bincount(rows * (ncols + 1) + first, minlength=(r1 - r0) * (ncols + 1))
    parity = np.cumsum(flips.reshape(r1 - r0, ncols + 1), axis=1)[:, :ncols] & 1
    out[r0:r1, c0:c1] = parity.astype(bool)
    return out


def _polyline_cells(vertices: np.ndarray, width: float, shape: Shape, closed: bool = False) -> np.ndarray:
    """Pixels whose centres lie within ``width / 2`` of the polyline (N, 2) (round caps and joins);
    ``closed`` adds the segment from the last vertex back to the first."""
    out = np.zeros(shape, dtype=bool)
    v = np.asarray(vertices, dtype=float)
    half = width / 2.0
    if closed:
        v = np.vstack([v, v[:1]])
    for (ax, ay), (bx, by) in zip(v[:-1], v[1:]):
        win = _window(min(ax, bx) - half, min(ay, by) - half, max(ax, bx) + half, max(ay, by) + half, shape)
        if win is None:
            continue
        r0, r1, c0, c1 = win
        xs, ys = _centres(*win)
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = np.clip(((xs - ax) * dx + (ys - ay) * dy) / length2, 0.0, 1.0) if length2 > 0 else 0.0
        near = (xs - ax - t * dx) ** 2 + (ys - ay - t * dy) ** 2 <= half * half
        out[r0:r1, c0:c1] |= near
    return out


# --------------------------------------------------------------------------------------------------
# prompt masks


def prompt_mask(
    prompts: Sequence[VisualPrompt],
    width: int,
    height: int,
    point_radius: Optional[float] = None,
    line_width: Optional[float] = None,
) -> np.ndarray:
    """(height, width) uint8 mask holding at each pixel the index of the prompt covering it, 0 for none;
    later prompts overwrite earlier ones.

    Coverage is by pixel centre, in chip pixels: a box fills the pixels whose centres lie in it, a polygon
    those inside it (even-odd rule), a point a disk of ``point_radius`` (default ``default_point_radius``),
    a scribble a stroke ``line_width`` wide (default ``default_line_width``). Prompt indices must be
    1..255; parts outside the chip are dropped.
    """
    _check_size(width, height)
    shape = (int(height), int(width))
    radius = default_point_radius(width, height) if point_radius is None else float(point_radius)
    stroke = default_line_width(width, height) if line_width is None else float(line_width)
    if not (radius > 0 and stroke > 0):
        raise InvalidArgumentError(f"point radius and line width must be > 0, got {radius} and {stroke}")
    mask = np.zeros(shape, dtype=np.uint8)
    for p in prompts:
        if p.index > 255:
            raise InvalidPromptError(f"prompt index {p.index} does not fit a uint8 mask (at most 255)")
        mask[_coverage(p, shape, radius, stroke)] = p.index
    return mask


def _coverage(p: VisualPrompt, shape: Shape, radius: float, stroke: float) -> np.ndarray:
    if p.kind is PromptKind.POINT:
        (x, y), = p.vertices
        return _disk_cells(x, y, radius, shape)
    if p.kind is PromptKind.BOX:
        (x1, y1), (x2, y2) = p.vertices
        return _box_cells(x1, y1, x2, y2, shape)
    if p.kind is PromptKind.POLYGON:
        return _polygon_cells(p.outline(), shape)
    return _polyline_cells(p.outline(), stroke, shape)


def _check_size(width: int, height: int) -> None:
    if int(width) != width or int(height) != height or width < 1 or height < 1:
        raise InvalidArgumentError(f"chip size must be positive integers, got {width} x {height}")


# --------------------------------------------------------------------------------------------------
# colour


def _linear_rgb(rgb) -> np.ndarray:
    """Linear-light RGB in [0, 1] of uint8 sRGB colours (..., 3)."""
    c = np.asarray(rgb, dtype=float) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _srgb_to_lab(rgb) -> np.ndarray:
    """CIE L*a*b* (D65) of uint8 sRGB colours (..., 3); returns float (..., 3)."""
    xyz = _linear_rgb(rgb) @ np.array([[0.4124, 0.2126, 0.0193], [0.3576, 0.7152, 0.1192], [0.1805, 0.0722, 0.9505]])
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def pick_mark_colour(image: np.ndarray, region_mask: Optional[np.ndarray] = None) -> RGB:
    """The PALETTE colour that stands out most against ``image`` (uint8 (H, W, 3) RGB) under
    ``region_mask`` ((H, W) bool; the whole image when None or empty).

    Contrast is the 10th percentile of the CIE76 colour difference (Euclidean distance in CIE L*a*b*)
    between the candidate and the region's pixels: the winner is far even from the pixels most like
    it. The region is subsampled evenly to at most 8192 pixels; ties go to the earlier palette entry.
    """
    image = _check_image(image)
    pixels = image.reshape(-1, 3)
    if region_mask is not None:
        region_mask = np.asarray(region_mask, dtype=bool)
        if region_mask.shape != image.shape[:2]:
            raise InvalidArgumentError(f"region mask {region_mask.shape} does not match image {image.shape[:2]}")
        if region_mask.any():
            pixels = pixels[region_mask.reshape(-1)]
    pixels = pixels[:: -(-len(pixels) // _MAX_COLOUR_SAMPLES)]
    lab = _srgb_to_lab(pixels)
    palette_lab = _srgb_to_lab(np.array(PALETTE))
    distance = np.linalg.norm(lab[:, None, :] - palette_lab[None, :, :], axis=-1)
    score = np.percentile(distance, _CONTRAST_PERCENTILE, axis=0)
    return PALETTE[int(np.argmax(score))]


def halo_colour(colour: RGB) -> RGB:
    """Black or white, whichever has the higher WCAG contrast ratio against ``colour``."""
    luminance = float(_linear_rgb(colour) @ np.array([0.2126, 0.7152, 0.0722]))
    # contrast with black (L + 0.05) / 0.05 beats contrast with white 1.05 / (L + 0.05) above L ~ 0.179
    return BLACK if (luminance + 0.05) ** 2 > 0.05 * 1.05 else WHITE


# --------------------------------------------------------------------------------------------------
# labels


def render_number(number: int, scale: int = 1) -> np.ndarray:
    """Bitmap (7 * scale, (6 * digits - 1) * scale) bool of a non-negative integer in the 5x7 font,
    one blank font column between digits."""
    glyphs: List[np.ndarray] = []
    for d in str(int(number)):
        if glyphs:
            glyphs.append(np.zeros((7, 1), dtype=bool))
        glyphs.append(DIGIT_GLYPHS[int(d)])
    bitmap = np.hstack(glyphs)
    return np.repeat(np.repeat(bitmap, scale, axis=0), scale, axis=1)


def _paste(out: np.ndarray, cells: np.ndarray, top: int, left: int, colour: RGB) -> None:
    """Paint ``colour`` where ``cells`` (h, w) bool is True, placed at (top, left), clipped to ``out``."""
    h, w = cells.shape
    r0, c0 = max(0, top), max(0, left)
    r1, c1 = min(out.shape[0], top + h), min(out.shape[1], left + w)
    if r0 < r1 and c0 < c1:
        out[r0:r1, c0:c1][cells[r0 - top:r1 - top, c0 - left:c1 - left]] = colour


def _draw_label(out: np.ndarray, number: int, drawn: np.ndarray, beside: bool, colour: RGB, gap: int) -> None:
    """Number on a patch of the mark's colour, beside a point's dot or above the top-left of the
    drawn pixels ``drawn`` (H, W) bool, moved to stay inside the image."""
    h, w = drawn.shape
    scale = label_scale(w, h)
    text = render_number(number, scale)
    pad = scale
    patch_h, patch_w = text.shape[0] + 2 * pad, text.shape[1] + 2 * pad
    rows, cols = np.nonzero(drawn)
    top_row, bottom_row, left_col, right_col = rows.min(), rows.max(), cols.min(), cols.max()
    if beside:
        left = right_col + 1 + gap
        if left + patch_w > w:
            left = left_col - gap - patch_w
        top = (top_row + bottom_row + 1) // 2 - patch_h // 2
    else:
        left = left_col
        top = top_row - gap - patch_h
        if top < 0:
            top = top_row + gap
    top = int(min(max(top, 0), max(h - patch_h, 0)))
    left = int(min(max(left, 0), max(w - patch_w, 0)))
    _paste(out, np.ones((patch_h, patch_w), dtype=bool), top, left, colour)
    _paste(out, text, top + pad, left + pad, halo_colour(colour))


# --------------------------------------------------------------------------------------------------
# drawing


def draw_marks(
    image: np.ndarray,
    prompts: Sequence[VisualPrompt],
    colours: Optional[Sequence[RGB]] = None,
    numbered: Optional[bool] = None,
) -> np.ndarray:
    """A new uint8 (H, W, 3) RGB image: ``image`` with each prompt (chip pixels) drawn on it.

    Point: a filled dot of ``default_point_radius`` with a black or white halo (``halo_colour``); box and
    polygon: closed outline; scribble: open polyline; lines are ``mark_line_width`` thick, centred on the
    prompt's edges. Each prompt's colour is ``colours[k]`` or else ``pick_mark_colour`` over a band three
    line widths wide around the mark (a disk twice the dot radius for a point), read from the image as
    drawn so far. With ``numbered`` (default: more than one prompt) each prompt's index is written on a
    patch of its colour, beside a dot or above its top-left, after all marks are drawn. Parts outside
    the chip are dropped; a prompt wholly outside draws nothing. ``image`` is not modified.
    """
    out = _check_image(image).copy()
    if colours is not None and len(colours) != len(prompts):
        raise InvalidArgumentError(f"got {len(colours)} colours for {len(prompts)} prompts")
    if numbered is None:
        numbered = len(prompts) > 1
    h, w = out.shape[:2]
    shape = (h, w)
    line = mark_line_width(w, h)
    radius = default_point_radius(w, h)
    halo_width = max(1, line // 2)
    labels = []
    for k, p in enumerate(prompts):
        if p.kind is PromptKind.POINT:
            (x, y), = p.vertices
            mark = _disk_cells(x, y, radius, shape)
            drawn = _disk_cells(x, y, radius + halo_width, shape)
            band = _disk_cells(x, y, 2 * radius, shape)
        else:
            closed = p.kind is not PromptKind.SCRIBBLE
            mark = drawn = _polyline_cells(p.outline(), line, shape, closed)
            band = _polyline_cells(p.outline(), 3 * line, shape, closed)
        if not mark.any():
            continue
        colour = tuple(int(c) for c in colours[k]) if colours is not None else pick_mark_colour(out, band)
        out[drawn & ~mark] = halo_colour(colour)
        out[mark] = colour
        labels.append((p.index, drawn, p.kind is PromptKind.POINT, colour))
    if numbered:
        for number, drawn, beside, colour in labels:
            _draw_label(out, number, drawn, beside, colour, gap=line)
    return out


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise InvalidArgumentError(f"expected a uint8 (H, W, 3) RGB image, got {image.dtype} {image.shape}")
    return image
