"""`make demo`: the main job on a bundled passage. Answers a few questions with bertforge's shipped QA
model; without one (a checkout that has not trained it yet) it shows the real MiniLM encoder at work:
sentence similarities and an attention picture."""
from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"
QUESTIONS = [
    "When was the Transformer introduced?",
    "What does BERT stand for?",
    "Who published BERT?",
    "What fraction of the tokens are hidden in masked language modelling?",
    "How many encoder layers does the base Transformer have?",
]


def qa_demo() -> None:
    from bertforge.tasks.qa.answerer import QuestionAnswerer

    passage = (ASSETS / "demo_passage.txt").read_text(encoding="utf-8")
    print(f"Passage ({len(passage)} characters): {passage[:160]}...\n")
    qa = QuestionAnswerer()
    for q, answers in zip(QUESTIONS, qa.answer_many(QUESTIONS, passage)):
        a = answers[0]
        print(f"Q: {q}\nA: {a.text}   (p={a.probability:.2f})\n   {a.sentence}\n")
    print('Try your own: .venv/bin/bertforge qa "your question" --context-file your.txt')


def encoder_demo() -> None:
    from bertforge.tasks.embedding import SentenceEncoder

    sentences = ["A man is playing a guitar.", "Someone is playing an instrument.",
                 "The stock market fell sharply today.", "Shares dropped at the close of trading."]
    enc = SentenceEncoder()
    e = enc.encode(sentences)
    print("Cosine similarities (real all-MiniLM-L6-v2 weights):")
    sims = (e @ e.T).tolist()
    for i, s in enumerate(sentences):
        print(f"  {s:<45} " + " ".join(f"{x:5.2f}" for x in sims[i]))
    from bertforge.viz import attention_figure, model_attentions, save_figure

    text = "The animal didn't cross the street because it was too tired."
    tokens, attn = model_attentions(enc.model, enc.tokenizer, text)  # (L, H, T, T)
    out = save_figure(attention_figure(attn[4], tokens, title=f"layer 5 of all-MiniLM-L6-v2: {text}"),
                      "demo_attention.png")
    print(f"\nwrote {out}: the 12 attention heads of layer 5 for {text!r}")


def main() -> None:
    from bertforge.tasks.qa.answerer import DEFAULT_MODEL

    if (DEFAULT_MODEL / "model.safetensors").exists():
        qa_demo()
    else:
        print(f"(no shipped QA model at {DEFAULT_MODEL} yet: showing the encoder instead)\n")
        encoder_demo()


if __name__ == "__main__":
    main()
