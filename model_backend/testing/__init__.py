"""Test doubles for the model backend (heavy: torch, transformers, tokenizers).

``tiny_model.build_tiny_model`` writes a tiny, randomly initialised Qwen3-VL or Qwen2.5-VL checkpoint
(config, weights, tokenizer, image/video processors, chat template) that loads through the real
``from_pretrained`` path with no network access. Nothing here is imported by the pure modules.
"""

__all__ = ["build_tiny_model", "FAMILIES"]


def __getattr__(name):
    # Lazy, so that importing ``model_backend.testing`` does not pull in torch/transformers.
    if name in __all__:
        from . import tiny_model

        return getattr(tiny_model, name)
    raise AttributeError(name)
