"""BERT's WordPiece tokenization, text -> pieces with offsets (the tokenizer's first half).

Two stages, as in Devlin et al. 2019 ("BERT", section 3 and Google's `tokenization.py`):

1. Basic tokenization turns text into *words*: drop NUL/U+FFFD/control characters, map whitespace
   to spaces, put spaces around CJK ideographs, NFC-normalise, lowercase and strip accents (NFD, drop
   category Mn) when uncased, split on whitespace and punctuation (Unicode P* plus the ASCII symbols
   `!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~`). Special tokens ([CLS], ...) written in the text stay whole.
2. WordPiece (Wu et al. 2016, "Google's Neural Machine Translation System", section 4.1) splits each
   word greedily, longest match first, into vocabulary pieces; non-initial pieces carry the `##`
   prefix. A word longer than `max_input_chars_per_word` (100) or with no match becomes [UNK].
   Example: "unaffable" -> ["un", "##aff", "##able"].

Decision D1 (docs/design.md): ids equal HF `BertTokenizer` (pure Python, do_lower_case=True) on
any input. That includes its quirks: text is lowercased one character at a time before anything else
(so a word-final 'Σ' becomes 'σ', not 'ς'), NFC is applied before lowercasing, and every C* character
(unassigned Cn, private-use Co, format Cf, lone surrogates) is dropped as "control". HF's Rust
`BertTokenizerFast` keeps unassigned code points, uses older Unicode tables for Cf/Mn, strips accents
before lowercasing, and starts a CJK range at U+2B920 instead of U+2B820; docs/tokenizer.md and the
divergence tests in tests/tokenizer/test_tokenizer.py show each case.
Offsets are character spans into the original string, end-exclusive.

Speed (benchmarks/bench_tokenizer.py): the text is split into whitespace-delimited *chunks*; every
step above is local to a chunk (no character composes or moves across whitespace, special tokens
contain none), so the pieces, ids and relative offsets of a chunk are computed once (`_ChunkEncoder`)
and kept in a bounded per-instance cache (`_Cache`). A line is then one regex split plus dictionary
lookups. Cache misses take an ASCII path (str.lower + one regex) or the general path, a
character-by-character port of HF's steps that also tracks which original character each normalised
character came from.

bertforge.tokenizer builds on this: [CLS]/[SEP] framing, truncation, padding, batches, save/load.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import Any, Union

__all__ = ["SPECIAL_TOKENS", "BasicTokenizer", "WordPiece", "check_text"]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_MAX_CACHED_CHUNK = 64  # longer chunks (URLs, 1 MB lines) are computed but not cached

# Characters that separate chunks: exactly those that are whitespace after HF's cleaning (\t \n \r and
# category Zs become ' ') plus U+2028/U+2029, which survive cleaning and str.split() splits on. Other
# str.isspace() characters (\x0b \x0c \x1c-\x1f \x85) are Cc: cleaning deletes them, "a\x1cb" -> "ab".
_WS = "\t\n\r\u2028\u2029" + "".join(chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Zs")
_WS_CLASS = "[" + re.escape(_WS) + "]"
_CHUNK_RE = re.compile(f"[^{re.escape(_WS)}]+")
_WS_SPLIT_RE = re.compile(f"({_WS_CLASS}+)")
_ASCII_WORD_RE = re.compile(r"[0-9A-Za-z]+|[^0-9A-Za-z]")  # for printable ASCII with no spaces
# Shared small tuples: fewer objects in the caches means less work for the garbage collector.
_ZEROS = tuple((0,) * n for n in range(32))  # word ids of a one-word chunk with n pieces
_WHOLE = tuple(((0, n),) for n in range(128))  # ranges of a word that is one vocabulary entry
_TOKENS, _IDS = itemgetter(0), itemgetter(1)  # fields of a cached chunk entry (_ChunkEncoder)


# ----------------------------------------------------------------------------- character classes
def _is_whitespace(ch: str) -> bool:
    """\\t \\n \\r count as whitespace (not control), as do Unicode space separators (Zs)."""
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    """Any C* category (Cc, Cf, Cn unassigned, Co private use, Cs surrogate), except \\t \\n \\r."""
    return ch not in "\t\n\r" and unicodedata.category(ch)[0] == "C"


def _is_punctuation(ch: str) -> bool:
    """Unicode P*, plus all non-alphanumeric printable ASCII ('$', '^', '`', '+' are not P*)."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch)[0] == "P"


