"""Processing: find objects named by a phrase over a whole raster or an extent, by tiled grounding."""

from __future__ import annotations

import numpy as np
from qgis.core import (QgsFeatureSink, QgsGeometry, QgsPointXY, QgsProcessingAlgorithm, QgsProcessingException,
                       QgsProcessingParameterExtent, QgsProcessingParameterFeatureSink, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterLayer, QgsProcessingParameterString, QgsWkbTypes)

from ...model_backend.core.errors import AllNodataError, EarthGPTXError
from ...model_backend.core.interface import AskRequest, Task, check_question
from ...model_backend.core.prompts import PromptKind
from ...model_backend.core.schema import new_id
from ...model_backend.core.tiling import (DEFAULT_OVERLAP, DEFAULT_TILE, merge_detections, plan_tiles,
                                          scale_for_resolution)
from ..raster_view import LayerView, RasterInfo, read_chip
from .common import ask, detection_fields, extent_in_view, feature, load_model, modality_of, model_parameters, tr


class FindObjects(QgsProcessingAlgorithm):
    """Tiles with overlap at a chosen resolution, a grounding question per tile, boxes merged across
    tile borders (geo NMS), memory bounded whatever the raster's size."""

    def name(self) -> str:
        return "findobjects"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return tr("Find objects")

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return tr("Finds everything the phrase names (e.g. \"ships\") over the whole raster or an extent: the area "
                  "is cut into overlapping tiles read at the chosen resolution, the model is asked for boxes on each "
                  "tile, and boxes found twice across tile borders are merged. Boxes are 4-corner polygons in the "
                  "raster's CRS.")

    def createInstance(self):  # noqa: N802 - QGIS API
        return FindObjects()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", tr("Raster")))
        self.addParameter(QgsProcessingParameterString("PHRASE", tr("What to find")))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", tr("Extent (empty: the whole raster)"), optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "RESOLUTION", tr("Resolution (raster CRS units per pixel; empty: full resolution)"),
            QgsProcessingParameterNumber.Type.Double, None, True, 0.0))
        self.addParameter(QgsProcessingParameterNumber("TILE", tr("Tile size (pixels)"),
                                                       QgsProcessingParameterNumber.Type.Integer, DEFAULT_TILE, False,
                                                       64, 4096))
        self.addParameter(QgsProcessingParameterNumber("OVERLAP", tr("Tile overlap (fraction of a tile)"),
                                                       QgsProcessingParameterNumber.Type.Double, DEFAULT_OVERLAP,
                                                       False, 0.0, 0.9))
        model_parameters(self)
        self.addParameter(QgsProcessingParameterFeatureSink("OUTPUT", tr("Detections")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        phrase = self.parameterAsString(parameters, "PHRASE", context).strip()
        try:
            check_question(Task.GROUNDING, phrase, 0)
            view = LayerView.of(layer)
            extent = extent_in_view(self, parameters, context, layer, view)
            resolution = parameters.get("RESOLUTION")
            scale = scale_for_resolution(self.parameterAsDouble(parameters, "RESOLUTION", context)
                                         if resolution not in (None, "") else None, view.affine.pixel_size)
            grid = plan_tiles(view.width, view.height, extent, self.parameterAsInt(parameters, "TILE", context),
                              self.parameterAsDouble(parameters, "OVERLAP", context), scale)
        except EarthGPTXError as exc:
            raise QgsProcessingException(str(exc)) from None
        fields = detection_fields()
        sink, out_id = self.parameterAsSink(parameters, "OUTPUT", context, fields, QgsWkbTypes.Type.Polygon, layer.crs())
        load_model(self, parameters, context, feedback)
        provider, info = layer.dataProvider().clone(), RasterInfo.of(layer)
        modality = modality_of(self, parameters, context)
        tokens = self.parameterAsInt(parameters, "MAX_NEW_TOKENS", context)
        quads, labels, ranks, answer_ids = [], [], [], []
        feedback.pushInfo(tr("{0} tiles of {1}x{2} pixels").format(len(grid), grid.out_width, grid.out_height))
        for t in grid:
            if feedback.isCanceled():
                break
            try:
                chip = read_chip(provider, view, info, t.plan, modality)
            except AllNodataError:
                continue
            try:
                answer = ask(AskRequest(chip.image, phrase, task=Task.GROUNDING, modality=chip.modality,
                                        max_new_tokens=tokens), feedback)
            except EarthGPTXError as exc:
                raise QgsProcessingException(str(exc)) from None
            answer_id = new_id()
            for rank, region in enumerate(answer.regions, start=1):
                if region.shape.kind is not PromptKind.BOX:
                    continue
                quads.append(chip.to_crs(region.shape.outline()))
                labels.append(region.label or phrase)
                ranks.append(rank)
                answer_ids.append(answer_id)
            feedback.setProgress(100.0 * (t.index + 1) / len(grid))
        keep = merge_detections(np.array(quads).reshape(-1, 4, 2), labels, [-r for r in ranks])
        for quad, label, rank, answer_id, kept in zip(quads, labels, ranks, answer_ids, keep):
            if kept:
                ring = [QgsPointXY(float(x), float(y)) for x, y in quad]
                sink.addFeature(feature(fields, QgsGeometry.fromPolygonXY([ring]), {
                    "answer_id": answer_id, "label": label, "rank": rank, "kind": "box"}),
                    QgsFeatureSink.Flag.FastInsert)
        feedback.pushInfo(tr("{0} boxes found, {1} after merging across tile borders").format(len(quads), int(keep.sum())))
        return {"OUTPUT": out_id}
