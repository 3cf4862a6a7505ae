"""Sentence and sentence-pair classification data: the example type, the user's own CSV/JSONL files,
and featurisation into BERT inputs (Devlin et al. 2019, section 3, figure 2: [CLS] A [SEP] B [SEP]).

A user's file has a `text` column, an optional `text_pair` column and a `label` column (column names
are arguments). Formats, by suffix:

- `.csv` / `.tsv`: a header row naming the columns; standard CSV quoting (write it with any spreadsheet or
  `csv.writer`); a UTF-8 byte-order mark is skipped.
- `.jsonl` / `.json`: one JSON object per line. A multi-label example gives `label` as a list of names.

Labels are kept as written (strings, numbers or lists); `label_kind` decides whether they are classes,
scores (regression) or label sets (multi-label), and `label_list` fixes the class order.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from bertforge.fileio import open_text

Label = Union[str, float, list[str], None]

PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")  # HF's names


@dataclass
class TextExample:
    """One sentence (or pair) to classify. `label` is None for unlabelled (test) data."""

    text: str
    text_pair: Optional[str] = None
    label: Label = None
    guid: str = ""


def _check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no data file at {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory; expected a .csv, .tsv or .jsonl file")
    return path


def _csv_rows(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open_text(path, newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        if not reader.fieldnames:
            raise ValueError(f"{path} is empty: expected a header row naming the columns")
        for row in reader:
            if None in row:  # more fields than header names
                raise ValueError(f"{path}:{reader.line_num}: more fields than the header's "
                                 f"{len(reader.fieldnames)} ({reader.fieldnames})")
            yield reader.line_num, row


def _jsonl_rows(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    with open_text(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{n}: expected a JSON object per line, got {type(row).__name__}")
            yield n, row


def read_classification_file(path: str | Path, text_column: str = "text", pair_column: str = "text_pair",
                             label_column: str = "label", require_label: bool = True) -> list[TextExample]:
    """Read a user's CSV/TSV/JSONL file into `TextExample`s (see the module doc for the layout).

    An empty `text_pair` cell means a single sentence. With `require_label`, a row without a label is an
    error naming the line; otherwise its label is None (data to predict on).
    """
    path = _check_file(path)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        rows = _csv_rows(path)
    elif suffix in (".jsonl", ".json"):
        rows = _jsonl_rows(path)
    else:
        raise ValueError(f"{path}: unknown format {suffix!r}; use .csv, .tsv or .jsonl")
    examples = []
    for line, row in rows:
        text = row.get(text_column)
        if text is None or (isinstance(text, str) and not text.strip()):
            raise ValueError(f"{path}:{line}: no {text_column!r} (columns: {sorted(row)})")
        pair = row.get(pair_column) or None
        label = row.get(label_column)
        if label == "" or label == []:
            label = None
        if label is None and require_label:
            raise ValueError(f"{path}:{line}: no {label_column!r} value (columns: {sorted(row)})")
        examples.append(TextExample(str(text), None if pair is None else str(pair), label,
                                    str(row.get("id", row.get("guid", f"{path.stem}-{line}")))))
    if not examples:
        raise ValueError(f"{path} holds no examples")
    return examples


def _is_number(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, (int, float)):
        return True
    try:
        float(x)
        return True
    except (TypeError, ValueError):
        return False


def label_kind(labels: list[Label]) -> str:
    """'multi_label_classification' when labels are lists, 'regression' when they are numbers not all
    integers (e.g. STS-B's 3.8), else 'single_label_classification' (names, or integer class ids)."""
    labels = [x for x in labels if x is not None]
    if not labels:
        raise ValueError("no labelled examples: cannot tell the kind of task")
    if any(isinstance(x, list) for x in labels):
        if not all(isinstance(x, list) for x in labels):
            raise ValueError("some labels are lists and some are not: a multi-label file needs a list everywhere")
        return "multi_label_classification"
    if all(_is_number(x) for x in labels) and not all(float(x).is_integer() for x in labels):
        return "regression"
    return "single_label_classification"


def label_list(labels: list[Label], kind: str) -> list[str]:
    """The class names in a stable order: numeric names numerically ("2" < "10"), others alphabetically.
    Regression has one output, named as HF names it (LABEL_0)."""
    if kind == "regression":
        return ["LABEL_0"]
    names: set[str] = set()
    for x in labels:
        if isinstance(x, list):
            names.update(str(v) for v in x)
        elif x is not None:
            names.add(_name(x))
    if all(_is_number(n) for n in names):
        return sorted(names, key=float)
    return sorted(names)


def _name(x: Any) -> str:
    """A class label as a name: 1, 1.0 and "1" are all "1"."""
    if _is_number(x) and float(x).is_integer() and not isinstance(x, str):
        return str(int(x))
    return str(x)


def encode_label(label: Label, kind: str, label2id: dict[str, int]) -> Any:
    """Label -> training target: class index (int), score (float) or 0/1 vector (multi-label)."""
    if kind == "regression":
        return float(label)
    if kind == "multi_label_classification":
        target = [0.0] * len(label2id)
        for name in label:
            if str(name) not in label2id:
                raise ValueError(f"unknown label {name!r}; the model knows {sorted(label2id)}")
            target[label2id[str(name)]] = 1.0
        return target
    name = _name(label)
    if name not in label2id:
        raise ValueError(f"unknown label {label!r}; the model knows {sorted(label2id)}")
    return label2id[name]


def encode_text_examples(tokenizer, examples: list[TextExample], max_length: int, kind: str,
                         label2id: dict[str, int]) -> list[dict[str, Any]]:
    """Tokenise (text, text_pair) into unpadded features: input_ids, token_type_ids, and `labels` when
    labelled. Pairs are truncated longest-first to `max_length` (HF's run_glue does the same)."""
    features = []
    for ex in examples:
        enc = tokenizer.encode(ex.text, pair=ex.text_pair, max_length=max_length, truncation=True)
        feature = {"input_ids": list(enc.input_ids), "token_type_ids": list(enc.token_type_ids)}
        if ex.label is not None:
            feature["labels"] = encode_label(ex.label, kind, label2id)
        features.append(feature)
    return features
