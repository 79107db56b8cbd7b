"""One-stage fusion training of EarthGPT-X (DESIGN §2, §6): all tasks and modalities mixed in one stage.

    python -m model_backend.models.earthgptx.train --model MODEL_DIR --data a.jsonl [b.jsonl ...] --out RUN_DIR \
        [--steps 1000] [--batch-size 4] [--lr 2e-5] [--weight-decay 0.01] [--lora-r 8] \
        [--gradient-checkpointing] [--quantization auto|4bit|none] [--save-every 100] [--resume]

Trained: the spatial-aware encoder (``prompt_encoder``, ``prompt_proj``), the hybrid ``fusion``, the
per-encoder projections into it (``image_proj``, ``source_embed``), the ``projector``, and LoRA
adapters (peft) on the LLM's self-attention (q/k/v/o projections). DINOv2, ConvNeXt and the LLM's own
weights stay frozen. On CUDA (``--quantization auto``) the LLM is loaded in 4-bit NF4 (QLoRA) with the
encoders, fusion and projector in bf16; on the CPU everything is float32.

Optimiser AdamW (defaults lr 2e-5, weight decay 0.01, as reported for EarthGPT-X), constant learning
rate after ``--warmup`` linear steps. Records are visited in a per-epoch shuffled order derived from
``--seed`` and the step, so a resumed run sees the same batches as an uninterrupted one.

RUN_DIR holds ``checkpoint-STEP/`` folders (trainable weights, optimiser, step, RNG states; the newest
is named in ``latest``), ``log.jsonl`` (one line per step: step, loss, lr, seconds) and, at the end,
``final/``: the full model with the LoRA merged (CPU / unquantized runs) or the adapter plus the
trained modules (4-bit runs), and the processor. ``final/`` of an unquantized run loads like any
EarthGPT-X folder (``LocalEngine``, ``from_pretrained``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from typing import Dict, List, Sequence

import numpy as np

TRAINABLE_PREFIXES = ("prompt_encoder", "prompt_proj", "fusion", "image_proj", "source_embed", "projector")
#: LoRA target modules (regex over module names): "attention" as reported for EarthGPT-X (the LLM's
#: self-attention), "all" adds the MLP projections (faster adaptation of small LLMs)
LORA_TARGETS = {"attention": r".*language_model\..*\.self_attn\.(q_proj|k_proj|v_proj|o_proj)",
                "all": r".*language_model\..*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"}


# -- data ---------------------------------------------------------------------------------------------

def read_jsonl(paths: Sequence[str]) -> List[Dict]:
    """Records of all files; ``image`` made absolute (relative paths are relative to the JSONL file)."""
    records = []
    for path in paths:
        base = os.path.dirname(os.path.abspath(path))
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                    r["image"] = os.path.join(base, r["image"])
                    for p in r.get("prompts", []):
                        if p.get("kind") == "mask":   # a segmentation as prompt: {"kind", "index", "mask": file}
                            p["mask"] = os.path.join(base, p["mask"])
                    r["conversations"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"{path}:{n}: not a training record ({exc})") from None
                records.append(r)
    if not records:
        raise ValueError(f"no training records in {', '.join(paths)}")
    return records


def load_mask(path: str, shape) -> np.ndarray:
    """A mask prompt's (H, W) bool mask from a PNG/TIFF (nonzero: inside), the image's ``shape`` (H, W)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            mask = np.asarray(im.convert("L")) > 0
    except OSError as exc:
        raise ValueError(f"cannot read the mask prompt {path}: {exc}") from None
    if mask.shape != tuple(shape):
        raise ValueError(f"the mask prompt {path} is {mask.shape[1]}x{mask.shape[0]}, its image {shape[1]}x{shape[0]}")
    return mask


