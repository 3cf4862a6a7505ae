"""`DocumentIndex`: a folder's passages, their vectors and a BM25 index, on disk in one directory.

    from bertforge.retrieval import DocumentIndex
    index = DocumentIndex.build("notes/")                 # or .build("notes/", out="notes.index")
    index = DocumentIndex.load("notes/.bertforge-index")  # later, or in another process
    for p in index.search("When was the lab founded?", k=5):
        print(p.score, p.location, p.text[:80])

The retriever half of a retriever-reader system (DrQA, Chen et al. 2017): BM25 (`lexical`) and dense
vectors (all-MiniLM-L6-v2, `bertforge.tasks.embedding.SentenceEncoder`) each propose 100 candidates,
and a convex mix of their min-max normalised scores (`fusion`; reciprocal rank fusion on request) ranks
them; docs/retrieval.md has the measurements behind each choice.

On disk (`INDEX/`):

    index.json          written last, atomically: format, folder, embedding model and chunking identity,
                        store class, and per file: size, mtime, sha256, its passage rows
    data-<id>/          one generation: passages.jsonl, the store's files (vectors.npy), bm25/

A build writes a new generation next to the old one and then replaces index.json (os.replace), so an
interrupted build (Ctrl-C, a crash, a full disk) leaves the previous index as it was; the next build
removes the orphaned generation. A lock file stops two builds writing one index at once.

**Incremental**: a file whose size and mtime are unchanged is not even read; a file whose bytes
(sha256) are those of a file already indexed (touched, moved, copied) reuses its passages; an edited
file is re-cut, and only passages whose text is new are embedded (the others reuse their vectors).
An index built with another embedding model or other chunking rules is rebuilt from scratch.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from bertforge.errors import BertforgeError
from bertforge.fileio import atomic_write_json
from bertforge.retrieval.chunking import ChunkConfig, Passage, chunk_document
from bertforge.retrieval.documents import Skip, SourceFile, file_hash, read_bytes, read_document, walk_folder
from bertforge.retrieval.fusion import RRF_K, convex_fusion, reciprocal_rank_fusion
from bertforge.retrieval.lexical import BM25Index
from bertforge.retrieval.store import STORES, FlatStore, VectorStore

__all__ = ["BuildReport", "DEFAULT_INDEX_NAME", "DocumentIndex", "MODES", "default_index_path", "load_encoder"]

logger = logging.getLogger("bertforge.retrieval")

FORMAT = "bertforge-document-index"
FORMAT_VERSION = 1
MANIFEST = "index.json"
DEFAULT_INDEX_NAME = ".bertforge-index"  # inside the folder; hidden, so the walker never indexes it
MODES = ("hybrid", "vector", "bm25")
# A fixed sentence whose vector identifies the embedding model: same model -> cosine ~1 (bf16 vs fp32
# measured 0.9999); another model -> another vector, or another dimension.
PROBE = "Where is the source of this answer? A probe sentence that fingerprints the embedding model."
PROBE_MIN_COSINE = 0.99


@dataclass
class BuildReport:
    """What a build did: counts of files and passages, and every skipped file with its reason."""

    files: int = 0
    passages: int = 0
    embedded: int = 0  # passages sent to the encoder (the rest reused vectors of the previous index)
    unchanged_files: int = 0
    added_files: int = 0
    changed_files: int = 0
    moved_files: int = 0  # new path, bytes of a file already indexed (moved, renamed or copied)
    removed_files: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    rebuilt: str = ""  # why everything was re-embedded ("" when the previous index was reused)
    seconds: float = 0.0

    def summary(self) -> str:
        parts = [f"{self.files} files, {self.passages} passages ({self.embedded} embedded)"]
        changes = [f"{n} {what}" for n, what in [(self.added_files, "added"), (self.changed_files, "changed"),
                                                 (self.moved_files, "moved"), (self.removed_files, "removed"),
                                                 (self.unchanged_files, "unchanged")] if n]
        if changes:
            parts.append(", ".join(changes))
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        return "; ".join(parts) + f"; {self.seconds:.1f} s"


# ---- the embedding model -------------------------------------------------------------------------

def auto_precision(device: str = "cpu") -> str:
    """bf16 where the hardware computes it natively (CPU: AVX512-BF16 or AMX; a CUDA GPU that supports
    it), else fp32: emulated bf16 is slower than fp32. Measured here (AMX, 1 thread): MiniLM encodes
    passages 2.3x faster in bf16 autocast, recall@k unchanged (docs/retrieval.md)."""
    import torch

    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "fp32"
    return "bf16" if (" avx512_bf16" in flags or " amx_bf16" in flags) else "fp32"


def load_encoder(model: Optional[str | Path] = None, device: str = "cpu", precision: str = "auto",
                 batch_size: int = 32):
    """A `SentenceEncoder` for passages and questions (default: the real all-MiniLM-L6-v2); device and
    precision may be "auto"."""
    from bertforge.tasks.embedding import SentenceEncoder

    if device == "auto":  # the flags' "auto": the GPU when there is one
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if precision == "auto":
        precision = auto_precision(device)
    if model is not None and not Path(model).is_dir():
        raise BertforgeError(f"embedding model {model} is not a directory: pass a sentence-encoder folder "
                             "(config.json, model.safetensors, vocab.txt), or leave it out for all-MiniLM-L6-v2")
    return SentenceEncoder(model, device=device, precision=precision, batch_size=batch_size)


def encoder_identity(encoder, model: Optional[str | Path]) -> dict:
    """What the index records about its embedding model: where to load it, its size and fingerprint."""
    probe = encoder.encode([PROBE])[0].numpy()
    return {"model": None if model is None else str(Path(model).resolve()),
            "name": Path(model).name if model is not None else "all-MiniLM-L6-v2",
            "dim": int(probe.shape[0]), "max_length": int(encoder.max_length),
            "probe": [round(float(x), 6) for x in probe]}


def identity_mismatch(recorded: dict, current: dict) -> str:
    """'' when the two identities are the same model, else the reason in words."""
    if recorded.get("dim") != current["dim"]:
        return f"its vectors have {recorded.get('dim')} dimensions, this encoder's {current['dim']}"
    a, b = np.asarray(recorded.get("probe", []), np.float64), np.asarray(current["probe"], np.float64)
    if a.shape != b.shape:
        return "it records no usable model fingerprint"
    cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
    if cosine < PROBE_MIN_COSINE:
        return f"its embedding model gives other vectors (fingerprint cosine {cosine:.3f})"
    return ""


# ---- files on disk -------------------------------------------------------------------------------

def default_index_path(folder: str | Path) -> Path:
    """FOLDER/.bertforge-index, or a per-folder index under ~/.cache/bertforge when FOLDER is read-only."""
    folder = Path(folder).resolve()
    if os.access(folder, os.W_OK):
        return folder / DEFAULT_INDEX_NAME
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bertforge" / "indexes"
    return cache / f"{folder.name}-{hashlib.sha1(str(folder).encode()).hexdigest()[:12]}"


@contextmanager
def _write_lock(out: Path) -> Iterator[None]:
    """One writer per index: a second build fails at once with a message instead of interleaving."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, the atomic manifest still keeps readers safe
        yield
        return
    with open(out / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BertforgeError(f"another process is writing the index {out}: wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _fsync_tree(folder: Path) -> None:
    """Flush every file of `folder` (and the folder) to disk before the manifest points at it."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _is_ours(out: Path) -> bool:
    """True when `out` is absent, empty, or holds only what a build writes (never clobber a user folder)."""
    if not out.exists():
        return True
    if not out.is_dir():
        return False
    return all(p.name in (MANIFEST, ".lock") or p.name.startswith(("data-", f".{MANIFEST}."))
               for p in out.iterdir())


def _write_passages(path: Path, passages: Sequence[Passage]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for p in passages:
            f.write(json.dumps({"file": p.file, "start": p.start, "end": p.end, "line": p.line, "page": p.page,
                                "text": p.text}, ensure_ascii=False) + "\n")


def _read_passages(path: Path) -> list[Passage]:
    passages = []
    with open(path, encoding="utf-8") as f:
        for row, line in enumerate(f):
            d = json.loads(line)
            passages.append(Passage(text=d["text"], file=d["file"], start=d["start"], end=d["end"],
                                    line=d["line"], page=d["page"], id=row))
    return passages


def _read_manifest(path: Path) -> dict:
    """The manifest of the index at `path`, or a BertforgeError saying what `path` is instead."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BertforgeError(f"{path} is not a bertforge index (no {MANIFEST}): build one with "
                             f"`bertforge index FOLDER --out {path}`")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BertforgeError(f"{manifest_path} is unreadable ({e}): rebuild the index with `bertforge index "
                             "FOLDER`") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BertforgeError(f"{path} is not a bertforge document index ({MANIFEST} has another format)")
    if manifest.get("version") != FORMAT_VERSION:
        raise BertforgeError(f"{path} was written in index format {manifest.get('version')}, this bertforge "
                             f"reads format {FORMAT_VERSION}: rebuild it with `bertforge index "
                             f"{manifest.get('folder', 'FOLDER')} --out {path}`")
    return manifest


# ---- the index -----------------------------------------------------------------------------------

class DocumentIndex:
    """Passages of a folder with hybrid (BM25 + vector) search; see the module docstring."""

    # Measured (docs/retrieval.md): the convex mix beat RRF on held-out SQuAD-dev questions (recall@1
    # 80.2 vs 75.5, @5 94.2 vs 92.7), weight 0.5 best of 0.3..0.7; RRF stays available.
    fusion = "convex"  # or "rrf"
    convex_weight = 0.5  # the vector list's weight in the convex mix (BM25 gets 1 - weight)
    candidates = 100  # how deep each list is read before fusing

    def __init__(self, path: Path, manifest: dict, passages: list[Passage], store: VectorStore, bm25: BM25Index,
                 encoder, report: Optional[BuildReport] = None):
        self.path, self.manifest, self.passages = path, manifest, passages
        self.store, self.bm25, self.encoder = store, bm25, encoder
        self.report = report  # set by build()

    @property
    def folder(self) -> Path:
        return Path(self.manifest["folder"])

    def __len__(self) -> int:
        return len(self.passages)

    def __repr__(self) -> str:
        return (f"DocumentIndex({str(self.path)!r}: {len(self.manifest['files'])} files, {len(self)} passages, "
                f"folder {str(self.folder)!r})")

    # ---- build -----------------------------------------------------------------------------------

    @classmethod
    def build(cls, folder: str | Path, out: Optional[str | Path] = None, *, model: Optional[str | Path] = None,
              encoder=None, device: str = "cpu", precision: str = "auto", batch_size: int = 32,
              chunking: Optional[ChunkConfig] = None, store: Optional[VectorStore] = None,
              max_file_mb: float = 20.0, progress: bool = False,
              warn: Optional[Callable[[str], None]] = None) -> DocumentIndex:
        """Index `folder` into `out` (default `default_index_path(folder)`), reusing what a previous
        index at `out` already embedded, and return the index. `build(...).report` says what was done.

        model / encoder: the embedding model folder, and/or a ready `SentenceEncoder` of it (to share
        one between indexes; give `model` too unless it is all-MiniLM-L6-v2, so `load` can find it);
        by default the model of the previous index, else all-MiniLM-L6-v2.
        chunking: how files are cut (default: as the previous index, else `ChunkConfig()`).
        store: a `VectorStore` (default: the previous index's kind, else `FlatStore`).
        max_file_mb: larger files are skipped with a warning. warn: called with one line per skipped
        file (default: the 'bertforge.retrieval' logger)."""
        t0 = time.perf_counter()
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise BertforgeError(f"{folder} is not a folder: pass the folder of documents to index")
        folder = folder.resolve()
        out = Path(out).expanduser() if out is not None else default_index_path(folder)
        if not _is_ours(out):
            raise BertforgeError(f"{out} exists and is not a bertforge index: choose another --out")
        warn = warn or logger.warning
        with _write_lock(out):
            previous = cls._previous(out)
            if encoder is None:
                if model is None and previous is not None:
                    model = previous["manifest"]["encoder"]["model"]
                encoder = load_encoder(model, device, precision, batch_size)
            if chunking is None:
                chunking = (ChunkConfig(previous["manifest"]["chunking"]["max_words"],
                                        previous["manifest"]["chunking"]["overlap_words"])
                            if previous is not None else ChunkConfig())
            identity = encoder_identity(encoder, model)
            report = BuildReport()
            previous = cls._reusable(previous, identity, chunking, report, warn)
            passages, reuse_rows, files = cls._collect(folder, out, previous, chunking, max_file_mb, report, warn)
            if not passages:
                raise BertforgeError(f"no documents to index in {folder}: it has no readable .txt, .md, .html "
                                     f"or .pdf file ({len(report.skipped)} skipped)")
            vectors = cls._embed(encoder, passages, reuse_rows, previous, report, progress)
            if store is None:
                store = (STORES[previous["manifest"]["store"]["name"]](**previous["manifest"]["store"]["options"])
                         if previous is not None else FlatStore())
            store.build(vectors)
            bm25 = BM25Index.build([p.text for p in passages])
            manifest = {"format": FORMAT, "version": FORMAT_VERSION, "folder": str(folder),
                        "encoder": identity, "chunking": chunking.identity(), "bm25": BM25Index.identity,
                        "store": {"name": store.name, "options": store.options()}, "files": files,
                        "passages": len(passages), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            cls._write(out, manifest, passages, store, bm25)
        report.files, report.passages = len(files), len(passages)
        report.seconds = time.perf_counter() - t0
        return cls(out, manifest, [dataclasses.replace(p, id=i) for i, p in enumerate(passages)], store, bm25,
                   encoder, report)

    @classmethod
    def _previous(cls, out: Path) -> Optional[dict]:
        """The previous index at `out` (manifest, passages, vectors), or None when there is none or it
        cannot be read (then everything is embedded again)."""
        if not (out / MANIFEST).exists():
            return None
        try:
            manifest = _read_manifest(out)
            data = out / manifest["data"]
            passages = _read_passages(data / "passages.jsonl")
            vectors = STORES[manifest["store"]["name"]].load(data, manifest["store"]["options"]).vectors()
        except (BertforgeError, OSError, KeyError, ValueError) as e:
            logger.warning(f"the previous index at {out} cannot be reused ({e}): indexing from scratch")
            return None
        return {"manifest": manifest, "passages": passages, "vectors": vectors}

    @staticmethod
    def _reusable(previous: Optional[dict], identity: dict, chunking: ChunkConfig, report: BuildReport,
                  warn: Callable[[str], None]) -> Optional[dict]:
        """`previous` if its vectors and passages can be reused with this model and chunking, else None."""
        if previous is None:
            return None
        manifest = previous["manifest"]
        reason = identity_mismatch(manifest["encoder"], identity)
        if reason:
            report.rebuilt = f"the previous index was built with another embedding model ({reason})"
        elif manifest["chunking"] != chunking.identity():
            report.rebuilt = (f"the previous index was cut differently ({manifest['chunking']} vs "
                              f"{chunking.identity()})")
        if report.rebuilt:
            warn(f"{report.rebuilt}: embedding everything again")
            return None
        return previous

    @staticmethod
    def _collect(folder: Path, out: Path, previous: Optional[dict], chunking: ChunkConfig, max_file_mb: float,
                 report: BuildReport, warn: Callable[[str], None]
                 ) -> tuple[list[Passage], list[int], dict[str, dict]]:
        """Walk the folder: the passages of every file, the previous row each can reuse (-1: embed it),
        and the manifest's file table. Unchanged files are not read; see the module docstring."""
        old_files: dict[str, dict] = previous["manifest"]["files"] if previous else {}
        old_passages: list[Passage] = previous["passages"] if previous else []
        by_hash = {entry["sha256"]: entry for entry in old_files.values()}
        by_text: dict[str, int] = {}
        for row, p in enumerate(old_passages):
            by_text.setdefault(p.text, row)

        found, skipped = walk_folder(folder, exclude=[out])
        for rel, reason in skipped:
            warn(f"{rel}: {reason}")
        report.skipped.extend(skipped)
        passages: list[Passage] = []
        reuse_rows: list[int] = []
        files: dict[str, dict] = {}

        def reuse(entry: dict, source: SourceFile, sha: str) -> None:
            first, count = entry["passages"]
            files[source.rel] = {"size": source.size, "mtime_ns": source.mtime_ns, "sha256": sha,
                                 "passages": [len(passages), count]}
            for row in range(first, first + count):
                passages.append(dataclasses.replace(old_passages[row], file=source.rel, score=0.0, id=-1))
                reuse_rows.append(row)

        for source in found:
            old = old_files.get(source.rel)
            if old and old["size"] == source.size and old["mtime_ns"] == source.mtime_ns:
                report.unchanged_files += 1
                reuse(old, source, old["sha256"])
                continue
            try:
                data = read_bytes(source, int(max_file_mb * 1e6))
                sha = file_hash(data)
                same = old if old and old["sha256"] == sha else by_hash.get(sha)
                if same is not None:  # touched (same path) or moved/copied (another path): same bytes
                    if same is old:
                        report.unchanged_files += 1
                    else:
                        report.moved_files += 1
                    reuse(same, source, sha)
                    continue
                new = chunk_document(read_document(source, data), source.rel, chunking, paged=source.kind == "pdf")
            except Skip as e:
                warn(f"{source.rel}: {e}")
                report.skipped.append((source.rel, str(e)))
                continue
            if old:
                report.changed_files += 1
            else:
                report.added_files += 1
            files[source.rel] = {"size": source.size, "mtime_ns": source.mtime_ns, "sha256": sha,
                                 "passages": [len(passages), len(new)]}
            passages.extend(new)
            reuse_rows.extend(by_text.get(p.text, -1) for p in new)
        # Gone from the index: deleted, unreadable now, or moved (then counted as moved, not removed).
        kept_hashes = {entry["sha256"] for entry in files.values()}
        report.removed_files = sum(1 for rel, entry in old_files.items()
                                   if rel not in files and entry["sha256"] not in kept_hashes)
        return passages, reuse_rows, files

    @staticmethod
    def _embed(encoder, passages: list[Passage], reuse_rows: list[int], previous: Optional[dict],
               report: BuildReport, progress: bool, block: int = 64) -> np.ndarray:
        """(N, D) vectors: reused rows copied from the previous index, the rest encoded in blocks of
        `block` passages sorted by length (so each batch pads little), with a progress bar.

        Each block of new shapes fragments glibc's heap; giving the free pages back after each block
        (the Trainer's `release_free_memory`) held the resident set at 490 MB over 1,200 SQuAD
        paragraphs, where it grew to 810 MB after 600 without it."""
        from tqdm import tqdm

        from bertforge.training.trainer import release_free_memory

        dim = encoder.config.hidden_size
        vectors = np.empty((len(passages), dim), np.float32)
        todo = [i for i, row in enumerate(reuse_rows) if row < 0]
        done = [i for i, row in enumerate(reuse_rows) if row >= 0]
        if done:
            vectors[done] = np.asarray(previous["vectors"])[[reuse_rows[i] for i in done]]
        todo.sort(key=lambda i: len(passages[i].text))
        with tqdm(total=len(todo), unit="passage", desc="embedding", disable=not progress or not todo,
                  file=sys.stderr) as bar:
            for b in range(0, len(todo), block):
                idx = todo[b : b + block]
                vectors[idx] = encoder.encode([passages[i].text for i in idx]).numpy()
                release_free_memory()
                bar.update(len(idx))
        report.embedded = len(todo)
        return vectors

    @staticmethod
    def _write(out: Path, manifest: dict, passages: Sequence[Passage], store: VectorStore, bm25: BM25Index) -> None:
        """Write a new generation, then point index.json at it (atomic), then remove older generations."""
        name = f"data-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.perf_counter_ns() % 10**6:06d}"
        data = out / name
        data.mkdir()
        _write_passages(data / "passages.jsonl", passages)
        store.save(data)
        (data / "bm25").mkdir()
        bm25.save(data / "bm25")
        _fsync_tree(data)
        manifest["data"] = name
        atomic_write_json(out / MANIFEST, manifest)
        for old in out.glob("data-*"):
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)

    # ---- load ------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, encoder=None, device: str = "cpu", precision: str = "auto") -> DocumentIndex:
        """Open an index written by `build`. `path` may also be a folder indexed at its default place.

        Refused with a message that says what to do: not an index, another format version, or an
        `encoder` (default: the model the index records) that is not the index's embedding model."""
        path = Path(path).expanduser()
        if not (path / MANIFEST).exists() and (path / DEFAULT_INDEX_NAME / MANIFEST).exists():
            path = path / DEFAULT_INDEX_NAME
        manifest = _read_manifest(path)
        if encoder is None:
            model = manifest["encoder"]["model"]
            if model is not None and not Path(model).is_dir():
                raise BertforgeError(f"the index {path} was embedded with {model}, which is not here: pass "
                                     "encoder= (the same model), or rebuild the index")
            encoder = load_encoder(model, device, precision)
        reason = identity_mismatch(manifest["encoder"], encoder_identity(encoder, manifest["encoder"]["model"]))
        if reason:
            raise BertforgeError(f"the index {path} does not match this embedding model: {reason}. Query it with "
                                 f"the model it was built with ({manifest['encoder']['name']}), or rebuild it: "
                                 f"bertforge index {manifest['folder']} --out {path}")
        data = path / manifest["data"]
        try:
            passages = _read_passages(data / "passages.jsonl")
            store = STORES[manifest["store"]["name"]].load(data, manifest["store"]["options"])
            bm25 = BM25Index.load(data / "bm25", len(passages))
        except (OSError, KeyError, ValueError) as e:
            raise BertforgeError(f"the index {path} is damaged ({type(e).__name__}: {e}): rebuild it with "
                                 f"`bertforge index {manifest['folder']} --out {path}`") from None
        if not len(passages) == len(store) == manifest["passages"]:
            raise BertforgeError(f"the index {path} is damaged ({len(passages)} passages, {len(store)} vectors): "
                                 f"rebuild it with `bertforge index {manifest['folder']} --out {path}`")
        return cls(path, manifest, passages, store, bm25, encoder)

    def stale_files(self) -> list[str]:
        """Files of the folder added, changed (size or mtime) or removed since the index was built."""
        if not self.folder.is_dir():
            return sorted(self.manifest["files"])
        found, _ = walk_folder(self.folder, exclude=[self.path])
        now = {f.rel: (f.size, f.mtime_ns) for f in found}
        then = {rel: (e["size"], e["mtime_ns"]) for rel, e in self.manifest["files"].items()}
        return sorted(rel for rel in set(now) | set(then) if now.get(rel) != then.get(rel))

    # ---- search ----------------------------------------------------------------------------------

    def search(self, question: str, k: int = 5, mode: str = "hybrid") -> list[Passage]:
        """The `k` passages most likely to answer `question`, best first, each with its `.score`."""
        return self.search_many([question], k, mode)[0]

    def search_many(self, questions: Sequence[str], k: int = 5, mode: str = "hybrid") -> list[list[Passage]]:
        """`search` for many questions at once (the questions are embedded in one batch)."""
        if isinstance(questions, str):
            raise TypeError("search_many() takes a list of questions, not one str")
        if mode not in MODES:
            raise BertforgeError(f"mode must be one of {MODES}, got {mode!r}")
        if k < 1:
            raise BertforgeError(f"k must be >= 1, got {k}")
        for q in questions:
            if not isinstance(q, str) or not q.strip():
                raise BertforgeError("a question is empty: ask something")
        depth = max(k, self.candidates)
        results = [[] for _ in questions]
        dense = lexical = None
        if mode in ("hybrid", "vector"):
            query = self.encoder.encode(list(questions)).numpy()  # (Q, D)
            dense = list(zip(*self.store.search(query, depth)))  # Q x ((depth,) scores, (depth,) ids)
        if mode in ("hybrid", "bm25"):
            lexical = self.bm25.search(questions, depth)
        for qi in range(len(questions)):
            if mode == "vector":
                ranked = list(zip(dense[qi][1].tolist(), dense[qi][0].tolist()))
            elif mode == "bm25":
                ranked = list(zip(lexical[qi][1].tolist(), lexical[qi][0].tolist()))
            elif self.fusion == "convex":
                ranked = convex_fusion([dense[qi], lexical[qi]], [self.convex_weight, 1 - self.convex_weight])
            else:
                ranked = reciprocal_rank_fusion([dense[qi][1].tolist(), lexical[qi][1].tolist()], RRF_K)
            results[qi] = [dataclasses.replace(self.passages[i], score=float(s)) for i, s in ranked[:k]]
        return results
