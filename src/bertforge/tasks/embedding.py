"""Sentence vectors: mean pooling over real tokens + L2 norm, as sentence-transformers' all-MiniLM-L6-v2.

    from bertforge.tasks.embedding import SentenceEncoder
    vectors = SentenceEncoder().encode(["A man plays guitar.", "Someone plays the guitar."])  # (2, 384)

Sentences are run in length-sorted batches, so a batch pads only to its own longest sentence.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import torch

from bertforge.data.batching import length_sorted_batches
from bertforge.inference import (
    PRECISIONS,
    check_device,
    check_precision,
    precision_context,
    prepare_model,
    progress_bar,
)
from bertforge.models.bert.modeling import BertModel, mean_pool
from bertforge.tokenizer.tokenizer import Tokenizer

__all__ = ["PRECISIONS", "SentenceEncoder"]


class SentenceEncoder:
    """Encode sentences into unit vectors with a BERT encoder (default: the real all-MiniLM-L6-v2)."""

    def __init__(self, model_dir: Optional[str | Path] = None, device: str = "cpu", precision: str = "fp32",
                 batch_size: int = 32, max_length: int = 256, compile: bool = False):
        """`precision` and `compile` are described in `bertforge.inference`."""
        from bertforge.models.bert.checkpoint import minilm_path
        from bertforge.tokenizer.tokenizer import check_fits

        check_precision(precision)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        model_dir = Path(model_dir) if model_dir is not None else minilm_path()
        self.tokenizer = Tokenizer.from_pretrained(model_dir)
        model = BertModel.from_pretrained(model_dir)
        check_fits(self.tokenizer, model.config, model_dir, exact=False)
        positions = model.config.max_position_embeddings
        if max_length > positions:
            raise ValueError(f"max_length {max_length} is more than the {positions} positions of the model in "
                             f"{model_dir}: use --max-seq-length {positions} or less")
        model = prepare_model(model, device, precision, compile)
        self.config = model.config
        self.model, self.device, self.precision = model, str(check_device(device)), precision
        self.batch_size, self.max_length = batch_size, max_length  # all-MiniLM-L6-v2 truncates at 256

    @torch.inference_mode()
    def encode(self, sentences: Sequence[str], progress: bool = False) -> torch.Tensor:
        """(N,) sentences -> (N, D) float32 L2-normalised embeddings, in the input order; `progress`: a bar
        on a terminal (bertforge.inference.progress_bar)."""
        if isinstance(sentences, str):
            raise TypeError("encode() takes a list of sentences, not one str")
        lengths = [len(self.tokenizer.tokenize(s)) for s in sentences]
        out = torch.empty(len(sentences), self.config.hidden_size)
        with progress_bar(len(sentences), "embedding", progress, unit="sentence") as bar:
            for idx in length_sorted_batches(lengths, self.batch_size):
                batch = self.tokenizer.encode_batch([sentences[k] for k in idx], max_length=self.max_length,
                                                    truncation=True, padding="longest", return_tensors="pt")
                ids, am = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
                with precision_context(self.device, self.precision):
                    hidden = self.model(ids, am, batch["token_type_ids"].to(self.device)).last_hidden_state
                out[idx] = mean_pool(hidden.float(), am).cpu()
                bar.update(len(idx))
        return out
