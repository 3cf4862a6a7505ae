"""Pre-training data (Devlin et al. 2019, section 3.1 and appendix A.1): corpus -> instances -> shards ->
masked batches.

1. **Corpus** (`read_documents`): UTF-8 text, Google's format: documents are separated by blank lines,
   and each file starts a new document. Each line is split into sentences by `split_sentences`.
2. **Instances** (`create_nsp_instances`, D8), as Google's `create_pretraining_data.py`: walk a document,
   gather sentences until a target length (max_seq_length - 3, or with probability `short_seq_prob` a
   random length in [2, max]), cut the chunk at a random sentence into A and B; with probability 1/2
   B is replaced by a random stretch of *another* document (NotNext) and the sentences of the chunk it
   displaced are put back to be used next; the pair is then truncated to fit, one token at a time from
   the longer side, front or back at random. One deliberate difference: Google makes every chunk of a
   single segment NotNext, which skews the labels to 55-58% NotNext (measured on synthetic documents);
   we give such a chunk its own coin too, and its IsNext pair is the segment cut in two at a random token.
   `pack_sentences` is the no-NSP mode (RoBERTa's DOC-SENTENCES): each row is [CLS] + as many contiguous
   sentences of one document as fit + [SEP].
3. **Shards** (`build_pretraining_data`): documents are read as a stream, in groups of `docs_per_group`
   (NotNext segments come from the same group), and each group's instances are written as numpy files
   that `PretrainingDataset` memory-maps: corpus size is bounded by disk, not RAM.
4. **Masking** (`mask_tokens`, `PretrainingCollator`, D7): 15% of the non-special tokens are chosen;
   80% of those become [MASK], 10% a random token, 10% stay; labels are -100 elsewhere. Random tokens
   are never special or [unused] tokens. Dynamic masking (fresh each epoch, each token chosen with
   probability `rate`, as HF) is the default; `static=True` is Google's: exactly
   round(rate * n) tokens (at least 1, at most `max_predictions`), the same every epoch.
   `whole_word=True` chooses whole words (a token and its ## continuations) instead of tokens.
"""
from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from bertforge.data import IGNORE_INDEX  # noqa: F401 - re-exported
from bertforge.fileio import atomic_path, atomic_write_json, open_text

logger = logging.getLogger("bertforge")

FORMAT_VERSION = 1

# A sentence ends at . ! or ? (plus any closing quotes/brackets) followed by whitespace and then an
# uppercase letter, a digit or an opening quote/bracket: "He left. She stayed." -> 2 sentences;
# "Mr. Smith" is *not* protected (a known limit of a rule this simple, shared by Google's corpus tools).
_SENTENCE_END = re.compile(r"(?<=[.!?])([\"')\]\u201d\u2019]*)\s+(?=[\"'(\[\u201c\u2018]?[A-Z0-9])")


def split_sentences(line: str) -> list[str]:
    """Split one line of text into sentences by the rule above (a corpus with one sentence per line is unchanged)."""
    parts, start = [], 0
    for m in _SENTENCE_END.finditer(line):
        parts.append(line[start:m.start() + len(m.group(1))])
        start = m.end()
    parts.append(line[start:])
    return [p.strip() for p in parts if p.strip()]