def _is_cjk(cp: int) -> bool:
    """CJK Unified Ideographs blocks (not Hangul, Hiragana or Katakana), as in Google's code."""
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def _strip_accents(s: str) -> str:
    """NFD, then drop nonspacing marks (Mn): 'é' -> 'e' + U+0301 -> 'e'."""
    return "".join(c for c in unicodedata.normalize("NFD", s) if unicodedata.category(c) != "Mn")


def _nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def check_text(text: Any, name: str = "text") -> str:
    """Raise a clear TypeError unless `text` is a str (None, bytes and numbers are rejected)."""
    if not isinstance(text, str):
        hint = " (decode bytes first, e.g. b.decode('utf-8'))" if isinstance(text, (bytes, bytearray)) else ""
        raise TypeError(f"{name} must be str, got {type(text).__name__}{hint}")
    return text


# A word of the basic tokenizer, relative to its chunk: (text, starts, ends, base, special).
# starts/ends None means char k of `text` is chunk char base+k; otherwise normalised char k came from
# chunk chars [starts[k], ends[k]) (several when NFC composed them; the same one when it expanded).
_Word = tuple[str, Union[tuple[int, ...], None], Union[tuple[int, ...], None], int, bool]


class BasicTokenizer:
    """Text -> words: cleaning, CJK spacing, NFC, lowercase + strip accents, whitespace/punct split."""

    def __init__(self, lowercase: bool = True, never_split: Iterable[str] = SPECIAL_TOKENS):
        self.lowercase = lowercase
        self.never_split = frozenset(never_split)
        alts = sorted(self.never_split, key=len, reverse=True)
        self._special_re = re.compile("|".join(map(re.escape, alts))) if alts else None

    def tokenize(self, text: str) -> list[str]:
        """The words of `text`, what WordPiece sees. Without [UNK], " ".join(words) is what
        decode(encode(text), skip_special_tokens=False, clean_up_tokenization_spaces=False) returns."""
        check_text(text)
        return [w[0] for chunk in _CHUNK_RE.findall(text) for w in self.split_chunk(chunk)]

    def split_chunk(self, chunk: str) -> list[_Word]:
        """Words of one whitespace-free chunk, with their alignment to it."""
        if chunk.isascii() and chunk.isprintable() and not ("[" in chunk and self._has_special(chunk)):
            # Fast path: ASCII has no accents, NFC/lower keep lengths, every non-alnum char is punct.
            lowered = chunk.lower() if self.lowercase else chunk
            return [(m.group(), None, None, m.start(), False) for m in _ASCII_WORD_RE.finditer(lowered)]
        words: list[_Word] = []
        pos = 0
        if self._special_re is not None:
            # Like HF's trie split: special tokens are found in the raw text (case-sensitive) first.
            for m in self._special_re.finditer(chunk):
                words += self._split_segment(chunk[pos:m.start()], pos)
                words.append((m.group(), None, None, m.start(), True))
                pos = m.end()
        words += self._split_segment(chunk[pos:], pos)
        return words

    def _has_special(self, chunk: str) -> bool:
        return self._special_re is not None and self._special_re.search(chunk) is not None

    def _split_segment(self, seg: str, base: int) -> list[_Word]:
        """General path: HF's steps one character at a time, remembering each char's origin."""
        chars: list[str] = []
        origin: list[int] = []  # index into seg of the char each entry of `chars` came from
        for k, c in enumerate(seg):
            for ch in (c.lower() if self.lowercase else c):  # HF lowercases char by char first
                cp = ord(ch)
                if cp == 0 or cp == 0xFFFD or _is_control(ch):
                    continue
                if _is_whitespace(ch):
                    ch = " "
                if _is_cjk(cp):
                    chars += (" ", ch, " ")
                    origin += (k, k, k)
                else:
                    chars.append(ch)
                    origin.append(k)
        words: list[_Word] = []
        i, n = 0, len(chars)
        while i < n:  # whitespace tokens, as str.split() would find them
            if chars[i].isspace():
                i += 1
                continue
            j = i
            while j < n and not chars[j].isspace():
                j += 1
            words += self._split_token("".join(chars[i:j]), origin[i:j], base)
            i = j
        return words

    def _normalize(self, s: str) -> str:
        s = _nfc(s)
        return _strip_accents(s.lower()) if self.lowercase else s

    def _split_token(self, tok: str, origin: list[int], base: int) -> list[_Word]:
        exact = _nfc(tok)
        if exact in self.never_split:  # e.g. "[CL\x00S]" cleans to "[CLS]" in cased mode
            n = len(exact)
            return [(exact, (base + origin[0],) * n, (base + origin[-1] + 1,) * n, 0, True)]
        if self.lowercase:
            exact = _strip_accents(exact.lower())
        # Align `exact` to the chunk. First try char by char (exact unless NFC composes/reorders
        # across chars); then by NFC groups (a starter + the marks that compose or reorder with
        # it); then give every char the whole token's span. Ids never depend on this choice.
        norm = [(self._normalize(c), o, o + 1) for c, o in zip(tok, origin)]
        if "".join(x[0] for x in norm) != exact:
            norm = [(self._normalize(tok[a:b]), origin[a], origin[b - 1] + 1) for a, b in _nfc_groups(tok)]
            if "".join(x[0] for x in norm) != exact:
                norm = [(exact, origin[0], origin[-1] + 1)]
        out_chars, starts, ends = [], [], []
        for s, a, b in norm:
            for ch in s:
                out_chars.append(ch)
                starts.append(base + a)
                ends.append(base + b)
        # Punctuation split: each punctuation char is a word, runs of other chars are words.
        words: list[_Word] = []
        i, n = 0, len(out_chars)
        while i < n:
            j = i + 1
            if not _is_punctuation(out_chars[i]):
                while j < n and not _is_punctuation(out_chars[j]):
                    j += 1
            words.append(("".join(out_chars[i:j]), tuple(starts[i:j]), tuple(ends[i:j]), 0, False))
            i = j
        return words


