"""Processing: describe or classify a whole raster, or an extent of it, as one feature."""

from __future__ import annotations

from qgis.core import (QgsCoordinateReferenceSystem, QgsFeatureSink, QgsProcessingAlgorithm, QgsProcessingException,
                       QgsProcessingParameterExtent, QgsProcessingParameterFeatureSink,
                       QgsProcessingParameterRasterLayer, QgsProcessingParameterString, QgsWkbTypes)

from ...model_backend.core.chip_plan import plan_scene_chip
from ...model_backend.core.errors import EarthGPTXError
from ...model_backend.core.interface import AskRequest, Task
from ...model_backend.core.prompts import VisualPrompt
from ..raster_view import LayerView, RasterInfo, chip_shape_geometry, read_chip
from ..settings import PluginSettings
from .common import (answer_attributes, answer_fields, ask, extent_in_view, feature, load_model, modality_of,
                     model_parameters, task_parameter, tr)

TASKS = [Task.CAPTIONING, Task.SCENE_CLASSIFICATION, Task.VQA, Task.CHAT]


class DescribeScene(QgsProcessingAlgorithm):
    """A caption or a scene class for a raster or an extent; the chip's footprint is the feature."""

    def name(self) -> str:
        return "describescene"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return tr("Describe scene")

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return tr("Reads the whole raster, or the given extent, through its overviews within the chip pixel "
                  "budget and asks the model for a caption, a scene class or an answer to a question. The output "
                  "is one polygon, the chip's footprint, with the answer.")

    def createInstance(self):  # noqa: N802 - QGIS API
        return DescribeScene()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", tr("Raster")))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", tr("Extent (empty: the whole raster)"), optional=True))
        task_parameter(self, TASKS, Task.CAPTIONING)
        self.addParameter(QgsProcessingParameterString("INSTRUCTION", tr("Question or candidate classes"),
                                                       optional=True))
        model_parameters(self)
        self.addParameter(QgsProcessingParameterFeatureSink("OUTPUT", tr("Description")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        task = TASKS[self.parameterAsEnum(parameters, "TASK", context)]
        instruction = self.parameterAsString(parameters, "INSTRUCTION", context).strip()
        settings = PluginSettings.load()
        try:
            view = LayerView.of(layer)
            extent = extent_in_view(self, parameters, context, layer, view)
            plan = plan_scene_chip(view.width, view.height, max_pixels=settings.max_pixels, extent=extent)
        except EarthGPTXError as exc:
            raise QgsProcessingException(str(exc)) from None
        sink, out_id = self.parameterAsSink(parameters, "OUTPUT", context, answer_fields(), QgsWkbTypes.Type.Polygon,
                                            layer.crs())
        load_model(self, parameters, context, feedback)
        info = RasterInfo.of(layer)
        try:
            chip = read_chip(layer.dataProvider().clone(), view, info, plan, modality_of(self, parameters, context))
            request = AskRequest(chip.image, instruction, (), task, chip.modality,
                                 max_new_tokens=self.parameterAsInt(parameters, "MAX_NEW_TOKENS", context))
            feedback.setProgress(30)
            answer = ask(request, feedback)
        except EarthGPTXError as exc:
            raise QgsProcessingException(str(exc)) from None
        footprint = chip_shape_geometry(chip, VisualPrompt.box(0, 0, chip.width, chip.height), layer.crs(),
                                        QgsCoordinateReferenceSystem.fromWkt(view.crs.toWkt()))
        sink.addFeature(feature(answer_fields(), footprint, answer_attributes(answer, request, info.source,
                                                                              chip.resolution[0])),
                        QgsFeatureSink.Flag.FastInsert)
        feedback.pushInfo(answer.text)
        return {"OUTPUT": out_id}