def load_image(path: str) -> np.ndarray:
    """(H, W, 3) uint8 from a JPEG/PNG (PIL) or a GeoTIFF (rasterio, first three bands)."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Exception:
        import rasterio

        with rasterio.open(path) as src:
            arr = src.read(list(range(1, min(3, src.count) + 1)))
        arr = np.moveaxis(arr, 0, -1)
        if arr.shape[2] < 3:
            arr = np.repeat(arr[..., :1], 3, axis=2)
        if arr.dtype != np.uint8:
            lo, hi = np.nanpercentile(arr, (2, 98))
            arr = np.clip((arr - lo) / max(hi - lo, 1e-9) * 255, 0, 255).astype(np.uint8)
        return arr


class Examples:
    """Preprocessed records (images and masks cached in memory; fine for the sizes tests use)."""

    def __init__(self, records: List[Dict], processor, max_length: int):
        from ...core.interface import prompts_from_dicts

        self.items = []
        cache: Dict[str, np.ndarray] = {}
        for r in records:
            if r["image"] not in cache:
                cache[r["image"]] = load_image(r["image"])
            img = cache[r["image"]]
            drawn = [p for p in r.get("prompts", []) if p.get("kind") != "mask"]
            masks = {int(p["index"]): load_mask(p["mask"], img.shape[:2]) for p in r.get("prompts", [])
                     if p.get("kind") == "mask"}
            feats = processor(text=["<image>"], images=[img], prompts=[prompts_from_dicts(drawn)],
                              mask_prompts=[masks])
            ids, labels = processor.training_sequence(r["conversations"])
            if len(ids) > max_length:
                if ids[max_length - 1] == processor.image_token_id or processor.image_token_id in ids[max_length:]:
                    raise ValueError(f"max_length {max_length} cuts the image tokens of {r['image']}")
                ids, labels = ids[:max_length], labels[:max_length]
            self.items.append((ids, labels, feats["pixel_values"][0], feats["prompt_masks"][0]))

    def __len__(self):
        return len(self.items)

    def batch(self, indexes: Sequence[int], pad_id: int):
        import torch

        rows = [self.items[i] for i in indexes]
        length = max(len(r[0]) for r in rows)
        ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
        labels = torch.full((len(rows), length), -100, dtype=torch.long)
        attn = torch.zeros((len(rows), length), dtype=torch.long)
        for k, (i, l, _, _) in enumerate(rows):
            ids[k, :len(i)] = torch.tensor(i)
            labels[k, :len(l)] = torch.tensor(l)
            attn[k, :len(i)] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": attn,
                "pixel_values": torch.stack([r[2] for r in rows]), "prompt_masks": torch.stack([r[3] for r in rows])}


def batch_indexes(step: int, batch_size: int, n: int, seed: int) -> List[int]:
    """Record indexes of batch ``step`` (0-based): epochs of a per-epoch permutation, concatenated."""
    import torch

    out = []
    for pos in range(step * batch_size, (step + 1) * batch_size):
        epoch, k = divmod(pos, n)
        g = torch.Generator().manual_seed(seed * 100003 + epoch)
        out.append(int(torch.randperm(n, generator=g)[k]))
    return out


# -- model --------------------------------------------------------------------------------------------

def build_model(model_dir: str, quantization: str, lora_r: int, lora_alpha: int, lora_dropout: float,
                gradient_checkpointing: bool, lora_targets: str = "attention"):
    """(peft model, processor, device, quantization used)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from . import SKIP_QUANTIZATION, EarthGPTXForConditionalGeneration, EarthGPTXProcessor

    cuda = torch.cuda.is_available()
    if quantization == "auto":
        quantization = "4bit" if cuda else "none"
    if quantization == "4bit" and not cuda:
        raise ValueError("--quantization 4bit (QLoRA) needs a CUDA GPU; torch.cuda.is_available() is False")
    kwargs: Dict[str, object] = {}
    if quantization == "4bit":
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        kwargs.update(quantization_config=BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16, llm_int8_skip_modules=SKIP_QUANTIZATION),
            dtype=torch.bfloat16, device_map={"": "cuda:0"})
    else:
        kwargs["dtype"] = torch.float32
    model = EarthGPTXForConditionalGeneration.from_pretrained(model_dir, **kwargs)
    if quantization == "4bit":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    device = "cuda:0" if cuda else "cpu"
    if quantization != "4bit":
        model.to(device)
    if gradient_checkpointing:
        model.language_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.language_model.config.use_cache = False
    peft_model = get_peft_model(model, LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                                                  target_modules=LORA_TARGETS[lora_targets], bias="none"))
    for name, p in peft_model.named_parameters():
        if "lora_" in name or _module_name(name).startswith(TRAINABLE_PREFIXES):
            p.requires_grad_(True)
    return peft_model, EarthGPTXProcessor.from_pretrained(model_dir), device, quantization


