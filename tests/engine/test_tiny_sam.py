"""model_backend.testing.tiny_sam: tiny random SAM / SAM 2.1 / SAM 3 checkpoints, built and loaded offline through
the real ``from_pretrained`` path; the image is encoded once and reused for point, box and box + point prompts,
and the masks come back at the original image size. For SAM 3 a phrase alone gives instance masks."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
pytest.importorskip("torchvision")

from model_backend.testing import tiny_model, tiny_sam  # noqa: E402

FAMILIES = ["sam2", "sam", "sam3"]
# (processor class, model class) for the point / box prompts; SAM 3 takes them through its tracker.
PROMPTABLE = {"sam": ("SamProcessor", "SamModel"), "sam2": ("Sam2Processor", "Sam2Model"),
              "sam3": ("Sam3TrackerProcessor", "Sam3TrackerModel")}
AUTO_PROCESSOR = {"sam": "SamProcessor", "sam2": "Sam2Processor", "sam3": "Sam3Processor"}
HEIGHT, WIDTH = 200, 300
POINT = [150, 60]  # (x, y) in image pixels, inside the bright rectangle
BOX = [100, 40, 180, 80]  # (x0, y0, x1, y1)


@pytest.fixture(scope="module", autouse=True)
def offline():
    """No hub access whatsoever: the env vars, and huggingface_hub's flag (read once at its import)."""
    import huggingface_hub.constants as hub_constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        mp.setattr(hub_constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture(scope="module", params=FAMILIES)
def family(request):
    return request.param


@pytest.fixture(scope="module")
def built(family, offline, tmp_path_factory):
    out = str(tmp_path_factory.mktemp(family))
    assert tiny_sam.build_tiny_sam(out, family, seed=0) == out
    return out


@pytest.fixture(scope="module")
def loaded(built, family):
    proc_name, model_name = PROMPTABLE[family]
    processor = getattr(transformers, proc_name).from_pretrained(built)
    model = getattr(transformers, model_name).from_pretrained(built)
    model.eval()
    return processor, model


@pytest.fixture(scope="module")
def sam3(offline, tmp_path_factory):
    out = tiny_sam.build_tiny_sam(str(tmp_path_factory.mktemp("sam3_detector")), "sam3", seed=0)
    processor = transformers.Sam3Processor.from_pretrained(out)
    model = transformers.Sam3Model.from_pretrained(out)
    model.eval()
    return processor, model


def _image(height=HEIGHT, width=WIDTH, seed=0):
    """An RGB uint8 (H, W, 3) chip: gradients plus noise and a bright rectangle."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    arr = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    arr[40:80, 100:180] = 250
    return arr


def _dir_size(path):
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


# --- the recipe: encode once, prompt many times ------------------------------------------------------

def _encode(family, processor, model, image):
    inputs = processor(images=image, return_tensors="pt")
    with torch.no_grad():
        embeddings = model.get_image_embeddings(inputs["pixel_values"])
    return inputs, embeddings


def _prompt_tensors(family, processor, image, inputs, points=None, labels=None, boxes=None):
    """Prompts in image pixels -> the model's input tensors (nesting: image / object / point / xy)."""
    kwargs = {}
    if points is not None:
        kwargs.update(input_points=[points], input_labels=[labels])
    if boxes is not None:
        kwargs["input_boxes"] = [boxes]
    if family == "sam":
        # SamProcessor needs the image again (it only rescales the coordinates to the resized image).
        enc = processor(images=image, return_tensors="pt", **kwargs)
        enc.pop("pixel_values")
    else:
        enc = processor(original_sizes=inputs["original_sizes"], return_tensors="pt", **kwargs)
    return {k: (v.float() if k in ("input_points", "input_boxes") else v) for k, v in enc.items()
            if k in ("input_points", "input_labels", "input_boxes")}


def _segment(family, processor, model, image, inputs, embeddings, multimask_output=True, **prompts):
    tensors = _prompt_tensors(family, processor, image, inputs, **prompts)
    with torch.no_grad():
        out = model(image_embeddings=embeddings, multimask_output=multimask_output, **tensors)
    if family == "sam":
        masks = processor.post_process_masks(out.pred_masks, inputs["original_sizes"],
                                             inputs["reshaped_input_sizes"])[0]
    else:
        masks = processor.post_process_masks(out.pred_masks, inputs["original_sizes"])[0]
    return masks, out.iou_scores[0], tensors, out


def test_built_directory_is_small_and_complete(built, family):
    assert _dir_size(built) < 10 * 1024 * 1024
    names = set(os.listdir(built))
    assert {"config.json", "model.safetensors", "processor_config.json"} <= names, names
    if family == "sam3":
        assert {"tokenizer.json", "tokenizer_config.json"} <= names, names


def test_auto_classes_and_geometry(built, loaded, family):
    processor, model = loaded
    auto = transformers.AutoProcessor.from_pretrained(built)
    assert type(auto).__name__ == AUTO_PROCESSOR[family]
    config = transformers.AutoConfig.from_pretrained(built)
    size = tiny_sam.IMAGE_SIZE[family]
    if family == "sam":
        assert config.model_type == "sam"
        assert config.vision_config.image_size == config.prompt_encoder_config.image_size == size
        assert processor.image_processor.size["longest_edge"] == processor.target_size == size
        assert processor.image_processor.pad_size == {"height": size, "width": size}
        assert config.vision_config.hidden_size == 32 and config.vision_config.num_hidden_layers == 2
    elif family == "sam2":
        assert config.model_type == "sam2"
        assert list(config.vision_config.backbone_config.image_size) == [size, size]
        assert config.prompt_encoder_config.image_size == size
        assert processor.image_processor.size == {"height": size, "width": size} and processor.target_size == size
        assert config.vision_config.backbone_feature_sizes[-1] == [size // 16, size // 16]
    else:
        assert config.model_type == "sam3_video"  # as facebook/sam3: detector + tracker in one folder
        assert config.image_size == config.detector_config.vision_config.backbone_config.image_size == size
        assert config.tracker_config.prompt_encoder_config.image_size == size
        assert processor.image_processor.size == {"height": size, "width": size} and processor.target_size == size
        assert type(model.config).__name__ == "Sam3TrackerConfig"


def test_embeddings_reused_for_point_box_and_box_plus_points(loaded, family):
    processor, model = loaded
    image = _image()
    inputs, embeddings = _encode(family, processor, model, image)
    if family == "sam":
        assert embeddings.shape == (1, 32, 64, 64)
    else:
        assert isinstance(embeddings, list) and len(embeddings) == 3

    prompts = {
        "point": dict(points=[[POINT]], labels=[[1]]),
        "box": dict(boxes=[BOX]),
        "box+points": dict(points=[[POINT, [105, 45]]], labels=[[1, 0]], boxes=[BOX]),
    }
    for name, prompt in prompts.items():
        masks, scores, tensors, out = _segment(family, processor, model, image, inputs, embeddings, **prompt)
        assert masks.dtype == torch.bool, name
        assert masks.shape == (1, 3, HEIGHT, WIDTH), (name, masks.shape)  # (objects, multimask, H, W)
        assert scores.shape == (1, 3) and torch.isfinite(scores).all(), name


    # Reusing the embeddings gives what a full forward from the pixels gives (last prompt: box + points).
    with torch.no_grad():
        full = model(pixel_values=inputs["pixel_values"], multimask_output=True, **tensors)
    assert torch.allclose(full.pred_masks, out.pred_masks, atol=1e-5)
    assert torch.allclose(full.iou_scores, out.iou_scores, atol=1e-5)

    # One mask per prompt on request (SAM 2 / SAM 3 pick the most stable of the three).
    masks, scores, _, _ = _segment(family, processor, model, image, inputs, embeddings, multimask_output=False,
                                   **prompts["point"])
    assert masks.shape == (1, 1, HEIGHT, WIDTH) and scores.shape == (1, 1)


def test_several_objects_in_one_call(loaded, family):
    processor, model = loaded
    image = _image(seed=1)
    inputs, embeddings = _encode(family, processor, model, image)
    boxes = [BOX, [10, 120, 90, 190]]
    masks, scores, tensors, _ = _segment(family, processor, model, image, inputs, embeddings, boxes=boxes)
    assert tensors["input_boxes"].shape == (1, 2, 4)
    assert masks.shape == (2, 3, HEIGHT, WIDTH) and scores.shape == (2, 3)
    points = [[POINT], [[50, 150]]]
    masks, scores, tensors, _ = _segment(family, processor, model, image, inputs, embeddings, points=points,
                                         labels=[[1], [1]])
    assert tensors["input_points"].shape == (1, 2, 1, 2) and tensors["input_labels"].shape == (1, 2, 1)
    assert masks.shape == (2, 3, HEIGHT, WIDTH)


def test_prompt_coordinates_are_scaled_to_the_model_input(loaded, family):
    processor, _ = loaded
    image = _image()
    inputs = processor(images=image, return_tensors="pt")
    assert inputs["original_sizes"].tolist() == [[HEIGHT, WIDTH]]
    tensors = _prompt_tensors(family, processor, image, inputs, points=[[POINT]], labels=[[1]], boxes=[BOX])
    size = tiny_sam.IMAGE_SIZE[family]
    if family == "sam":  # long side resized to 1024, aspect kept, then padded bottom / right
        (new_h, new_w), = inputs["reshaped_input_sizes"].tolist()
        assert max(new_h, new_w) == size and inputs["pixel_values"].shape[-2:] == (size, size)
        sx, sy = new_w / WIDTH, new_h / HEIGHT
    else:  # squashed to size x size
        assert inputs["pixel_values"].shape[-2:] == (size, size)
        sx, sy = size / WIDTH, size / HEIGHT
    expected_point = torch.tensor([POINT[0] * sx, POINT[1] * sy])
    expected_box = torch.tensor([BOX[0] * sx, BOX[1] * sy, BOX[2] * sx, BOX[3] * sy])
    assert torch.allclose(tensors["input_points"][0, 0, 0], expected_point, atol=1e-3)
    assert torch.allclose(tensors["input_boxes"][0, 0], expected_box, atol=1e-3)


def test_same_seed_same_weights(built, family, tmp_path):
    from safetensors.torch import load_file

    again = tiny_sam.build_tiny_sam(str(tmp_path / "same"), family, seed=0)
    other = tiny_sam.build_tiny_sam(str(tmp_path / "other"), family, seed=1)
    a = load_file(os.path.join(built, "model.safetensors"))
    b = load_file(os.path.join(again, "model.safetensors"))
    c = load_file(os.path.join(other, "model.safetensors"))
    assert a.keys() == b.keys() == c.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert any(not torch.equal(a[key], c[key]) for key in a)
    key = next(k for k in a if k.endswith("mask_decoder.iou_token.weight"))
    assert not torch.equal(a[key], c[key])
    if family == "sam3":
        with open(os.path.join(built, "tokenizer.json"), encoding="utf-8") as f1, \
                open(os.path.join(other, "tokenizer.json"), encoding="utf-8") as f2:
            assert json.load(f1) == json.load(f2)


# --- SAM 3: phrases ----------------------------------------------------------------------------------

def test_sam3_checkpoint_layout_matches_the_release(tmp_path):
    from safetensors.torch import load_file

    out = tiny_sam.build_tiny_sam(str(tmp_path / "sam3"), "sam3")
    prefixes = {key.split(".")[0] for key in load_file(os.path.join(out, "model.safetensors"))}
    assert prefixes == {"detector_model", "tracker_model", "tracker_neck"}
    keys = load_file(os.path.join(out, "model.safetensors")).keys()
    assert not any(k.startswith("tracker_model.tracker_model.") for k in keys)
    # Each class reads all it needs: nothing newly initialised.
    for name in ("Sam3Model", "Sam3TrackerModel", "Sam3VideoModel"):
        _, info = getattr(transformers, name).from_pretrained(out, output_loading_info=True)
        assert not info["missing_keys"], (name, sorted(info["missing_keys"])[:5])
        assert not info["mismatched_keys"], name


def test_sam3_tokenizer(sam3):
    tok = sam3[0].tokenizer
    assert type(tok).__name__ == "CLIPTokenizer"
    ids = tok("Storage tank")["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert tok.decode(ids, skip_special_tokens=True) == "storage tank"  # CLIP lower-cases
    assert len(tok(" ship", add_special_tokens=False)["input_ids"]) == 1
    assert tok.unk_token_id not in tok("Façade 2024, Zürich!", add_special_tokens=False)["input_ids"]
    text = sam3[0](text="small boat", return_tensors="pt")
    assert text["input_ids"].shape == text["attention_mask"].shape == (1, tiny_sam.TEXT_LENGTH)


def test_sam3_phrase_alone_gives_instance_masks(sam3):
    processor, model = sam3
    image = _image()
    inputs = processor(images=image, text="ship", return_tensors="pt")
    assert {"pixel_values", "input_ids", "attention_mask", "original_sizes"} <= set(inputs)
    with torch.no_grad():
        out = model(**inputs)
    queries = model.config.detr_decoder_config.num_queries
    assert out.pred_masks.shape[:2] == (1, queries) and out.pred_logits.shape == (1, queries)
    results = processor.post_process_instance_segmentation(out, threshold=0.0, mask_threshold=0.5,
                                                           target_sizes=inputs["original_sizes"].tolist())
    res = results[0]
    assert res["masks"].shape == (queries, HEIGHT, WIDTH)
    assert set(res["masks"].unique().tolist()) <= {0, 1}
    assert res["scores"].shape == (queries,) and ((res["scores"] >= 0) & (res["scores"] <= 1)).all()
    assert res["boxes"].shape == (queries, 4)
    # A threshold above every score keeps nothing.
    none = processor.post_process_instance_segmentation(out, threshold=1.0,
                                                        target_sizes=inputs["original_sizes"].tolist())[0]
    assert none["masks"].shape[0] == 0


def test_sam3_vision_features_reused_for_several_phrases(sam3):
    processor, model = sam3
    image = _image(seed=2)
    img = processor(images=image, return_tensors="pt")
    with torch.no_grad():
        vision = model.get_vision_features(pixel_values=img["pixel_values"])
        scores = {}
        for phrase in ("ship", "storage tank"):
            text = processor(text=phrase, return_tensors="pt")
            out = model(vision_embeds=vision, input_ids=text["input_ids"], attention_mask=text["attention_mask"])
            full = model(pixel_values=img["pixel_values"], **text)
            assert torch.allclose(out.pred_logits, full.pred_logits, atol=1e-5)
            res = processor.post_process_instance_segmentation(out, threshold=0.0,
                                                               target_sizes=img["original_sizes"].tolist())[0]
            assert res["masks"].shape[1:] == (HEIGHT, WIDTH)
            scores[phrase] = out.pred_logits
    assert not torch.equal(scores["ship"], scores["storage tank"])


def test_sam3_phrase_with_exemplar_box(sam3):
    processor, model = sam3
    image = _image()
    img = processor(images=image, return_tensors="pt")
    prompt = processor(text="ship", input_boxes=[[BOX]], input_boxes_labels=[[1]],
                       original_sizes=img["original_sizes"], return_tensors="pt")
    # Exemplar boxes go in normalised (cx, cy, w, h).
    cx, cy = (BOX[0] + BOX[2]) / 2 / WIDTH, (BOX[1] + BOX[3]) / 2 / HEIGHT
    w, h = (BOX[2] - BOX[0]) / WIDTH, (BOX[3] - BOX[1]) / HEIGHT
    assert torch.allclose(prompt["input_boxes"][0, 0], torch.tensor([cx, cy, w, h]), atol=1e-5)
    with torch.no_grad():
        vision = model.get_vision_features(pixel_values=img["pixel_values"])
        out = model(vision_embeds=vision, input_ids=prompt["input_ids"], attention_mask=prompt["attention_mask"],
                    input_boxes=prompt["input_boxes"], input_boxes_labels=prompt["input_boxes_labels"])
    res = processor.post_process_instance_segmentation(out, threshold=0.0,
                                                       target_sizes=img["original_sizes"].tolist())[0]
    assert res["masks"].shape[1:] == (HEIGHT, WIDTH)


# --- dispatch ----------------------------------------------------------------------------------------

def test_cli_and_build_tiny_model_dispatch(tmp_path, capsys):
    out = str(tmp_path / "cli")
    assert tiny_model.main([out, "--family", "sam2", "--seed", "3"]) == 0
    assert capsys.readouterr().out.strip().endswith(out)
    assert transformers.AutoConfig.from_pretrained(out).model_type == "sam2"
    out2 = tiny_model.build_tiny_model(str(tmp_path / "direct"), "sam")
    assert transformers.AutoConfig.from_pretrained(out2).model_type == "sam"
    with pytest.raises(ValueError):
        tiny_sam.build_tiny_sam(str(tmp_path / "bad"), "sam_hq")
    with pytest.raises(SystemExit):
        tiny_model.main([out, "--family", "sam_hq"])
