"""DocumentIndex with the real all-MiniLM-L6-v2: search, incremental re-indexing (counted), edits,
moves and deletes, interrupted builds, stale and foreign indexes, bad inputs, stores and fusion."""
from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pytest

from bertforge.errors import BertforgeError
from bertforge.retrieval import ChunkConfig, DocumentIndex, FlatStore, chunk_document, load_encoder
from bertforge.retrieval.fusion import convex_fusion, reciprocal_rank_fusion
from bertforge.retrieval.index import PROBE
from bertforge.retrieval.lexical import BM25Index
from bertforge.retrieval.store import top_k

from .conftest import write_docs
from .helpers import pdf_bytes

pytestmark = pytest.mark.usefixtures("one_thread")

def build(folder, out, encoder, **kw):
    return DocumentIndex.build(folder, out, encoder=encoder, warn=lambda line: None, **kw)


def search_files(index, question, k=4, mode="hybrid"):
    return [p.file for p in index.search(question, k, mode)]


def test_build_search_load(tmp_path, counting):
    docs = write_docs(tmp_path / "docs")
    index = build(docs, tmp_path / "idx", counting)
    assert len(index) == len(counting.texts) == index.report.embedded == 4
    assert index.report.added_files == 4
    for question, expected in [("Who founded the Forge Lab?", "lab.md"), ("What is the capital of Switzerland?",
                                "travel/bern.txt"), ("Where does the dog Rex live?", "pets.html"),
                               ("How long do I bake sourdough?", "kitchen/bread.md")]:
        for mode in ("hybrid", "vector", "bm25"):
            assert search_files(index, question, mode=mode)[0] == expected, (question, mode)
    for p in index.search("capital", 4):  # every passage points into its file's text
        source = (docs / p.file).read_text(encoding="utf-8")
        if p.file.endswith(".html"):
            from bertforge.retrieval.documents import html_to_text

            source = html_to_text(source)
        assert source[p.start:p.end] == p.text
        assert p.line == source.count("\n", 0, p.start) + 1
    assert "zebra" not in index.passages[[p.file for p in index.passages].index("pets.html")].text  # script dropped
    loaded = DocumentIndex.load(tmp_path / "idx", encoder=counting)
    assert [p.text for p in loaded.passages] == [p.text for p in index.passages]
    assert np.allclose(loaded.store.vectors(), index.store.vectors())
    q = "Which city does the Aare flow through?"
    assert [(p.file, round(p.score, 6)) for p in loaded.search(q)] == [(p.file, round(p.score, 6))
                                                                       for p in index.search(q)]
    assert loaded.stale_files() == []


