"""The PyTorch reference behind the same interface: an ``nn.Module`` (a component of
:func:`udc.sdk.models.components.on_device_components`) called on numpy inputs, in float32, no grad."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .runners import ordered_inputs


class TorchRunner:
    def __init__(self, module, input_names: Sequence[str], output_names: Sequence[str] | None = None,
                 threads: int | None = None):
        import torch

        self._torch = torch
        self.module = module.eval()
        self.input_names = list(input_names)
        self.output_names = list(output_names) if output_names else None
        if threads:
            torch.set_num_threads(int(threads))

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        torch = self._torch
        args = [torch.from_numpy(a) for a in ordered_inputs(inputs, self.input_names)]
        with torch.no_grad():
            out = self.module(*args)
        outs = out if isinstance(out, (tuple, list)) else [out]
        return [o.detach().cpu().numpy() for o in outs]


def from_module(module, input_names: Sequence[str], output_names: Sequence[str] | None = None,
                threads: int | None = None) -> TorchRunner:
    return TorchRunner(module, input_names, output_names, threads)


def from_checkpoint(path, component: str, threads: int | None = None) -> TorchRunner:
    """The reference for one component of a udc checkpoint (``clip_image``, ..., or ``pipeline``)."""
    from ..models.checkpoint import load_checkpoint
    from ..models.components import on_device_components

    model = load_checkpoint(path).eval()
    comps = {c.name: c for c in on_device_components(model, fuse=True)}
    if component not in comps:
        raise KeyError(f"unknown component {component!r}; choose one of {', '.join(comps)}")
    c = comps[component]
    return TorchRunner(c.module, list(c.inputs), list(c.outputs), threads)
