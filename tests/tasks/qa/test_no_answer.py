""""No answer" with the shipped model, on handmade passages of several topics it never saw: each passage has
questions it answers and twins on the same topic that it does not, plus one off-topic question. The
answerable ones must be answered correctly; the unanswerable ones must (mostly) be declined."""
from __future__ import annotations

import pytest

from bertforge.metrics.squad import normalize_answer
from bertforge.tasks.qa.answerer import DEFAULT_MODEL, QuestionAnswerer

pytestmark = pytest.mark.skipif(not (DEFAULT_MODEL / "model.safetensors").exists(),
                                reason="the shipped QA model is not in this checkout")

# passage, {answerable question: accepted answers}, [questions on the topic that the passage does not answer]
CASES = [
    ("Marie Curie was born in Warsaw in 1867. She moved to Paris in 1891 to study physics and mathematics at "
     "the Sorbonne. In 1903 she shared the Nobel Prize in Physics with Pierre Curie and Henri Becquerel.",
     {"Where was Marie Curie born?": ["Warsaw"], "When did Marie Curie move to Paris?": ["1891"]},
     ["What was the name of Marie Curie's first daughter?"]),
    ("The Amazon River flows from the Andes mountains of Peru through Colombia and Brazil. It empties into "
     "the Atlantic Ocean, discharging more water than any other river in the world.",
     {"Into which ocean does the Amazon empty?": ["the Atlantic Ocean", "Atlantic Ocean", "Atlantic"]},
     ["Who was the first European to sail down the Amazon?"]),
    ("Python is a programming language created by Guido van Rossum. Its first version was released in "
     "1991. Python code is known for its use of indentation to mark blocks.",
     {"Who created Python?": ["Guido van Rossum"]},
     ["How many people use Python today?"]),
    ("To make a simple bread, mix flour, water, salt and yeast into a dough. Knead it for ten minutes, "
     "then let it rise for about an hour in a warm place before shaping the loaf.",
     {"How long should the dough be kneaded?": ["ten minutes", "for ten minutes"]},
     ["At what temperature should the bread be baked?"]),
    ("The Eiffel Tower in Paris was completed in 1889 as the entrance arch of the World's Fair. It is made "
     "of wrought iron and was the tallest man-made structure in the world for 41 years.",
     {"What is the Eiffel Tower made of?": ["wrought iron"], "When was the Eiffel Tower completed?": ["1889"]},
     ["How much did it cost to build the Eiffel Tower?"]),
    ("Honey bees live in colonies with a single queen, thousands of female workers and a few hundred male "
     "drones. Workers collect nectar from flowers and turn it into honey inside the hive.",
     {"What do workers collect from flowers?": ["nectar"]},
     ["How long does a queen bee live?"]),
]
OFF_TOPIC = "Which team won the 2018 football World Cup?"


def _accepted(answer: str, accepted: list[str]) -> bool:
    return normalize_answer(answer) in {normalize_answer(a) for a in accepted}


@pytest.fixture(scope="module")
def results():
    qa = QuestionAnswerer()
    out = []
    for passage, answerable, unanswerable in CASES:
        questions = list(answerable) + unanswerable + [OFF_TOPIC]
        out.append((answerable, unanswerable, qa.ask_many(questions, passage)))
    return out


def test_answerable_questions_are_answered_correctly(results, one_thread):
    wrong = [(r.question, r.answers[0].text if r.answers else None)
             for answerable, _, rs in results for r in rs[:len(answerable)]
             if not (r.answers and _accepted(r.answers[0].text, answerable[r.question]))]
    assert not wrong, wrong


def test_off_topic_questions_get_no_answer(results, one_thread):
    answered = [r.answers[0].text for *_, rs in results if rs[-1].answers for r in [rs[-1]]]
    assert not answered, answered
    assert all(rs[-1].no_answer_probability > 0.5 for *_, rs in results)


def test_on_topic_questions_the_passage_does_not_answer_are_mostly_declined(results, one_thread):
    """The hard case (SQuAD 2.0's): the question is about the passage's subject, only the fact is missing."""
    on_topic = [r for answerable, unanswerable, rs in results
                for r in rs[len(answerable):len(answerable) + len(unanswerable)]]
    declined = sum(not r.answers for r in on_topic)
    assert declined >= len(on_topic) - 1, [(r.question, r.answers[0].text) for r in on_topic if r.answers]