def _module_name(name: str) -> str:
    """'base_model.model.fusion.layers.0...' -> 'fusion.layers.0...'."""
    for prefix in ("base_model.model.",):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def trainable_state(model) -> Dict:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


# -- checkpoints --------------------------------------------------------------------------------------

def save_checkpoint(out: str, step: int, model, optimizer, args) -> str:
    import torch
    from safetensors.torch import save_file

    path = os.path.join(out, f"checkpoint-{step}")
    tmp = path + ".tmp"
    os.makedirs(tmp, exist_ok=True)
    save_file(trainable_state(model), os.path.join(tmp, "trainable.safetensors"))
    torch.save(optimizer.state_dict(), os.path.join(tmp, "optimizer.pt"))
    rng = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, os.path.join(tmp, "rng.pt"))
    with open(os.path.join(tmp, "state.json"), "w") as f:
        json.dump({"step": step, "args": vars(args)}, f, indent=2, default=str)
    if os.path.exists(path):
        import shutil

        shutil.rmtree(path)
    os.replace(tmp, path)
    with open(os.path.join(out, "latest.tmp"), "w") as f:
        f.write(os.path.basename(path))
    os.replace(os.path.join(out, "latest.tmp"), os.path.join(out, "latest"))
    return path


def load_checkpoint(out: str, model, optimizer) -> int:
    """Restore the newest checkpoint of ``out``; returns its step (0 when there is none)."""
    import torch
    from safetensors.torch import load_file

    latest = os.path.join(out, "latest")
    if not os.path.exists(latest):
        return 0
    path = os.path.join(out, open(latest).read().strip())
    state = load_file(os.path.join(path, "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = [n for n in state if n not in params]
    if missing:
        raise ValueError(f"checkpoint {path} does not match this model (e.g. {missing[0]})")
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t.to(params[n].device, params[n].dtype))
    optimizer.load_state_dict(torch.load(os.path.join(path, "optimizer.pt"), weights_only=False))
    rng = torch.load(os.path.join(path, "rng.pt"), weights_only=False)
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    with open(os.path.join(path, "state.json")) as f:
        return int(json.load(f)["step"])


# -- loop ---------------------------------------------------------------------------------------------

def train(args) -> Dict:
    """Run (or resume) training; returns {"start_step", "step", "losses": [(step, loss), ...]}."""
    import torch

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    model, processor, device, quant = build_model(args.model, args.quantization, args.lora_r, args.lora_alpha,
                                                  args.lora_dropout, args.gradient_checkpointing,
                                                  args.lora_targets)
    data = Examples(read_jsonl(args.data), processor, args.max_length)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    os.makedirs(args.out, exist_ok=True)
    start = load_checkpoint(args.out, model, optimizer) if args.resume else 0
    n_train = sum(p.numel() for p in params)
    print(f"EarthGPT-X training: {len(data)} records, {n_train:,} trainable parameters, device {device}, "
          f"LLM {'4-bit (QLoRA)' if quant == '4bit' else 'unquantized (LoRA)'}, steps {start}..{args.steps}",
          flush=True)
    pad_id = processor.tokenizer.pad_token_id if processor.tokenizer.pad_token_id is not None else 0
    losses = []
    model.train()
    t0 = time.perf_counter()
    log = open(os.path.join(args.out, "log.jsonl"), "a", encoding="utf-8")
    step = start
    for step in range(start, args.steps):
        lr = args.lr * min(1.0, (step + 1) / args.warmup) if args.warmup else args.lr
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = {k: v.to(device) for k, v in data.batch(batch_indexes(step, args.batch_size, len(data), args.seed),
                                                         pad_id).items()}
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if args.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
        optimizer.step()
        value = float(loss.detach())
        losses.append((step + 1, value))
        elapsed = time.perf_counter() - t0
        log.write(json.dumps({"step": step + 1, "loss": value, "lr": lr, "seconds": round(elapsed, 3)}) + "\n")
        log.flush()
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            done = step + 1 - start
            eta = elapsed / done * (args.steps - step - 1)
            print(f"step {step + 1}/{args.steps} loss {value:.4f} lr {lr:.2e} "
                  f"{elapsed:.1f}s elapsed, eta {eta:.1f}s", flush=True)
        if args.save_every and (step + 1) % args.save_every == 0:
            save_checkpoint(args.out, step + 1, model, optimizer, args)
    else:
        step = args.steps - 1 if args.steps > start else start - 1
    log.close()
    final_step = max(args.steps, start)
    if args.save_every and final_step > start and final_step % args.save_every:
        save_checkpoint(args.out, final_step, model, optimizer, args)
    if not args.no_final:
        save_final(model, processor, os.path.join(args.out, "final"), quant)
    return {"start_step": start, "step": final_step, "losses": losses}


def save_final(model, processor, path: str, quant: str) -> None:
    """Unquantized: merge LoRA into the LLM and save the full model. 4-bit: save the adapter and the
    trained modules (apply them on a bf16 or 4-bit base with peft)."""
    from safetensors.torch import save_file

    os.makedirs(path, exist_ok=True)
    if quant == "4bit":
        model.save_pretrained(os.path.join(path, "adapter"))
        save_file({n: p.detach().cpu().contiguous() for n, p in model.named_parameters()
                   if p.requires_grad and "lora_" not in n}, os.path.join(path, "trained_modules.safetensors"))
    else:
        merged = model.merge_and_unload()
        merged.save_pretrained(path)
    processor.save_pretrained(path)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m model_backend.models.earthgptx.train",
                                description="One-stage fusion training of EarthGPT-X over JSONL records.")
    p.add_argument("--model", required=True, help="EarthGPT-X folder to start from (config, weights, processor)")
    p.add_argument("--data", nargs="+", required=True, help="training JSONL file(s), mixed in one stage")
    p.add_argument("--out", required=True, help="run folder: checkpoints, log.jsonl, final/")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=int, default=0, help="linear warm-up steps")
    p.add_argument("--max-grad-norm", type=float, default=1.0)
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--lora-alpha", type=int, default=16)
    p.add_argument("--lora-dropout", type=float, default=0.05)
    p.add_argument("--lora-targets", choices=sorted(LORA_TARGETS), default="attention",
                   help="attention: the LLM's q/k/v/o projections (as EarthGPT-X); all: also its MLP")
    p.add_argument("--max-length", type=int, default=4096)
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--quantization", choices=("auto", "4bit", "none"), default="auto",
                   help="auto: 4-bit LLM (QLoRA) on CUDA, none on the CPU")
    p.add_argument("--save-every", type=int, default=100, help="checkpoint every N steps (0: only at the end)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/latest")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-final", action="store_true", help="do not write final/")
    return p.parse_args(argv)


def main(argv=None) -> int:
    result = train(parse_args(argv))
    if result["losses"]:
        print(f"done: step {result['step']}, last loss {result['losses'][-1][1]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