def test_incremental_counts_edits_moves_deletes(tmp_path, counting):
    docs = write_docs(tmp_path / "docs")
    out = tmp_path / "idx"
    build(docs, out, counting, chunking=ChunkConfig(12, 4))
    first = len(counting.texts)
    assert first > 4  # the small chunks cut lab.md into several passages

    counting.texts.clear()
    again = build(docs, out, counting, chunking=ChunkConfig(12, 4))
    assert counting.texts == [] and again.report.embedded == 0 and again.report.unchanged_files == 4

    # Touch a file (new mtime, same bytes): read and hashed, nothing embedded.
    os.utime(docs / "lab.md", ns=(time.time_ns(), time.time_ns() + 10**9))
    assert build(docs, out, counting, chunking=ChunkConfig(12, 4)).report.embedded == 0 and counting.texts == []

    # Edit: append a sentence. Only passages whose text is new are embedded: compare with an
    # independent cut of the old and new text.
    old_text = (docs / "lab.md").read_text()
    new_text = old_text + "In 2020 the lab moved to Geneva.\n"
    (docs / "lab.md").write_text(new_text)
    old_cut = {p.text for p in chunk_document(old_text, "lab.md", ChunkConfig(12, 4))}
    expected = [p.text for p in chunk_document(new_text, "lab.md", ChunkConfig(12, 4)) if p.text not in old_cut]
    edited = build(docs, out, counting, chunking=ChunkConfig(12, 4))
    assert sorted(counting.texts) == sorted(expected) and edited.report.changed_files == 1
    assert any("Geneva" in t for t in expected)
    assert search_files(edited, "Where did the lab move in 2020?")[0] == "lab.md"

    # Move (rename into another folder): no embedding, the passages carry the new path.
    counting.texts.clear()  # (the search above embedded its question)
    (docs / "archive").mkdir()
    shutil.move(docs / "kitchen" / "bread.md", docs / "archive" / "bread.md")
    moved = build(docs, out, counting, chunking=ChunkConfig(12, 4))
    assert counting.texts == [] and moved.report.moved_files == 1 and moved.report.removed_files == 0
    files = {p.file for p in moved.passages}
    assert "archive/bread.md" in files and "kitchen/bread.md" not in files
    assert search_files(moved, "How long do I bake sourdough?")[0] == "archive/bread.md"

    # Delete: its passages are gone.
    counting.texts.clear()  # (the search above embedded its question)
    (docs / "travel" / "bern.txt").unlink()
    deleted = build(docs, out, counting, chunking=ChunkConfig(12, 4))
    assert counting.texts == [] and deleted.report.removed_files == 1
    assert "travel/bern.txt" not in {p.file for p in deleted.passages}
    counting.texts.clear()
    assert set(DocumentIndex.load(out, encoder=counting).manifest["files"]) == {"lab.md", "pets.html",
                                                                                  "archive/bread.md"}

    # Other chunking rules: everything is cut and embedded again (never mixed).
    recut = build(docs, out, counting, chunking=ChunkConfig(50, 10))
    assert recut.report.rebuilt and len(counting.texts) == len(recut) == recut.report.embedded


def _interrupt_after(counting, calls: int):
    real = counting.encode
    seen = []

    def encode(texts):
        if list(texts) != [PROBE]:
            seen.append(1)
            if len(seen) > calls:
                raise KeyboardInterrupt
        return real(texts)
    return encode


