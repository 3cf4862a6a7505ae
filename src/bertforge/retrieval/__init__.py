"""Ask a folder: questions answered from a user's own documents (retrieve, then read), with sources.

    from bertforge.retrieval import DocumentIndex, ask_docs
    index = DocumentIndex.build("notes/")            # or DocumentIndex.load("notes/.bertforge-index")
    index.search("When was the lab founded?", k=5)   # -> [Passage(text, file, start, end, line, score, ...)]
    ask_docs(QuestionAnswerer(), index, "When was the lab founded?")  # -> [DocAnswer(...)], [] = no answer

Modules: `documents` (find and read files), `chunking` (passages with offsets and lines), `store`
(vector stores: the interface and the flat default), `lexical` (BM25), `fusion` (convex mix and
reciprocal rank fusion), `index` (DocumentIndex: build, refresh, load, search), `ask` (the reader over
passages), `evaluation` (the SQuAD-dev folder benchmark).
docs/retrieval.md has the measurements behind every default.
"""
from bertforge.retrieval.ask import NO_ANSWER, DocAnswer, ask_docs, ask_docs_many
from bertforge.retrieval.chunking import ChunkConfig, Passage, chunk_document, chunk_spans
from bertforge.retrieval.index import BuildReport, DocumentIndex, default_index_path, load_encoder
from bertforge.retrieval.store import FaissStore, FlatStore, VectorStore

__all__ = ["BuildReport", "ChunkConfig", "DocAnswer", "DocumentIndex", "FaissStore", "FlatStore", "NO_ANSWER",
           "Passage", "VectorStore", "ask_docs", "ask_docs_many", "chunk_document", "chunk_spans",
           "default_index_path", "load_encoder"]
