"""Fixtures for the server tests: tiny random models (fast; where the answer's correctness is not the
point), the real shipped QA model (where it is), apps, clients and texts with known answers."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="bertforge[serve] is not installed")

from bertforge.serve import Engine  # noqa: E402


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Random tiny BERTs (2 layers, width 32) with the shipped vocabulary: a QA model, a masked LM and an
    encoder, saved in the HF layout as a user's folders would be."""
    import torch

    from bertforge.models.bert.config import BertConfig
    from bertforge.models.bert.heads import BertForQuestionAnswering
    from bertforge.models.bert.modeling import BertModel
    from bertforge.models.bert.pretraining import BertForMaskedLM
    from bertforge.tasks.qa.answerer import DEFAULT_MODEL

    root = tmp_path_factory.mktemp("tiny-models")
    out = {}
    for name, cls in (("qa", BertForQuestionAnswering), ("mlm", BertForMaskedLM), ("encoder", BertModel)):
        torch.manual_seed(0)
        cls(BertConfig.preset("tiny", max_position_embeddings=512)).save_pretrained(root / name)  # 384-token windows
        for f in ("vocab.txt", "tokenizer_config.json"):
            shutil.copy(DEFAULT_MODEL / f, root / name / f)
        out[name] = root / name
    return out


@pytest.fixture(scope="session")
def tiny_engine(tiny_models) -> Engine:
    from bertforge.cli.pretrain import load_mlm
    from bertforge.tasks.embedding import SentenceEncoder
    from bertforge.tasks.qa.answerer import QuestionAnswerer

    return Engine(qa=QuestionAnswerer(tiny_models["qa"]), encoder=SentenceEncoder(tiny_models["encoder"]),
                  mlm=load_mlm(tiny_models["mlm"]), names={"qa": str(tiny_models["qa"])})


@pytest.fixture(scope="session")
def real_qa():
    """The shipped QA model (skips cleanly in a checkout that does not have it)."""
    from bertforge.tasks.qa.answerer import DEFAULT_MODEL, QuestionAnswerer

    if not (DEFAULT_MODEL / "model.safetensors").exists():
        pytest.skip(f"the shipped QA model is not at {DEFAULT_MODEL}")
    return QuestionAnswerer()


@pytest.fixture(scope="session")
def reference_qa(real_qa):
    """A second, independent QuestionAnswerer on the same weights: the one-by-one reference."""
    from bertforge.tasks.qa.answerer import QuestionAnswerer

    return QuestionAnswerer()
