"""The ``locate`` command: ``python -m model_backend locate RASTER [--geometry WKT --crs AUTH:CODE]
[--kind K] [chip options] [--chip-png PATH]``: where a prompt lands on a raster and which chip is read
(JSON on stdout; no model)."""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings

import numpy as np
import rasterio
import shapely
from rasterio.errors import NotGeoreferencedWarning

from ..core.chip import Chip
from ..core.chip_plan import ChipSettings
from ..core.encoding import Convention, CoordinateFrame
from ..core.errors import InvalidArgumentError
from ..core.marks import draw_marks
from ..core.normalise import Modality
from ..geo.crs import crs_label, parse_crs
from ..geo.geometry import PROMPT_KINDS, parse_wkt, prompt_from_geometry, prompt_geometry
from ..geo.locate import locate_prompt, read_scene
from ..geo.raster import RasterSource

WKT_DECIMALS = 9


def add_parser(sub) -> None:
    loc = sub.add_parser("locate", help="show where a prompt lands on a raster and which chip is read")
    loc.add_argument("raster", help="raster file (GeoTIFF or anything GDAL reads)")
    loc.add_argument("--geometry", help="prompt geometry as WKT (POINT, LINESTRING or POLYGON); "
                                        "omit for a scene-level chip of the whole raster")
    loc.add_argument("--crs", help="CRS of --geometry, e.g. EPSG:4326 (default: the raster's CRS)")
    loc.add_argument("--kind", choices=PROMPT_KINDS, default="auto",
                     help="prompt kind (auto: point, scribble or polygon from the geometry type; box: its bounds)")
    defaults = ChipSettings()
    loc.add_argument("--context", type=float, default=defaults.context,
                     help=f"context margin per side, fraction of the prompt's larger side (default {defaults.context})")
    loc.add_argument("--max-pixels", type=int, default=defaults.max_pixels,
                     help=f"most chip pixels, width x height (default {defaults.max_pixels})")
    loc.add_argument("--min-size", type=int, default=defaults.min_size,
                     help=f"smallest chip window side in full-resolution pixels (default {defaults.min_size})")
    loc.add_argument("--modality", choices=[m.value for m in Modality], help="override the modality guess")
    loc.add_argument("--bands", type=int, nargs="+", metavar="N", help="1-based bands: one (grey) or three (RGB)")
    loc.add_argument("--chip-png", metavar="PATH", help="also write the model-ready chip with the prompt marked")


def run(args: argparse.Namespace) -> dict:
    settings = ChipSettings(context=args.context, max_pixels=args.max_pixels, min_size=args.min_size)
    modality = Modality(args.modality) if args.modality else None
    if args.geometry is None and args.crs is not None:
        raise InvalidArgumentError("--crs goes with --geometry")
    with RasterSource(args.raster) as source:
        info = _raster_info(source)
        if args.geometry is None:
            chip = read_scene(source, settings.max_pixels, modality=modality, bands=args.bands)
            result = {"raster": info, "prompt": None, "pixel_geometry": None, "clipped": False}
            prompts = []
        else:
            geom = parse_wkt(args.geometry)
            prompt = prompt_from_geometry(geom, args.kind)
            in_crs = parse_crs(args.crs) if args.crs else source.crs
            loc = locate_prompt(source, prompt, in_crs, settings, modality, args.bands)
            chip = loc.chip
            prompts = [loc.chip_prompt]
            result = {
                "raster": info,
                "prompt": {"kind": prompt.kind.value, "crs": crs_label(in_crs)},
                "pixel_geometry": _wkt(loc.pixel_geometry),
                "clipped": loc.clipped,
                "chip_prompt": _wkt(prompt_geometry(loc.chip_prompt)),
                "encodings": _encodings(chip, loc.chip_prompt),
            }
        result.update(_chip_info(chip))
        result["window_space"] = info["view"]["kind"]
    if args.chip_png:
        _write_png(args.chip_png, chip, prompts)
        result["chip_png"] = os.path.abspath(args.chip_png)
    return result


def _raster_info(source: RasterSource) -> dict:
    vw, vh = source.view_size
    return {
        "path": os.path.abspath(source.path), "width": source.width, "height": source.height,
        "bands": source.band_count, "dtype": source.dtype, "nodata": source.nodata,
        "crs": crs_label(source.crs), "georeferencing": source.georeferencing,
        "overviews": list(source.overviews),
        "view": {"kind": "warped_vrt" if source.georeferencing == "gcps" else "raster",
                 "width": vw, "height": vh, "affine": list(source.view_affine.to_gdal())},
    }


def _chip_info(chip: Chip) -> dict:
    plan = chip.plan
    return {
        "window": plan.window.as_dict(),
        "overview_factor": plan.overview_factor,
        "read_scale": list(plan.scale),
        "source_overview": plan.source_overview,
        "chip_size": [chip.width, chip.height],
        "chip_affine": list(chip.affine.to_gdal()),
        "chip_crs": crs_label(parse_crs(chip.crs)),
        "chip_resolution": list(chip.resolution),
        "modality": chip.modality.value,
        "modality_reason": chip.modality_reason,
        "bands": list(chip.bands),
        "valid_fraction": float(np.mean(chip.valid)),
    }


def _encodings(chip: Chip, prompt) -> dict:
    out = {}
    for conv in (Convention.SQUARE_UNIT, Convention.REL_1000, Convention.CHIP_PIXELS):
        out[conv.value] = CoordinateFrame(conv, chip.width, chip.height).format_prompt(prompt)
    return out


def _wkt(geom) -> str:
    return shapely.to_wkt(geom, rounding_precision=WKT_DECIMALS, trim=True)


def _write_png(path: str, chip: Chip, prompts) -> None:
    """Write the marked chip atomically (a failed write leaves any existing file as it was)."""
    image = draw_marks(chip.image, prompts) if prompts else chip.image
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(suffix=".png", dir=folder)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot write {path}: {exc.strerror}") from None
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a PNG chip carries no georeferencing
            with rasterio.open(tmp, "w", driver="PNG", width=chip.width, height=chip.height, count=3,
                               dtype="uint8") as dst:
                dst.write(np.moveaxis(image, -1, 0))
        os.replace(tmp, path)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot write {path}: {exc}") from None
    finally:
        for leftover in (tmp, tmp + ".aux.xml"):
            if os.path.exists(leftover):
                os.remove(leftover)
