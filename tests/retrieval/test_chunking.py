"""Passages: offsets, lines, pages, word limits and overlap, checked on hand cases and random texts."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bertforge.retrieval.chunking import ChunkConfig, TextLocator, chunk_document, chunk_spans

WORD = re.compile(r"\S+")


def test_docstring_example():
    text = "One two three. Four five. Six seven eight nine."
    assert [text[s:e] for s, e in chunk_spans(text, 6, 3)] == ["One two three. Four five.",
                                                                "Four five. Six seven eight nine."]


def test_sentence_longer_than_max_is_cut_into_word_pieces_without_overlap():
    text = " ".join(f"w{i}" for i in range(1, 11))  # one 10-word sentence, no punctuation
    assert [text[s:e] for s, e in chunk_spans(text, 4, 1)] == ["w1 w2 w3 w4", "w5 w6 w7 w8", "w9 w10"]


def test_paragraph_and_page_breaks_are_boundaries():
    text = "alpha beta\n\ngamma delta\fepsilon"
    # max 2 words: each paragraph / page is its own atom, no sentence punctuation needed
    assert [text[s:e] for s, e in chunk_spans(text, 2, 0)] == ["alpha beta", "gamma delta", "epsilon"]


def test_white_space_only_text_has_no_passages():
    assert chunk_spans(" \n\n \t ", 10, 2) == []


@pytest.mark.parametrize("max_words,overlap", [(0, 0), (5, 5), (5, -1)])
def test_bad_config(max_words, overlap):
    with pytest.raises(ValueError):
        ChunkConfig(max_words, overlap)


def test_lines_and_pages():
    text = "Page one line one.\nPage one line two.\fPage two line one.\nPage two line two."
    passages = chunk_document(text, "doc.pdf", ChunkConfig(4, 0), paged=True)
    assert [(p.text, p.line, p.page) for p in passages] == [
        ("Page one line one.", 1, 1), ("Page one line two.", 2, 1),
        ("Page two line one.", 1, 2), ("Page two line two.", 2, 2)]
    assert [p.location for p in passages][2] == "doc.pdf:p2:1"
    unpaged = chunk_document(text, "doc.txt", ChunkConfig(4, 0))
    assert [(p.line, p.page) for p in unpaged] == [(1, None), (2, None), (2, None), (3, None)]  # \f is no newline


pieces = st.lists(st.one_of(st.sampled_from(["alpha", "Beta", "gamma.", "delta!", "eps?\"", "(zeta)", "x"]),
                            st.text(alphabet="abcé", min_size=1, max_size=6)), min_size=0, max_size=80)
separators = st.lists(st.sampled_from([" ", " ", " ", "\n", "\n\n", "  ", "\f", ". ", "\t", " \n \n "]),
                      min_size=80, max_size=80)


@settings(max_examples=200, deadline=None)
@given(pieces, separators, st.integers(1, 12), st.data())
def test_chunk_properties(words, seps, max_words, data):
    overlap = data.draw(st.integers(0, max_words - 1))
    text = "".join(w + s for w, s in zip(words, seps))
    spans = chunk_spans(text, max_words, overlap)
    word_spans = [m.span() for m in WORD.finditer(text)]
    # every word lies inside some passage, no passage cuts a word, each has 1..max_words words
    for ws, we in word_spans:
        assert any(s <= ws and we <= e for s, e in spans)
    for s, e in spans:
        inside = [w for w in word_spans if s <= w[0] and w[1] <= e]
        assert 1 <= len(inside) <= max_words
        assert inside[0][0] == s and inside[-1][1] == e  # starts and ends on a word
    # passages move forward, and neighbours share at most `overlap` words
    for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
        assert s1 < s2 and e1 < e2
        shared = [w for w in word_spans if s2 <= w[0] and w[1] <= e1]
        assert len(shared) <= overlap
    # lines and pages against a direct count
    for p in chunk_document(text, "f", ChunkConfig(max_words, overlap), paged=True):
        assert text[p.start:p.end] == p.text
        page_start = text.rfind("\f", 0, p.start) + 1
        assert p.page == text.count("\f", 0, p.start) + 1
        assert p.line == text.count("\n", page_start, p.start) + 1


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="ab\n\f", max_size=40), st.data())
def test_locator_matches_counting(text, data):
    offset = data.draw(st.integers(0, len(text)))
    assert TextLocator(text).locate(offset) == (text.count("\n", 0, offset) + 1, None)
    page_start = text.rfind("\f", 0, offset) + 1
    assert TextLocator(text, paged=True).locate(offset) == (text.count("\n", page_start, offset) + 1,
                                                           text.count("\f", 0, offset) + 1)
