"""DDAMFN (seed 003): MFN backbone -> DDAN (n dual-direction attention heads) -> GDConv -> classifier.

```
image [B, 3, 112, 112] (ImageNet mean/std)
  MFN   : stem (3x3 s2, 3x3 dw) -> 3 stages of MixConv blocks (non-residual s2, then residual) -> 1x1
          -> F [B, 512, 7, 7]
  DDAN  : a_i = DDAHead_i(F) (i = 1..n), y = F * max_i a_i
  head  : GDConv (7x7 depthwise, linear) -> [B, 512] -> FC -> logits [B, 7]
loss    : L = CE + 0.1 * L_att(a_1..a_n)       (train/losses/fer.py)
          (+ 0.05 * CE of the GCA auxiliary classifiers, mean over blocks, when GCA blocks are on)
```

``forward(image)`` returns logits only (what is exported); ``forward(image, return_attention=True)``
(or :meth:`DDAMFN.forward_with_attention`) also returns the heads' maps for the attention loss.
The paper config has 4,105,999 parameters, the seed's 4.106 M (see ``tests/test_ddamfn.py``).

:func:`convert_official_state_dict` maps a checkpoint of the public DDAMFN code (``DDAMNet``) onto
this module (it drops the modules that code declares but never runs).
"""
from __future__ import annotations

import re

import torch
from torch import nn

from ..ddamfn_config import DDAMFNConfig
from .ddan import DDAN
from .gca import GCA
from .mfn import MFN, ConvBN


class DDAMFN(nn.Module):
    def __init__(self, cfg: DDAMFNConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        c, s = cfg.feature_channels, cfg.feature_size
        self.mfn = MFN(cfg)
        self.ddan = DDAN(c, s, cfg.num_heads, cfg.ca_groups)
        self.gdconv = ConvBN(c, c, s, groups=c)  # global depthwise conv, linear: [B, C, s, s] -> [B, C, 1, 1]
        self.fc = nn.Linear(c, cfg.num_classes)

    def forward_with_attention(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = self.mfn(image)  # [B, C, s, s]
        y, maps = self.ddan(feats)  # [B, C, s, s], n x [B, C, s, s]
        y = self.gdconv(y).flatten(1)  # [B, C]
        return self.fc(y), maps  # [B, K]

    def gca_blocks(self) -> list[GCA]:
        return [m for m in self.modules() if isinstance(m, GCA)]

    def forward_train(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Training forward: ``(logits [B, K], the heads' maps, the GCA auxiliary logits [B, K] per GCA block that
        has an auxiliary classifier)``."""
        blocks = [g for g in self.gca_blocks() if g.aux is not None]
        for g in blocks:
            g.collect_aux = True
        try:
            logits, maps = self.forward_with_attention(image)
            aux = [g.aux_logits for g in blocks]
        finally:
            for g in blocks:
                g.collect_aux, g.aux_logits = False, None
        return logits, maps, aux

    def forward(self, image: torch.Tensor, return_attention: bool = False):
        logits, maps = self.forward_with_attention(image)
        return (logits, maps) if return_attention else logits


# public DDAMFN code (networks/DDAM.py + MixedFeatureNet.py) -> this module
_FEATURE_MODULES = ["mfn.conv1", "mfn.conv2_dw"]
_OFFICIAL_RULES = [
    (r"^cat_head(\d+)\.CoordAtt\.Linear_h\.", r"ddan.heads.\1.linear_h."),
    (r"^cat_head(\d+)\.CoordAtt\.Linear_w\.", r"ddan.heads.\1.linear_w."),
    (r"^cat_head(\d+)\.CoordAtt\.(conv1|bn1|conv2|conv3)\.", r"ddan.heads.\1.\2."),
    (r"^Linear\.", "gdconv."),
    (r"^fc\.", "fc."),
]
_BLOCK_RULES = [
    (r"\.conv_dw\.mixed_depthwise_conv\.", ".conv_dw.convs."),
    (r"\.CA\.", ".ca."),
]
_UNUSED = [r"^cat_head\d+\.CoordAtt\.Linear\.", r"^bn\."]  # declared by DDAMNet, never used in its forward


def convert_official_state_dict(sd: dict[str, torch.Tensor], cfg: DDAMFNConfig) -> dict[str, torch.Tensor]:
    """Rename a public-DDAMFN ``DDAMNet`` state dict (``features.N...``, ``cat_headI.CoordAtt...``) to ours.

    Keys of modules that code never runs (each head's ``CoordAtt.Linear``, ``bn``, and the mixed
    depthwise conv's ``bn``/``prelu`` unless ``cfg.mixconv_bn_act``) are dropped. Unknown keys raise.
    """
    n_stages = len(cfg.stages)
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if any(re.match(p, key) for p in _UNUSED):
            continue
        new = None
        m = re.match(r"^features\.(\d+)\.(.*)$", key)
        if m:
            idx, rest = int(m.group(1)), m.group(2)
            if idx < 2:
                new = f"{_FEATURE_MODULES[idx]}.{rest}"
            elif idx < 2 + 2 * n_stages:
                stage, is_res = divmod(idx - 2, 2)
                if is_res:
                    mm = re.match(r"^model\.(\d+)\.(.*)$", rest)
                    if mm is None:
                        raise KeyError(f"unexpected official key {key!r}")
                    new = f"mfn.stages.{stage}.blocks.{mm.group(1)}.{mm.group(2)}"
                else:
                    new = f"mfn.stages.{stage}.down.{rest}"
                if re.search(r"\.conv_dw\.(bn|prelu)\.", "." + rest) and not cfg.mixconv_bn_act:
                    continue
                for pat, rep in _BLOCK_RULES:
                    new = re.sub(pat, rep, new)
            elif idx == 2 + 2 * n_stages:
                new = f"mfn.conv_sep.{rest}"
        else:
            for pat, rep in _OFFICIAL_RULES:
                if re.match(pat, key):
                    new = re.sub(pat, rep, key)
                    break
        if new is None:
            raise KeyError(f"unexpected official key {key!r}")
        out[new] = value
    return out
