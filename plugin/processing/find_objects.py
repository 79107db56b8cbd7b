"""Processing: find objects named by a phrase over whole rasters or an extent, by tiled grounding, in the
model worker (``find`` of PROTOCOL.md): questions in flight and batches from the settings, the output
GeoPackage written tile by tile, a run resumable."""

from __future__ import annotations

import os
import threading
from typing import List

from qgis.core import (QgsCoordinateReferenceSystem, QgsProcessing, QgsProcessingAlgorithm, QgsProcessingContext,
                       QgsProcessingException, QgsProcessingParameterBoolean, QgsProcessingParameterDefinition,
                       QgsProcessingParameterExtent, QgsProcessingParameterMultipleLayers,
                       QgsProcessingParameterNumber, QgsProcessingParameterString,
                       QgsProcessingParameterVectorDestination, QgsProcessingOutputVectorLayer, QgsRasterLayer)

from ...model_backend.core.errors import EarthGPTXError, InvalidArgumentError
from ...model_backend.core.interface import Task, check_question
from ...model_backend.core.tiling import DEFAULT_OVERLAP, DEFAULT_TILE, MAX_OVERLAP, MIN_TILE
from ..settings import PluginSettings
from ..worker_pool import POOL
from .common import load_model, modality_of, model_parameters, tr


