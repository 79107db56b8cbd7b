"""What the EarthGPT-X algorithms share: the model parameters, the shared worker, asking with
cancel from the feedback, and answers as feature attributes (DESIGN §4 schema)."""

from __future__ import annotations

import threading
from typing import Dict, List, Optional, Tuple

from qgis.core import (QgsFeature, QgsFeedback, QgsField, QgsFields, QgsProcessingException,
                       QgsProcessingParameterDefinition, QgsProcessingParameterEnum, QgsProcessingParameterNumber,
                       QgsProcessingParameterString)
from qgis.PyQt.QtCore import QCoreApplication, QVariant

from ...model_backend.core.errors import EarthGPTXError
from ...model_backend.core.interface import Answer, AskRequest, Task
from ...model_backend.core.normalise import Modality
from ...model_backend.core.schema import FIELDS, new_id, utc_now
from ..settings import PluginSettings
from ..worker_pool import POOL

MODALITIES = ["auto", Modality.OPTICAL.value, Modality.SAR.value, Modality.INFRARED.value]


def _field_types() -> Dict[str, object]:
    """Field types: QMetaType where QgsField takes it (QGIS >= 3.38, Qt6), QVariant on older QGIS."""
    try:
        from qgis.PyQt.QtCore import QMetaType

        QgsField("probe", QMetaType.Type.QString)
        return {"str": QMetaType.Type.QString, "int": QMetaType.Type.Int, "float": QMetaType.Type.Double}
    except TypeError:
        return {"str": QVariant.Type.String, "int": QVariant.Type.Int, "float": QVariant.Type.Double}


_QTYPES = _field_types()


def tr(text: str) -> str:
    return QCoreApplication.translate("EarthGPTX", text)


def model_parameters(alg, max_new_tokens: int = 512) -> None:
    """MODALITY, MODEL (empty: the plugin's settings) and MAX_NEW_TOKENS, the last two advanced."""
    alg.addParameter(QgsProcessingParameterEnum("MODALITY", tr("Modality"), options=MODALITIES, defaultValue=0))
    model = QgsProcessingParameterString("MODEL", tr("Model (empty: the plugin's settings)"), optional=True)
    tokens = QgsProcessingParameterNumber("MAX_NEW_TOKENS", tr("Maximum new tokens"),
                                          QgsProcessingParameterNumber.Type.Integer, max_new_tokens, False, 1, 32768)
    for p in (model, tokens):
        p.setFlags(p.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        alg.addParameter(p)


def modality_of(alg, parameters, context) -> Optional[Modality]:
    value = MODALITIES[alg.parameterAsEnum(parameters, "MODALITY", context)]
    return None if value == "auto" else Modality(value)


def load_model(alg, parameters, context, feedback: QgsFeedback) -> Dict[str, object]:
    """The shared worker with the model of the settings (or the MODEL parameter) loaded."""
    settings = PluginSettings.load()
    model = alg.parameterAsString(parameters, "MODEL", context).strip()
    if model:
        settings.model = model
    try:
        described = POOL.ensure(settings.worker_python, settings.load_request(), feedback.pushInfo)
    except EarthGPTXError as exc:
        raise QgsProcessingException(str(exc)) from None
    feedback.pushInfo(tr("Model: {0} on {1} ({2})").format(described.get("model_id"), described.get("device"),
                                                           described.get("quantization")))
    return described


def ask(request: AskRequest, feedback: QgsFeedback) -> Answer:
    """Ask the shared worker; cancelling the algorithm stops the generation."""
    stop = threading.Event()
    feedback.canceled.connect(stop.set)
    try:
        return POOL.client.ask(request, cancel=stop)
    finally:
        feedback.canceled.disconnect(stop.set)


def answer_fields(extra: Optional[QgsFields] = None) -> QgsFields:
    """The schema's ``answers`` fields, after ``extra`` (e.g. the input feature's own fields)."""
    fields = QgsFields(extra) if extra is not None else QgsFields()
    for name, kind in FIELDS["answers"]:
        if fields.indexOf(name) < 0:
            fields.append(QgsField(name, _QTYPES[kind]))
    return fields


def detection_fields() -> QgsFields:
    fields = QgsFields()
    for name, kind in FIELDS["detections"]:
        fields.append(QgsField(name, _QTYPES[kind]))
    return fields


def mask_fields() -> QgsFields:
    fields = QgsFields()
    for name, kind in FIELDS["masks"]:
        fields.append(QgsField(name, _QTYPES[kind]))
    return fields


def answer_attributes(answer: Answer, request: AskRequest, source: str, resolution: float) -> Dict[str, object]:
    meta = answer.meta
    return {"answer_id": new_id(), "question_id": new_id(), "question": request.instruction, "answer": answer.text,
            "task": request.task.value, "modality": request.modality.value, "model": meta.model_id,
            "backend": meta.backend, "quantization": meta.quantization, "raster_source": source,
            "chip_resolution": float(resolution), "finish_reason": meta.finish_reason, "created": utc_now()}


def feature(fields: QgsFields, geometry, values: Dict[str, object], base: Optional[List[object]] = None) -> QgsFeature:
    f = QgsFeature(fields)
    f.setGeometry(geometry)
    attrs = list(base or []) + [None] * (fields.count() - len(base or []))
    for name, value in values.items():
        attrs[fields.indexOf(name)] = value
    f.setAttributes(attrs)
    return f


def extent_in_view(alg, parameters, context, layer, view) -> Optional[Tuple[float, float, float, float]]:
    """The optional EXTENT parameter as ``(minx, miny, maxx, maxy)`` in the layer's view pixels, or None."""
    if not parameters.get("EXTENT"):
        return None
    rect = alg.parameterAsExtent(parameters, "EXTENT", context, layer.crs())
    cols, rows = view.affine.inverse().apply([rect.xMinimum(), rect.xMaximum()], [rect.yMaximum(), rect.yMinimum()])
    return float(min(cols)), float(min(rows)), float(max(cols)), float(max(rows))


def task_parameter(alg, tasks: List[Task], default: Task) -> None:
    alg.addParameter(QgsProcessingParameterEnum("TASK", tr("Task"), options=[t.value for t in tasks],
                                                defaultValue=tasks.index(default)))
