"""Task heads on the BERT encoder (Devlin et al. 2019, section 4 and figure 4).

One way to put a head on the encoder: `BertWithHead` holds the encoder as `self.bert` (parameters named
`bert.*`, as in HF) and a subclass adds its layers under HF's names and implements `head()`, which
maps the encoder output to logits and, given labels, a loss. Every head returns a `HeadOutput`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertforge.data.classify import PROBLEM_TYPES  # the names live torch-free, for the command line
from bertforge.models.bert.config import BertConfig
from bertforge.models.bert.modeling import BertModel, BertOutput, BertPreTrainedModel


@dataclass
class HeadOutput:
    logits: Tensor | tuple[Tensor, ...]  # task logits (QA: (start_logits, end_logits))
    loss: Optional[Tensor] = None
    encoder: Optional[BertOutput] = None  # hidden states / attentions when asked for


class BertWithHead(BertPreTrainedModel):
    """The encoder plus a task head. Subclasses define their layers and `head(encoder_output, labels)`."""

    add_pooling_layer = True  # heads that do not read the pooled [CLS] vector set False (as HF does)

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, add_pooling_layer=self.add_pooling_layer)

    def head(self, out: BertOutput, **labels: Optional[Tensor]) -> HeadOutput:
        raise NotImplementedError

    def encode(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
               token_type_ids: Optional[Tensor] = None, **kwargs) -> BertOutput:
        """Run the encoder; subclasses with extra input dimensions (multiple choice) override this."""
        return self.bert(input_ids, attention_mask, token_type_ids, **kwargs)

    def forward(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                token_type_ids: Optional[Tensor] = None, output_hidden_states: bool = False,
                output_attentions: bool = False, unpad: Optional[bool] = None,
                **labels: Optional[Tensor]) -> HeadOutput:
        """`unpad` as in `BertModel.forward` (False keeps padded shapes: fixed shapes reuse CPU kernels)."""
        out = self.encode(input_ids, attention_mask, token_type_ids, unpad=unpad,
                          output_hidden_states=output_hidden_states, output_attentions=output_attentions)
        result = self.head(out, **labels)
        if output_hidden_states or output_attentions:
            result.encoder = out
        return result


class BertForQuestionAnswering(BertWithHead):
    """Extractive QA (Devlin et al. 4.2): a start vector S and an end vector E score every token.

    start_logits_i = S . T_i, end_logits_i = E . T_i (one Linear(D, 2), HF's `qa_outputs`);
    loss = (CE(start) + CE(end)) / 2. Positions outside the sequence (labels clamped to T) are ignored.
    Padding positions get the lowest logit, so they are never predicted and take no softmax mass (HF
    leaves them in; on a batch without padding the two losses are equal).
    """

    add_pooling_layer = False

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.init_weights()

    def head(self, out: BertOutput, start_positions: Optional[Tensor] = None,
             end_positions: Optional[Tensor] = None) -> HeadOutput:
        logits = self.qa_outputs(out.last_hidden_state)  # (B, T, 2)
        if out.attention_mask is not None:
            logits = logits.masked_fill(~out.attention_mask.bool().unsqueeze(-1), torch.finfo(logits.dtype).min)
        start_logits, end_logits = logits.unbind(dim=-1)  # (B, T) each
        loss = None
        if start_positions is not None and end_positions is not None:
            T = start_logits.size(1)  # as HF: a label past the sequence is ignored
            start = start_positions.clamp(0, T)
            end = end_positions.clamp(0, T)
            loss = (F.cross_entropy(start_logits.float(), start, ignore_index=T)
                    + F.cross_entropy(end_logits.float(), end, ignore_index=T)) / 2
        return HeadOutput(logits=(start_logits, end_logits), loss=loss)


# ---------------------------------------------------------------------------------------------
# Classification heads (Devlin et al. 4.1-4.4, figure 4): dropout + one Linear, `classifier`
# ---------------------------------------------------------------------------------------------
# Label settings live in `config.extra` under HF's config.json keys (`id2label`, `label2id`,
# `problem_type`, `classifier_dropout`), so a fine-tuned checkpoint loads in transformers with its labels.


def num_labels(config: BertConfig) -> int:
    """Number of outputs: len(id2label) as HF derives it, else `num_labels`, else HF's default 2."""
    if config.extra.get("id2label"):
        return len(config.extra["id2label"])
    return int(config.extra.get("num_labels", 2))


def id2label(config: BertConfig) -> dict[int, str]:
    """{index: label name} (JSON keys are strings; HF's default names are LABEL_i)."""
    d = config.extra.get("id2label")
    if not d:
        return {i: f"LABEL_{i}" for i in range(num_labels(config))}
    return {int(k): v for k, v in d.items()}


def label2id(config: BertConfig) -> dict[str, int]:
    """{label name: index}, the inverse of `id2label`."""
    return {name: i for i, name in id2label(config).items()}


def set_labels(config: BertConfig, labels: list[str], problem_type: Optional[str] = None) -> None:
    """Record the label names (index order) and the problem type in `config.extra`, as HF writes them.

    Regression has one output and no names: pass `labels=["LABEL_0"]` (what HF writes for num_labels=1).
    """
    if not labels:
        raise ValueError("a classifier needs at least one label")
    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicate label names: {labels}")
    if problem_type is not None and problem_type not in PROBLEM_TYPES:
        raise ValueError(f"problem_type must be one of {PROBLEM_TYPES}, got {problem_type!r}")
    config.extra["id2label"] = {str(i): name for i, name in enumerate(labels)}
    config.extra["label2id"] = {name: i for i, name in enumerate(labels)}
    config.extra.pop("num_labels", None)
    if problem_type is not None:
        config.extra["problem_type"] = problem_type


def problem_type(config: BertConfig, labels: Tensor) -> str:
    """HF's rule: the configured `problem_type`, else regression for one output, single-label for
    integer labels, multi-label (one 0/1 target per label) for float labels."""
    configured = config.extra.get("problem_type")
    if configured is not None:
        if configured not in PROBLEM_TYPES:
            raise ValueError(f"config problem_type must be one of {PROBLEM_TYPES}, got {configured!r}")
        return configured
    if num_labels(config) == 1:
        return "regression"
    if labels.dtype in (torch.long, torch.int, torch.int16, torch.int8, torch.uint8):
        return "single_label_classification"
    return "multi_label_classification"


def classification_loss(logits: Tensor, labels: Tensor, kind: str) -> Tensor:
    """Loss for (N, L) logits: cross-entropy (integer labels, -100 ignored), BCE-with-logits
    (multi-label, (N, L) 0/1 targets) or mean squared error (regression, L = 1 squeezed as HF does)."""
    logits = logits.float()  # losses in fp32 under bf16 autocast
    L = logits.size(-1)
    if kind == "single_label_classification":
        labels = labels.reshape(-1).long()
        bad = labels[(labels != -100) & ((labels < 0) | (labels >= L))]
        if bad.numel():
            raise ValueError(f"label {int(bad[0])} out of range for {L} classes (use -100 to ignore a position)")
        return F.cross_entropy(logits.reshape(-1, L), labels, ignore_index=-100)
    if kind == "multi_label_classification":
        if labels.shape != logits.shape:
            raise ValueError(f"multi-label targets must be shaped like the logits {tuple(logits.shape)}, "
                             f"got {tuple(labels.shape)}")
        return F.binary_cross_entropy_with_logits(logits, labels.float())
    if kind == "regression":
        if L == 1:
            return F.mse_loss(logits.squeeze(), labels.float().squeeze())
        return F.mse_loss(logits, labels.float())
    raise ValueError(f"unknown problem type {kind!r}; choose one of {PROBLEM_TYPES}")


class BertWithClassifier(BertWithHead):
    """The shared classifier pattern: `dropout` then `classifier` = Linear(D, n_out), HF's names.

    Dropout is `classifier_dropout` when the config sets it, else `hidden_dropout_prob` (as HF).
    Subclasses choose what to classify (the pooled [CLS] vector or every token) and the loss.
    """

    def __init__(self, config: BertConfig, num_outputs: int):
        super().__init__(config)
        p = config.extra.get("classifier_dropout")
        self.dropout = nn.Dropout(config.hidden_dropout_prob if p is None else p)
        self.classifier = nn.Linear(config.hidden_size, num_outputs)
        self.init_weights()

    def classify(self, h: Tensor) -> Tensor:  # (..., D) -> (..., n_out)
        return self.classifier(self.dropout(h))


class BertForSequenceClassification(BertWithClassifier):
    """One label (or score) per sequence or pair from the pooled [CLS] vector C (Devlin et al. 4.1):
    logits = W dropout(C) + b, (B, num_labels). Loss by `problem_type` (see `problem_type()`)."""

    def __init__(self, config: BertConfig):
        super().__init__(config, num_labels(config))

    def head(self, out: BertOutput, labels: Optional[Tensor] = None) -> HeadOutput:
        logits = self.classify(out.pooler_output)  # (B, num_labels)
        loss = None
        if labels is not None:
            loss = classification_loss(logits, labels, problem_type(self.config, labels))
        return HeadOutput(logits=logits, loss=loss)


class BertForMultipleChoice(BertWithClassifier):
    """SWAG-style multiple choice (Devlin et al. 4.4): each (context, choice_i) pair is encoded, a vector
    V scores its pooled C_i, and the choices compete in one softmax: P_i = exp(V.C_i) / sum_j exp(V.C_j).

    Inputs are (B, C, T) (C choices); logits are (B, C); labels are the index of the right choice.
    The encoder output handed back has the choice dimension restored: (B, C, T, D) and (B, C, D).
    """

    def __init__(self, config: BertConfig):
        super().__init__(config, 1)

    def encode(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
               token_type_ids: Optional[Tensor] = None, **kwargs) -> BertOutput:
        if input_ids.dim() != 3:
            raise ValueError(f"multiple-choice input_ids must be (batch, choices, seq_len), "
                             f"got shape {tuple(input_ids.shape)}")
        B, C, T = input_ids.shape
        for name, x in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
            if x is not None and x.shape != input_ids.shape:
                raise ValueError(f"{name} shape {tuple(x.shape)} != input_ids shape {tuple(input_ids.shape)}")

        def flat(x: Optional[Tensor]) -> Optional[Tensor]:  # (B, C, T) -> (B*C, T)
            return None if x is None else x.reshape(B * C, T)

        out = self.bert(flat(input_ids), flat(attention_mask), flat(token_type_ids), **kwargs)

        def unflat(x: Tensor) -> Tensor:  # (B*C, ...) -> (B, C, ...)
            return x.view(B, C, *x.shape[1:])

        return BertOutput(
            last_hidden_state=unflat(out.last_hidden_state),
            pooler_output=unflat(out.pooler_output),
            hidden_states=None if out.hidden_states is None else tuple(map(unflat, out.hidden_states)),
            attentions=None if out.attentions is None else tuple(map(unflat, out.attentions)),
        )

    def head(self, out: BertOutput, labels: Optional[Tensor] = None) -> HeadOutput:
        logits = self.classify(out.pooler_output).squeeze(-1)  # (B, C, 1) -> (B, C)
        loss = None if labels is None else classification_loss(logits, labels, "single_label_classification")
        return HeadOutput(logits=logits, loss=loss)


class BertForTokenClassification(BertWithClassifier):
    """A label per token from its final hidden vector T_i (Devlin et al. 4.3, NER): logits (B, T, L).

    Labels are (B, T) with -100 where no prediction is scored (special tokens, padding, and word pieces
    after the first of each word: see `bertforge.data.ner.align_labels`).
    """

    add_pooling_layer = False

    def __init__(self, config: BertConfig):
        super().__init__(config, num_labels(config))

    def head(self, out: BertOutput, labels: Optional[Tensor] = None) -> HeadOutput:
        logits = self.classify(out.last_hidden_state)  # (B, T, num_labels)
        loss = None if labels is None else classification_loss(logits, labels, "single_label_classification")
        return HeadOutput(logits=logits, loss=loss)
