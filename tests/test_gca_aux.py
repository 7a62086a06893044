"""Seed 002's auxiliary classifier on the GCA descriptor (issue 15): trained with 0.05 * CE, never in inference."""
import torch
import torch.nn.functional as F

from udc.sdk.models.ddamfn_config import ddamfn_config_from_dict, tiny
from udc.train.losses.fer import ddamfn_total_loss, gca_aux_loss
from udc.sdk.models.ddamfn.model import DDAMFN


def _model(**kw):
    torch.manual_seed(0)
    return DDAMFN(tiny().replace(gca_stages=(1, 2), gca_reduction=4, **kw))


def test_each_gca_block_has_an_auxiliary_classifier_on_its_descriptor():
    m = _model().train()
    blocks = m.gca_blocks()
    assert blocks and all(g.aux is not None for g in blocks)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    logits, maps, aux = m.forward_train(x)
    assert len(aux) == len(blocks) and all(a.shape == (4, 7) for a in aux)
    # the auxiliary logits are the linear classifier on the global-conv descriptor of the block's input
    seen = []
    h = blocks[0].register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    m.eval()
    with torch.no_grad():
        _, _, aux_eval = m.forward_train(x)
    h.remove()
    want = blocks[0].aux(blocks[0].descriptor(seen[0]).flatten(1))
    torch.testing.assert_close(aux_eval[0], want)
    # 0.05 x the mean CE of the auxiliary classifiers is added to the loss
    base, _ = ddamfn_total_loss(logits, y, maps)
    total, parts = ddamfn_total_loss(logits, y, maps, aux_logits=aux, aux_weight=m.cfg.gca_aux_weight)
    mean_ce = torch.stack([F.cross_entropy(a, y) for a in aux]).mean()
    assert m.cfg.gca_aux_weight == 0.05 and "gca_aux" in parts
    torch.testing.assert_close(total, base + 0.05 * mean_ce)
    torch.testing.assert_close(gca_aux_loss(aux, y), mean_ce)
    total.backward()
    assert blocks[0].aux.weight.grad is not None and blocks[0].aux.weight.grad.abs().sum() > 0


def test_inference_never_computes_the_auxiliary_classifier_and_old_configs_load_without_it():
    m = _model().eval()
    calls = []
    for g in m.gca_blocks():
        g.aux.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        m(torch.randn(1, 3, 32, 32))
    assert not calls and all(g.aux_logits is None for g in m.gca_blocks())
    d = m.cfg.to_dict()
    del d["gca_aux"]  # saved before the field existed
    old = DDAMFN(ddamfn_config_from_dict(d))
    assert all(g.aux is None for g in old.gca_blocks())
    assert old.forward_train(torch.randn(2, 3, 32, 32))[2] == []
