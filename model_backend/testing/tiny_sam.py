"""Build a tiny, randomly initialised SAM / SAM 2.1 / SAM 3 checkpoint, fully offline.

    python -m model_backend.testing.tiny_model OUT_DIR --family sam2|sam|sam3 [--seed N]

(or ``build_tiny_sam(OUT_DIR, family, seed)``). The directory loads through the real path, with
``HF_HUB_OFFLINE=1``::

    sam:   AutoProcessor / SamProcessor.from_pretrained(OUT_DIR);   SamModel.from_pretrained(OUT_DIR)
    sam2:  AutoProcessor / Sam2Processor.from_pretrained(OUT_DIR);  Sam2Model.from_pretrained(OUT_DIR)
    sam3:  AutoProcessor / Sam3Processor.from_pretrained(OUT_DIR);  Sam3Model.from_pretrained(OUT_DIR)
           Sam3TrackerProcessor.from_pretrained(OUT_DIR);           Sam3TrackerModel.from_pretrained(OUT_DIR)

What is in it:

* ``config.json``: the family's real config class with tiny widths (hidden sizes 16-128, one or two layers
  per block) but the real image geometry, so the processors are the stock ones: SAM, ViT with 16 px patches
  on a 1024 px input padded square (64x64 embedding, windows of 14, one global layer); SAM 2.1, a four-stage
  Hiera with stride-4 patches on a 1024x1024 input (feature maps 256 / 128 / 64, the real windows 8/4/14/7,
  one global block); SAM 3, a ``sam3_video`` config as ``facebook/sam3`` ships it: a detector (``Sam3Config``:
  ViT with 14 px patches on 1008x1008, windows of 24, one global layer; a two-layer CLIP text encoder;
  DETR encoder / decoder with 8 queries) and a tracker (``sam3_tracker_video``, SAM 2-style prompt encoder
  and mask decoder on the detector's backbone, tiny memory modules).
* ``model.safetensors``: float32 weights drawn from ``torch.manual_seed(seed)`` (same seed, same weights).
  For SAM 3 the keys are ``detector_model.*``, ``tracker_model.*`` and ``tracker_neck.*``, the real
  checkpoint's layout (``Sam3Model`` reads the detector, ``Sam3TrackerModel`` the backbone, the tracker
  neck and the tracker heads).
* ``processor_config.json``: the stock image processor settings (SAM resizes the long side to 1024 and pads
  bottom / right, SAM 2.1 and SAM 3 squash to 1024x1024 / 1008x1008; ImageNet mean / std, 0.5 for SAM 3).
* SAM 3 only, ``tokenizer.json`` / ``tokenizer_config.json``: a CLIP-style BPE (lower-cased, ``</w>``
  word ends, ``<|startoftext|>`` / ``<|endoftext|>`` last, as in CLIP) trained here with the
  ``tokenizers`` library on the same small built-in corpus as ``tiny_model``, wrapped in
  ``CLIPTokenizer`` (the class ``Sam3Processor`` uses); the processor pads phrases to 32 tokens.

A few MB each. The masks are noise, of course: this is for exercising loading, prompting, the image-embedding
reuse, post-processing and memory bookkeeping without the real weights.
"""

from __future__ import annotations

import json
import os

FAMILIES = ("sam2", "sam", "sam3")

# The input side each family's processor resizes to, as in the released checkpoints.
IMAGE_SIZE = {"sam": 1024, "sam2": 1024, "sam3": 1008}

_DECODER = dict(hidden_size=32, mlp_dim=64, num_hidden_layers=2, num_attention_heads=2, iou_head_hidden_dim=32)
_PROMPT = dict(hidden_size=32, mask_input_channels=16)


# --- SAM ---------------------------------------------------------------------------------------------

