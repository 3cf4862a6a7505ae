"""Corpus BLEU (Papineni et al. 2002) with sacreBLEU (Post 2018), on detokenised text.

sacreBLEU tokenises hypotheses and references itself (13a, the WMT standard) and reports a signature
(`nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`) that says exactly what was computed, so a
score is comparable with any other sacreBLEU score of the same signature. We pass it detokenised
output and raw references, never our own tokenisation (which would make the number incomparable).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class BleuResult:
    score: float  # 0-100
    signature: str  # sacreBLEU's signature: what exactly was computed
    detail: str  # precisions, brevity penalty, lengths (sacreBLEU's format)

    def __str__(self) -> str:
        return f"{self.detail}\n{self.signature}"


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], lowercase: bool = False,
                tokenize: str = "13a") -> BleuResult:
    """sacreBLEU corpus BLEU of detokenised `hypotheses` against one reference each."""
    from bertforge.errors import require

    BLEU = require("sacrebleu.metrics", "translation", "sacrebleu").BLEU

    if isinstance(hypotheses, str) or isinstance(references, str):
        raise TypeError("hypotheses and references must be sequences of strings, not one string")
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    bleu = BLEU(lowercase=lowercase, tokenize=tokenize)
    result = bleu.corpus_score(list(hypotheses), [list(references)])
    return BleuResult(score=result.score, signature=str(bleu.get_signature()), detail=str(result))