def corpus_files(paths: str | Path | Sequence[str | Path], exclude: Sequence[str] = ()) -> list[Path]:
    """The text files named by `paths` (files, or folders searched recursively for *.txt, sorted, minus
    the file names in `exclude`); clear errors. The one reading of every command's `--corpus`."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*.txt") if f.is_file() and f.name not in exclude)
            if not found:
                raise FileNotFoundError(f"no .txt files in the corpus folder {p}")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"corpus path not found: {p} does not exist")
    return files


def read_documents(paths: str | Path | Sequence[str | Path]) -> Iterator[list[str]]:
    """Yield documents (lists of sentences), streaming: blank lines separate documents, and so do files."""
    for path in corpus_files(paths):
        doc: list[str] = []
        with open_text(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    if doc:
                        yield doc
                    doc = []
                else:
                    doc += split_sentences(line)
        if doc:
            yield doc


# ---------------------------------------------------------------------------------------------
# Instances
# ---------------------------------------------------------------------------------------------


@dataclass
class Instance:
    tokens_a: list[int]
    tokens_b: list[int]  # empty in packed mode
    is_random_next: bool = False  # NSP label 1 = NotNext (HF's convention: 0 = IsNext)



def hold_out_documents(files: Sequence[Path], eval_files: Optional[Sequence[Path]] = None, every: int = 20,
                       min_documents: int = 1) -> tuple[list, list]:
    """(training documents, held-out documents) of a corpus, the one rule of `pretrain` and `train-lm`.

    The eval corpus when one is given; else every `every`-th document is held out. A corpus too small to
    spare 2 held-out documents holds out its last 2 when it has at least 6, and otherwise evaluates on
    its training text (with a warning). Fewer than `min_documents` documents is an error (next-sentence
    prediction needs 2). Example: 40 documents -> 38 / 2 (documents 19 and 39).
    """
    from bertforge.errors import BertforgeError

    if eval_files:
        return list(read_documents(files)), list(read_documents(eval_files))
    docs = list(read_documents(files))
    if not docs:
        raise BertforgeError(f"the corpus is empty: no non-blank line in {', '.join(map(str, files))}")
    if len(docs) < min_documents:
        raise BertforgeError(f"the corpus has {len(docs)} document: next-sentence prediction needs at least "
                             f"{min_documents} (separate documents by blank lines), or use --no-nsp")
    train = [d for i, d in enumerate(docs) if i % every != every - 1]
    held = [d for i, d in enumerate(docs) if i % every == every - 1]
    if len(held) >= 2:
        return train, held
    if len(docs) >= 6:
        return docs[:-2], docs[-2:]
    logger.warning("corpus of %d documents: too small to hold documents out; evaluating on training text", len(docs))
    return docs, docs

def truncate_seq_pair(a: list[int], b: list[int], max_num_tokens: int, rng: random.Random) -> None:
    """Trim the longer of A and B one token at a time, from the front or the back at random (Google)."""
    while len(a) + len(b) > max_num_tokens:
        longer = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def create_nsp_instances(documents: Sequence[Sequence[Sequence[int]]], max_seq_length: int,
                         short_seq_prob: float, rng: random.Random) -> list[Instance]:
    """Google's create_instances_from_document over every document (one pass; see module doc, step 2)."""
    if len(documents) < 2:
        raise ValueError(f"next-sentence prediction needs at least 2 documents to draw NotNext segments from, "
                         f"got {len(documents)}: separate documents by blank lines, or use packed mode (no NSP)")
    max_num_tokens = max_seq_length - 3  # [CLS] A [SEP] B [SEP]
    instances = []
    for doc_index, document in enumerate(documents):
        target = max_num_tokens
        if rng.random() < short_seq_prob:
            target = rng.randint(2, max_num_tokens)
        chunk: list[Sequence[int]] = []
        length, i = 0, 0
        while i < len(document):
            chunk.append(document[i])
            length += len(document[i])
            if i == len(document) - 1 or length >= target:
                a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
                tokens_a = [t for s in chunk[:a_end] for t in s]
                tokens_b: list[int] = []
                is_random_next = rng.random() < 0.5 or len(tokens_a) < 2
                if is_random_next:
                    # Another document, never this one (Google tries 10 times and may fail; we do not).
                    other = rng.randint(0, len(documents) - 2)
                    other = other + 1 if other >= doc_index else other
                    random_doc = documents[other]
                    for j in range(rng.randint(0, len(random_doc) - 1), len(random_doc)):
                        tokens_b.extend(random_doc[j])
                        if len(tokens_b) >= target - len(tokens_a):
                            break
                    i -= len(chunk) - a_end  # put the unused segments back
                elif len(chunk) == 1:  # one segment: IsNext = its two halves, cut at a random token
                    cut = rng.randint(1, len(tokens_a) - 1)
                    tokens_a, tokens_b = tokens_a[:cut], tokens_a[cut:]
                else:
                    tokens_b = [t for s in chunk[a_end:] for t in s]
                truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
                instances.append(Instance(tokens_a, tokens_b, is_random_next))
                chunk, length = [], 0
            i += 1
    return instances


def pack_sentences(documents: Sequence[Sequence[Sequence[int]]], max_seq_length: int) -> list[Instance]:
    """No-NSP rows: [CLS] + contiguous sentences of one document, as many as fit + [SEP]."""
    max_num_tokens = max_seq_length - 2
    instances = []
    for document in documents:
        row: list[int] = []
        for sentence in document:
            if row and len(row) + len(sentence) > max_num_tokens:
                instances.append(Instance(row, []))
                row = []
            row = row + list(sentence)
        if row:
            instances.append(Instance(row, []))
    return instances


