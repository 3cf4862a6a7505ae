"""Passages: a document cut into overlapping, sentence-aligned pieces that remember where they came from.

A retriever-reader system (DrQA, Chen et al. 2017; Haystack's PreProcessor) reads passages, not whole
files: short enough for the sentence encoder (all-MiniLM-L6-v2 reads at most 256 word pieces) and for a
reader window, long enough to hold a question's answer with its context. Every passage keeps its file,
its character span in the file's text (`text[start:end] == passage.text`, end-exclusive) and the line
(and, for PDFs, the page) where it starts, so an answer can be shown with its source.

How a text is cut (`chunk_spans`):

1. **Sentences** are the atoms: a boundary is `.`, `!` or `?` (closing quotes/brackets included)
   followed by white space, a blank line (paragraph), or a form feed (a PDF page). An atom longer than
   `max_words` (a table, a list without punctuation) is cut into pieces of `max_words` words.
2. **Packing**: consecutive atoms are packed greedily while the passage has at most `max_words` words.
3. **Overlap**: the next passage starts with the last whole sentences of the previous one, up to
   `overlap_words` words (never the whole passage, so each passage moves forward). A fact that
   straddles a cut is then whole in one of the two passages.

Worked example (max_words=6, overlap_words=3):

    text  = "One two three. Four five. Six seven eight nine."
    atoms = "One two three." (3 words) | "Four five." (2) | "Six seven eight nine." (4)
    passage 1 = "One two three. Four five."        (5 words; adding 4 more would make 9 > 6)
    overlap   = "Four five." (2 words <= 3)        -> passage 2 starts there
    passage 2 = "Four five. Six seven eight nine." (6 words)
"""
from __future__ import annotations

import bisect
import re
from dataclasses import asdict, dataclass, field
from typing import Optional

__all__ = ["CHUNKING_VERSION", "ChunkConfig", "Passage", "TextLocator", "chunk_spans", "chunk_document"]

# Bump when the cutting rules change: an index cut by other rules is re-cut (its identity differs).
CHUNKING_VERSION = 1

_WORD = re.compile(r"\S+")
# A sentence ends at . ! ? (plus closing quotes/brackets) before white space; a paragraph at a blank
# line; a page at a form feed. The one group that matched is the gap between two atoms.
_BOUNDARY = re.compile(r"[.!?][\"'\u201d\u2019)\]]*(\s+)|(\n[ \t\r\v]*\n\s*)|(\s*\f\s*)")


@dataclass(frozen=True)
class ChunkConfig:
    """How documents are cut; stored in the index, so a different cut is never mixed into it.

    max_words 120 / overlap 30 were chosen by measurement (docs/retrieval.md): recall@5 on the SQuAD-dev
    folder for 80 / 120 / 200-word passages."""

    max_words: int = 120
    overlap_words: int = 30

    def __post_init__(self) -> None:
        if self.max_words < 1:
            raise ValueError(f"max_words must be >= 1, got {self.max_words}")
        if not 0 <= self.overlap_words < self.max_words:
            raise ValueError(f"overlap_words must be in [0, max_words), got {self.overlap_words} "
                             f"with max_words {self.max_words}")

    def identity(self) -> dict:
        return {"version": CHUNKING_VERSION, "max_words": self.max_words, "overlap_words": self.overlap_words}


@dataclass
class Passage:
    """A piece of a document: `text == document_text[start:end]`; `line` (1-based) where it starts.

    `page` is the 1-based PDF page of `start` (None for other files; `line` then counts within the
    page). `score` is the retrieval score when the passage comes from `DocumentIndex.search`."""

    text: str
    file: str  # path relative to the indexed folder, '/'-separated
    start: int
    end: int
    line: int
    page: Optional[int] = None
    score: float = 0.0
    id: int = field(default=-1, compare=False)  # row in the index (-1: not indexed)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def location(self) -> str:
        """'notes/a.md:12', or 'paper.pdf:p3:12' for a PDF page."""
        return f"{self.file}:p{self.page}:{self.line}" if self.page is not None else f"{self.file}:{self.line}"


class TextLocator:
    """Line (and page) of a character offset in O(log n): bisect over the newline / form-feed positions.

    A form feed starts a new page (pypdf's pages are joined with '\\f'); lines then count from the
    page's start. Example: in "a\\nb\\fc\\nd", offset 6 ('d') is page 2, line 2."""

    def __init__(self, text: str, paged: bool = False):
        self.newlines = [m.start() for m in re.finditer("\n", text)]
        self.pages = [m.start() for m in re.finditer("\f", text)] if paged else None

    def locate(self, offset: int) -> tuple[int, Optional[int]]:
        """(line, page) of `offset`; page is None for a text that is not paged."""
        newlines_before = bisect.bisect_left(self.newlines, offset)
        if self.pages is None:
            return newlines_before + 1, None
        page_index = bisect.bisect_left(self.pages, offset)  # form feeds before the offset
        page_start = self.pages[page_index - 1] + 1 if page_index else 0
        return newlines_before - bisect.bisect_left(self.newlines, page_start) + 1, page_index + 1


def _atoms(text: str, max_words: int) -> list[tuple[int, int, int]]:
    """(start, end, n_words) of each sentence, stripped of white space; long ones cut to max_words."""
    atoms = []
    pos = 0
    for m in list(_BOUNDARY.finditer(text)) + [None]:
        gap = m.span(m.lastindex) if m else (len(text), len(text))  # the gap, without the punctuation
        stop = gap[0]
        words = [(m.start(), m.end()) for m in _WORD.finditer(text, pos, stop)]  # re's pos/endpos: absolute offsets
        for i in range(0, len(words), max_words):
            piece = words[i : i + max_words]
            atoms.append((piece[0][0], piece[-1][1], len(piece)))
        pos = gap[1]
    return atoms


def chunk_spans(text: str, max_words: int = 120, overlap_words: int = 30) -> list[tuple[int, int]]:
    """(start, end) character spans of the passages of `text` (see the module docstring), in order.

    Every word of `text` is in at least one passage; a passage has at most `max_words` words and begins
    and ends on a word; consecutive passages share at most `overlap_words` words (whole sentences)."""
    ChunkConfig(max_words, overlap_words)  # validates
    atoms = _atoms(text, max_words)
    spans = []
    i = 0
    while i < len(atoms):
        j, words = i, 0
        while j < len(atoms) and words + atoms[j][2] <= max_words:
            words += atoms[j][2]
            j += 1
        spans.append((atoms[i][0], atoms[j - 1][1]))
        if j == len(atoms):
            break
        # Step back over whole trailing sentences while they fit in the overlap, keeping >= 1 new atom
        # and room for the next unseen atom (else the next passage would not reach past this one).
        s, shared = j, 0
        while (s - 1 > i and shared + atoms[s - 1][2] <= overlap_words
               and shared + atoms[s - 1][2] + atoms[j][2] <= max_words):
            shared += atoms[s - 1][2]
            s -= 1
        i = s
    return spans


def chunk_document(text: str, file: str, config: ChunkConfig = ChunkConfig(), paged: bool = False
                   ) -> list[Passage]:
    """The passages of one document, with file, offsets, line (and page when `paged`)."""
    locator = TextLocator(text, paged)
    passages = []
    for start, end in chunk_spans(text, config.max_words, config.overlap_words):
        line, page = locator.locate(start)
        passages.append(Passage(text=text[start:end], file=file, start=start, end=end, line=line, page=page))
    return passages
