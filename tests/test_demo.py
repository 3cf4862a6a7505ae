"""`make demo`: the shipped model answers the bundled questions as a reader would, and says so when the
passage does not contain the answer."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bertforge.cli.demo import QUESTIONS, qa_demo
from bertforge.metrics.squad import normalize_answer
from bertforge.tasks.qa.answerer import DEFAULT_MODEL

pytestmark = pytest.mark.skipif(not (DEFAULT_MODEL / "model.safetensors").exists(),
                                reason="the shipped QA model is not in this checkout")


def _accepted(answer: str, accepted: list[str]) -> bool:
    """The answer equals an accepted one after SQuAD normalisation (case, articles, punctuation)."""
    return normalize_answer(answer) in {normalize_answer(a) for a in accepted}


def test_demo_answers_every_bundled_question_as_a_reader_would(capsys, one_thread):
    results = qa_demo()
    printed = capsys.readouterr().out
    assert [r.question for r in results] == list(QUESTIONS)
    for r in results:
        accepted = QUESTIONS[r.question]
        if accepted:
            assert r.answers, f"{r.question!r}: no answer, expected one of {accepted}"
            assert _accepted(r.answers[0].text, accepted), (r.question, r.answers[0].text, accepted)
        else:
            assert not r.answers, f"{r.question!r} is not answered by the passage, got {r.answers[0].text!r}"
            assert r.no_answer_probability > 0.5
            assert "the passage does not say" in printed


def test_make_demo_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "bertforge.cli.demo"], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("Q: ") == len(QUESTIONS)