def _window(ids: list[int], size: int) -> list[list[int]]:
    return [ids[k:k + size] for k in range(0, len(ids), size)]


# ---------------------------------------------------------------------------------------------
# Shards on disk
# ---------------------------------------------------------------------------------------------


def _write_shard(out_dir: Path, index: int, instances: list[Instance], cls_id: int, sep_id: int,
                 dtype: np.dtype) -> dict:
    """shard-NNNNN.tokens.npy: every row's ids back to back; .rows.npy: (offset, len, len_a, is_random_next)."""
    rows = np.zeros((len(instances), 4), dtype=np.int64)
    total = sum(len(x.tokens_a) + len(x.tokens_b) + (3 if x.tokens_b else 2) for x in instances)
    tokens = np.empty(total, dtype=dtype)
    offset = 0
    for r, x in enumerate(instances):
        ids = [cls_id, *x.tokens_a, sep_id] + ([*x.tokens_b, sep_id] if x.tokens_b else [])
        tokens[offset:offset + len(ids)] = ids
        rows[r] = (offset, len(ids), len(x.tokens_a) + 2, int(x.is_random_next))
        offset += len(ids)
    name = f"shard-{index:05d}"
    for suffix, array in ((".tokens.npy", tokens), (".rows.npy", rows)):
        with atomic_path(out_dir / (name + suffix)) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, array)
    return {"name": name, "instances": len(instances), "tokens": int(total)}


def build_pretraining_data(corpus: str | Path | Sequence[str | Path] | Iterable[list[str]], tokenizer,
                           out_dir: str | Path, max_seq_length: int = 128, short_seq_prob: float = 0.1,
                           nsp: bool = True, dupe_factor: int = 1, seed: int = 12345,
                           docs_per_group: int = 10_000) -> dict:
    """Tokenize `corpus` (paths, or an iterable of documents = lists of sentences) and write shards to `out_dir`.

    Returns the metadata also written to `out_dir/meta.json`. `dupe_factor` passes over each group
    give different A/B cuts (Google uses 10 with static masking; with dynamic masking 1 is enough).
    """
    if max_seq_length < 8:
        raise ValueError(f"max_seq_length must be >= 8, got {max_seq_length}")
    if not 0.0 <= short_seq_prob <= 1.0:
        raise ValueError(f"short_seq_prob must be in [0, 1], got {short_seq_prob}")
    is_paths = isinstance(corpus, (str, Path)) or (isinstance(corpus, (list, tuple)) and bool(corpus)
                                                    and all(isinstance(p, (str, Path)) for p in corpus))
    documents = read_documents(corpus) if is_paths else corpus
    out_dir = Path(out_dir)
    if out_dir.exists():  # replace earlier shards, but never delete anything else
        ours = re.compile(r"^(shard-\d+\.(tokens|rows)\.npy|meta\.json|\..+\.tmp)$")
        foreign = [p.name for p in out_dir.iterdir() if not ours.match(p.name)]
        if foreign:
            raise ValueError(f"{out_dir} holds other files ({', '.join(sorted(foreign)[:5])}): give an empty or "
                             f"new folder for the pre-training shards")
        for p in out_dir.iterdir():
            p.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    dtype = np.dtype(np.uint16 if tokenizer.vocab_size <= 65535 else np.uint32)
    window = max_seq_length - 3 if nsp else max_seq_length - 2
    shards, stats = [], {"documents": 0, "sentences": 0, "long_sentences_split": 0, "empty_sentences": 0}

    def flush(group: list[list[list[int]]]) -> None:
        if not group:
            return
        instances: list[Instance] = []
        for _ in range(dupe_factor):
            instances += (create_nsp_instances(group, max_seq_length, short_seq_prob, rng) if nsp
                          else pack_sentences(group, max_seq_length))
        rng.shuffle(instances)
        shards.append(_write_shard(out_dir, len(shards), instances, tokenizer.cls_token_id,
                                   tokenizer.sep_token_id, dtype))

    group: list[list[list[int]]] = []
    for doc in documents:
        ids_doc = []
        for sentence in doc:
            ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(sentence))
            if not ids:
                stats["empty_sentences"] += 1
                continue
            if len(ids) > window:  # a line longer than the window: cut into window-sized pieces
                stats["long_sentences_split"] += 1
                ids_doc += _window(ids, window)
            else:
                ids_doc.append(ids)
        if ids_doc:
            group.append(ids_doc)
            stats["documents"] += 1
            stats["sentences"] += len(ids_doc)
        if len(group) >= docs_per_group:
            flush(group)
            group = []
    if stats["documents"] == 0:
        raise ValueError("the corpus is empty: no non-blank line was found")
    if nsp and len(group) == 1 and not shards:
        raise ValueError("the corpus has a single document, so no NotNext pair can be drawn: separate documents "
                         "by blank lines (or give one file per document), or pre-train without NSP (packed mode)")
    if nsp and len(group) == 1:  # a lone last document: fold it into the previous group's instances
        logger.warning("the last group has one document; it is dropped (NotNext needs another document)")
        group = []
    flush(group)
    if stats["long_sentences_split"]:
        logger.warning("%d lines were longer than the window (%d tokens) and were cut into pieces",
                       stats["long_sentences_split"], window)
    meta = {"format_version": FORMAT_VERSION, "max_seq_length": max_seq_length, "nsp": nsp,
            "short_seq_prob": short_seq_prob, "dupe_factor": dupe_factor, "seed": seed,
            "vocab_size": tokenizer.vocab_size, "vocab_fingerprint": vocab_fingerprint(tokenizer),
            "lowercase": tokenizer.lowercase, "dtype": dtype.name, "shards": shards,
            "instances": sum(s["instances"] for s in shards), **stats}
    atomic_write_json(out_dir / "meta.json", meta)
    return meta


