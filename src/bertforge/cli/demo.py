"""`make demo`: the main job on a bundled passage. Answers a few questions with bertforge's shipped QA
model; without one (a checkout that has not trained it yet) it shows the real MiniLM encoder at work:
sentence similarities and an attention picture."""
from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"
# The bundled questions and the answers a reader would accept (tests/test_demo.py holds the model to them).
# The last one is not answered by the passage: the model should say so.
QUESTIONS = {
    "When was the Transformer introduced?": ["2017"],
    "What does BERT stand for?": ["Bidirectional Encoder Representations from Transformers"],
    "Who published BERT?": ["Jacob Devlin", "Jacob Devlin and his colleagues"],
    "What fraction of the tokens are hidden in masked language modelling?": ["15 percent"],
    "How many encoder layers does the base Transformer have?": ["six"],
    "Which team won the 2018 football World Cup?": [],
}


def qa_demo() -> list:
    """Answer the bundled questions about the bundled passage; returns the QAResults."""
    from bertforge.tasks.qa.answerer import QuestionAnswerer

    passage = (ASSETS / "demo_passage.txt").read_text(encoding="utf-8")
    print(f"Passage ({len(passage)} characters): {passage[:160]}...\n")
    results = QuestionAnswerer().ask_many(list(QUESTIONS), passage)
    for r in results:
        if r.answers:
            a = r.answers[0]
            print(f"Q: {r.question}\nA: {a.text}   (p={a.probability:.2f})\n   {a.sentence}\n")
        else:
            print(f"Q: {r.question}\nA: (the passage does not say; no-answer probability "
                  f"{r.no_answer_probability:.2f})\n")
    print('Try your own: .venv/bin/bertforge qa "your question" --context-file your.txt  '
          '(or a folder: --docs DIR)')
    return results


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
