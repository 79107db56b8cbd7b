"""CLIP-ConvNeXt -> EarthGPT-X weight conversion (model_backend.models.earthgptx.convert_weights), checked against timm.

Random timm ConvNeXt models are built offline (no downloads); their parameters are perturbed (timm's
layer scale starts at 1e-6, which would make every block nearly the identity) so each block counts.
The converted transformers ``ConvNextModel`` must reproduce timm's own ``forward_features``: an
independent implementation verifies the name mapping, the 1 x 1-conv squeeze and the inferred config.
"""

import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
from safetensors.torch import save_file  # noqa: E402
from transformers import ConvNextModel  # noqa: E402

from model_backend.core.errors import InvalidArgumentError  # noqa: E402
from model_backend.models.earthgptx.convert_weights import load_clip_convnext, timm_convnext_to_hf  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOL = dict(rtol=1e-5, atol=1e-5)


def _random_timm(seed=0, name=None, **kwargs):
    torch.manual_seed(seed)
    if name:
        model = timm.create_model(name, pretrained=False, **kwargs)
    else:  # any dims: e.g. the tiny EarthGPT-X's ConvNeXt
        model = timm.models.convnext.ConvNeXt(**kwargs)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("gamma"):
                p.copy_(0.5 + 0.2 * torch.randn_like(p))
            elif "norm" in pname or "stem.1" in pname or "downsample.0" in pname:
                p.add_(0.2 * torch.randn_like(p))
            elif pname.endswith("bias"):
                p.copy_(0.05 * torch.randn_like(p))
    return model.eval()


def _clip_state_dict(model):
    """As OpenCLIP stores it: the trunk under visual.trunk., plus the tower's head and a text tower."""
    sd = {"visual.trunk." + k: v.clone() for k, v in model.state_dict().items()}
    sd["visual.head.proj.weight"] = torch.randn(4, 4)
    sd["token_embedding.weight"] = torch.randn(10, 4)
    sd["logit_scale"] = torch.tensor(1.0)
    return sd


def _hf(state, config):
    model = ConvNextModel(config).eval()
    model.load_state_dict(state, strict=True)
    return model


@pytest.mark.parametrize("name, conv_mlp", [("convnext_atto", True), ("convnext_tiny", False)])
def test_converted_model_reproduces_timm_features(name, conv_mlp):
    tm = _random_timm(0, name)
    assert tm.stages[0].blocks[0].use_conv_mlp is conv_mlp  # both timm block variants are covered
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        want = tm.forward_features(x)                # head_norm_first=False: norm_pre is the identity
        want_pooled = tm.forward_head(want, pre_logits=True)   # avg pool + head.norm
    for sd, prefix in ((tm.state_dict(), ""), (_clip_state_dict(tm), "visual.trunk.")):
        state, config = timm_convnext_to_hf(sd, prefix=prefix)
        assert config.depths == [len(s.blocks) for s in tm.stages]
        assert config.hidden_sizes == [s.blocks[0].conv_dw.in_channels for s in tm.stages]
        assert config.patch_size == 4 and config.layer_scale_init_value > 0
        with torch.no_grad():
            out = _hf(state, config)(pixel_values=x)
        assert out.last_hidden_state.shape == want.shape == (2, config.hidden_sizes[-1], 3, 3)
        torch.testing.assert_close(out.last_hidden_state, want, **TOL)
        torch.testing.assert_close(out.pooler_output, want_pooled, **TOL)


def test_head_norm_first_and_no_layer_scale():
    tm = _random_timm(1, depths=(1, 2, 1, 1), dims=(8, 16, 8, 12), ls_init_value=None,
                      head_norm_first=True)
    state, config = timm_convnext_to_hf(tm.state_dict())
    assert (config.patch_size, config.depths, config.hidden_sizes, config.layer_scale_init_value) == \
        (4, [1, 2, 1, 1], [8, 16, 8, 12], 0.0)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = tm.forward_features(x)  # here forward_features applies norm_pre (= transformers' layernorm)
        hf = _hf(state, config)
        got = hf.layernorm(hf(pixel_values=x).last_hidden_state.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(got, want, **TOL)


def test_files_load_both_formats(tmp_path):
    tm = _random_timm(2, depths=(1, 1, 1, 1), dims=(8, 16, 8, 8))
    sd = _clip_state_dict(tm)
    save_file(sd, str(tmp_path / "open_clip_model.safetensors"))
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, tmp_path / "epoch_1.pt")
    ref, _ = timm_convnext_to_hf(tm.state_dict())
    for path in (tmp_path / "open_clip_model.safetensors", str(tmp_path / "epoch_1.pt")):
        state, config = load_clip_convnext(path)
        assert config.hidden_sizes == [8, 16, 8, 8] and state.keys() == ref.keys()
        assert all(torch.equal(state[k], ref[k]) for k in ref)