def vocab_fingerprint(tokenizer) -> str:
    """A short hash of the vocabulary, to refuse shards or checkpoints made with another vocab."""
    import hashlib

    tokens = tokenizer.convert_ids_to_tokens(range(tokenizer.vocab_size))
    return hashlib.sha256("\n".join(tokens).encode()).hexdigest()[:16]


class PretrainingDataset:
    """The shards of `build_pretraining_data`, memory-mapped. Item i: ids, segment ids, NSP label, index."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if not (path / "meta.json").is_file():
            raise FileNotFoundError(f"no pre-training data in {path} (meta.json missing): run build_pretraining_data")
        self.meta = json.loads((path / "meta.json").read_text())
        if self.meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: data format {self.meta.get('format_version')} != {FORMAT_VERSION}; rebuild it")
        self.tokens = [np.load(path / f"{s['name']}.tokens.npy", mmap_mode="r") for s in self.meta["shards"]]
        self.rows = [np.load(path / f"{s['name']}.rows.npy") for s in self.meta["shards"]]
        self.starts = np.cumsum([0] + [len(r) for r in self.rows])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, i: int) -> dict[str, np.ndarray | int]:
        if not 0 <= i < len(self):
            raise IndexError(f"instance {i} out of range [0, {len(self)})")
        shard = int(np.searchsorted(self.starts, i, side="right")) - 1
        offset, length, len_a, is_random_next = self.rows[shard][i - self.starts[shard]]
        ids = np.asarray(self.tokens[shard][offset:offset + length], dtype=np.int64)
        segments = np.zeros(length, dtype=np.int64)
        segments[len_a:] = 1
        return {"input_ids": ids, "token_type_ids": segments, "next_sentence_label": int(is_random_next),
                "index": i}


# ---------------------------------------------------------------------------------------------
# Masking (D7)
# ---------------------------------------------------------------------------------------------


@dataclass
class MaskingConfig:
    rate: float = 0.15  # fraction of non-special tokens predicted (30% is allowed)
    mask_prob: float = 0.8  # of those: [MASK]
    random_prob: float = 0.1  # random token; the rest stay unchanged
    static: bool = False  # Google's: exact count, the same masks every epoch
    whole_word: bool = False
    max_predictions: Optional[int] = None  # cap on the exact count (Google's max_predictions_per_seq)

    def __post_init__(self) -> None:
        if not 0.0 < self.rate < 1.0:
            raise ValueError(f"masking rate must be in (0, 1), got {self.rate}")
        if self.mask_prob < 0 or self.random_prob < 0 or self.mask_prob + self.random_prob > 1:
            raise ValueError(f"mask_prob ({self.mask_prob}) + random_prob ({self.random_prob}) must be in [0, 1]")


class VocabInfo:
    """What masking needs to know of a vocabulary: special ids, replacement candidates, ## continuations."""

    def __init__(self, tokenizer):
        tokens = tokenizer.convert_ids_to_tokens(range(tokenizer.vocab_size))
        special = set(tokenizer.all_special_ids)
        bracketed = re.compile(r"^\[[^\[\]]+\]$")  # [PAD] [unused0] [CLS] ...: never drawn
        self.mask_id, self.pad_id = tokenizer.mask_token_id, tokenizer.pad_token_id
        self.is_special = np.array([i in special for i in range(len(tokens))])
        self.replacements = np.array([i for i, t in enumerate(tokens) if i not in special and not bracketed.match(t)])
        self.is_continuation = np.array([t.startswith("##") for t in tokens])
        if len(self.replacements) == 0:
            raise ValueError("the vocabulary has no ordinary token to draw random replacements from")


