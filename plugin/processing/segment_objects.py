"""Processing: outlines (segmentation masks as polygons) of prompt features over a raster, or of every
instance of a phrase (SAM 3), through the shared worker's segmenter."""

from __future__ import annotations

from qgis.core import (QgsCoordinateReferenceSystem, QgsFeatureSink, QgsProcessing, QgsProcessingAlgorithm,
                       QgsProcessingException, QgsProcessingParameterDefinition, QgsProcessingParameterFeatureSink,
                       QgsProcessingParameterFeatureSource, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterLayer, QgsProcessingParameterString, QgsWkbTypes)

from ...model_backend.core.errors import EarthGPTXError
from ...model_backend.core.prompts import PromptKind
from ...model_backend.core.schema import new_id
from ..raster_view import (DrawnPrompt, LayerView, RasterInfo, chip_polygons_geometry, ground_area_m2, plan_chip,
                           read_chip, view_prompts)
from ..settings import PluginSettings
from ..worker_pool import POOL
from .common import feature, mask_fields, tr

KINDS = {QgsWkbTypes.GeometryType.PointGeometry: PromptKind.POINT,
         QgsWkbTypes.GeometryType.PolygonGeometry: PromptKind.POLYGON}


class SegmentObjects(QgsProcessingAlgorithm):
    """Each point or polygon feature is outlined on a chip read around it; a phrase alone (SAM 3) is
    outlined on the whole raster's chip."""

    def name(self) -> str:
        return "segmentobjects"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return tr("Segment objects")

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return tr("Outlines what each point or polygon of a layer points at on a raster (SAM 2.1 by default: a "
                  "point, or a region's box with points inside it), or with a SAM 3 segmenter every instance of a "
                  "phrase. Outlines follow the raster's pixel grid exactly (Simplify 0) and are written in the "
                  "raster's CRS with their score and ground area in m².")

    def createInstance(self):  # noqa: N802 - QGIS API
        return SegmentObjects()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", tr("Raster")))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "PROMPTS", tr("Points or polygons to outline"), [QgsProcessing.TypeVectorPoint,
                                                              QgsProcessing.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterString("PHRASE", tr("Phrase to outline (SAM 3)"), optional=True))
        self.addParameter(QgsProcessingParameterNumber("SIMPLIFY", tr("Simplify (chip pixels; 0: exact)"),
                                                       QgsProcessingParameterNumber.Double, 0.0, False, 0.0))
        self.addParameter(QgsProcessingParameterNumber("MIN_AREA", tr("Smallest part kept (chip pixels)"),
                                                       QgsProcessingParameterNumber.Double, 0.0, False, 0.0))
        segmenter = QgsProcessingParameterString("SEGMENTER", tr("Segmenter (empty: the plugin's settings)"),
                                                 optional=True)
        segmenter.setFlags(segmenter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(segmenter)
        self.addParameter(QgsProcessingParameterFeatureSink("OUTPUT", tr("Outlines"),
                                                            QgsProcessing.TypeVectorPolygon))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        source = self.parameterAsSource(parameters, "PROMPTS", context)
        phrase = self.parameterAsString(parameters, "PHRASE", context).strip()
        if source is None and not phrase:
            raise QgsProcessingException(tr("Nothing to outline: give a layer of points or polygons, or a phrase "
                                            "with a SAM 3 segmenter"))
        settings = PluginSettings.load()
        fields = {**settings.segment_request(), "simplify_px": self.parameterAsDouble(parameters, "SIMPLIFY", context),
                  "min_area_px": self.parameterAsDouble(parameters, "MIN_AREA", context)}
        segmenter = self.parameterAsString(parameters, "SEGMENTER", context).strip()
        if segmenter:
            fields["segmenter"] = segmenter
        try:
            view = LayerView.of(layer)
        except EarthGPTXError as exc:
            raise QgsProcessingException(str(exc)) from None
        sink, out_id = self.parameterAsSink(parameters, "OUTPUT", context, mask_fields(),
                                            QgsWkbTypes.Type.MultiPolygon, layer.crs())
        try:
            client = POOL.started(settings.worker_python, feedback.pushInfo)
        except EarthGPTXError as exc:
            raise QgsProcessingException(str(exc)) from None
        info, provider = RasterInfo.of(layer), layer.dataProvider().clone()
        chip_crs = QgsCoordinateReferenceSystem.fromWkt(view.crs.toWkt())
        jobs = []   # (prompt index, drawn prompt or None)
        if source is not None:
            for f in source.getFeatures():
                geom = f.geometry()
                if geom.isEmpty() or geom.type() not in KINDS:
                    feedback.reportError(tr("feature {0}: not a point or a polygon, skipped").format(f.id()))
                    continue
                if geom.isMultipart():
                    geom = max(geom.asGeometryCollection(), key=lambda g: g.area())
                jobs.append((int(f.id()), DrawnPrompt(KINDS[geom.type()], 1, geom, source.sourceCrs())))
        else:
            jobs.append((None, None))
        question_id, written = new_id(), 0
        for k, (index, drawn) in enumerate(jobs):
            if feedback.isCanceled():
                break
            try:
                prompts, _ = view_prompts(view, [drawn]) if drawn else ([], False)
                plan = plan_chip(view, prompts, settings.chip_settings())
                chip = read_chip(provider, view, info, plan)
                chip_prompts = [p.transformed(plan.view_to_chip().apply) for p in prompts]
                reply = client.segment(chip.image, prompts=chip_prompts, phrase=phrase or None, label=phrase,
                                       on_progress=feedback.pushInfo, **fields)
            except EarthGPTXError as exc:
                if drawn is None:
                    raise QgsProcessingException(str(exc)) from None
                feedback.reportError(tr("feature {0}: {1}").format(index, exc))
                continue
            for m in reply["masks"]:
                geometry = chip_polygons_geometry(chip, m["polygons"], layer.crs(), chip_crs)
                phrase_instance = m["kind"] == "phrase"
                sink.addFeature(feature(mask_fields(), geometry, {
                    "question_id": question_id, "label": m.get("label") or m["kind"], "score": float(m["score"]),
                    "area_m2": ground_area_m2(geometry, layer.crs()),
                    "prompt_index": None if phrase_instance else index, "rank": m["index"] if phrase_instance else None,
                    "prompt_kind": m["kind"], "model": reply["segmenter"].get("model_id")}),
                    QgsFeatureSink.Flag.FastInsert)
                written += 1
            feedback.setProgress(100.0 * (k + 1) / len(jobs))
        feedback.pushInfo(tr("{0} outline(s) written").format(written))
        return {"OUTPUT": out_id}
