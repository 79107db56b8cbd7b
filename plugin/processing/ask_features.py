"""Processing: ask the model about each feature of a vector layer over a raster."""

from __future__ import annotations

from qgis.core import (QgsCoordinateReferenceSystem, QgsFeatureRequest, QgsFeatureSink, QgsGeometry, QgsProcessing,
                       QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingParameterFeatureSink,
                       QgsProcessingParameterFeatureSource, QgsProcessingParameterRasterLayer,
                       QgsProcessingParameterString, QgsWkbTypes)

from ...model_backend.core.errors import EarthGPTXError
from ...model_backend.core.interface import AskRequest, Task, check_question
from ...model_backend.core.prompts import PromptKind
from ..raster_view import DrawnPrompt, LayerView, RasterInfo, chip_shape_geometry, plan_chip, read_chip, view_prompts
from ..settings import PluginSettings
from .common import (answer_attributes, answer_fields, ask, detection_fields, feature, load_model, modality_of,
                     model_parameters, task_parameter, tr)

TASKS = [Task.REGION_CAPTIONING, Task.REFERRING_CLASSIFICATION, Task.VQA, Task.GROUNDING, Task.CHAT]
KINDS = {QgsWkbTypes.GeometryType.PointGeometry: PromptKind.POINT, QgsWkbTypes.GeometryType.LineGeometry: PromptKind.SCRIBBLE,
         QgsWkbTypes.GeometryType.PolygonGeometry: PromptKind.POLYGON}


class AskAboutFeatures(QgsProcessingAlgorithm):
    """Each feature (point, line or polygon) is a visual prompt; its answer joins its attributes."""

    def name(self) -> str:
        return "askaboutfeatures"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return tr("Ask about features")

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return tr("Asks the EarthGPT-X model about each feature of a layer drawn over a raster: points, lines "
                  "(scribbles) and polygons become visual prompts. The output has each feature with its answer; "
                  "grounded boxes, if any, go to the detections output. Uses the plugin's model settings.")

    def createInstance(self):  # noqa: N802 - QGIS API
        return AskAboutFeatures()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", tr("Raster")))
        self.addParameter(QgsProcessingParameterFeatureSource("FEATURES", tr("Features to ask about"),
                                                              [QgsProcessing.SourceType.TypeVectorAnyGeometry]))
        self.addParameter(QgsProcessingParameterString("INSTRUCTION", tr("Question"), optional=True))
        task_parameter(self, TASKS, Task.REGION_CAPTIONING)
        model_parameters(self)
        self.addParameter(QgsProcessingParameterFeatureSink("OUTPUT", tr("Answers")))
        self.addParameter(QgsProcessingParameterFeatureSink("DETECTIONS", tr("Detections"),
                                                            QgsProcessing.SourceType.TypeVectorPolygon, optional=True,
                                                            createByDefault=False))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        source = self.parameterAsSource(parameters, "FEATURES", context)
        instruction = self.parameterAsString(parameters, "INSTRUCTION", context).strip()
        task = TASKS[self.parameterAsEnum(parameters, "TASK", context)]
        try:
            check_question(task, instruction, 1)
            view = LayerView.of(layer)
        except EarthGPTXError as exc:
            raise QgsProcessingException(str(exc)) from None
        fields = answer_fields(source.fields())
        geometry_type = _one_geometry_type(source)
        if geometry_type == QgsWkbTypes.Type.Unknown and self.parameterAsOutputLayer(
                parameters, "OUTPUT", context).lower().endswith(".shp"):
            raise QgsProcessingException(tr("The features mix points, lines and polygons, and a shapefile holds one "
                                            "kind: write the answers to a GeoPackage (.gpkg)"))
        sink, out_id = self.parameterAsSink(parameters, "OUTPUT", context, fields, geometry_type, source.sourceCrs())
        det_sink, det_id = self.parameterAsSink(parameters, "DETECTIONS", context, detection_fields(),
                                                QgsWkbTypes.Type.Polygon, source.sourceCrs())
        load_model(self, parameters, context, feedback)
        info, provider = RasterInfo.of(layer), layer.dataProvider().clone()
        settings = PluginSettings.load()
        modality = modality_of(self, parameters, context)
        tokens = self.parameterAsInt(parameters, "MAX_NEW_TOKENS", context)
        chip_crs = QgsCoordinateReferenceSystem.fromWkt(view.crs.toWkt())
        total = max(1, source.featureCount())
        for k, f in enumerate(source.getFeatures()):
            if feedback.isCanceled():
                break
            geom = f.geometry()
            if geom.isEmpty() or geom.type() not in KINDS:
                feedback.reportError(tr("feature {0}: no usable geometry, skipped").format(f.id()))
                continue
            if geom.isMultipart():
                geom = max(geom.asGeometryCollection(), key=lambda g: g.area() + g.length())
            try:
                prompts, _ = view_prompts(view, [DrawnPrompt(KINDS[geom.type()], 1, geom, source.sourceCrs())])
                plan = plan_chip(view, prompts, settings.chip_settings())
                chip = read_chip(provider, view, info, plan, modality)
                request = AskRequest(chip.image, instruction, tuple(p.transformed(plan.view_to_chip().apply)
                                                                    for p in prompts), task, chip.modality,
                                     max_new_tokens=tokens)
                answer = ask(request, feedback)
            except EarthGPTXError as exc:
                feedback.reportError(tr("feature {0}: {1}").format(f.id(), exc))
                continue
            values = answer_attributes(answer, request, info.source, chip.resolution[0])
            out_geom = QgsGeometry(f.geometry())
            if QgsWkbTypes.isMultiType(geometry_type):
                out_geom.convertToMultiType()
            sink.addFeature(feature(fields, out_geom, values, f.attributes()), QgsFeatureSink.Flag.FastInsert)
            if det_sink is not None:
                for rank, region in enumerate(answer.regions, start=1):
                    if region.shape.kind is PromptKind.POINT:
                        feedback.pushInfo(tr("feature {0}: a point answer is not a box, not written to detections")
                                          .format(f.id()))
                        continue
                    g = chip_shape_geometry(chip, region.shape, source.sourceCrs(), chip_crs)
                    det_sink.addFeature(feature(detection_fields(), g, {
                        "answer_id": values["answer_id"], "label": region.label, "rank": rank,
                        "kind": region.shape.kind.value}), QgsFeatureSink.Flag.FastInsert)
            feedback.setProgress(100.0 * (k + 1) / total)
        return {"OUTPUT": out_id, "DETECTIONS": det_id}


def _one_geometry_type(source) -> int:
    """The geometry type of every feature of ``source`` (what the layer says is not always what its
    features are: a GeoJSON file of points and polygons says Point); Unknown (GeoPackage GEOMETRY)
    when they differ, the multi type when single and multi parts of one kind mix."""
    types = {f.geometry().wkbType() for f in source.getFeatures(QgsFeatureRequest().setNoAttributes())
             if not f.geometry().isEmpty()}
    if len(types) <= 1:
        return types.pop() if types else source.wkbType()
    multi = {QgsWkbTypes.multiType(t) for t in types}
    return multi.pop() if len(multi) == 1 else QgsWkbTypes.Type.Unknown