def _nfc_groups(tok: str) -> list[tuple[int, int]]:
    """Split `tok` into [a, b) ranges whose NFC forms concatenate to NFC(tok): a group grows while
    the next char is a combining mark (it may be reordered) or composes with the group (Hangul L+V)."""
    groups: list[list[int]] = []
    for k, c in enumerate(tok):
        if groups and (unicodedata.combining(c)
                       or _nfc(tok[groups[-1][0]:k + 1]) != _nfc(tok[groups[-1][0]:k]) + _nfc(c)):
            groups[-1][1] = k + 1
        else:
            groups.append([k, k + 1])
    return [(a, b) for a, b in groups]


class WordPiece:
    """Greedy longest-match-first segmentation of one word into vocabulary pieces (Wu et al. 2016)."""

    def __init__(self, vocab: dict[str, int], unk_token: str = "[UNK]",
                 max_input_chars_per_word: int = 100, prefix: str = "##"):
        self.vocab = vocab
        self.unk_token = unk_token
        self.unk_id = vocab[unk_token]
        self.max_input_chars_per_word = max_input_chars_per_word
        self.prefix = prefix
        # No piece is longer than this, so longer candidate substrings need no lookup.
        self._longest = max((len(t) - len(prefix) if t.startswith(prefix) else len(t) for t in vocab), default=0)

    def split(self, word: str) -> tuple[tuple[str, ...], tuple[int, ...], tuple[tuple[int, int], ...]]:
        """-> (pieces, ids, char ranges [a, b) of `word`); [UNK] covers the whole word."""
        n = len(word)
        if n > self.max_input_chars_per_word:
            return (self.unk_token,), (self.unk_id,), ((0, n),)
        vocab = self.vocab
        i = vocab.get(word)
        if i is not None:  # most words are whole vocabulary entries
            return (word,), (i,), _WHOLE[n] if n < 128 else ((0, n),)
        pieces, ids, ranges = [], [], []
        start = 0
        while start < n:
            end = min(n, start + self._longest)
            while end > start:
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                i = vocab.get(piece)
                if i is not None:
                    break
                end -= 1
            else:  # no piece matches at `start`: the whole word is unknown
                return (self.unk_token,), (self.unk_id,), ((0, n),)
            pieces.append(piece)
            ids.append(i)
            ranges.append((start, end))
            start = end
        return tuple(pieces), tuple(ids), tuple(ranges)


