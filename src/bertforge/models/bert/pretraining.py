"""BERT's pre-training heads (Devlin et al. 2019, section 3.1): masked LM + next-sentence prediction.

- MLM head (HF `cls.predictions`): h -> LayerNorm(GELU(W h + b)) -> E^T h + b_out, with the decoder
  tied to the word embeddings E (V, D) and an output-only bias (V,).
- NSP head (HF `cls.seq_relationship`): pooled [CLS] -> 2 logits (0 = IsNext, 1 = NotNext).

D7: with labels, the MLM head runs only at the masked positions (labels != -100): the hidden states are
gathered *before* the (D -> V) projection, which for a small model is most of the compute (15% of the
rows of a 30522-wide matmul instead of all of them). The MLM logits are then (N, V) for the N masked
positions in row-major order, i.e. HF's `prediction_logits[labels != -100]`. Without labels the head
scores every position: (B, T, V), as HF.

Parameter names are HF's, so a checkpoint saved here loads into `transformers.BertForPreTraining`.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertforge.data import IGNORE_INDEX  # noqa: F401 - re-exported
from bertforge.models.bert.config import BertConfig
from bertforge.models.bert.heads import BertWithHead, HeadOutput
from bertforge.models.bert.modeling import BertOutput
from bertforge.nn.transformer import ACTIVATION_FUNCTIONS


class BertPredictionHeadTransform(nn.Module):
    """h -> LayerNorm(act(W h + b)), HF's `cls.predictions.transform`."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACTIVATION_FUNCTIONS[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, h: Tensor) -> Tensor:  # (..., D) -> (..., D)
        return self.LayerNorm(self.act(self.dense(h)))


