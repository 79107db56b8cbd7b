"""The native EarthGPT-X (model_backend.models.earthgptx): a tiny random model built offline, on the CPU.

Training claim checked here: 40 steps (batch 4, AdamW lr 5e-3, LoRA on the LLM self-attention) over
the JSONL the converters make from the committed HIT-UAV frames and a DIOR-RSVG record written over
tests/data/optical/RGB.byte.tif lower the mean loss of the last 5 steps below half that of the first 5.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from model_backend.models.earthgptx import EarthGPTXForConditionalGeneration, EarthGPTXProcessor  # noqa: E402
from model_backend.models.earthgptx import convert, train  # noqa: E402
from model_backend.models.earthgptx.tiny import build_tiny_earthgptx  # noqa: E402
from model_backend.core.encoding import Convention, CoordinateFrame  # noqa: E402
from model_backend.core.interface import AnswerMeta, AskRequest, Task  # noqa: E402
from model_backend.core.prompts import VisualPrompt  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
HIT_UAV = os.path.join(DATA, "infrared", "hit_uav")
HIT_XMLS = sorted(os.path.join(HIT_UAV, f) for f in os.listdir(HIT_UAV) if f.endswith(".xml"))

DIOR_XML = """<annotation>
  <filename>RGB.byte.tif</filename>
  <size><width>791</width><height>718</height><depth>3</depth></size>
  <object>
    <name>river</name>
    <bndbox><xmin>300</xmin><ymin>200</ymin><xmax>520</xmax><ymax>460</ymax></bndbox>
    <description>the coastal strip in the middle of the image</description>
  </object>