class _Cache(dict):
    """dict that fills itself with fn(key) on a miss; cleared when full (bounded memory)."""
    __slots__ = ("_fn", "_cap", "_max_key")

    def __init__(self, fn: Callable[[str], Any], cap: int, max_key: int):
        super().__init__()
        self._fn, self._cap, self._max_key = fn, cap, max_key

    def __missing__(self, key: str) -> Any:
        value = self._fn(key)
        if len(key) <= self._max_key and self._cap > 0:
            if len(self) >= self._cap:
                self.clear()
            self[key] = value
        return value


class _ChunkEncoder:
    """chunk -> cache entry. Holds no reference to its Tokenizer (so dropping one frees its caches by
    reference counting, without waiting for the cyclic garbage collector)."""
    __slots__ = ("basic", "vocab", "pieces", "lowercase")

    def __init__(self, basic: BasicTokenizer, vocab: dict[str, int], pieces: _Cache, lowercase: bool):
        self.basic, self.vocab, self.pieces, self.lowercase = basic, vocab, pieces, lowercase

    def __call__(self, chunk: str) -> tuple:
        """(tokens, ids, (start, end) in chunk, word index in chunk, number of words) of one chunk."""
        pieces = self.pieces
        if chunk.isascii() and chunk.isprintable() and "[" not in chunk:
            # Printable ASCII without specials: the words tile the (lowercased) chunk exactly, so a
            # word starts where the previous one ended. "word," -> "word" [0, 4), "," [4, 5).
            lowered = chunk.lower() if self.lowercase else chunk
            if lowered.isalnum():  # one plain word, the most common miss
                p_toks, p_ids, ranges = pieces[lowered]
                n = len(p_ids)
                return p_toks, p_ids, ranges, _ZEROS[n] if n < 32 else (0,) * n, 1
            words = _ASCII_WORD_RE.findall(lowered)
            if len(words) == 1:  # one punctuation char
                p_toks, p_ids, ranges = pieces[lowered]
                return p_toks, p_ids, ranges, (0,), 1
            toks: list[str] = []
            ids: list[int] = []
            spans: list[tuple[int, int]] = []
            wids: list[int] = []
            base = 0
            for w, word in enumerate(words):
                p_toks, p_ids, ranges = pieces[word]
                toks += p_toks
                ids += p_ids
                wids += [w] * len(p_ids)
                spans += [(base + a, base + b) for a, b in ranges] if base else ranges
                base += len(word)
            return tuple(toks), tuple(ids), tuple(spans), tuple(wids), len(words)
        toks, ids, spans, wids = [], [], [], []
        words_ = self.basic.split_chunk(chunk)
        for w, (word, starts, ends, base, special) in enumerate(words_):
            if special:
                p_toks, p_ids, ranges = (word,), (self.vocab[word],), ((0, len(word)),)
            else:
                p_toks, p_ids, ranges = pieces[word]
            toks += p_toks
            ids += p_ids
            wids += [w] * len(p_ids)
            if starts is None:
                spans += [(base + a, base + b) for a, b in ranges]
            else:
                spans += [(starts[a], ends[b - 1]) for a, b in ranges]
        return tuple(toks), tuple(ids), tuple(spans), tuple(wids), len(words_)
