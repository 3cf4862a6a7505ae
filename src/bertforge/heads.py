"""Task heads on the BERT encoder (Devlin et al. 2019, section 4 and figure 4).

One way to put a head on the encoder: `BertWithHead` holds the encoder as `self.bert` (parameters named
`bert.*`, as in HF) and a subclass adds its layers under HF's names and implements `head()`, which
maps the encoder output to logits and, given labels, a loss. Every head returns a `HeadOutput`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn

from .bert import BertModel, BertOutput, BertPreTrainedModel
from .config import BertConfig


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
                output_attentions: bool = False, **labels: Optional[Tensor]) -> HeadOutput:
        out = self.encode(input_ids, attention_mask, token_type_ids,
                          output_hidden_states=output_hidden_states, output_attentions=output_attentions)
        result = self.head(out, **labels)
        if output_hidden_states or output_attentions:
            result.encoder = out
        return result


class BertForQuestionAnswering(BertWithHead):
    """Extractive QA (Devlin et al. 4.2): a start vector S and an end vector E score every token.

    start_logits_i = S . T_i, end_logits_i = E . T_i (one Linear(D, 2), HF's `qa_outputs`);
    loss = (CE(start) + CE(end)) / 2. Positions outside the sequence (labels clamped to T) are ignored.
    """

    add_pooling_layer = False

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.init_weights()

    def head(self, out: BertOutput, start_positions: Optional[Tensor] = None,
             end_positions: Optional[Tensor] = None) -> HeadOutput:
        logits = self.qa_outputs(out.last_hidden_state)  # (B, T, 2)
        start_logits, end_logits = logits.unbind(dim=-1)  # (B, T) each
        loss = None
        if start_positions is not None and end_positions is not None:
            T = start_logits.size(1)  # as HF: a label past the sequence is ignored
            start = start_positions.clamp(0, T)
            end = end_positions.clamp(0, T)
            loss = (F.cross_entropy(start_logits.float(), start, ignore_index=T)
                    + F.cross_entropy(end_logits.float(), end, ignore_index=T)) / 2
        return HeadOutput(logits=(start_logits, end_logits), loss=loss)
