"""Configuration of the native EarthGPT-X (DESIGN §2, §6).

The model is a composite: two visual encoders (DINOv2 and ConvNeXt, transformers' own classes), a
spatial-aware encoder (a small randomly initialised ViT over the visual prompts rendered as an image),
a hybrid fusion, a projector and any causal LM. Their sizes live here:

- ``dinov2_config``: a ``Dinov2Config`` (reportedly ViT-L/14 in the paper).
- ``convnext_config``: a ``ConvNextConfig`` (the paper uses CLIP-ConvNeXt; its trunk is a ConvNeXt).
- ``spatial_config``: dict of the spatial-aware encoder: ``image_size`` (must equal ``image_size``),
  ``patch_size``, ``depth``, ``width``, ``heads``, ``mlp_ratio``, ``max_prompts`` (input channels: one
  binary channel per prompt index 1..max_prompts).
- ``hybrid_fusion_config``: dict of the hybrid fusion: ``width``, ``heads``, ``layers``, ``mlp_ratio``.
- ``text_config``: any causal LM config (Qwen2, Qwen3, LLaMA...; default ``qwen2``).
- ``image_size``: side of the square the padded chip is resized to (both encoders read it).
- ``image_token_id``: id of the image placeholder token, expanded by the processor to
  ``num_visual_tokens`` copies (property, from the encoders' geometry).
"""

from __future__ import annotations

from transformers import AutoConfig, ConvNextConfig, Dinov2Config, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec

DEFAULT_SPATIAL = {"image_size": 448, "patch_size": 16, "depth": 4, "width": 256, "heads": 4, "mlp_ratio": 4.0,
                   "max_prompts": 8}
DEFAULT_FUSION = {"width": 1024, "heads": 16, "layers": 2, "mlp_ratio": 4.0}


class EarthGPTXConfig(PretrainedConfig):
    model_type = "earthgptx"

    sub_configs_defaults = {
        "dinov2_config": SubConfigSpec(config_class=Dinov2Config,
                                       init_kwargs={"image_size": 448, "patch_size": 14, "hidden_size": 1024,
                                                    "num_hidden_layers": 24, "num_attention_heads": 16}),
        "convnext_config": SubConfigSpec(config_class=ConvNextConfig,
                                         init_kwargs={"image_size": 448, "hidden_sizes": [192, 384, 768, 1536],
                                                      "depths": [3, 3, 27, 3]}),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="qwen2"),
    }

    dinov2_config: dict | PretrainedConfig | None = None
    convnext_config: dict | PretrainedConfig | None = None
    text_config: dict | PretrainedConfig | None = None
    spatial_config: dict | None = None
    hybrid_fusion_config: dict | None = None
    image_size: int = 448
    image_token_id: int = 0
    projector_hidden_act: str = "gelu"
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.spatial_config = {**DEFAULT_SPATIAL, **(self.spatial_config or {})}
        self.hybrid_fusion_config = {**DEFAULT_FUSION, **(self.hybrid_fusion_config or {})}
        if self.spatial_config["image_size"] != self.image_size:
            raise ValueError(f"spatial_config image_size {self.spatial_config['image_size']} must equal "
                             f"image_size {self.image_size}")
        for name, patch in (("dinov2", self.dinov2_config.patch_size), ("spatial", self.spatial_config["patch_size"]),
                            ("convnext", 32)):
            if self.image_size % patch:
                raise ValueError(f"image_size {self.image_size} must be a multiple of the {name} stride {patch}")

    # -- geometry ---------------------------------------------------------------------------------
    @property
    def dinov2_tokens(self) -> int:
        """Patch tokens of DINOv2 (the CLS token is dropped): (image_size / patch_size) ** 2."""
        return (self.image_size // self.dinov2_config.patch_size) ** 2

    @property
    def convnext_tokens(self) -> int:
        """Cells of ConvNeXt's last feature map (stride 4 * 2 ** (stages - 1), 32 for 4 stages)."""
        stride = self.convnext_config.patch_size * 2 ** (self.convnext_config.num_stages - 1)
        return (self.image_size // stride) ** 2

    @property
    def num_visual_tokens(self) -> int:
        """Tokens one image takes in the LLM: DINOv2 patch tokens then ConvNeXt cells."""
        return self.dinov2_tokens + self.convnext_tokens

    @property
    def prompt_tokens(self) -> int:
        return (self.image_size // self.spatial_config["patch_size"]) ** 2
