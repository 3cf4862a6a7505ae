"""The fine-tuning tasks, in one table that `finetune`, `evaluate` and `predict` all read.

A `Task` says where its data comes from and how to read it:

- `options`: what names the data for training and evaluation alike (GLUE's --task, a --format, columns),
- `train_options` / `eval_options`: the files of each (--train/--dev; --file or --split),
- `task_data(**options, **train_options) -> TaskData` (finetune) and
  `examples(**options, **eval_options) -> labelled examples` (evaluate).

`predict` reads new inputs by the *kind* a fine-tuned folder says it is (`read_inputs`). To add a task,
add one `Task` to `TASKS`: the three commands pick it up (`bertforge finetune <name>`, ...). Extractive
QA (`squad`) has its own recipe in `bertforge.tasks.qa` and is added by the commands beside these.

This module imports no torch (the command line builds its parsers from it); the readers load on use.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from bertforge.data.choice import CHOICE_READERS, ChoiceExample, read_choice
from bertforge.data.classify import PROBLEM_TYPES, TextExample, read_classification_file
from bertforge.data.glue import GLUE_TASKS, read_glue
from bertforge.data.ner import TaggedSentence, read_conll
from bertforge.errors import BertforgeError
from bertforge.fileio import open_text

KINDS = ("sequence", "token", "choice")  # tasks.classification.KINDS: classifier, tagger, multiple choice


@dataclass(frozen=True)
class Option:
    """One input of a task's readers; on the command line `--name` (underscores as dashes)."""

    name: str
    help: str
    path: bool = False
    choices: tuple[str, ...] = ()
    default: Any = None
    required: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Task:
    name: str
    help: str  # finetune's one line
    eval_help: str  # evaluate's one line
    task_data: Callable[..., Any]  # (**options, **train_options) -> tasks.classification.TaskData
    examples: Callable[..., list]  # (**options, **eval_options) -> labelled examples
    options: tuple[Option, ...] = ()
    train_options: tuple[Option, ...] = ()
    eval_options: tuple[Option, ...] = ()


def glue_dir(data_dir: Optional[str | Path]) -> Path:
    """`data_dir`, else $BERTFORGE_DATA/glue."""
    if data_dir:
        return Path(data_dir)
    if os.environ.get("BERTFORGE_DATA"):
        return Path(os.environ["BERTFORGE_DATA"]) / "glue"
    raise BertforgeError("where is GLUE? pass --data-dir (the folder holding CoLA/, RTE/, ...) or set BERTFORGE_DATA")


# ---- the readers (torch-free; the task data builders import tasks.classification on use) ----------

def _glue_data(task: str, data_dir: Optional[str]) -> Any:
    from bertforge.tasks.classification import glue_task_data
    return glue_task_data(task, glue_dir(data_dir))


def _ner_data(train: Path, dev: Path, name: str) -> Any:
    from bertforge.tasks.classification import ner_task_data
    return ner_task_data(train, dev, name)


def _choice_data(format: str, train: Path, dev: Path) -> Any:
    from bertforge.tasks.classification import choice_task_data
    return choice_task_data(format, train, dev)


def _classify_data(train: Path, dev: Path, problem_type: Optional[str], **columns: str) -> Any:
    from bertforge.tasks.classification import classify_task_data
    return classify_task_data(train, dev, problem_type, **columns)


TRAIN = Option("train", "training file", path=True, required=True)
DEV = Option("dev", "dev file: evaluated a few times per epoch, the best checkpoint kept", path=True, required=True)
FILE = Option("file", "the labelled file to score", path=True, required=True)
COLUMNS = (Option("text_column", "the column of the text", default="text"),
           Option("pair_column", "the column of the second text of a pair (if present)", default="text_pair"),
           Option("label_column", "the column of the label", default="label"))
FORMAT = Option("format", "file format", choices=tuple(sorted(CHOICE_READERS)), required=True)

