"""GLUE (Wang et al. 2018) single-sentence and sentence-pair tasks, read from the TSVs that GLUE's
`download_glue_data.py` writes: `<data_dir>/<Task>/{train,dev,test}.tsv`.

Two traps in these files: sentences hold bare `"` characters (SST-2: `" the witness "`), so a CSV reader
with default quoting would swallow tabs and newlines until the next quote -- we read with
`csv.QUOTE_NONE`; and MRPC starts with a UTF-8 byte-order mark, skipped by `utf-8-sig`. CoLA's train and
dev files have no header row (source, label, original mark, sentence); its test file has one.

Each task's metric is the one Devlin et al. (2019, table 1) report: Matthews correlation for CoLA, F1 for
MRPC, Spearman for STS-B, accuracy otherwise. The test splits are unlabelled (label None).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bertforge.data.classify import TextExample
from bertforge.fileio import open_text


@dataclass(frozen=True)
class GlueTask:
    """Where a task's columns are and what its labels and headline metric are."""

    name: str  # our name: 'rte'
    folder: str  # GLUE's folder: 'RTE'
    text: str
    text_pair: Optional[str]
    label: str
    labels: Optional[tuple[str, ...]]  # class names in index order (as HF's GLUE processors); None: regression
    metric: str  # headline dev metric, a key of `metrics.classification.classification_scores` / `pearson_spearman`
    headerless: Optional[tuple[str, ...]] = None  # column names when a file has no header row

    @property
    def problem_type(self) -> str:
        return "regression" if self.labels is None else "single_label_classification"


GLUE_TASKS: dict[str, GlueTask] = {t.name: t for t in [
    GlueTask("cola", "CoLA", "sentence", None, "label", ("0", "1"), "matthews",
             headerless=("source", "label", "original_label", "sentence")),
    GlueTask("sst2", "SST-2", "sentence", None, "label", ("0", "1"), "accuracy"),
    GlueTask("mrpc", "MRPC", "#1 String", "#2 String", "Quality", ("0", "1"), "f1"),
    GlueTask("stsb", "STS-B", "sentence1", "sentence2", "score", None, "spearman"),
    GlueTask("rte", "RTE", "sentence1", "sentence2", "label", ("entailment", "not_entailment"), "accuracy"),
    GlueTask("wnli", "WNLI", "sentence1", "sentence2", "label", ("0", "1"), "accuracy"),
]}

SPLITS = ("train", "dev", "test")


def glue_task(name: str) -> GlueTask:
    key = name.lower().replace("-", "")
    if key not in GLUE_TASKS:
        raise ValueError(f"unknown GLUE task {name!r}; choose one of {sorted(GLUE_TASKS)}")
    return GLUE_TASKS[key]


def glue_path(task: str | GlueTask, split: str, data_dir: str | Path) -> Path:
    t = glue_task(task) if isinstance(task, str) else task
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = Path(data_dir) / t.folder / f"{split}.tsv"
    if not path.exists():
        raise FileNotFoundError(f"no {path}: expected GLUE's layout <data_dir>/{t.folder}/{split}.tsv")
    return path


def read_glue(task: str | GlueTask, split: str, data_dir: str | Path) -> list[TextExample]:
    """Every row of `<data_dir>/<Task>/<split>.tsv` as a `TextExample` (label None when the split has none)."""
    t = glue_task(task) if isinstance(task, str) else task
    path = glue_path(t, split, data_dir)
    with open_text(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows:
        raise ValueError(f"{path} is empty")
    if t.text in rows[0]:
        header, body, first_line = rows[0], rows[1:], 2
    elif t.headerless is not None:
        header, body, first_line = list(t.headerless), rows, 1
    else:
        raise ValueError(f"{path}: the header {rows[0][:5]} has no {t.text!r} column; is this {t.folder}?")
    col = {name: i for i, name in enumerate(header)}
    has_label = t.label in col
    examples = []
    for n, row in enumerate(body, first_line):
        if len(row) != len(header):
            raise ValueError(f"{path}:{n}: {len(row)} fields, expected {len(header)} ({header})")
        label = row[col[t.label]] if has_label else None
        if label is not None and t.labels is not None and label not in t.labels:
            raise ValueError(f"{path}:{n}: label {label!r} is not one of {t.labels}")
        examples.append(TextExample(
            text=row[col[t.text]],
            text_pair=row[col[t.text_pair]] if t.text_pair else None,
            label=float(label) if label is not None and t.labels is None else label,
            guid=f"{t.name}-{split}-{row[col['index']] if 'index' in col else n - first_line}",
        ))
    return examples
