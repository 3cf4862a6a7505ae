"""Shared by the server tests: texts with questions, many requests at once, answers compared."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

# Paragraphs with questions (factual text written for these tests). EXPECTED: answers the shipped model
# gives with high probability (checked with it); the others are there for load and equality.
PARAGRAPHS = [
    ("The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named after "
     "the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889. Locally "
     "nicknamed La dame de fer, it was constructed as the centrepiece of the 1889 World's Fair, and to crown "
     "the centennial anniversary of the French Revolution. It is 330 metres tall, about the same height as an "
     "81-storey building, and the tallest structure in Paris.",
     ["Who is the tower named after?", "How tall is the Eiffel Tower?", "When was the tower built?"]),
    ("Marie Curie was a Polish and naturalised-French physicist and chemist who conducted pioneering research "
     "on radioactivity. She was the first woman to win a Nobel Prize, the first person to win a Nobel Prize "
     "twice, and the only person to win a Nobel Prize in two scientific fields. Her husband, Pierre Curie, was "
     "a co-winner of her first Nobel Prize. She was born in Warsaw in 1867.",
     ["Where was Marie Curie born?", "Who was her husband?", "What did she research?"]),
    ("The Amazon River in South America is the largest river by discharge volume of water in the world. It "
     "flows through Peru, Colombia and Brazil before it reaches the Atlantic Ocean. The river system "
     "originates in the Andes Mountains of Peru. About one-fifth of the world's total river flow is carried "
     "by the Amazon.",
     ["Which ocean does the Amazon reach?", "Where does the river system originate?"]),
    ("Python is a high-level programming language. Its design philosophy emphasizes code readability with "
     "the use of significant indentation. Guido van Rossum began working on Python in the late 1980s as a "
     "successor to the ABC programming language and first released it in 1991.",
     ["Who created Python?", "When was Python first released?"]),
]
PAIRS = [(q, c) for c, qs in PARAGRAPHS for q in qs]
# One or two sentences each: the default suite's load test (many requests, little model time each).
SHORT_PAIRS = [(q, c) for c, qs in [
    ("Guido van Rossum began working on Python in the late 1980s and first released it in 1991.",
     ["Who created Python?", "When was Python first released?"]),
    ("The Eiffel Tower is 330 metres tall and is named after the engineer Gustave Eiffel.",
     ["How tall is the Eiffel Tower?", "Who is the tower named after?"]),
    ("Marie Curie was born in Warsaw in 1867. Her husband was Pierre Curie.",
     ["Where was Marie Curie born?", "Who was her husband?"]),
    ("The Amazon flows through Peru, Colombia and Brazil before it reaches the Atlantic Ocean.",
     ["Which ocean does the Amazon reach?", "Which countries does the Amazon flow through?"]),
] for q in qs]
# The bundled demo passage (what `make demo` reads) and questions about it.
DEMO_QUESTIONS = ["When was the Transformer introduced?", "What does BERT stand for?", "Who published BERT?",
                  "What fraction of the tokens are hidden in masked language modelling?",
                  "How many encoder layers does the base Transformer have?"]


def demo_passage() -> str:
    from bertforge.serve.app import DEMO_PASSAGE

    return DEMO_PASSAGE.read_text(encoding="utf-8")


EXPECTED = {"Who is the tower named after?": "Gustave Eiffel", "Who was her husband?": "Pierre Curie",
            "Who created Python?": "Guido van Rossum", "When was Python first released?": "1991"}



@asynccontextmanager
async def async_client(app) -> AsyncIterator:
    """An httpx client on the app in this event loop, with the app's lifespan (its worker) running: lets
    a test send many requests at once (the sync TestClient sends one at a time)."""
    import httpx

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield client


def post_all(app, path: str, bodies: list[dict]) -> list:
    """POST every body at once (asyncio.gather) through the app; the responses in order."""
    async def go():
        async with async_client(app) as client:
            return await asyncio.gather(*(client.post(path, json=b) for b in bodies))

    return asyncio.run(go())


def same_answers(got: list[dict], want: list, tol: float = 1e-4) -> bool:
    """API answers (dicts) equal library answers (Answer objects): same spans, probabilities within tol."""
    if len(got) != len(want):
        return False
    return all(g["text"] == w.text and g["start"] == w.start and g["end"] == w.end
               and abs(g["probability"] - w.probability) <= tol and abs(g["score"] - w.score) <= 1e-3
               for g, w in zip(got, want))