def mask_tokens(ids: np.ndarray, vocab: VocabInfo, cfg: MaskingConfig, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """(masked input ids, labels: original id at chosen positions, -100 elsewhere) for one sequence (T,)."""
    candidates = np.flatnonzero(~vocab.is_special[ids])  # positions that may be chosen
    if cfg.whole_word:  # a unit = a word-initial token and the ## pieces after it
        cont = vocab.is_continuation[ids[candidates]]
        starts = np.flatnonzero(~cont | (np.diff(candidates, prepend=-2) != 1))
        units = np.split(candidates, starts[1:]) if len(candidates) else []
    else:
        units = [candidates[k:k + 1] for k in range(len(candidates))]
    if cfg.static:
        n = max(1, int(round(len(candidates) * cfg.rate)))
        if cfg.max_predictions:
            n = min(n, cfg.max_predictions)
        chosen: list[int] = []
        for u in rng.permutation(len(units)):  # Google: whole units while they fit the count
            if len(chosen) + len(units[u]) <= n:
                chosen.extend(units[u].tolist())
            if len(chosen) >= n:
                break
        positions = np.array(sorted(chosen), dtype=np.int64)
    else:
        keep = rng.random(len(units)) < cfg.rate
        positions = np.concatenate([u for u, k in zip(units, keep) if k] or [np.zeros(0, np.int64)])
    labels = np.full_like(ids, IGNORE_INDEX)
    labels[positions] = ids[positions]
    out = ids.copy()
    action = rng.random(len(positions))  # per token: [MASK] / random / unchanged
    out[positions[action < cfg.mask_prob]] = vocab.mask_id
    rand = positions[(action >= cfg.mask_prob) & (action < cfg.mask_prob + cfg.random_prob)]
    out[rand] = vocab.replacements[rng.integers(0, len(vocab.replacements), len(rand))]
    return out, labels


class PretrainingCollator:
    """Pads a list of `PretrainingDataset` items and masks them: a batch for `BertForPreTraining(**batch)`.

    With a `ResumableLoader`, `seeds` (one per example) make dynamic masking reproducible; static
    masking seeds by the example's index, so an example is masked the same way every epoch.
    """

    def __init__(self, tokenizer, masking: MaskingConfig = MaskingConfig(), pad_to: Optional[int] = None,
                 seed: int = 0, nsp: bool = True):
        self.vocab, self.masking, self.pad_to, self.seed, self.nsp = VocabInfo(tokenizer), masking, pad_to, seed, nsp
        self._rng = np.random.default_rng(seed)  # only when no seeds are given

    def __call__(self, examples: list[dict], seeds: Optional[list[int]] = None) -> dict[str, torch.Tensor]:
        T = max(len(e["input_ids"]) for e in examples)
        T = max(T, self.pad_to or 0)
        B = len(examples)
        input_ids = np.full((B, T), self.vocab.pad_id, dtype=np.int64)
        labels = np.full((B, T), IGNORE_INDEX, dtype=np.int64)
        token_type_ids = np.zeros((B, T), dtype=np.int64)
        attention_mask = np.zeros((B, T), dtype=np.int64)
        for b, e in enumerate(examples):
            if self.masking.static:
                rng = np.random.default_rng([self.seed, int(e.get("index", b))])
            elif seeds is not None:
                rng = np.random.default_rng(seeds[b])
            else:
                rng = self._rng
            ids = np.asarray(e["input_ids"], dtype=np.int64)
            n = len(ids)
            input_ids[b, :n], labels[b, :n] = mask_tokens(ids, self.vocab, self.masking, rng)
            token_type_ids[b, :n] = e["token_type_ids"]
            attention_mask[b, :n] = 1
        batch = {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask,
                 "labels": labels}
        if self.nsp:
            batch["next_sentence_label"] = np.array([e["next_sentence_label"] for e in examples], dtype=np.int64)
        return {k: torch.from_numpy(v) for k, v in batch.items()}
