"""The evaluation report: a one-row Markdown table per run and the JSON file (written atomically)."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Dict, List

from ..core.errors import InvalidArgumentError

COLUMNS = ("task", "model", "backend", "examples", "missing")


def markdown_table(report: Dict[str, object]) -> str:
    """``| task | model | backend | examples | missing | <metrics> |`` with the run's one row."""
    metrics: Dict[str, float] = report["metrics"]
    model: Dict[str, object] = report["model"]
    cells: List[str] = [str(report["task"]), str(model.get("model_id", "")), str(model.get("backend", "")),
                        str(report["examples"]), str(report["missing"])]
    cells += [f"{v:.3f}" if isinstance(v, float) else str(v) for v in metrics.values()]
    header = list(COLUMNS) + list(metrics)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), "| " + " | ".join(cells) + " |"]
    return "\n".join(lines) + "\n"


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a failed write leaves any existing file as it was."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(suffix=".tmp", dir=folder)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot write {path}: {exc}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: str, report: Dict[str, object]) -> None:
    write_text(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