def test_malformed_state_dicts_are_refused_clearly():
    sd = _random_timm(3, depths=(1, 1, 1, 1), dims=(8, 16, 8, 8)).state_dict()
    cases = [
        ({**sd, "stages.0.blocks.0.attn.qkv.weight": torch.zeros(3)}, "cannot place 1 timm ConvNeXt key"),
        ({**sd, "stages.1.blocks.0.conv_dw.weight": torch.zeros(16, 1, 5, 5)}, "stages.1.layers.0.dwconv.weight"),
        ({**sd, "stages.0.downsample.1.weight": torch.zeros(8, 8, 2, 2)}, "cannot place 1: encoder.stages.0"),
        ({k: v for k, v in sd.items() if k != "stages.1.downsample.1.weight"}, "missing 1"),
        ({k: v for k, v in sd.items() if "gamma" not in k or "stages.0" in k}, "layer scale (gamma) present in 1"),
        ({**sd, "stages.0.blocks.0.mlp.fc1.weight": torch.zeros(32, 8, 3, 3)}, "not 1 x 1"),
    ]
    for bad, message in cases:
        with pytest.raises(InvalidArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
            timm_convnext_to_hf(bad)
    with pytest.raises(InvalidArgumentError, match="no weights under the prefix 'visual.trunk.'.*head.fc.bias"):
        timm_convnext_to_hf(sd, prefix="visual.trunk.")
    v2 = timm.create_model("convnextv2_atto", pretrained=False).state_dict()
    with pytest.raises(InvalidArgumentError, match="ConvNeXt-V2"):
        timm_convnext_to_hf(v2)
    no_bias = timm.models.convnext.ConvNeXt(depths=(1, 1, 1, 1), dims=(8, 16, 8, 8), conv_bias=False).state_dict()
    with pytest.raises(InvalidArgumentError, match=r"missing \d+: .*dwconv.bias"):
        timm_convnext_to_hf(no_bias)


def _cli(*args):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "model_backend.models.earthgptx.convert_weights", "clip-convnext", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_cli_round_trip_into_tiny_earthgptx(tmp_path):
    from model_backend.models.earthgptx import EarthGPTXForConditionalGeneration, EarthGPTXProcessor
    from model_backend.models.earthgptx.tiny import build_tiny_earthgptx

    tiny = build_tiny_earthgptx(str(tmp_path / "tiny"), seed=0)
    before = EarthGPTXForConditionalGeneration.from_pretrained(tiny)
    c = before.config.convnext_config
    # The tiny model's ConvNeXt (dims 8/16/24/32, one block a stage) is no named timm model: build the same
    # architecture with timm's ConvNeXt class (Linear MLP, conv_mlp=False, patch stem 4, layer scale).
    tm = _random_timm(4, depths=tuple(c.depths), dims=tuple(c.hidden_sizes), patch_size=c.patch_size)
    ckpt = tmp_path / "open_clip_model.safetensors"
    save_file(_clip_state_dict(tm), str(ckpt))

    r = _cli(str(ckpt), "--model", tiny, "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    after = EarthGPTXForConditionalGeneration.from_pretrained(tmp_path / "out")
    EarthGPTXProcessor.from_pretrained(tmp_path / "out")  # side files came along
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(after.convnext(pixel_values=x).last_hidden_state, tm.forward_features(x), **TOL)
        before_sd, after_sd = before.state_dict(), after.state_dict()
        others = [k for k in before_sd if not k.startswith("convnext.")]
        assert others and all(torch.equal(before_sd[k], after_sd[k]) for k in others)
        assert not torch.equal(before_sd["convnext.embeddings.patch_embeddings.weight"],
                               after_sd["convnext.embeddings.patch_embeddings.weight"])

    other = tmp_path / "atto.pt"
    torch.save(_clip_state_dict(_random_timm(5, "convnext_atto")), other)
    r = _cli(str(other), "--model", tiny, "--out", str(tmp_path / "bad"))
    assert r.returncode == 2 and "does not match the model's convnext_config" in r.stderr
    assert "hidden_sizes: checkpoint [40, 80, 160, 320] vs model [8, 16, 24, 32]" in r.stderr
    assert not (tmp_path / "bad").exists()
    r = _cli(str(tmp_path / "missing.bin"), "--model", tiny, "--out", str(tmp_path / "bad"))
    assert r.returncode == 2 and "checkpoint not found" in r.stderr
