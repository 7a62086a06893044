"""The DIL-network's two forms (issue 15): the paper's (beside the DT-network, one landmark query window shared by
every image window, K/V from the image's own patch features) and the old one ("post", after the DT-network), which
every checkpoint saved before ``dil_form`` existed loads as."""
import pytest
import torch

from udc.sdk.models.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from udc.sdk.models.config import config_from_dict, fer, tiny
from udc.sdk.models.lrdif.dil_network import SharedQueryDILBlock, WindowCrossAttention
from udc.sdk.models.lrdif.layers import window_partition
from udc.sdk.models.lrdif.model import LRDif


def test_every_config_defaults_to_the_paper_form_and_saved_configs_without_the_field_load_as_post():
    from udc.sdk.models.config import CONFIGS

    assert {name: make().udcformer.dil_form for name, make in CONFIGS.items()} == dict.fromkeys(CONFIGS, "paper")
    assert config_from_dict(fer().to_dict()).udcformer.dil_form == "paper"  # a saved paper-form config stays paper
    d = tiny().replace(**{"udcformer.dil_form": "paper"}).to_dict()
    del d["udcformer"]["dil_form"]
    assert config_from_dict(d).udcformer.dil_form == "post"
    with pytest.raises(ValueError, match="dil_form"):
        tiny().replace(**{"udcformer.dil_form": "pre"})


def test_shared_query_attention_equals_one_query_per_window_written_out():
    torch.manual_seed(0)
    dim, heads, window, size, b = 8, 2, 2, 4, 3
    nw = (size // window) ** 2
    attn = WindowCrossAttention(dim, heads, window, nw, shared_query=True).eval()
    img = torch.randn(b * nw, window * window, dim)
    lm = torch.randn(b, window * window, dim)
    got = attn(lm, img)
    # the same weights without sharing, the landmark window copied to every window of its sample
    attn.shared_query = False
    want = attn(lm.repeat_interleave(nw, dim=0), img)
    torch.testing.assert_close(got, want)


def test_paper_form_query_does_not_depend_on_the_window_and_keys_come_from_the_image():
    """Eqs. 5-6 per window: with the image tokens of two windows swapped, their outputs swap (one shared query)."""
    torch.manual_seed(0)
    block = SharedQueryDILBlock(8, 2, 2, 4, 2.0, 0.0).eval()
    img = torch.randn(1, 8, 4, 4)
    lm = torch.randn(1, 8, 2, 2)
    out = block(img, lm)
    swapped = img.clone()
    swapped[..., :2, :2], swapped[..., :2, 2:] = img[..., :2, 2:], img[..., :2, :2]
    out2 = block(swapped, lm)
    torch.testing.assert_close(out2[..., :2, :2], out[..., :2, 2:], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out2[..., :2, 2:], out[..., :2, :2], rtol=1e-5, atol=1e-5)
    assert window_partition(img, 2).shape == (4, 4, 8)


def test_paper_form_runs_beside_the_dt_network():
    """O_i does not read the DT features: changing Z (which only the DT-network reads) leaves the DIL outputs as
    they are in the paper form and changes them in the post form."""
    torch.manual_seed(0)
    for form, same in (("paper", True), ("post", False)):
        m = LRDif(tiny().replace(**{"udcformer.dil_form": form})).eval()
        for p in m.udcformer.dt.parameters():  # Z reaches the DT features through a nonzero modulation
            p.data.add_(0.05 * torch.randn_like(p))
        x, lm = torch.randn(1, 3, 64, 64), torch.rand(1, 68, 2)
        outs = []
        for z in (torch.zeros(1, 16), torch.randn(1, 16)):
            seen = []
            h = m.udcformer.dil.register_forward_hook(lambda mod, a, kw, out, seen=seen: seen.append(out),
                                                      with_kwargs=True)
            with torch.no_grad():
                m.udcformer(x, lm, z)
            h.remove()
            outs.append(seen[0])
        equal = all(torch.equal(a, b) for a, b in zip(*outs))
        assert equal is same, form
        assert [o.shape[1:] for o in outs[0]] == [(8, 32, 32), (16, 16, 16), (32, 8, 8)]


def test_old_checkpoint_without_dil_form_loads_as_post(tmp_path):
    torch.manual_seed(0)
    model = LRDif(tiny().replace(**{"udcformer.dil_form": "post"})).eval()
    assert not any(k.startswith("udcformer.dil.image.") for k in model.state_dict())
    path = save_checkpoint(model, tmp_path / "old.pt")
    payload = read_checkpoint(path)
    del payload["config"]["udcformer"]["dil_form"]  # as saved before the field existed
    torch.save(payload, path)
    loaded = load_checkpoint(path).eval()
    assert loaded.cfg.udcformer.dil_form == "post"
    x, lm, n = torch.randn(2, 3, 64, 64), torch.rand(2, 68, 2), torch.randn(2, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, lm, n), model(x, lm, n))
