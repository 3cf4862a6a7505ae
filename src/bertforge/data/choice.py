"""Multiple-choice data (Devlin et al. 2019, 4.4, SWAG): a context and C candidate continuations, one right.

Each choice becomes one pair [CLS] context [SEP] choice [SEP]; the model scores the C pairs together
(`BertForMultipleChoice`, inputs (B, C, T)). Readers:

- CommonsenseQA JSONL: `{"answerKey": "A", "question": {"stem": ..., "choices": [{"label", "text"} x5]}}`;
  context = stem, choice = text, label = index of answerKey (the test file has none).
- COPA JSONL (SuperGLUE): premise, choice1, choice2, question 'cause'|'effect', label 0|1; context =
  premise + " What was the cause?" / " What happened as a result?" (the wording of the original task).
- SWAG's CSV (`video-id, fold-ind, startphrase, sent1, sent2, gold-source, ending0..3, label`): context
  = sent1, choice = sent2 + " " + ending_i, as in HF's run_swag (the test file has no label column).
"""
from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from bertforge.fileio import open_text


@dataclass
class ChoiceExample:
    context: str
    choices: list[str]
    label: Optional[int] = None  # index of the right choice; None when unlabelled
    guid: str = ""


COPA_QUESTIONS = {"cause": "What was the cause?", "effect": "What happened as a result?"}


def _jsonl(path: str | Path) -> Iterable[tuple[int, dict[str, Any]]]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no data file at {path}")
    with open_text(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None


def read_commonsenseqa(path: str | Path) -> list[ChoiceExample]:
    examples = []
    for n, row in _jsonl(path):
        try:
            q = row["question"]
            labels = [c["label"] for c in q["choices"]]
            texts = [c["text"] for c in q["choices"]]
            stem = q["stem"]
        except (KeyError, TypeError):
            raise ValueError(f"{path}:{n}: not a CommonsenseQA record (question.stem, question.choices)") from None
        key = row.get("answerKey")
        if key is not None and key not in labels:
            raise ValueError(f"{path}:{n}: answerKey {key!r} is not among the choice labels {labels}")
        examples.append(ChoiceExample(stem, texts, None if key is None else labels.index(key),
                                      str(row.get("id", n))))
    return examples


def read_copa(path: str | Path) -> list[ChoiceExample]:
    examples = []
    for n, row in _jsonl(path):
        try:
            question = COPA_QUESTIONS[row["question"]]
            context, choices = f"{row['premise']} {question}", [row["choice1"], row["choice2"]]
        except KeyError as e:
            raise ValueError(f"{path}:{n}: not a COPA record (missing or bad {e})") from None
        label = row.get("label")
        examples.append(ChoiceExample(context, choices, None if label is None else int(label),
                                      str(row.get("idx", n))))
    return examples


def read_swag(path: str | Path) -> list[ChoiceExample]:
    """SWAG's own CSV layout (train.csv / val.csv / test.csv of rowanz/swagaf): four endings per row."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no data file at {path}")
    with open_text(path, newline="") as f:
        reader = csv.DictReader(f)
        need = {"sent1", "sent2", "ending0", "ending1", "ending2", "ending3"}
        if not reader.fieldnames or not need <= set(reader.fieldnames):
            raise ValueError(f"{path}: not SWAG's CSV layout; needs columns {sorted(need)}, "
                             f"has {reader.fieldnames}")
        examples = []
        for row in reader:
            endings = [row[f"ending{i}"] for i in range(4)]
            label = row.get("label")
            examples.append(ChoiceExample(row["sent1"], [f"{row['sent2']} {e}" for e in endings],
                                          int(label) if label not in (None, "") else None,
                                          row.get("fold-ind") or str(reader.line_num)))
    return examples


CHOICE_READERS = {"commonsenseqa": read_commonsenseqa, "copa": read_copa, "swag": read_swag}


def read_choice(fmt: str, path: str | Path) -> list[ChoiceExample]:
    """The examples of a multiple-choice file in one of the `CHOICE_READERS` formats."""
    if fmt not in CHOICE_READERS:
        raise ValueError(f"unknown multiple-choice format {fmt!r}; choose one of {sorted(CHOICE_READERS)}")
    return CHOICE_READERS[fmt](path)


def encode_choices(tokenizer, examples: Sequence[ChoiceExample], max_length: int) -> list[dict[str, Any]]:
    """Features with per-choice token lists: input_ids / token_type_ids are C lists (padded per batch to
    (B, C, T)); `labels` the right choice's index. Every example must have the same number of choices."""
    if not examples:
        return []
    C = len(examples[0].choices)
    features = []
    for ex in examples:
        if len(ex.choices) != C:
            raise ValueError(f"{ex.guid}: {len(ex.choices)} choices, expected {C} like the first example")
        encs = [tokenizer.encode(ex.context, pair=c, max_length=max_length, truncation=True) for c in ex.choices]
        feature = {"input_ids": [list(e.input_ids) for e in encs],
                   "token_type_ids": [list(e.token_type_ids) for e in encs]}
        if ex.label is not None:
            if not 0 <= ex.label < C:
                raise ValueError(f"{ex.guid}: label {ex.label} out of range for {C} choices")
            feature["labels"] = ex.label
        features.append(feature)
    return features