class BertLMPredictionHead(nn.Module):
    """transform, then the decoder (D -> V) whose weight is the word-embedding matrix, plus a bias."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.decoder.bias = self.bias  # one parameter, two names (as HF)

    def forward(self, h: Tensor) -> Tensor:  # (..., D) -> (..., V)
        return self.decoder(self.transform(h))


class BertPreTrainingHeads(nn.Module):
    def __init__(self, config: BertConfig, nsp: bool = True):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)
        if nsp:
            self.seq_relationship = nn.Linear(config.hidden_size, 2)


def masked_lm(predictions: BertLMPredictionHead, hidden: Tensor, labels: Optional[Tensor]
              ) -> tuple[Tensor, Optional[Tensor]]:
    """MLM logits and loss: gather the masked positions, then project (D7).

    hidden (B, T, D), labels (B, T) with -100 where nothing is predicted. Returns ((N, V) logits, mean
    cross-entropy over the N masked tokens) or, without labels, ((B, T, V), None).
    """
    if labels is None:
        return predictions(hidden), None
    if labels.shape != hidden.shape[:2]:
        raise ValueError(f"labels shape {tuple(labels.shape)} != input shape {tuple(hidden.shape[:2])}")
    selected = labels != IGNORE_INDEX  # (B, T)
    logits = predictions(hidden[selected])  # (N, D) -> (N, V)
    targets = labels[selected]  # (N,)
    if targets.numel() == 0:  # nothing masked in this batch: a zero loss that still has a graph
        return logits, logits.float().sum() * 0.0
    return logits, F.cross_entropy(logits.float(), targets)


class BertForPreTraining(BertWithHead):
    """Encoder + MLM head + NSP head. loss = MLM loss + NSP loss (each a mean), as HF.

    forward(input_ids, attention_mask, token_type_ids, labels=(B, T), next_sentence_label=(B,)) ->
    HeadOutput(logits=(mlm_logits, nsp_logits (B, 2)), loss). Unlike HF, a loss is returned when only
    one of the two label tensors is given (that task's loss alone).
    """

    tied_weight_keys = ["cls.predictions.decoder.weight", "cls.predictions.decoder.bias"]

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.cls = BertPreTrainingHeads(config, nsp=self.add_pooling_layer)
        self.init_weights()
        self.tie_weights()

    def tie_weights(self) -> None:
        """decoder.weight is the word-embedding matrix; decoder.bias is `cls.predictions.bias`."""
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight
        self.cls.predictions.decoder.bias = self.cls.predictions.bias

    def head(self, out: BertOutput, labels: Optional[Tensor] = None,
             next_sentence_label: Optional[Tensor] = None) -> HeadOutput:
        mlm_logits, loss = masked_lm(self.cls.predictions, out.last_hidden_state, labels)
        nsp_logits = self.cls.seq_relationship(out.pooler_output)  # (B, 2)
        if next_sentence_label is not None:
            nsp_loss = F.cross_entropy(nsp_logits.float(), next_sentence_label.view(-1))
            loss = nsp_loss if loss is None else loss + nsp_loss
        return HeadOutput(logits=(mlm_logits, nsp_logits), loss=loss)


class BertForMaskedLM(BertForPreTraining):
    """Encoder + MLM head only (no pooler, no NSP): the packed, RoBERTa-style objective. HF names as
    `transformers.BertForMaskedLM`. forward(..., labels) -> HeadOutput(logits=mlm_logits, loss)."""

    add_pooling_layer = False

    def head(self, out: BertOutput, labels: Optional[Tensor] = None) -> HeadOutput:
        logits, loss = masked_lm(self.cls.predictions, out.last_hidden_state, labels)
        return HeadOutput(logits=logits, loss=loss)


# ---------------------------------------------------------------------------------------------
# Evaluation and use
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate_pretraining(model: BertForPreTraining, batches, device: Optional[torch.device] = None
                         ) -> dict[str, float]:
    """Held-out MLM loss / accuracy / perplexity (token-weighted) and NSP loss / accuracy.

    `batches`: an iterable of collated batches (use static masking so every evaluation sees the same
    masks). Perplexity = exp(mean MLM cross-entropy over all masked tokens).
    """
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    mlm_loss = mlm_correct = mlm_n = nsp_loss = nsp_correct = nsp_n = 0.0
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(**{k: v for k, v in batch.items() if k not in ("labels", "next_sentence_label")},
                    labels=batch["labels"])
        logits = out.logits[0] if isinstance(out.logits, tuple) else out.logits
        targets = batch["labels"][batch["labels"] != IGNORE_INDEX]
        mlm_loss += float(F.cross_entropy(logits.float(), targets, reduction="sum")) if len(targets) else 0.0
        mlm_correct += float((logits.argmax(-1) == targets).sum())
        mlm_n += len(targets)
        if isinstance(out.logits, tuple) and "next_sentence_label" in batch:
            nsp_logits, y = out.logits[1], batch["next_sentence_label"]
            nsp_loss += float(F.cross_entropy(nsp_logits.float(), y, reduction="sum"))
            nsp_correct += float((nsp_logits.argmax(-1) == y).sum())
            nsp_n += len(y)
    model.train(was_training)
    if mlm_n == 0:
        raise ValueError("evaluation saw no masked token: is the evaluation set empty?")
    result = {"mlm_loss": mlm_loss / mlm_n, "mlm_accuracy": mlm_correct / mlm_n,
              "mlm_perplexity": float(torch.tensor(mlm_loss / mlm_n).exp())}
    if nsp_n:
        result.update(nsp_loss=nsp_loss / nsp_n, nsp_accuracy=nsp_correct / nsp_n)
    return result


@torch.no_grad()
def fill_mask(model: BertForPreTraining, tokenizer, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """For each [MASK] in `text`, the `top_k` most likely tokens with their probabilities."""
    enc = tokenizer.encode(text)
    ids = torch.tensor([enc.input_ids])
    positions = (ids[0] == tokenizer.mask_token_id).nonzero().flatten()
    if len(positions) == 0:
        raise ValueError(f"no [MASK] token in {text!r}: write [MASK] where a word should be predicted")
    limit = model.config.max_position_embeddings
    if ids.size(1) > limit:
        raise ValueError(f"the text is {ids.size(1)} tokens long but the model reads at most {limit}: shorten it")
    model.eval()
    device = next(model.parameters()).device
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[0, positions] = 0  # any id: selects the positions to score
    out = model(ids.to(device), torch.ones_like(ids).to(device), torch.tensor([enc.token_type_ids]).to(device),
                labels=labels.to(device))
    logits = out.logits[0] if isinstance(out.logits, tuple) else out.logits  # (n_masks, V)
    probs = logits.float().softmax(-1)
    top = probs.topk(min(top_k, probs.size(-1)), dim=-1)  # asking for more than the vocabulary: all of it
    return [[(tokenizer.convert_ids_to_tokens(int(i)), float(p)) for p, i in zip(ps, idx)]
            for ps, idx in zip(top.values, top.indices)]
