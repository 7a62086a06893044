import pytest

from udc.sdk.models.config import CONFIGS, config_from_dict, get_config, tiny


@pytest.mark.parametrize("name", list(CONFIGS))
def test_configs_validate_and_round_trip(name):
    cfg = get_config(name)
    assert cfg.name == name
    assert config_from_dict(cfg.to_dict()) == cfg
    s1, s2, s3 = cfg.level_sizes()
    assert s1 == cfg.image_size // cfg.udcformer.stem_stride and s2 == s1 // 2 and s3 == s1 // 4
    assert cfg.num_classes == 7


def test_paper_config_uses_clip_vit_b32_geometry():
    cfg = get_config("paper")
    assert (cfg.vision.image_size, cfg.vision.patch_size, cfg.vision.width, cfg.vision.layers) == (224, 32, 768, 12)
    assert (cfg.text.width, cfg.text.layers, cfg.text.context_length, cfg.text.vocab_size) == (512, 12, 77, 49408)
    assert cfg.diffusion.steps == 4


def test_replace_nested_field():
    cfg = tiny().replace(**{"diffusion.steps": 8, "fpen.epr_dim": 24})
    assert cfg.diffusion.steps == 8 and cfg.fpen.epr_dim == 24
    with pytest.raises(KeyError, match="unknown config field"):
        tiny().replace(**{"diffusion.stepz": 8})


def test_invalid_config_names_the_problem():
    with pytest.raises(ValueError, match="not a multiple of window"):
        tiny().replace(**{"udcformer.window": 3})
    with pytest.raises(ValueError, match="parameterization"):
        tiny().replace(**{"diffusion.parameterization": "v"})
    with pytest.raises(ValueError, match="unknown config"):
        get_config("huge")
    with pytest.raises(ValueError, match="unknown LRDifConfig fields"):
        config_from_dict({**tiny().to_dict(), "bogus": 1})