</annotation>
"""


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return build_tiny_earthgptx(str(tmp_path_factory.mktemp("earthgptx") / "tiny"), seed=0)


@pytest.fixture(scope="module")
def loaded(tiny_dir):
    model = EarthGPTXForConditionalGeneration.from_pretrained(tiny_dir).eval()
    return model, EarthGPTXProcessor.from_pretrained(tiny_dir)


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory):
    """Training JSONL from the converters: HIT-UAV (VOC, infrared) + one DIOR-RSVG record (optical)."""
    folder = tmp_path_factory.mktemp("jsonl")
    xml = folder / "dior.xml"
    xml.write_text(DIOR_XML)
    out = str(folder / "train.jsonl")
    assert convert.main(["voc", *HIT_XMLS, "--out", out, "--modality", "infrared"]) == 0
    assert convert.main(["dior-rsvg", str(xml), "--images", os.path.join(DATA, "optical"), "--out", out]) == 0
    records = [json.loads(line) for line in open(out)]
    assert {r["modality"] for r in records} == {"infrared", "optical"}
    assert {r["task"] for r in records} == {"grounding", "referring_classification", "region_captioning"}
    return out


def _inputs(processor, image, prompts, text="Describe region 1."):
    chat = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"},
                                                                         {"type": "text", "text": text}]}])
    return processor(text=[chat], images=[image], prompts=[prompts])


def _chip(h=48, w=80, seed=0):
    return np.random.RandomState(seed).randint(0, 255, (h, w, 3), dtype=np.uint8)


def test_save_load_generate_round_trip(loaded, tmp_path):
    from transformers import AutoConfig, AutoModelForImageTextToText

    model, processor = loaded
    inputs = _inputs(processor, _chip(), [VisualPrompt.box(5, 5, 30, 40, 1)])
    n_img = int((inputs["input_ids"] == model.config.image_token_id).sum())
    assert n_img == model.config.num_visual_tokens == 64 + 4
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False, min_new_tokens=6)
        new = out[0, inputs["input_ids"].shape[1]:].tolist()
        # greedy without the KV cache, one full forward per token, gives the same tokens
        ids, manual = inputs["input_ids"], []
        for _ in range(6):
            logits = model(input_ids=ids, pixel_values=inputs["pixel_values"], prompt_masks=inputs["prompt_masks"],
                           use_cache=False).logits[0, -1]
            manual.append(int(logits.argmax()))
            ids = torch.cat([ids, torch.tensor([[manual[-1]]])], dim=1)
    assert new == manual
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).model_type == "earthgptx"
    again = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    assert isinstance(again, EarthGPTXForConditionalGeneration)
    again_inputs = _inputs(EarthGPTXProcessor.from_pretrained(tmp_path), _chip(), [VisualPrompt.box(5, 5, 30, 40, 1)])
    with torch.inference_mode():
        assert torch.allclose(model(**inputs).logits, again(**again_inputs).logits, atol=1e-5)


def test_prompt_masks_distinguish_prompts_and_follow_square_geometry(loaded):
    model, processor = loaded
    chip = _chip(40, 80)
    # the whole 80 x 40 chip padded to 80 x 80 (20 rows above and below) and resized to 64: rows 16..47
    whole = _inputs(processor, chip, [VisualPrompt.box(0, 0, 80, 40, 2)])["prompt_masks"][0]
    assert whole.shape == (4, 64, 64)
    assert whole[1, 16:48].all() and whole[1, :16].sum() == 0 and whole[1, 48:].sum() == 0
    assert whole[0].sum() == 0 and whole[2:].sum() == 0
    a = _inputs(processor, chip, [VisualPrompt.box(2, 2, 20, 20, 1)])
    b = _inputs(processor, chip, [VisualPrompt.box(50, 10, 78, 38, 1)])
    c = _inputs(processor, chip, [VisualPrompt.box(2, 2, 20, 20, 2)])  # same place, another index
    d = _inputs(processor, chip, [VisualPrompt.point(40, 20, 1), VisualPrompt.polygon([(5, 5), (30, 8), (12, 30)], 2)])
    assert torch.equal(a["pixel_values"], b["pixel_values"])
    with torch.inference_mode():
        fa, fb, fc, fd = (model.fused_visual_tokens(x["pixel_values"], x["prompt_masks"]) for x in (a, b, c, d))
    assert fa.shape == (1, 68, model.config.text_config.hidden_size)
    for other in (fb, fc, fd):
        assert (fa - other).abs().max() > 1e-3


def test_converters_on_hit_uav_records(tmp_path):
    from model_backend.models.earthgptx.convert import read_voc
    from model_backend.models.parsing import parse_regions

    out = tmp_path / "hit.jsonl"
    assert convert.main(["voc", *HIT_XMLS, "--out", str(out), "--modality", "infrared", "--max-regions", "2"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    by_image = {}
    for r in records:
        assert os.path.exists(os.path.join(tmp_path, r["image"]))
        assert r["modality"] == "infrared" and r["conversations"][0]["value"].startswith("<image>\n")
        by_image.setdefault(os.path.basename(r["image"]), []).append(r)
    for xml in HIT_XMLS:
        ann = read_voc(xml)
        recs = by_image[ann["filename"]]
        classes = sorted({o["name"].lower() for o in ann["objects"]})
        grounding = [r for r in recs if r["task"] == "grounding"]
        assert sorted(r["conversations"][1]["value"].split("</p>")[0][3:] for r in grounding) == classes
        assert len([r for r in recs if r["task"] == "referring_classification"]) == min(2, len(ann["objects"]))
        # the answers parse back (sphinx style, square-unit) to the XML boxes, within the 2-decimal rounding
        frame = CoordinateFrame(Convention.SQUARE_UNIT, ann["width"], ann["height"])
        side = max(ann["width"], ann["height"])
        got = []
        for r in grounding:
            regions, dropped = parse_regions(r["conversations"][1]["value"], frame, "sphinx")
            assert dropped == 0
            got += [(reg.label, reg.shape.vertices) for reg in regions]
        want = [(o["name"].lower(), o["box"]) for o in ann["objects"]]
        assert len(got) == len(want)
        for label, (x1, y1, x2, y2) in want:
            assert any(lab == label and np.allclose(np.ravel(v), [x1, y1, x2, y2], atol=0.005 * side + 1e-6)
                       for lab, v in got)
        region = [r for r in recs if r["task"] == "referring_classification"][0]
        assert region["prompts"][0]["kind"] == "box" and region["conversations"][1]["value"] in classes


def _train(model, data, out, steps, **extra):
    argv = ["--model", model, "--data", data, "--out", out, "--steps", str(steps), "--batch-size", "4",
            "--lr", "5e-3", "--log-every", "10", "--seed", "0"]
    for k, v in extra.items():
        argv += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    return train.train(train.parse_args(argv))


def test_training_lowers_the_loss_and_final_model_answers(tiny_dir, jsonl, tmp_path):
    from model_backend.models.local import LocalEngine

    result = _train(tiny_dir, jsonl, str(tmp_path / "run"), 40, save_every=0)
    losses = [loss for _, loss in result["losses"]]
    assert len(losses) == 40
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    print(f"EarthGPT-X tiny training: mean loss of steps 1-5 {first:.3f}, of steps 36-40 {last:.3f}")
    assert last < 0.5 * first
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 41))
    engine = LocalEngine(str(tmp_path / "run" / "final"))
    answer = engine.ask(AskRequest(image=_chip(), instruction="car", task=Task.GROUNDING, max_new_tokens=8))
    assert answer.meta.generated_tokens >= 1 and answer.meta.backend == "local"


def test_resume_continues_the_step_count(tiny_dir, jsonl, tmp_path):
    straight = _train(tiny_dir, jsonl, str(tmp_path / "a"), 6, save_every=0, no_final=True)
    first = _train(tiny_dir, jsonl, str(tmp_path / "b"), 3, save_every=3, no_final=True)
    assert open(tmp_path / "b" / "latest").read() == "checkpoint-3"
    resumed = _train(tiny_dir, jsonl, str(tmp_path / "b"), 6, save_every=3, no_final=True, resume=True)
    assert first["start_step"] == 0 and resumed["start_step"] == 3 and resumed["step"] == 6
    assert [s for s, _ in resumed["losses"]] == [4, 5, 6]
    assert open(tmp_path / "b" / "latest").read() == "checkpoint-6"
    np.testing.assert_allclose([l for _, l in first["losses"] + resumed["losses"]],
                               [l for _, l in straight["losses"]], rtol=1e-4)


def test_local_engine_answers_through_the_real_path(tiny_dir):
    from model_backend.models.engine import finish_answer
    from model_backend.models.local import LocalEngine

    engine = LocalEngine(tiny_dir)
    assert engine.family.name == "earthgptx" and engine.family.parse_style == "sphinx"
    pieces = []
    request = AskRequest(image=_chip(60, 90), instruction="", task=Task.REGION_CAPTIONING,
                         prompts=(VisualPrompt.box(10, 10, 40, 50, 1), VisualPrompt.point(70, 30, 2)),
                         max_new_tokens=5)
    inputs, frame, _ = engine.encode(request)
    assert frame.convention is Convention.SQUARE_UNIT
    assert inputs["prompt_masks"][0, 0].sum() > 0 and inputs["prompt_masks"][0, 1].sum() > 0
    answer = engine.ask(request, on_text=pieces.append)
    assert answer.meta.generated_tokens == 5 and answer.meta.finish_reason in ("length", "stop")
    assert "".join(pieces) == answer.text
    # a sphinx-format answer on this 90 x 60 chip (padded to 90 x 90, 15 rows above): chip pixels back
    parsed = finish_answer("There are <p>2 cars</p>[0.10,0.20,0.30,0.40;0.50,0.50,0.60,0.70]", engine.family,
                           frame, AnswerMeta())
    assert [r.label for r in parsed.regions] == ["cars", "cars"]  # the count in the phrase is not the label
    np.testing.assert_allclose(np.ravel(parsed.regions[0].shape.vertices), [9, 3, 27, 21], atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="4-bit (bitsandbytes NF4) loading needs a CUDA GPU; "
                    "this machine has none (torch.cuda.is_available() is False)")
def test_4bit_llm_with_bf16_vision_on_cuda(tiny_dir):
    import bitsandbytes as bnb

    from model_backend.models.loading import LoadPolicy
    from model_backend.models.local import LocalEngine

    engine = LocalEngine(tiny_dir, LoadPolicy(device="cuda", quantization="4bit"))
    model = engine.model
    assert isinstance(model.language_model.model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
    for name in ("fusion", "projector", "prompt_encoder", "dinov2", "convnext"):
        mods = [m for m in getattr(model, name).modules() if isinstance(m, torch.nn.Linear)]
        assert mods and not any(isinstance(m, bnb.nn.Linear4bit) for m in mods), name
    assert not isinstance(model.language_model.lm_head, bnb.nn.Linear4bit)
    answer = engine.ask(AskRequest(image=_chip(), instruction="car", task=Task.GROUNDING, max_new_tokens=4))
    assert answer.meta.quantization == "4bit" and answer.meta.generated_tokens >= 1


def test_readme_commands_under_their_old_path_run_the_moved_modules(tmp_path):
    """``python -m model_backend.earthgptx.tiny`` (the README's path up to 0.1) builds a model that the
    new path ``model_backend.models.earthgptx`` loads, and old imports are the same classes."""
    import importlib
    import subprocess
    import sys

    old = importlib.import_module("model_backend.earthgptx")
    assert old.EarthGPTXForConditionalGeneration is EarthGPTXForConditionalGeneration
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, "-m", "model_backend.earthgptx.tiny", str(tmp_path / "m")], cwd=root,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert EarthGPTXProcessor.from_pretrained(str(tmp_path / "m")) is not None


def test_a_mask_prompt_fills_its_channel_exactly_and_trains_from_jsonl(loaded, tmp_path):
    """A segmentation as prompt: a box-shaped mask gives the same prompt channel as the box itself
    (inside pixel centres), a mask with a hole keeps the hole, and a JSONL record's mask file reaches
    the training batch."""
    from PIL import Image

    _, processor = loaded
    image = _chip(48, 80)
    box = np.zeros((48, 80), bool)
    box[10:30, 20:50] = True
    as_mask = processor(text=["<image>"], images=[image], prompts=[[]], mask_prompts=[{1: box}])["prompt_masks"][0, 0]
    as_box = processor(text=["<image>"], images=[image], prompts=[[VisualPrompt.box(20, 10, 50, 30, 1)]])[
        "prompt_masks"][0, 0]
    assert torch.equal(as_mask, as_box) and as_mask.sum() > 0
    ring = box.copy()
    ring[15:25, 30:40] = False
    channel = processor(text=["<image>"], images=[image], mask_prompts=[{2: ring}])["prompt_masks"][0]
    assert channel[0].sum() == 0 and 0 < channel[1].sum() < as_box.sum()
    size = processor.image_size
    ox, oy, scale = (0.0, 16.0, size / 80.0)   # 80 wide: the 48 rows are centred with 16 empty rows above
    y, x = int((20 + oy) * scale), int((35 + ox) * scale)
    assert channel[1, y, x] == 0 and channel[1, int((12 + oy) * scale), x] == 1   # the hole, and the ring
    with pytest.raises(ValueError, match="mask prompt 1 is 10x10, the image 80x48"):
        processor(text=["<image>"], images=[image], mask_prompts=[{1: np.ones((10, 10), bool)}])

    Image.fromarray(image).save(tmp_path / "chip.png")
    Image.fromarray((ring * 255).astype(np.uint8)).save(tmp_path / "ring.png")
    record = {"image": "chip.png", "prompts": [{"kind": "mask", "index": 1, "mask": "ring.png"}],
              "conversations": [{"from": "human", "value": "<image>\nWhat is in region 1?"},
                                {"from": "gpt", "value": "a pond"}]}
    (tmp_path / "train.jsonl").write_text(json.dumps(record) + "\n")
    examples = train.Examples(train.read_jsonl([str(tmp_path / "train.jsonl")]), processor, 4096)
    (_, _, _, masks), = examples.items
    expected = processor(text=["<image>"], images=[image], mask_prompts=[{1: ring}])["prompt_masks"][0]
    assert torch.equal(masks, expected)
