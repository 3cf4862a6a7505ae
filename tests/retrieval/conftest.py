"""Shared fixtures of the retrieval tests: a small folder of documents, the real encoder and QA model."""
from __future__ import annotations

import pytest

from bertforge.retrieval.index import PROBE

DOCS = {
    "lab.md": "# The Lab\n\nThe Forge Lab was founded in 1987 by Ada Miller in Zurich.\n"
              "It builds small language models for hospitals.\n\nIts second building opened in 2003.\n",
    "travel/bern.txt": "The river Aare flows through Bern.\nBern is the capital of Switzerland.\n",
    "pets.html": "<html><head><title>Pets</title><script>var x = 'zebra';</script></head>\n"
                 "<body><p>My cat Tom &amp; my dog Rex live in Oslo.</p></body></html>\n",
    "kitchen/bread.md": "Sourdough bread needs a starter of flour and water. Bake it at 230 degrees "
                        "for forty minutes.\n",
}


def write_docs(folder, docs=DOCS):
    for rel, text in docs.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")
    return folder


class CountingEncoder:
    """The real encoder, counting the passages it embeds (the model fingerprint aside; questions too,
    so a test clears `texts` after a search)."""

    def __init__(self, encoder):
        self.encoder, self.texts = encoder, []

    def __getattr__(self, name):
        return getattr(self.encoder, name)

    def encode(self, texts):
        if list(texts) != [PROBE]:
            self.texts.extend(texts)
        return self.encoder.encode(texts)


@pytest.fixture(scope="session")
def encoder(minilm_dir):
    from bertforge.retrieval import load_encoder

    return load_encoder()


@pytest.fixture
def counting(encoder):
    return CountingEncoder(encoder)


@pytest.fixture(scope="session")
def answerer():
    from bertforge.tasks.qa.answerer import DEFAULT_MODEL, QuestionAnswerer

    if not DEFAULT_MODEL.is_dir():
        pytest.skip(f"the shipped QA model is missing: {DEFAULT_MODEL}")
    return QuestionAnswerer()