class FindObjects(QgsProcessingAlgorithm):
    """Tiles with overlap at a chosen ground resolution, a grounding question per tile, boxes merged
    across tile borders (geo NMS), memory bounded whatever the raster's size; one output for all the
    rasters given."""

    def name(self) -> str:
        return "findobjects"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return tr("Find objects")

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return tr("Finds everything the phrase names (e.g. \"ships\") over whole rasters or an extent: the area "
                  "is cut into overlapping tiles read at the chosen ground resolution, the model is asked for boxes "
                  "on each tile, and boxes found twice across tile borders are merged. Boxes are 4-corner polygons "
                  "in each raster's CRS; every feature names its raster. A GeoPackage output is written tile by "
                  "tile, so a run that is stopped or crashes keeps what it answered, and Resume asks only the "
                  "tiles not answered yet. Questions in flight (a server) and tiles per generate (a local model) "
                  "come from the plugin's settings unless given here.")

    def createInstance(self):  # noqa: N802 - QGIS API
        return FindObjects()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterMultipleLayers("INPUT", tr("Rasters"), QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterString("PHRASE", tr("What to find")))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", tr("Extent (empty: the whole rasters)"),
                                                       optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "RESOLUTION", tr("Ground resolution (metres per chip pixel; empty: each raster's own)"),
            QgsProcessingParameterNumber.Double, None, True, 0.0))
        self.addParameter(QgsProcessingParameterNumber("TILE", tr("Tile size (pixels)"),
                                                       QgsProcessingParameterNumber.Integer, DEFAULT_TILE, False,
                                                       MIN_TILE, 8192))
        self.addParameter(QgsProcessingParameterNumber("OVERLAP", tr("Tile overlap (fraction of a tile)"),
                                                       QgsProcessingParameterNumber.Double, DEFAULT_OVERLAP,
                                                       False, 0.0, MAX_OVERLAP))
        self.addParameter(QgsProcessingParameterBoolean(
            "RESUME", tr("Resume: ask only the tiles an earlier run into this GeoPackage did not answer"), False))
        model_parameters(self)
        for name, label in (("CONCURRENCY", tr("Questions in flight against a server (0: the settings)")),
                            ("BATCH_SIZE", tr("Tiles per generate of a local model (0: the settings)"))):
            p = QgsProcessingParameterNumber(name, label, QgsProcessingParameterNumber.Integer, 0, False, 0, 256)
            p.setFlags(p.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(p)
        out = QgsProcessingParameterVectorDestination("OUTPUT", tr("Detections"), QgsProcessing.TypeVectorPolygon)
        out.setSupportsNonFileBasedOutput(False)
        self.addParameter(out)
        self.addOutput(QgsProcessingOutputVectorLayer("ANSWERS", tr("Tile answers"), QgsProcessing.TypeVectorPolygon))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        layers = self.parameterAsLayerList(parameters, "INPUT", context)
        phrase = self.parameterAsString(parameters, "PHRASE", context).strip()
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        resume = self.parameterAsBoolean(parameters, "RESUME", context)
        fields = {"tile": self.parameterAsInt(parameters, "TILE", context),
                  "overlap": self.parameterAsDouble(parameters, "OVERLAP", context),
                  "max_new_tokens": self.parameterAsInt(parameters, "MAX_NEW_TOKENS", context)}
        try:  # everything that can be refused is refused before the model loads
            check_question(Task.GROUNDING, phrase, 0)
            rasters = [raster_path(layer) for layer in layers]
            if not rasters:
                raise InvalidArgumentError("no raster to search: choose at least one raster layer")
            if resume and not out.lower().endswith(".gpkg"):
                raise InvalidArgumentError("resuming a search needs the GeoPackage output (.gpkg) it wrote to")
        except EarthGPTXError as exc:
            raise QgsProcessingException(str(exc)) from None
        if parameters.get("RESOLUTION") not in (None, ""):
            fields["resolution"] = self.parameterAsDouble(parameters, "RESOLUTION", context)
        if parameters.get("EXTENT"):
            crs = self.parameterAsExtentCrs(parameters, "EXTENT", context)
            crs = crs if crs.isValid() else layers[0].crs()
            rect = self.parameterAsExtent(parameters, "EXTENT", context, crs)
            fields["extent"] = [rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()]
            fields["extent_crs"] = crs_text(crs)
        modality = modality_of(self, parameters, context)
        if modality is not None:
            fields["modality"] = modality.value
        settings = PluginSettings.load()
        options = settings.find_options()
        concurrency = self.parameterAsInt(parameters, "CONCURRENCY", context)
        batch = self.parameterAsInt(parameters, "BATCH_SIZE", context)
        if concurrency > 0 and settings.backend == "openai":
            options["concurrency"] = concurrency
        if batch > 0 and settings.backend != "openai":
            options["batch_size"] = batch
        try:  # the worker checks the output, each raster, the extent and the tiling, with no model loaded
            planned = POOL.started(settings.worker_python, feedback.pushInfo).plan_find(
                rasters, phrase, out=out, resume=resume, **fields)
        except EarthGPTXError as exc:
            raise QgsProcessingException(str(exc)) from None
        for p in planned:
            feedback.pushInfo(tr("{0}: {1} tiles of {2}x{3} pixels").format(
                os.path.basename(p["raster"]), p["tiles"], p["tile_width"], p["tile_height"]))
        load_model(self, parameters, context, feedback)
        feedback.pushInfo(tr("{0} raster(s); {1} question(s) in flight, {2} tile(s) per call").format(
            len(rasters), options["concurrency"], options["batch_size"]))
        stop = threading.Event()
        feedback.canceled.connect(stop.set)
        order = {path: k for k, path in enumerate(rasters)}

        def progress(event: dict) -> None:
            k, total = order.get(event.get("raster"), 0), max(1, int(event.get("total") or 1))
            feedback.setProgress(100.0 * (k + min(1.0, int(event.get("done") or 0) / total)) / len(rasters))
            feedback.pushInfo(f"{os.path.basename(str(event.get('raster')))}: {event.get('message')}")

        try:
            searches = POOL.client.find(rasters, phrase, on_progress=progress, cancel=stop, out=out,
                                        resume=resume, **options, **fields)
        except EarthGPTXError as exc:
            raise QgsProcessingException(str(exc)) from None
        finally:
            feedback.canceled.disconnect(stop.set)
        for s in searches:
            tiles = s["tiles"]
            feedback.pushInfo(tr("{0}: {1} tiles of {2} answered ({3} resumed, {4} without data); {5} boxes, "
                                 "{6} after merging across tile borders").format(
                os.path.basename(s["raster"]), tiles["done"], tiles["total"], s["resumed_tiles"],
                tiles["skipped_nodata"], s["candidates"], s["detections"]))
            if s["finish_reasons"].get("length"):
                feedback.reportError(tr("{0} tile answer(s) reached the maximum new tokens and were cut there "
                                        "(kept)").format(s["finish_reasons"]["length"]))
        return load_outputs(out, searches, context)


def raster_path(layer: QgsRasterLayer) -> str:
    """The file (or GDAL dataset name) the worker reads for ``layer``; a layer of another provider (a
    web service, say) is refused with what to do."""
    if layer.providerType() != "gdal":
        raise InvalidArgumentError(f"Find objects reads raster files; {layer.name()} is a {layer.providerType()} "
                                   f"layer: save it as a GeoTIFF first (Export > Save As...)")
    return layer.source()


def crs_text(crs: QgsCoordinateReferenceSystem) -> str:
    """``AUTH:CODE`` of ``crs`` when it has one, else its WKT."""
    return crs.authid() if crs.authid() and not crs.authid().upper().startswith("USER:") else \
        crs.toWkt(QgsCoordinateReferenceSystem.WKT2_2019)


def load_outputs(out: str, searches: List[dict], context: QgsProcessingContext) -> dict:
    """The results: ``OUTPUT`` the merged detections, ``ANSWERS`` the tile answers (layers of ``out``);
    when the output is to be loaded, both are, instead of the GeoPackage's first layer."""
    files = {f for s in searches for f in s["files"]}
    if out.lower().endswith(".gpkg"):
        detections, answers = f"{out}|layername=detections", f"{out}|layername=answers"
    else:  # a shapefile output is a set of files, one per layer and geometry type
        shapefiles = sorted(f for f in files if f.lower().endswith(".shp"))
        detections = next((f for f in shapefiles if "_detections" in os.path.basename(f)), out)
        answers = next((f for f in shapefiles if "_answers" in os.path.basename(f)), "")
    if context.willLoadLayerOnCompletion(out):
        details = context.layerToLoadOnCompletionDetails(out)
        loads = dict(context.layersToLoadOnCompletion())
        loads.pop(out, None)
        for uri, name in ((detections, tr("detections")), (answers, tr("tile answers"))):
            if uri and (uri in files or "|layername=" in uri):
                loads[uri] = QgsProcessingContext.LayerDetails(f"{details.name or tr('Find objects')} ({name})",
                                                               details.project, name)
        context.setLayersToLoadOnCompletion(loads)
    return {"OUTPUT": detections, "ANSWERS": answers}
