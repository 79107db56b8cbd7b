"""Weight converters for EarthGPT-X's visual encoders (see README.md here).

    python -m model_backend.models.earthgptx.convert_weights clip-convnext CHECKPOINT --model EARTHGPTX_DIR \
        --out OUT_DIR [--prefix visual.trunk.]

CLIP-ConvNeXt (OpenCLIP's ConvNeXt image towers, e.g. ``convnext_large_d_320`` as used by SPHINX and
EarthGPT-X) stores a timm ConvNeXt trunk under ``visual.trunk.``. :func:`timm_convnext_to_hf` maps the
timm names to ``transformers.ConvNextModel`` names and infers the ``ConvNextConfig`` from the shapes:

==========================================  ==============================================
timm                                        transformers ``ConvNextModel``
==========================================  ==============================================
``stem.0`` (patch conv), ``stem.1``         ``embeddings.patch_embeddings``, ``embeddings.layernorm``
``stages.N.downsample.0`` / ``.1``          ``encoder.stages.N.downsampling_layer.0`` / ``.1``
``stages.N.blocks.M.conv_dw``               ``encoder.stages.N.layers.M.dwconv``
``stages.N.blocks.M.norm``                  ``encoder.stages.N.layers.M.layernorm``
``stages.N.blocks.M.mlp.fc1`` / ``.fc2``    ``encoder.stages.N.layers.M.pwconv1`` / ``.pwconv2``
``stages.N.blocks.M.gamma``                 ``encoder.stages.N.layers.M.layer_scale_parameter``
``head.norm`` or ``norm_pre``               ``layernorm``
``head.fc``, ``head.pre_logits.fc``         dropped (classifier / pre-logits, not part of the trunk)
==========================================  ==============================================

Both block variants are accepted: ``conv_mlp=False`` (Linear ``fc1``/``fc2``, channels-last LayerNorm,
what transformers uses) and ``conv_mlp=True`` (1 x 1 convs and a channels-first LayerNorm, e.g.
``convnext_atto``): a 1 x 1 conv is the same linear map, so its kernel is squeezed to a matrix.
Refused with :class:`~model_backend.core.errors.InvalidArgumentError`: ConvNeXt-V2 (GRN), no conv biases,
overlapping or tiered stems, depthwise kernels other than 7, downsampling kernels other than 2,
MLP ratios other than 4, a downsampling first stage (patch stems of stride 2), and any key it cannot
place. Not visible in the weights, hence assumed: timm's default ``output_stride=32`` (no dilated
stages) and exact GELU, as in OpenCLIP's towers. ``ConvNextModel.last_hidden_state`` is the
last stage's output before the final norm (``layernorm``, applied by transformers after pooling).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from typing import Dict, Iterable, Mapping, Union

from ...core.errors import EXIT_USAGE, EarthGPTXError, InvalidArgumentError

_STEM = re.compile(r"^stem\.(0|1)\.(weight|bias)$")
_DOWN = re.compile(r"^stages\.(\d+)\.downsample\.(0|1)\.(weight|bias)$")
_BLOCK = re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.(conv_dw\.weight|conv_dw\.bias|norm\.weight|norm\.bias|"
                    r"mlp\.fc1\.weight|mlp\.fc1\.bias|mlp\.fc2\.weight|mlp\.fc2\.bias|gamma)$")
_FINAL_NORM = re.compile(r"^(head\.norm|norm_pre)\.(weight|bias)$")
_DROPPED = re.compile(r"^head\.(fc|pre_logits\.fc)\.(weight|bias)$")
_BLOCK_NAMES = {"conv_dw": "dwconv", "norm": "layernorm", "mlp.fc1": "pwconv1", "mlp.fc2": "pwconv2",
                "gamma": "layer_scale_parameter"}


def _few(items: Iterable, n: int = 5) -> str:
    items = list(items)
    text = ", ".join(str(i) for i in items[:n])
    return text + (f" ... and {len(items) - n} more" if len(items) > n else "")


def _strip_prefix(state_dict: Mapping, prefix: str) -> Dict:
    if not prefix:
        return dict(state_dict)
    out = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not out:  # DDP checkpoints: module.visual.trunk.*
        out = {k[len("module." + prefix):]: v for k, v in state_dict.items() if k.startswith("module." + prefix)}
    if not out:
        raise InvalidArgumentError(f"no weights under the prefix {prefix!r}; the checkpoint's keys look like: "
                                   f"{_few(sorted(state_dict))}")
    return out


def timm_convnext_to_hf(state_dict: Mapping, prefix: str = ""):
    """timm ConvNeXt state dict (keys optionally under ``prefix``) -> (transformers state dict, ConvNextConfig).

    The config (channels, patch size, depths, hidden sizes, layer scale) is inferred from the shapes;
    the returned state dict loads with ``strict=True`` into ``ConvNextModel(config)``.
    """
    import torch
    from transformers import ConvNextConfig, ConvNextModel

    sd = _strip_prefix(state_dict, prefix)
    bad_values = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad_values:
        raise InvalidArgumentError(f"not tensors: {_few(prefix + k for k in bad_values)}")
    if any(".mlp.grn." in k for k in sd):
        raise InvalidArgumentError("ConvNeXt-V2 weights (GRN layers, mlp.grn.*) cannot be mapped to "
                                   "transformers' ConvNextModel (ConvNeXt V1)")

    hf, unplaced, blocks, final_norm_sources = {}, [], {}, set()
    for key, value in sd.items():
        if m := _STEM.match(key):
            hf[("embeddings.patch_embeddings." if m[1] == "0" else "embeddings.layernorm.") + m[2]] = value
        elif m := _DOWN.match(key):
            hf[f"encoder.stages.{m[1]}.downsampling_layer.{m[2]}.{m[3]}"] = value
        elif m := _BLOCK.match(key):
            stage, block, rest = int(m[1]), int(m[2]), m[3]
            blocks.setdefault(stage, set()).add(block)
            if rest == "gamma":
                name = "layer_scale_parameter"
            else:
                module, leaf = rest.rsplit(".", 1)
                name = _BLOCK_NAMES[module] + "." + leaf
                if module in ("mlp.fc1", "mlp.fc2") and leaf == "weight" and value.dim() == 4:
                    if tuple(value.shape[2:]) != (1, 1):
                        unplaced.append(f"{key} {tuple(value.shape)} (MLP conv kernel is not 1 x 1)")
                        continue
                    value = value[:, :, 0, 0]  # conv_mlp=True: a 1 x 1 conv is a Linear
            hf[f"encoder.stages.{stage}.layers.{block}.{name}"] = value
        elif m := _FINAL_NORM.match(key):
            final_norm_sources.add(m[1])
            hf["layernorm." + m[2]] = value
        elif _DROPPED.match(key):
            continue
        else:
            unplaced.append(prefix + key)
    if unplaced:
        raise InvalidArgumentError(f"cannot place {len(unplaced)} timm ConvNeXt key(s): {_few(unplaced)}")
    if len(final_norm_sources) > 1:
        raise InvalidArgumentError("both head.norm and norm_pre carry weights; expected only one final norm")

    # -- infer the config from the shapes ------------------------------------------------------------
    stem = hf.get("embeddings.patch_embeddings.weight")
    if stem is None or stem.dim() != 4:
        raise InvalidArgumentError(f"no patch stem ({prefix}stem.0.weight, a 4-d conv kernel): not a timm "
                                   f"ConvNeXt with a patch stem")
    if stem.shape[2] != stem.shape[3]:
        raise InvalidArgumentError(f"{prefix}stem.0.weight has a non-square kernel {tuple(stem.shape)}")
    stages = sorted(blocks)
    if stages != list(range(len(stages))):
        raise InvalidArgumentError(f"stages are not numbered 0..N-1: {stages}")
    depths = []
    for s in stages:
        if sorted(blocks[s]) != list(range(len(blocks[s]))):
            raise InvalidArgumentError(f"stage {s}'s blocks are not numbered 0..M-1: {sorted(blocks[s])}")
        depths.append(len(blocks[s]))
    hidden = []
    for s in stages:
        dw = hf.get(f"encoder.stages.{s}.layers.0.dwconv.weight")
        if dw is None:
            raise InvalidArgumentError(f"missing {prefix}stages.{s}.blocks.0.conv_dw.weight")
        hidden.append(int(dw.shape[0]))
    gammas = [k for k in hf if k.endswith("layer_scale_parameter")]
    if gammas and len(gammas) != sum(depths):
        raise InvalidArgumentError(f"layer scale (gamma) present in {len(gammas)} of {sum(depths)} blocks")
    config = ConvNextConfig(num_channels=int(stem.shape[1]), patch_size=int(stem.shape[2]), num_stages=len(stages),
                            hidden_sizes=hidden, depths=depths, hidden_act="gelu", layer_norm_eps=1e-6,
                            layer_scale_init_value=1e-6 if gammas else 0.0, drop_path_rate=0.0)
    if not final_norm_sources:  # trunk saved without its head: the final norm is then the identity
        hf["layernorm.weight"] = torch.ones(hidden[-1], dtype=stem.dtype)
        hf["layernorm.bias"] = torch.zeros(hidden[-1], dtype=stem.dtype)

    # -- check every key and shape against transformers' own module ----------------------------------
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in ConvNextModel(config).state_dict().items()}
    missing = sorted(set(expected) - set(hf))
    extra = sorted(set(hf) - set(expected))
    wrong = [f"{k} {tuple(hf[k].shape)} != {expected[k]}" for k in sorted(set(hf) & set(expected))
             if tuple(hf[k].shape) != expected[k]]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)}: {_few(missing)}")
    if extra:
        problems.append(f"cannot place {len(extra)}: {_few(extra)}")
    if wrong:
        problems.append(f"{len(wrong)} shape(s) do not fit transformers' ConvNeXt (dwconv 7 x 7, downsample "
                        f"2 x 2, MLP ratio 4): {_few(wrong)}")
    if problems:
        raise InvalidArgumentError("timm ConvNeXt weights do not fit ConvNextModel" +
                                   (f" (prefix {prefix!r})" if prefix else "") + ": " + "; ".join(problems))
    return {k: v.contiguous() for k, v in hf.items()}, config


def _read_checkpoint(path: str) -> Dict:
    import torch

    if not os.path.isfile(path):
        raise InvalidArgumentError(f"checkpoint not found: {path}")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file
            sd = load_file(path, device="cpu")
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input
        raise InvalidArgumentError(f"cannot read checkpoint {path}: {exc}") from exc
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):  # OpenCLIP training checkpoints
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise InvalidArgumentError(f"{path} does not hold a state dict")
    return sd


def load_clip_convnext(path_or_state_dict: Union[str, os.PathLike, Mapping], prefix: str = "visual.trunk."):
    """A CLIP-ConvNeXt checkpoint (.bin/.pt/.pth or .safetensors, or a state dict) -> (state dict, config)."""
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        path_or_state_dict = _read_checkpoint(os.fspath(path_or_state_dict))
    return timm_convnext_to_hf(path_or_state_dict, prefix=prefix)


_COMPARED = ("num_channels", "patch_size", "num_stages", "hidden_sizes", "depths")


def _config_mismatch(ours, theirs) -> list:
    def norm(v):
        return list(v) if isinstance(v, (list, tuple)) else v

    diffs = [f"{f}: checkpoint {norm(getattr(ours, f))} vs model {norm(getattr(theirs, f))}" for f in _COMPARED
             if norm(getattr(ours, f)) != norm(getattr(theirs, f))]
    if (ours.layer_scale_init_value > 0) != (theirs.layer_scale_init_value > 0):
        diffs.append(f"layer scale: checkpoint {ours.layer_scale_init_value > 0} vs model "
                     f"{theirs.layer_scale_init_value > 0}")
    return diffs


def convert_clip_convnext_into(checkpoint, model_dir: str, out_dir: str, prefix: str = "visual.trunk.") -> str:
    """Load the EarthGPT-X at ``model_dir``, replace its ConvNeXt weights by ``checkpoint``'s, save to ``out_dir``."""
    from . import EarthGPTXForConditionalGeneration

    state, config = load_clip_convnext(checkpoint, prefix=prefix)
    if not os.path.isfile(os.path.join(model_dir, "config.json")):
        raise InvalidArgumentError(f"not a model folder (no config.json): {model_dir}")
    model = EarthGPTXForConditionalGeneration.from_pretrained(model_dir)
    diffs = _config_mismatch(config, model.config.convnext_config)
    if diffs:
        raise InvalidArgumentError("the checkpoint's ConvNeXt does not match the model's convnext_config: " +
                                   "; ".join(diffs))
    model.convnext.load_state_dict(state, strict=True)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    weights = re.compile(r"(\.safetensors|\.bin|\.safetensors\.index\.json|\.bin\.index\.json)$")
    for name in os.listdir(model_dir):  # tokenizer, processor and other side files
        src, dst = os.path.join(model_dir, name), os.path.join(out_dir, name)
        if os.path.isfile(src) and not weights.search(name) and not os.path.exists(dst):
            shutil.copy2(src, dst)
    return out_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_backend.models.earthgptx.convert_weights",
                                     description="Convert visual-encoder weights into an EarthGPT-X model folder.")
    sub = parser.add_subparsers(dest="kind", required=True)
    p = sub.add_parser("clip-convnext", help="OpenCLIP / timm ConvNeXt trunk -> the model's ConvNeXt")
    p.add_argument("checkpoint", help=".bin/.pt/.pth (torch) or .safetensors file")
    p.add_argument("--model", required=True, help="EarthGPT-X model folder to start from")
    p.add_argument("--out", required=True, help="folder to write the converted model to")
    p.add_argument("--prefix", default="visual.trunk.", help="key prefix of the trunk (default visual.trunk.; "
                                                              "'' for a bare timm state dict)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        out = convert_clip_convnext_into(args.checkpoint, args.model, args.out, args.prefix)
    except EarthGPTXError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
