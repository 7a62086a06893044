"""Loading user CLIP checkpoints: OpenAI/open_clip state dicts and Hugging Face directories."""
import warnings

import pytest
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

from udc.sdk.labels import prompts
from udc.sdk.models.lrdif.clip import CLIPTextTower, CLIPVisionTower
from udc.sdk.models.lrdif.clip_checkpoint import (
    CLIPCheckpointError, hf_to_openai, infer_text_config, infer_vision_config, openai_to_hf, read_clip_checkpoint,
    save_hf_clip_dir,
)
from udc.sdk.models.lrdif.model import build_model
from udc.sdk.models.lrdif.tokenizer import ClipTokenizer


@pytest.fixture
def towers(cfg):
    torch.manual_seed(123)
    return CLIPVisionTower(cfg.vision), CLIPTextTower(cfg.text)


def openai_state_dict(vision, text):
    sd = {f"visual.{k}": v for k, v in vision.state_dict().items()} | dict(text.state_dict())
    sd["logit_scale"] = torch.tensor(4.6)
    return sd


def make_tokenizer(path):
    tok = Tokenizer(models.BPE(unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(prompts() * 4, trainers.BpeTrainer(
        vocab_size=120, special_tokens=["<|startoftext|>", "<|endoftext|>"], show_progress=False))
    sot, eot = tok.token_to_id("<|startoftext|>"), tok.token_to_id("<|endoftext|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>", special_tokens=[("<|startoftext|>", sot), ("<|endoftext|>", eot)])
    tok.save(str(path))
    return path


def test_openai_state_dict_loads_into_model(cfg, towers, tmp_path):
    vision, text = towers
    torch.save(openai_state_dict(vision, text), tmp_path / "clip.pt")
    with pytest.warns(UserWarning, match="no tokenizer.json"):
        model = build_model(cfg, clip=tmp_path / "clip.pt")
    assert model.label_encoder == "embedding" and model.clip_source.endswith("clip.pt")
    image = torch.randn(2, 3, cfg.image_size, cfg.image_size)
    torch.testing.assert_close(model.clip_image(image), vision(image), rtol=0, atol=0)
    assert not any(p.requires_grad for p in model.clip_image.parameters())


def test_openai_safetensors_and_wrapped_state_dict(cfg, towers, tmp_path):
    vision, text = towers
    sd = openai_state_dict(vision, text)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "clip.safetensors"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "wrapped.pt")
    for name in ("clip.safetensors", "wrapped.pt"):
        ckpt = read_clip_checkpoint(tmp_path / name)
        assert ckpt.layout == "openai"
        assert set(ckpt.vision) == set(vision.state_dict())
        assert set(ckpt.text) == set(text.state_dict())


def test_hugging_face_directory_with_tokenizer(cfg, towers, tmp_path):
    vision, text = towers
    hf_dir = save_hf_clip_dir(vision, text, tmp_path / "hf-clip")
    make_tokenizer(hf_dir / "tokenizer.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a complete checkpoint loads without any warning
        model = build_model(cfg, clip=hf_dir)
    assert model.label_encoder == "clip"
    image = torch.randn(2, 3, cfg.image_size, cfg.image_size)
    torch.testing.assert_close(model.clip_image(image), vision(image), rtol=0, atol=0)
    tokens, eot = ClipTokenizer(hf_dir / "tokenizer.json", cfg.text.context_length)(prompts())
    assert (tokens[torch.arange(7), eot] == ClipTokenizer(hf_dir / "tokenizer.json", 16).eot_id).all()
    torch.testing.assert_close(model.label_text_features, text(tokens, eot))
    # distinct prompts give distinct label features
    assert torch.cdist(model.label_text_features, model.label_text_features).fill_diagonal_(1).min() > 0
    # geometry is recoverable from the checkpoint alone
    ckpt = read_clip_checkpoint(hf_dir)
    assert ckpt.layout == "huggingface"
    assert infer_vision_config(ckpt) == cfg.vision
    assert infer_text_config(ckpt) == cfg.text


def test_hf_openai_mapping_round_trips(towers):
    sd = openai_state_dict(*towers)
    del sd["logit_scale"]
    back = hf_to_openai(openai_to_hf(sd))
    assert set(back) == set(sd)
    assert all(torch.equal(back[k], sd[k]) for k in sd)


def test_wrong_checkpoint_names_the_keys(cfg, towers, tmp_path):
    vision, text = towers
    sd = openai_state_dict(vision, text)
    sd.pop("visual.ln_post.weight")
    sd["visual.extra_head.weight"] = torch.zeros(3)
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(CLIPCheckpointError) as err:
        build_model(cfg, clip=tmp_path / "bad.pt", warn=False)
    msg = str(err.value)
    assert "1 missing keys: ln_post.weight" in msg and "1 unexpected keys: extra_head.weight" in msg


def test_checkpoint_of_another_size_names_shape_mismatches(cfg, tmp_path):
    other = CLIPVisionTower(cfg.vision.__class__(image_size=64, patch_size=16, width=48, layers=2, heads=2, embed_dim=32))
    torch.save({f"visual.{k}": v for k, v in other.state_dict().items()}, tmp_path / "other.pt")
    with pytest.raises(CLIPCheckpointError, match=r"shape mismatches: class_embedding: checkpoint \(48,\) vs model \(32,\)"):
        build_model(cfg, clip=tmp_path / "other.pt", warn=False)


def test_not_a_clip_checkpoint(cfg, tmp_path):
    with pytest.raises(CLIPCheckpointError, match="does not exist"):
        build_model(cfg, clip=tmp_path / "missing.pt")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "resnet.pt")
    with pytest.raises(CLIPCheckpointError, match="not a CLIP checkpoint"):
        build_model(cfg, clip=tmp_path / "resnet.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00junk")
    with pytest.raises(CLIPCheckpointError, match="cannot read"):
        build_model(cfg, clip=tmp_path / "junk.pt")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(CLIPCheckpointError, match="no model.safetensors"):
        build_model(cfg, clip=tmp_path / "empty_dir")


def test_random_init_warns(cfg):
    with pytest.warns(UserWarning, match="random init"):
        model = build_model(cfg)
    assert model.clip_source is None and model.label_encoder == "embedding"
