"""The plugin's settings, typed, in one place, stored in QgsSettings under ``earthgptx/``.

The token of a remote endpoint is not stored here: it lives in the QGIS authentication database
(encrypted with the user's master password); the settings keep only its configuration id.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, fields
from typing import Optional

from qgis.core import QgsApplication, QgsAuthMethodConfig, QgsSettings

from ..model_backend.core.chip_plan import ChipSettings
from ..model_backend.core.engine_options import DEFAULT_MODEL, DEFAULT_SEGMENTER

PREFIX = "earthgptx/"


def default_worker_python() -> str:
    """The worker environment's Python made by the backend setup dialog, when it exists."""
    base = os.path.join(QgsApplication.qgisSettingsDirPath(), "earthgptx", "worker-venv")
    path = os.path.join(base, "Scripts", "python.exe") if sys.platform == "win32" else os.path.join(base, "bin", "python")
    return path


@dataclass
class PluginSettings:
    """backend: ``local`` (worker process) or ``openai`` (remote endpoint). model: hub id or folder (local),
    or the served model name (openai). family: coordinate convention of a remote model. device,
    quantization: loading policy of the local worker. max_pixels, context, min_size: chip planning.
    worker_python: interpreter of the worker's environment. auth_config: id of the endpoint's token in
    the QGIS authentication database (empty: no token). timeout: seconds a remote server may take to
    connect, to send the first piece of an answer and between two pieces. thinking: let a thinking model
    think before it answers (its thoughts are kept apart). concurrency: tile questions a search keeps in
    flight against a server; batch_size: tiles a local model is asked in one generate (0: as many as its
    free memory holds). segmenter: the outlining model (SAM 2.1, SAM, SAM 3; hub id or folder), run by
    the same worker on the local device. session_folder: where the session GeoPackage of a project not
    saved yet goes (empty: ``<QGIS settings>/earthgptx/sessions``; a saved project's is beside it)."""

    backend: str = "local"
    model: str = DEFAULT_MODEL
    endpoint: str = ""
    family: str = "qwen3_vl"
    auth_config: str = ""
    timeout: float = 120.0
    thinking: bool = False
    device: str = "auto"
    quantization: str = "auto"
    max_new_tokens: int = 512
    max_pixels: int = ChipSettings.max_pixels
    context: float = ChipSettings.context
    min_size: int = ChipSettings.min_size
    concurrency: int = 4
    batch_size: int = 1
    segmenter: str = DEFAULT_SEGMENTER
    session_folder: str = ""
    worker_python: str = ""

    @classmethod
    def load(cls) -> "PluginSettings":
        s = QgsSettings()
        values = {}
        for f in fields(cls):
            default = f.default
            raw = s.value(PREFIX + f.name, default)
            if isinstance(default, bool):  # QSettings gives "true"/"false" back from its ini files
                values[f.name] = raw if isinstance(raw, bool) else str(raw).lower() in ("true", "1")
                continue
            try:
                values[f.name] = type(default)(raw) if raw is not None else default
            except (TypeError, ValueError):
                values[f.name] = default
        out = cls(**values)
        if not out.worker_python:
            out.worker_python = default_worker_python()
        return out

    def save(self) -> None:
        s = QgsSettings()
        for f in fields(self):
            s.setValue(PREFIX + f.name, getattr(self, f.name))

    def chip_settings(self) -> ChipSettings:
        return ChipSettings(context=self.context, max_pixels=self.max_pixels, min_size=self.min_size)

    def find_options(self) -> dict:
        """The worker's ``find`` fields for these settings: questions in flight (a server) or tiles per
        generate (a local model; ``auto`` for 0)."""
        if self.backend == "openai":
            return {"concurrency": max(1, self.concurrency), "batch_size": 1}
        return {"concurrency": 1, "batch_size": self.batch_size if self.batch_size > 0 else "auto"}

    def segment_request(self) -> dict:
        """The worker's ``segment`` fields naming the segmenter (PROTOCOL.md)."""
        return {"segmenter": self.segmenter or DEFAULT_SEGMENTER,
                "device": self.device if self.backend == "local" else "auto"}

    def token(self) -> Optional[str]:
        """The endpoint's token from the QGIS authentication database (stored as a Basic password)."""
        if not self.auth_config:
            return None
        config = QgsAuthMethodConfig()
        QgsApplication.authManager().loadAuthenticationConfig(self.auth_config, config, True)
        return config.config("password") or None

    def load_request(self) -> dict:
        """The worker's ``load`` request fields for these settings (PROTOCOL.md)."""
        if self.backend == "openai":
            return {"backend": "openai", "endpoint": self.endpoint, "model": self.model, "family": self.family,
                    "api_key": self.token(), "timeout": self.timeout, "thinking": self.thinking}
        return {"backend": "local", "model": self.model, "device": self.device, "quantization": self.quantization,
                "thinking": self.thinking}