def test_interrupted_build_keeps_previous_index(tmp_path, counting, monkeypatch):
    docs = write_docs(tmp_path / "docs")
    out = tmp_path / "idx"
    before = build(docs, out, counting)
    before_results = [(p.file, p.text) for p in before.search("capital of Switzerland")]
    for i in range(40):
        (docs / f"new{i:02d}.txt").write_text(f"Note {i}: the meeting number {i} is on day {i}. " * 3)

    # Ctrl-C while embedding ...
    monkeypatch.setattr(counting, "encode", _interrupt_after(counting, 0))
    with pytest.raises(KeyboardInterrupt):
        build(docs, out, counting)
    monkeypatch.undo()
    # ... and while writing the new generation.
    monkeypatch.setattr(BM25Index, "save", lambda self, folder: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        build(docs, out, counting)
    monkeypatch.undo()
    assert len(list(out.glob("data-*"))) == 2  # the old generation and the orphan of the second try

    still = DocumentIndex.load(out, encoder=counting)
    assert len(still) == len(before) and [(p.file, p.text) for p in still.search("capital of Switzerland")] == \
        before_results
    assert len(still.stale_files()) == 40

    rerun = build(docs, out, counting)
    assert len(rerun.manifest["files"]) == 44 and [d.name for d in out.glob("data-*")] == [rerun.manifest["data"]]


def test_ctrl_c_during_cli_indexing(tmp_path, encoder):
    """The real thing: SIGINT to `bertforge index` while it embeds -> 'interrupted', status 130, no
    traceback, and the previous index still loads with its passages."""
    import signal
    import subprocess
    import sys

    docs = write_docs(tmp_path / "docs")
    out = tmp_path / "idx"
    before = build(docs, out, encoder)
    for i in range(400):
        (docs / f"note{i:03d}.txt").write_text(f"Note {i}. The meeting number {i} is on day {i % 28 + 1}. " * 4)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "bertforge.cli.main", "index", str(docs), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    seen = b""
    while b"embedding" not in seen:  # tqdm's bar appears when embedding starts
        chunk = proc.stderr.read1(4096)
        assert chunk, f"bertforge index ended before embedding: {seen.decode(errors='replace')}"
        seen += chunk
    proc.send_signal(signal.SIGINT)
    err = (seen + proc.communicate(timeout=120)[1]).decode(errors="replace")
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    still = DocumentIndex.load(out, encoder=encoder)
    assert [p.text for p in still.passages] == [p.text for p in before.passages]
    assert len(still.stale_files()) == 400


def test_stale_and_foreign_indexes_are_refused(tmp_path, encoder, minilm_dir):
    docs = write_docs(tmp_path / "docs")
    out = tmp_path / "idx"
    build(docs, out, encoder)

    with pytest.raises(BertforgeError, match="is not a bertforge index.*bertforge index FOLDER --out"):
        DocumentIndex.load(docs / "travel", encoder=encoder)
    manifest = json.loads((out / "index.json").read_text())
    (out / "index.json").write_text(json.dumps({**manifest, "version": 0}))
    with pytest.raises(BertforgeError, match="format 0.*rebuild it with `bertforge index"):
        DocumentIndex.load(out, encoder=encoder)
    (out / "index.json").write_text(json.dumps(manifest))

    # Another embedding model (same architecture and vocab, other weights): refused at load ...
    import torch

    from bertforge.models.bert.config import BertConfig
    from bertforge.models.bert.modeling import BertModel

    torch.manual_seed(0)
    other_dir = tmp_path / "other-model"
    BertModel(BertConfig.preset("tiny", max_position_embeddings=512)).save_pretrained(other_dir)
    shutil.copy(minilm_dir / "vocab.txt", other_dir / "vocab.txt")
    other = load_encoder(other_dir, precision="fp32")
    with pytest.raises(BertforgeError, match="does not match this embedding model.*dimensions.*rebuild it"):
        DocumentIndex.load(out, encoder=other)
    # ... and re-embedded from scratch at build. An encoder passed without its model folder is
    # recorded as the default model, so loading without it is refused, not silently mixed.
    rebuilt = build(docs, out, other)
    assert "another embedding model" in rebuilt.report.rebuilt and rebuilt.report.embedded == len(rebuilt)
    with pytest.raises(BertforgeError, match="does not match this embedding model"):
        DocumentIndex.load(out)
    build(docs, out, other, model=other_dir)
    assert DocumentIndex.load(out).manifest["encoder"]["model"] == str(other_dir.resolve())

    # A folder of the user's is never used as --out
    with pytest.raises(BertforgeError, match="exists and is not a bertforge index"):
        build(docs, docs / "travel", encoder)


def test_bad_inputs_are_skipped_with_one_line_each(tmp_path, encoder):
    pytest.importorskip("pypdf")  # the [pdf] extra (in dev)
    docs = write_docs(tmp_path / "docs", {"good.md": "The observatory opened in 1911 on the hill."})
    (docs / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (docs / "latin1.txt").write_bytes("Caf\xe9 au lait".encode("latin-1"))
    (docs / "empty.md").write_text("")
    with open(docs / "huge.txt", "wb") as f:  # 50 MB of text, over the 20 MB default
        f.write(b"lorem ipsum dolor sit amet " * (50_000_000 // 27 + 1))
    (docs / "loop").symlink_to(docs)
    (docs / "scan.pdf").write_bytes(pdf_bytes([""]))
    (docs / "paper.pdf").write_bytes(pdf_bytes(["The telescope has a mirror of two meters."]))
    lines = []
    index = DocumentIndex.build(docs, tmp_path / "idx", encoder=encoder, warn=lines.append)
    reasons = dict(index.report.skipped)
    assert set(reasons) == {"binary.txt", "latin1.txt", "empty.md", "huge.txt", "loop", "scan.pdf"}
    assert len(lines) == 6 and all("\n" not in line for line in lines)
    assert "binary" in reasons["binary.txt"] and "not UTF-8" in reasons["latin1.txt"]
    assert "50.0 MB is over the 20 MB limit" in reasons["huge.txt"] and "symlink loop" in reasons["loop"]
    assert "text layer" in reasons["scan.pdf"]
    assert sorted(index.manifest["files"]) == ["good.md", "paper.pdf"]
    hit = index.search("How big is the telescope mirror?", 1)[0]
    assert (hit.file, hit.page, hit.line) == ("paper.pdf", 1, 1)
    assert "2 files" in index.report.summary() and "6 skipped" in index.report.summary()


def test_empty_folder_and_bad_arguments(tmp_path, encoder):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BertforgeError, match="no documents to index in .*no readable .txt, .md, .html or .pdf"):
        build(tmp_path / "empty", tmp_path / "idx", encoder)
    with pytest.raises(BertforgeError, match="is not a folder"):
        build(tmp_path / "missing", tmp_path / "idx", encoder)
    index = build(write_docs(tmp_path / "docs"), tmp_path / "idx", encoder)
    with pytest.raises(BertforgeError, match="question is empty"):
        index.search("  ")
    with pytest.raises(BertforgeError, match="k must be >= 1"):
        index.search("capital", 0)
    with pytest.raises(BertforgeError, match="mode must be one of"):
        index.search("capital", 3, mode="magic")
    assert len(index.search("capital", 100)) == len(index)  # k beyond the index: all passages


def test_second_writer_is_refused(tmp_path, encoder):
    fcntl = pytest.importorskip("fcntl")
    docs = write_docs(tmp_path / "docs")
    (tmp_path / "idx").mkdir()
    with open(tmp_path / "idx" / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(BertforgeError, match="another process is writing the index"):
            build(docs, tmp_path / "idx", encoder)


def test_top_k_and_flat_store_match_brute_force():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:7] + 0.1 * rng.normal(size=(7, 16)).astype(np.float32)
    scores, ids = FlatStore(vectors).search(queries, 10)
    reference = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :10]
    assert (ids == reference).all() and np.allclose(scores, np.take_along_axis(queries @ vectors.T, reference, 1))
    assert top_k(np.array([[1.0, 3.0, 3.0, 2.0]]), 3)[1].tolist() == [[1, 2, 3]]  # ties: lower id first
    assert top_k(np.array([[1.0, 3.0]]), 5)[1].tolist() == [[1, 0]]


def test_faiss_store_is_a_one_class_swap(tmp_path, encoder):
    pytest.importorskip("faiss")
    from bertforge.retrieval import FaissStore

    docs = write_docs(tmp_path / "docs")
    flat = build(docs, tmp_path / "flat", encoder)
    faiss_index = build(docs, tmp_path / "faiss", encoder, store=FaissStore("Flat"))
    reloaded = DocumentIndex.load(tmp_path / "faiss", encoder=encoder)
    assert type(reloaded.store).__name__ == "FaissStore"
    for q in ["Who founded the Forge Lab?", "Where does Rex live?"]:
        expected = [(p.file, round(p.score, 5)) for p in flat.search(q, 4, mode="vector")]
        assert [(p.file, round(p.score, 5)) for p in faiss_index.search(q, 4, mode="vector")] == expected
        assert [(p.file, round(p.score, 5)) for p in reloaded.search(q, 4, mode="vector")] == expected


def test_fusion_hand_computed():
    # docstring example: BM25 [a=0, b=1], vectors [b=1, c=2]
    fused = reciprocal_rank_fusion([[0, 1], [1, 2]], k=60)
    assert [d for d, _ in fused] == [1, 0, 2]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61) and fused[2][1] == pytest.approx(1 / 62)
    # convex: list scores min-max normalised: vectors [0.9, 0.5] -> [1, 0]; bm25 [10, 6, 2] -> [1, .5, 0]
    mixed = convex_fusion([(np.array([0.9, 0.5]), np.array([5, 6])), (np.array([10.0, 6.0, 2.0]),
                                                                    np.array([6, 7, 5]))], [0.5, 0.5])
    assert mixed == [(5, 0.5), (6, 0.5), (7, 0.25)]


def test_default_index_place(tmp_path, monkeypatch):
    from bertforge.retrieval import default_index_path

    assert default_index_path(tmp_path) == tmp_path.resolve() / ".bertforge-index"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # a read-only folder (root can write anywhere)
    place = default_index_path(tmp_path / "docs")
    assert place.parent == tmp_path / "cache" / "bertforge" / "indexes" and place.name.startswith("docs-")
