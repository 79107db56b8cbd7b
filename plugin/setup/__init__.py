"""The worker's Python environment, by job (standard library only below ``runner`` and ``dialog``, so the
plan is tested without QGIS and never needs torch in QGIS's Python; DESIGN §3, §7):

- ``requirements``: what gets installed (the one list of pins; tests check it against requirements.txt);
- ``torch_choice``: the NVIDIA driver and GPUs found, and the PyTorch build that fits them;
- ``plan``: where the environment goes, which base Python makes it, the ordered commands;
- ``runner``: runs those commands with QProcess, streaming their output;
- ``dialog``: the "Model backend" window; its Diagnostics tab shows the report the worker environment
  gives of itself (``python -m model_backend.commands.diagnostics``).
"""


def QT_TRANSLATE_NOOP(context: str, text: str) -> str:  # noqa: N802 - the name pylupdate looks for
    """Marks ``text`` for translation in ``context``; the dialog translates it when shown."""
    return text
