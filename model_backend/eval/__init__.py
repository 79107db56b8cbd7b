"""Evaluation harness: score any ``Engine`` on grounding, class grounding, scene classification and
region captioning data (``python -m model_backend.eval --help``; formats in ``datasets``)."""
