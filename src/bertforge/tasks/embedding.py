"""Sentence vectors: mean pooling over real tokens + L2 norm, as sentence-transformers' all-MiniLM-L6-v2.

    from bertforge.tasks.embedding import SentenceEncoder
    vectors = SentenceEncoder().encode(["A man plays guitar.", "Someone plays the guitar."])  # (2, 384)

Sentences are run in length-sorted batches, so a batch pads only to its own longest sentence.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch

from bertforge.models.bert.modeling import BertModel, mean_pool
from bertforge.inference import PRECISIONS, check_precision, precision_context, prepare_model
from bertforge.tokenizer.tokenizer import Tokenizer

__all__ = ["PRECISIONS", "SentenceEncoder"]


class SentenceEncoder:
    """Encode sentences into unit vectors with a BERT encoder (default: the real all-MiniLM-L6-v2)."""

    def __init__(self, model_dir: Optional[str | Path] = None, device: str = "cpu", precision: str = "fp32",
                 batch_size: int = 32, max_length: int = 256, compile: bool = False):
        """`precision` and `compile` are described in `bertforge.inference`."""
        from bertforge.models.bert.checkpoint import minilm_path

        check_precision(precision)
        model_dir = Path(model_dir) if model_dir is not None else minilm_path()
        self.tokenizer = Tokenizer.from_pretrained(model_dir)
        model = prepare_model(BertModel.from_pretrained(model_dir), device, precision, compile)
        self.config = model.config
        self.model, self.device, self.precision = model, device, precision
        self.batch_size, self.max_length = batch_size, max_length  # all-MiniLM-L6-v2 truncates at 256

    @torch.inference_mode()
    def encode(self, sentences: Sequence[str]) -> torch.Tensor:
        """(N,) sentences -> (N, D) float32 L2-normalised embeddings, in the input order."""
        if isinstance(sentences, str):
            raise TypeError("encode() takes a list of sentences, not one str")
        lengths = [len(self.tokenizer.tokenize(s)) for s in sentences]
        order = sorted(range(len(sentences)), key=lengths.__getitem__)
        out = torch.empty(len(sentences), self.config.hidden_size)
        for i in range(0, len(order), self.batch_size):
            idx = order[i : i + self.batch_size]
            batch = self.tokenizer.encode_batch([sentences[k] for k in idx], max_length=self.max_length,
                                                truncation=True, padding="longest", return_tensors="pt")
            ids, am = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
            with precision_context(self.device, self.precision):
                hidden = self.model(ids, am, batch["token_type_ids"].to(self.device)).last_hidden_state
            out[idx] = mean_pool(hidden.float(), am).cpu()
        return out
