"""The fixed retrieval benchmark of issue 16: SQuAD v1.1 dev paragraphs as a folder of files, asked the
XQuAD-en questions (XQuAD-en's 240 paragraphs are SQuAD v1.1 dev paragraphs, Artetxe et al. 2020).

    folder/
      00-Super_Bowl_50/000.txt   one paragraph per file (2,067 files for all of dev)
      ...

Retrieval is scored by recall@k: the share of questions whose gold paragraph's file is among the files
of the top k passages (a paragraph cut into several passages counts once). End to end, the answers
read from the folder are scored with the official SQuAD v1.1 EM/F1 against the same answers read from
the gold paragraph alone (`bertforge.metrics.squad`). Used by tests/retrieval and
benchmarks/bench_retrieval.py.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

__all__ = ["GoldQuestion", "gold_questions", "recall_at_k", "write_squad_folder"]


@dataclass(frozen=True)
class GoldQuestion:
    qid: str
    question: str
    file: str  # the gold paragraph's file, relative to the folder
    context: str  # the gold paragraph
    answers: tuple[str, ...]


def _slug(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", title)[:60]


def write_squad_folder(squad_json: str | Path, folder: str | Path, keep: Optional[set[str]] = None
                       ) -> dict[str, str]:
    """Write each paragraph of a SQuAD file as FOLDER/<article>/<paragraph>.txt (only those in `keep`
    when given); return {paragraph text: relative file}. Existing identical files are left untouched,
    so a second call does not change their mtime (an index of the folder stays fresh)."""
    folder = Path(folder)
    data = json.loads(Path(squad_json).read_text(encoding="utf-8"))["data"]
    files: dict[str, str] = {}
    for a, article in enumerate(data):
        for p, paragraph in enumerate(article["paragraphs"]):
            context = paragraph["context"]
            if (keep is not None and context not in keep) or context in files:
                continue
            rel = f"{a:02d}-{_slug(article['title'])}/{p:03d}.txt"
            path = folder / rel
            if not (path.exists() and path.read_text(encoding="utf-8") == context):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(context, encoding="utf-8")
            files[context] = rel
    return files


def gold_questions(squad_json: str | Path, files: dict[str, str]) -> list[GoldQuestion]:
    """The questions of a SQuAD-format file whose paragraph is one of `files` (text -> relative file)."""
    out = []
    for article in json.loads(Path(squad_json).read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            rel = files.get(paragraph["context"])
            if rel is None:
                continue
            for qa in paragraph["qas"]:
                out.append(GoldQuestion(qid=qa["id"], question=qa["question"], file=rel, context=paragraph["context"],
                                        answers=tuple(a["text"] for a in qa["answers"])))
    return out


def recall_at_k(ranked_files: Sequence[Sequence[str]], gold_files: Sequence[str], ks: Sequence[int] = (1, 5, 20)
                ) -> dict[int, float]:
    """{k: share of questions whose gold file is among the first k retrieved passages' files} (percent)."""
    if len(ranked_files) != len(gold_files) or not gold_files:
        raise ValueError(f"{len(ranked_files)} rankings for {len(gold_files)} gold files")
    return {k: 100.0 * sum(gold in files[:k] for files, gold in zip(ranked_files, gold_files)) / len(gold_files)
            for k in ks}