TASKS: dict[str, Task] = {t.name: t for t in [
    Task("glue", "a GLUE task (CoLA, SST-2, MRPC, STS-B, RTE, WNLI)", "a GLUE task's dev (or train) split",
         _glue_data, lambda task, data_dir, split: read_glue(task, split, glue_dir(data_dir)),
         options=(Option("task", "the GLUE task", choices=tuple(sorted(GLUE_TASKS)), required=True),
                  Option("data_dir", "GLUE folder holding CoLA/, RTE/, ... (default: $BERTFORGE_DATA/glue)",
                         path=True)),
         eval_options=(Option("split", "which split to score", choices=("train", "dev"), default="dev"),)),
    Task("ner", "token classification from CoNLL-style files (token ... tag, IOB2)",
         "a CoNLL-style file (entity-level P/R/F1)",
         _ner_data, lambda file: read_conll(file),
         train_options=(TRAIN, DEV, Option("name", "task name recorded in the model", default="ner")),
         eval_options=(FILE,)),
    Task("choice", "multiple choice (CommonsenseQA / COPA JSONL, SWAG CSV)", "multiple choice (accuracy)",
         _choice_data, lambda format, file: read_choice(format, file),
         options=(FORMAT,), train_options=(TRAIN, DEV), eval_options=(FILE,)),
    Task("classify", "your own CSV/TSV/JSONL with text, text_pair, label columns",
         "your own CSV/TSV/JSONL with text, text_pair, label",
         _classify_data, lambda file, **columns: read_classification_file(file, **columns),
         options=COLUMNS,
         train_options=(TRAIN, DEV, Option("problem_type", "default: read off the labels (lists: multi-label; "
                                           "non-integer numbers: regression)", choices=PROBLEM_TYPES)),
         eval_options=(FILE,)),
]}


def task_data(task: str, /, **values: Any) -> Any:
    """The TaskData (train + dev) of `task` from its options' values."""
    t = TASKS[task]
    return t.task_data(**{o.name: values.get(o.name, o.default) for o in t.options + t.train_options})


def labelled_examples(task: str, /, **values: Any) -> list:
    """The labelled examples `task` scores (evaluate), refused when there are none or a label is missing."""
    t = TASKS[task]
    examples = t.examples(**{o.name: values.get(o.name, o.default) for o in t.options + t.eval_options})
    if not examples or any(getattr(e, "label", 0) is None or getattr(e, "tags", 0) is None for e in examples):
        raise BertforgeError("evaluation needs labelled examples (this split/file has none)")
    return examples


# ---- predict: new inputs of a fine-tuned model's kind ---------------------------------------------

def _lines(path: Path, encoding: str) -> list[str]:
    """The non-blank lines of a text file (each output record carries its input, so they stay matched)."""
    if not path.exists():
        raise FileNotFoundError(f"no input file at {path}")
    with open_text(path, encoding) as f:
        lines = [x.strip() for x in f.read().splitlines() if x.strip()]
    if not lines:
        raise BertforgeError(f"{path} holds no input")
    return lines


def read_inputs(kind: str, text: Optional[str] = None, path: Optional[Path] = None, pair: Optional[str] = None,
                choices: Optional[list[str]] = None, format: Optional[str] = None, encoding: str = "utf-8",
                **columns: str) -> list:
    """Inputs for a model of `kind` (labels, if any, are ignored): one `text` (with `pair` / `choices`), or
    a file: .txt holds one input a line (blank lines are skipped; each prediction carries its input);
    classifier: a .csv/.tsv/.jsonl with a text (and text_pair) column; tagger: a CoNLL file; multiple
    choice: a file in one of `CHOICE_READERS`' formats."""
    if kind not in KINDS:
        raise BertforgeError(f"unknown model kind {kind!r}; expected one of {KINDS}")
    if (text is None) == (path is None):
        raise BertforgeError("give one input text or one input file")
    if path is not None and path.suffix.lower() == ".txt" and kind != "choice":
        lines = _lines(path, encoding)
        return [TextExample(x) for x in lines] if kind == "sequence" else [TaggedSentence(x.split()) for x in lines]
    if kind == "sequence":
        if text is not None:
            return [TextExample(text, pair)]
        return read_classification_file(path, require_label=False, **columns)
    if kind == "token":
        if text is not None:
            if not text.split():
                raise BertforgeError("the text to tag is empty")
            return [TaggedSentence(text.split())]
        return read_conll(path)
    if text is not None:
        if not choices or len(choices) < 2:
            raise BertforgeError("a multiple-choice model needs --choices with at least two answers")
        return [ChoiceExample(text, list(choices))]
    if format is None:
        raise BertforgeError("--input with a multiple-choice model needs --format " + "|".join(sorted(CHOICE_READERS)))
    return read_choice(format, path)
