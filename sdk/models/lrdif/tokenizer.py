"""CLIP BPE tokenizer, read from a Hugging Face ``tokenizer.json`` with the ``tokenizers`` library."""
from __future__ import annotations

from pathlib import Path

import torch

EOT_TOKEN = "<|endoftext|>"
SOT_TOKEN = "<|startoftext|>"


class ClipTokenizer:
    def __init__(self, path: str | Path, context_length: int):
        from tokenizers import Tokenizer

        self.path = Path(path)
        self.tok = Tokenizer.from_file(str(self.path))
        self.context_length = context_length
        self.sot_id = self.tok.token_to_id(SOT_TOKEN)
        self.eot_id = self.tok.token_to_id(EOT_TOKEN)
        if self.eot_id is None:
            raise ValueError(f"{self.path} has no {EOT_TOKEN} token: not a CLIP tokenizer")

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids ``[N, context_length]`` (zero-padded, as OpenAI does) and EOT positions ``[N]``."""
        tokens = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        eot = torch.zeros(len(texts), dtype=torch.long)
        for i, enc in enumerate(self.tok.encode_batch(texts)):
            ids = list(enc.ids)
            if self.sot_id is not None and (not ids or ids[0] != self.sot_id):
                ids.insert(0, self.sot_id)
            if ids[-1] != self.eot_id:  # tokenizers without CLIP's post-processor
                ids.append(self.eot_id)
            ids = ids[: self.context_length - 1] + [self.eot_id] if len(ids) > self.context_length else ids
            tokens[i, : len(ids)] = torch.tensor(ids)
            eot[i] = len(ids) - 1
        return tokens, eot