def _sam(seed: int):
    import torch
    from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor

    size, patch = IMAGE_SIZE["sam"], 16
    vision = dict(hidden_size=32, output_channels=32, num_hidden_layers=2, num_attention_heads=2, mlp_dim=64,
                  image_size=size, patch_size=patch, window_size=14, global_attn_indexes=[1],
                  num_pos_feats=16,  # half of output_channels: the shared point / image positional encoding
                  initializer_range=0.02)  # (the stock 1e-10 would give a near-constant image embedding)
    config = SamConfig(vision_config=vision, prompt_encoder_config=dict(_PROMPT, image_size=size, patch_size=patch),
                       mask_decoder_config=dict(_DECODER), dtype="float32")
    image_processor = SamImageProcessor(size={"longest_edge": size}, pad_size={"height": size, "width": size},
                                        mask_size={"longest_edge": size // 4},
                                        mask_pad_size={"height": size // 4, "width": size // 4})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SamModel(config)
    return model, SamProcessor(image_processor=image_processor)


# --- SAM 2.1 -----------------------------------------------------------------------------------------

def _sam2(seed: int):
    import torch
    from transformers import Sam2Config, Sam2ImageProcessor, Sam2Model, Sam2Processor

    size = IMAGE_SIZE["sam2"]
    f = size // 4  # stride-4 patch embedding, then three 2x query-pooling stages
    backbone = dict(model_type="sam2_hiera_det_model", hidden_size=16, num_attention_heads=1, image_size=[size, size],
                    blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=[16, 32, 64, 128],
                    num_attention_heads_per_stage=[1, 1, 2, 2], window_size_per_stage=[8, 4, 14, 7],
                    global_attention_blocks=[3], num_query_pool_stages=3,
                    window_positional_embedding_background_size=[7, 7])
    vision = dict(model_type="sam2_vision_model", backbone_config=backbone, backbone_channel_list=[128, 64, 32, 16],
                  backbone_feature_sizes=[[f, f], [f // 2, f // 2], [f // 4, f // 4]], fpn_hidden_size=32,
                  fpn_top_down_levels=[2, 3], num_feature_levels=3)
    config = Sam2Config(vision_config=vision, prompt_encoder_config=dict(_PROMPT, image_size=size, patch_size=16),
                        mask_decoder_config=dict(_DECODER), dtype="float32")
    image_processor = Sam2ImageProcessor(size={"height": size, "width": size},
                                         mask_size={"height": size // 4, "width": size // 4})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam2Model(config)
    return model, Sam2Processor(image_processor=image_processor)


# --- SAM 3 -------------------------------------------------------------------------------------------

_CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
_TARGET_VOCAB = 1024
TEXT_LENGTH = 32  # Sam3Processor pads every phrase to 32 tokens; the text encoder's position table matches


def _clip_tokenizer():
    """A CLIP-style byte-level BPE trained here, wrapped in ``CLIPTokenizer`` (what Sam3Processor loads)."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    from .tiny_model import _LABELS, _corpus

    # CLIPTokenizer rebuilds this normaliser / pre-tokeniser around vocab + merges on load.
    normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                       normalizers.Lowercase()])
    pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    # CLIP's BPE marks the last symbol of each word with "</w>". The trainer's own end_of_word_suffix numbers
    # those symbols in hash order (a different vocabulary each run), so the words are pre-tokenised here and
    # each word's last character is swapped for a stand-in character (one per byte, outside the byte alphabet),
    # trained on with a deterministic alphabet, and swapped back to "<char></w>" afterwards.
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    end_of = {char: chr(0x4E00 + i) for i, char in enumerate(alphabet)}
    back = {stand_in: char + "</w>" for char, stand_in in end_of.items()}
    lines = []
    for line in _corpus() + [label for label in _LABELS for _ in range(4)]:
        words = [piece for piece, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line))]
        lines.append(" ".join(word[:-1] + end_of[word[-1]] for word in words if word))
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(vocab_size=_TARGET_VOCAB - 2, min_frequency=2, show_progress=False,
                                  initial_alphabet=alphabet + [end_of[c] for c in alphabet], special_tokens=[])
    bpe.train_from_iterator(lines, trainer)
    model = json.loads(bpe.to_str())["model"]

    def restore(token: str) -> str:
        return token[:-1] + back[token[-1]] if token and token[-1] in back else token

    vocab = {restore(token): i for token, i in sorted(model["vocab"].items(), key=lambda item: item[1])}
    merges = [tuple(restore(part) for part in (m if isinstance(m, list) else m.split(" "))) for m in model["merges"]]
    # Every byte, inside and at the end of a word (CLIP's first 512 entries), so no text is ever unknown.
    for char in alphabet:
        for token in (char, char + "</w>"):
            vocab.setdefault(token, len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):  # last, as in CLIP (49406, 49407)
        vocab[special] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=TEXT_LENGTH)


def _sam3(seed: int):
    import torch
    from transformers import Sam3ImageProcessor, Sam3Processor, Sam3VideoConfig, Sam3VideoModel

    size, patch = IMAGE_SIZE["sam3"], 14
    g = size // patch  # 72
    tok = _clip_tokenizer()
    vit = dict(model_type="sam3_vit_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=2, image_size=size, patch_size=patch, window_size=24, global_attn_indexes=[1],
               pretrain_image_size=336)
    vision = dict(model_type="sam3_vision_model", backbone_config=vit, fpn_hidden_size=32,
                  backbone_feature_sizes=[[4 * g, 4 * g], [2 * g, 2 * g], [g, g]], scale_factors=[4.0, 2.0, 1.0, 0.5])
    text = dict(model_type="clip_text_model", vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                projection_dim=32, num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=TEXT_LENGTH,
                hidden_act="gelu", bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id)
    small = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64)
    detector = dict(model_type="sam3", vision_config=vision, text_config=text,
                    geometry_encoder_config=dict(small, num_layers=1),
                    detr_encoder_config=dict(small, num_layers=1),
                    detr_decoder_config=dict(small, num_layers=1, num_queries=8),
                    mask_decoder_config=dict(hidden_size=32, num_attention_heads=2))
    tracker = dict(model_type="sam3_tracker_video", vision_config=vision, image_size=size,
                   prompt_encoder_config=dict(_PROMPT, image_size=size, patch_size=patch),
                   mask_decoder_config=dict(_DECODER),
                   num_maskmem=2, max_object_pointers_in_encoder=2, memory_attention_hidden_size=32,
                   memory_attention_num_layers=1, memory_attention_feed_forward_hidden_size=64,
                   memory_attention_rope_feat_sizes=[g, g], memory_encoder_hidden_size=32,
                   memory_encoder_output_channels=16, mask_downsampler_embed_dim=32, memory_fuser_num_layers=1,
                   memory_fuser_embed_dim=32, memory_fuser_intermediate_dim=64)
    config = Sam3VideoConfig(detector_config=detector, tracker_config=tracker, low_res_mask_size=4 * g,
                             dtype="float32")
    image_processor = Sam3ImageProcessor(size={"height": size, "width": size},
                                         mask_size={"height": 4 * g, "width": 4 * g})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam3VideoModel(config)
    return model, Sam3Processor(image_processor=image_processor, tokenizer=tok)


def _save_sam3(model, out_dir: str) -> None:
    """config.json + model.safetensors with the plain module names (``tracker_model.*``).

    ``Sam3VideoModel.save_pretrained`` (transformers 5.x) runs the ``sam3_tracker`` key renaming in reverse
    on its ``tracker_model`` and writes ``tracker_model.tracker_model.*``, which ``Sam3TrackerModel`` then
    cannot read; the released checkpoint has ``tracker_model.*``, so the weights are written directly."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(out_dir)
    save_file(state, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})


# --- build -------------------------------------------------------------------------------------------

_BUILDERS = {"sam": _sam, "sam2": _sam2, "sam3": _sam3}


def build_tiny_sam(out_dir: str, family: str, seed: int = 0) -> str:
    """Write a tiny random ``family`` (``sam2``, ``sam`` or ``sam3``) checkpoint and processor to ``out_dir``.

    Returns ``out_dir``. Offline; a few MB; same ``seed``, same weights (the SAM 3 tokenizer never depends
    on the seed)."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    model, processor = _BUILDERS[family](seed)
    model.eval()
    os.makedirs(out_dir, exist_ok=True)
    if family == "sam3":
        _save_sam3(model, out_dir)
    else:
        model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir
