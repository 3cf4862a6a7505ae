"""`bertforge index DIR [--out INDEX]`: index a folder of documents; and the `qa --docs` answers from it."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bertforge.cli import flags


def register(sub) -> None:
    p = sub.add_parser("index", help="index a folder of documents (.txt .md .html .pdf) for `qa --docs`",
                       description="Cut the documents of a folder into passages, embed them (all-MiniLM-L6-v2) "
                                   "and build a BM25 index, on disk in one directory. Run it again after the "
                                   "folder changes: only new or changed files are embedded. docs/retrieval.md.")
    p.add_argument("folder", type=Path, metavar="DIR", help="the folder of documents (searched recursively)")
    flags.out(p, "where to write the index (default: DIR/.bertforge-index, or a cache folder when DIR is "
              "read-only)", required=False, metavar="INDEX")
    flags.model(p, "the sentence-embedding model (default: the index's, else all-MiniLM-L6-v2)")
    p.add_argument("--precision", choices=("auto",) + flags.PRECISIONS, default="auto",
                   help="embedding precision; auto: bf16 where the CPU/GPU computes it natively, else fp32")
    flags.device_flag(p, default="cpu")
    flags.batch_size(p, 32, "passages per embedding batch")
    p.add_argument("--max-file-mb", type=flags.positive_float, default=20.0,
                   help="larger files are skipped with a warning (default 20)")
    p.add_argument("--passage-words", type=flags.positive_int, default=None,
                   help="words per passage (default: the index's, else 120)")
    p.add_argument("--overlap-words", type=flags.non_negative_int, default=None,
                   help="words shared by consecutive passages (default: the index's, else 30)")
    p.set_defaults(func=run)


def _warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from bertforge.retrieval import ChunkConfig, DocumentIndex

    chunking = None
    if args.passage_words is not None or args.overlap_words is not None:
        default = ChunkConfig()
        chunking = ChunkConfig(args.passage_words or default.max_words,
                               default.overlap_words if args.overlap_words is None else args.overlap_words)
    index = DocumentIndex.build(args.folder, args.out, model=args.model, device=args.device,
                                precision=args.precision, batch_size=args.batch_size, chunking=chunking,
                                max_file_mb=args.max_file_mb, progress=not getattr(args, "quiet", False),
                                warn=_warn)
    print(f"indexed {args.folder} -> {index.path}: {index.report.summary()}")
    return 0


def open_docs(path: Path, quiet: bool = False):
    """`qa --docs PATH`: an index as it is (warning when its folder changed since), or a folder indexed
    or refreshed first (at its default index place)."""
    from bertforge.errors import BertforgeError
    from bertforge.retrieval import DocumentIndex
    from bertforge.retrieval.index import MANIFEST

    if (path / MANIFEST).is_file():
        index = DocumentIndex.load(path)
        stale = index.stale_files()
        if stale:
            _warn(f"{len(stale)} file(s) of {index.folder} changed since this index was built ({stale[0]}, ...): "
                  f"refresh it with `bertforge index {index.folder} --out {path}`")
        return index
    if not path.is_dir():
        raise BertforgeError(f"--docs {path}: no such folder or index")
    index = DocumentIndex.build(path, progress=not quiet, warn=_warn)
    if index.report.embedded or index.report.removed_files or index.report.skipped:
        print(f"indexed {path} -> {index.path}: {index.report.summary()}", file=sys.stderr)
    return index


def answer_from_docs(args: argparse.Namespace, questions: list[str], make_answerer) -> int:
    """Print the answers to `questions` from the documents of `--docs` (JSON lines with --json);
    `make_answerer(args)` loads the QA model (after the index, so a bad --docs fails fast)."""
    from bertforge.retrieval import NO_ANSWER, ask_docs_many

    index = open_docs(args.docs, quiet=getattr(args, "quiet", False))
    results = ask_docs_many(make_answerer(args), index, questions, top_k=args.top_k, top_passages=args.top_passages)
    for question, answers in zip(questions, results):
        if args.json:
            print(json.dumps({"question": question, "answers": [a.to_dict() for a in answers]}, ensure_ascii=False))
            continue
        print(f"Q: {question}")
        if not answers:
            print(f"   ({NO_ANSWER})")
        for rank, a in enumerate(answers, 1):
            print(f"   {rank}. {a.text!r}  p={a.probability:.3f}  {a.location}")
            print(f"      {a.sentence}")
    return 0
