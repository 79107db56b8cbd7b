"""The native EarthGPT-X model (DESIGN §2, §6): mixed visual encoders, spatial-aware encoder, hybrid
fusion, projector and a causal LM, as a transformers ``PreTrainedModel`` with ``generate``.

Shapes (B batch, S = ``config.image_size``, P = ``spatial_config["max_prompts"]``, L sequence length):

- ``pixel_values``: (B, 3, S, S) float, the chip padded to a square (centred) then resized to S x S and
  normalised by the processor. Image space: pixel (u, v) of this square covers square-unit coordinates
  [u / S, (u + 1) / S] x [v / S, (v + 1) / S] (``Convention.SQUARE_UNIT``).
- ``prompt_masks``: (B, P, S, S) float in {0, 1}: channel k is 1 where prompt index k + 1 covers the pixel
  (``marks.prompt_mask`` rendered in the same padded/resized geometry). All zeros: no visual prompt.
- ``input_ids``: (B, L) with exactly ``config.num_visual_tokens`` ``image_token_id`` per row (or none,
  for text-only rows when ``pixel_values`` is None).
- visual tokens: DINOv2 patch tokens (B, (S/p)^2, D_dino) and ConvNeXt's last map flattened row-major
  (B, (S/32)^2, D_conv), each projected to the fusion width F and concatenated -> (B, N, F).
- prompt tokens: the spatial-aware ViT over ``prompt_masks`` -> (B, (S/p_s)^2, W) projected to F.
- fusion output (B, N, F) -> projector -> (B, N, H_text) replacing the image placeholder embeddings.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from transformers import AutoModelForCausalLM, ConvNextModel, Dinov2Model, GenerationMixin, PreTrainedModel
from transformers import initialization as hf_init
from transformers.activations import ACT2FN

from .configuration import EarthGPTXConfig

#: module names kept unquantized (bf16) when the LLM is loaded in 4-bit (``llm_int8_skip_modules``)
SKIP_QUANTIZATION = ["dinov2", "convnext", "image_proj", "prompt_encoder", "fusion", "projector", "lm_head"]


class _MLP(nn.Module):
    def __init__(self, width: int, ratio: float):
        super().__init__()
        hidden = int(width * ratio)
        self.fc1, self.act, self.fc2 = nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    """Pre-norm ViT block: x + MHSA(LN(x)), x + MLP(LN(x))."""

    def __init__(self, width: int, heads: int, ratio: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = _MLP(width, ratio)

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class SpatialAwareEncoder(nn.Module):
    """Randomly initialised ViT over the visual prompts rendered as an image.

    (B, P, S, S) prompt channels -> (B, (S / patch)^2, width) prompt tokens. A learned "no prompt"
    embedding is added where a patch holds no prompt pixel, so an empty mask is not a zero input."""

    def __init__(self, cfg: dict):
        super().__init__()
        p, w = cfg["patch_size"], cfg["width"]
        self.patch = nn.Conv2d(cfg["max_prompts"], w, kernel_size=p, stride=p)
        self.pos = nn.Parameter(torch.zeros(1, (cfg["image_size"] // p) ** 2, w))
        self.blocks = nn.ModuleList([_Block(w, cfg["heads"], cfg["mlp_ratio"]) for _ in range(cfg["depth"])])
        self.norm = nn.LayerNorm(w)

    def forward(self, prompt_masks: torch.Tensor) -> torch.Tensor:
        x = self.patch(prompt_masks).flatten(2).transpose(1, 2) + self.pos
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class HybridFusionLayer(nn.Module):
    """One fusion layer (EarthGPT-X's hybrid fusion), image tokens x (B, N, F), prompt tokens q (B, M, F):

    1. x = x + SelfAttn(LN(x))           self-attention over image tokens
    2. q = q + FFN(LN(q))                feed-forward over prompt tokens
    3. x = x + CrossAttn(LN(x), LN(q))   image tokens attend to prompt tokens
    4. x = x + SelfAttn2(LN(x))          self-attention again
    5. x = x + FFN(LN(x))
    """

    def __init__(self, width: int, heads: int, ratio: float):
        super().__init__()
        self.norm_sa1, self.norm_q, self.norm_xa_x, self.norm_xa_q = (nn.LayerNorm(width) for _ in range(4))
        self.norm_sa2, self.norm_ffn = nn.LayerNorm(width), nn.LayerNorm(width)
        self.self_attn1 = nn.MultiheadAttention(width, heads, batch_first=True)
        self.prompt_ffn = _MLP(width, ratio)
        self.cross_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.self_attn2 = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ffn = _MLP(width, ratio)

    def forward(self, x, q):
        h = self.norm_sa1(x)
        x = x + self.self_attn1(h, h, h, need_weights=False)[0]
        q = q + self.prompt_ffn(self.norm_q(q))
        kv = self.norm_xa_q(q)
        x = x + self.cross_attn(self.norm_xa_x(x), kv, kv, need_weights=False)[0]
        h = self.norm_sa2(x)
        x = x + self.self_attn2(h, h, h, need_weights=False)[0]
        return x + self.ffn(self.norm_ffn(x)), q


class HybridFusion(nn.Module):
    def __init__(self, config: EarthGPTXConfig):
        super().__init__()
        f = config.hybrid_fusion_config
        self.layers = nn.ModuleList([HybridFusionLayer(f["width"], f["heads"], f["mlp_ratio"])
                                     for _ in range(f["layers"])])
        self.norm = nn.LayerNorm(f["width"])

    def forward(self, x, q):
        for layer in self.layers:
            x, q = layer(x, q)
        return self.norm(x)


class EarthGPTXPreTrainedModel(PreTrainedModel):
    config_class = EarthGPTXConfig
    config: EarthGPTXConfig
    base_model_prefix = "model"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["HybridFusionLayer"]

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, SpatialAwareEncoder):
            hf_init.trunc_normal_(module.pos, std=0.02)


class EarthGPTXForConditionalGeneration(EarthGPTXPreTrainedModel, GenerationMixin):
    """EarthGPT-X: ``forward(input_ids, pixel_values, prompt_masks, labels=...)`` and ``generate``."""

    _keep_in_fp32_modules = []

    def __init__(self, config: EarthGPTXConfig):
        super().__init__(config)
        fw = config.hybrid_fusion_config["width"]
        text_hidden = config.text_config.hidden_size
        self.dinov2 = Dinov2Model(config.dinov2_config)
        self.convnext = ConvNextModel(config.convnext_config)
        self.image_proj = nn.ModuleDict({
            "dinov2": nn.Sequential(nn.Linear(config.dinov2_config.hidden_size, fw), nn.LayerNorm(fw)),
            "convnext": nn.Sequential(nn.Linear(config.convnext_config.hidden_sizes[-1], fw), nn.LayerNorm(fw)),
        })
        self.source_embed = nn.Parameter(torch.zeros(2, fw))  # which encoder a token came from
        self.prompt_encoder = SpatialAwareEncoder(config.spatial_config)
        self.prompt_proj = nn.Linear(config.spatial_config["width"], fw)
        self.fusion = HybridFusion(config)
        self.projector = nn.Sequential(nn.Linear(fw, text_hidden), ACT2FN[config.projector_hidden_act],
                                       nn.Linear(text_hidden, text_hidden))
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.post_init()

    # -- plumbing ---------------------------------------------------------------------------------
    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.language_model.get_output_embeddings()

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None):
        """Activation checkpointing in the LLM and the two visual encoders (the fusion is small)."""
        for module in (self.language_model, self.dinov2, self.convnext):
            if getattr(module, "supports_gradient_checkpointing", False):
                module.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)

    # -- vision -----------------------------------------------------------------------------------
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> mixed visual tokens (B, N, F): DINOv2 patch tokens, then ConvNeXt cells."""
        dtype = self.image_proj["dinov2"][0].weight.dtype
        pixel_values = pixel_values.to(dtype)
        dino = self.dinov2(pixel_values=pixel_values).last_hidden_state[:, 1:]      # (B, (S/p)^2, D_dino)
        conv = self.convnext(pixel_values=pixel_values).last_hidden_state           # (B, D_conv, S/32, S/32)
        conv = conv.flatten(2).transpose(1, 2)                                      # (B, (S/32)^2, D_conv)
        dino = self.image_proj["dinov2"](dino) + self.source_embed[0]
        conv = self.image_proj["convnext"](conv) + self.source_embed[1]
        return torch.cat([dino, conv], dim=1)

    def fused_visual_tokens(self, pixel_values: torch.Tensor, prompt_masks: Optional[torch.Tensor] = None):
        """(B, 3, S, S), (B, P, S, S) -> fused visual tokens in the LLM's embedding space (B, N, H_text)."""
        image_tokens = self.encode_images(pixel_values)
        b = pixel_values.shape[0]
        s, p = self.config.image_size, self.config.spatial_config["max_prompts"]
        if prompt_masks is None:
            prompt_masks = torch.zeros(b, p, s, s)
        prompt_masks = prompt_masks.to(device=image_tokens.device, dtype=image_tokens.dtype)
        prompt_tokens = self.prompt_proj(self.prompt_encoder(prompt_masks))
        return self.projector(self.fusion(image_tokens, prompt_tokens))

    def embed(self, input_ids: torch.Tensor, pixel_values=None, prompt_masks=None) -> torch.Tensor:
        """Token embeddings (B, L, H_text) with the image placeholders replaced by the fused visual tokens."""
        embeds = self.get_input_embeddings()(input_ids)
        if pixel_values is None:
            return embeds
        visual = self.fused_visual_tokens(pixel_values, prompt_masks)
        slots = input_ids == self.config.image_token_id
        found, expected = int(slots.sum()), visual.shape[0] * visual.shape[1]
        if found != expected:
            raise ValueError(f"the text holds {found} image placeholder tokens but the images give {expected} "
                             f"visual tokens ({visual.shape[1]} per image): expand the placeholder with the processor")
        return embeds.masked_scatter(slots.unsqueeze(-1).to(embeds.device), visual.to(embeds.dtype))

    # -- forward / generate -----------------------------------------------------------------------
    def forward(self, input_ids: Optional[torch.LongTensor] = None, pixel_values: Optional[torch.Tensor] = None,
                prompt_masks: Optional[torch.Tensor] = None, attention_mask: Optional[torch.Tensor] = None,
                position_ids: Optional[torch.LongTensor] = None, inputs_embeds: Optional[torch.Tensor] = None,
                labels: Optional[torch.LongTensor] = None, use_cache: Optional[bool] = None,
                logits_to_keep: int = 0, **kwargs):
        """Causal-LM forward. ``labels`` (B, L): next-token targets aligned with ``input_ids`` (shifted
        inside), -100 where no loss is wanted (image placeholders, the prompt turns, padding)."""
        if inputs_embeds is None:
            inputs_embeds = self.embed(input_ids, pixel_values, prompt_masks)
        if "past_key_values" in kwargs and "cache" not in kwargs:
            kwargs["cache"] = kwargs.pop("past_key_values")
        out = self.language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                  position_ids=position_ids, use_cache=use_cache, logits_to_keep=logits_to_keep,
                                  **kwargs)
        loss = None
        if labels is not None:
            logits = out.logits.float()
            shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1])
            shift_labels = labels[:, 1:].reshape(-1).to(logits.device)
            loss = nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100)
        out.loss = loss  # the LLM's own CausalLMOutputWithPast (logits, cache, hidden states)
        return out

    def prepare_inputs_for_generation(self, input_ids, pixel_values=None, prompt_masks=None,
                                      is_first_iteration=False, **kwargs):
        """Images and prompt masks go in on the first step only (the prompt); later steps read the KV cache."""
        inputs = super().prepare_inputs_for_generation(input_ids, is_first_iteration=is_first_iteration, **kwargs)
        if is_first_iteration or not kwargs.get("use_cache", True):
            inputs["pixel_values"] = pixel_values
            inputs["prompt_masks"] = prompt_masks
        return inputs
