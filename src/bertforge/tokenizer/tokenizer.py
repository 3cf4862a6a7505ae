"""BERT's tokenizer, pieces -> model inputs: [CLS] text [SEP] (pair [SEP]) ids with offsets.

bertforge.tokenizer.wordpiece turns text into WordPiece pieces with character offsets (basic
tokenization + WordPiece, Devlin et al. 2019 section 3; Wu et al. 2016 section 4.1; the D1 parity
rules with HF `BertTokenizer` and the chunk cache that makes it fast are described there). This
module frames them for the model: `Tokenizer` adds [CLS]/[SEP] and token type ids (BERT section 3,
"Input/Output Representations"), truncates pairs with HF's strategies, pads, batches
(`encode_batch` -> `BatchEncoding`), decodes, and reads/writes the HF vocab.txt +
tokenizer_config.json layout (decision D5). `train_vocab` lives in bertforge.tokenizer.training.

Every public name of the first half (SPECIAL_TOKENS, BasicTokenizer, WordPiece, check_text) is
re-exported here, so `from bertforge.tokenizer.tokenizer import ...` keeps working.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, chain, count
from operator import add
from pathlib import Path
from typing import Any, Union

from bertforge.fileio import atomic_write_json, atomic_write_text
from bertforge.tokenizer.wordpiece import (
    _CHUNK_RE,
    _IDS,
    _MAX_CACHED_CHUNK,
    _TOKENS,
    _WS_SPLIT_RE,
    SPECIAL_TOKENS,
    BasicTokenizer,
    WordPiece,
    _Cache,
    _ChunkEncoder,
    check_text,
)

__all__ = ["SPECIAL_TOKENS", "BasicTokenizer", "WordPiece", "Tokenizer", "Encoding", "BatchEncoding", "check_fits",
           "train_vocab", "check_text"]

TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second")
_CONFIG_FILE = "tokenizer_config.json"
_VOCAB_FILE = "vocab.txt"


@dataclass
class Encoding:
    """One encoded sequence (or pair); all lists have the same length, seq_len."""
    input_ids: list[int]
    token_type_ids: list[int]                 # 0 for [CLS] text [SEP], 1 for pair [SEP]
    attention_mask: list[int]                 # 1 for real tokens, 0 for padding
    offsets: list[tuple[int, int]]            # char span in its own string; (0, 0) for special/pad
    sequence_ids: list[Union[int, None]]      # 0 text, 1 pair, None special/pad
    word_ids: list[Union[int, None]]          # word index within its sequence; None special/pad
    tokens: list[str]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def special_tokens_mask(self) -> list[int]:
        """1 for [CLS]/[SEP]/[PAD] added by encode, 0 for tokens of the text (as in HF)."""
        return [int(s is None) for s in self.sequence_ids]


@dataclass
class BatchEncoding:
    """A padded batch; `model(**batch)` works (keys(): input_ids, token_type_ids, attention_mask).
    Only these three are padded; `encodings[i]` is example i unpadded (len(encodings[i]) <= seq_len)."""
    input_ids: Any       # (batch, seq_len) lists, or torch.long with return_tensors='pt'
    token_type_ids: Any  # (batch, seq_len)
    attention_mask: Any  # (batch, seq_len)
    encodings: list[Encoding] = field(default_factory=list)  # per example, unpadded (see encode_batch)

    def keys(self) -> tuple[str, ...]:
        return ("input_ids", "token_type_ids", "attention_mask")

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def __len__(self) -> int:
        return len(self.encodings)


# (tokens, ids, offsets, word_ids) of one sequence before special tokens are added.
_Seq = tuple[list[str], list[int], list[tuple[int, int]], list[int]]


class Tokenizer:
    """BERT WordPiece tokenizer. Build it with `from_vocab`, `from_pretrained`, or from a token list.

    tokens: the vocabulary in id order; it must hold [PAD] [UNK] [CLS] [SEP] [MASK], no blanks and no
    duplicates. lowercase: uncased (lowercase + strip accents) or cased. model_max_length: the
    max_length used by truncation=True when none is given. cache_size: entries in each of the two
    caches (chunk -> encoding, word -> pieces); about 40 MB when full; 0 disables them.
    """

    def __init__(self, tokens: Sequence[str], lowercase: bool = True, max_input_chars_per_word: int = 100,
                 model_max_length: Union[int, None] = None, cache_size: int = 65_536,
                 source: str = "<tokens>"):
        tokens = list(tokens)
        vocab: dict[str, int] = {}
        for i, t in enumerate(tokens):
            if not isinstance(t, str):
                raise TypeError(f"{source}: vocabulary entries must be str, entry {i} is {type(t).__name__}")
            if t == "":
                raise ValueError(f"{source}: blank vocabulary entry at line {i + 1}")
            if t in vocab:
                raise ValueError(f"{source}: duplicate vocabulary entry {t!r} at lines {vocab[t] + 1} and {i + 1}")
            vocab[t] = i
        if not vocab:
            raise ValueError(f"{source}: the vocabulary is empty")
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise ValueError(f"{source}: the vocabulary lacks the special tokens {missing}")
        if not isinstance(max_input_chars_per_word, int) or max_input_chars_per_word < 1:
            raise ValueError(f"max_input_chars_per_word must be a positive int, got {max_input_chars_per_word!r}")
        self._tokens = tokens
        self._vocab = vocab
        self._lowercase = bool(lowercase)
        self.max_input_chars_per_word = max_input_chars_per_word
        self.model_max_length = model_max_length  # default max_length for truncation=True
        self.cache_size = cache_size
        self.pad_token_id, self.unk_token_id, self.cls_token_id, self.sep_token_id, self.mask_token_id = (
            vocab[t] for t in SPECIAL_TOKENS)
        self._basic = BasicTokenizer(lowercase=self._lowercase, never_split=SPECIAL_TOKENS)
        self._wordpiece = WordPiece(vocab, "[UNK]", max_input_chars_per_word)
        self._init_caches()

    def _init_caches(self) -> None:
        # normalised word -> WordPiece.split(word)
        self._pieces = _Cache(self._wordpiece.split, self.cache_size, self.max_input_chars_per_word)
        # chunk (raw text between whitespace) -> (tokens, ids, spans in chunk, word ids in chunk, n words)
        encoder = _ChunkEncoder(self._basic, self._vocab, self._pieces, self._lowercase)
        self._chunks = _Cache(encoder, self.cache_size, _MAX_CACHED_CHUNK)

    def __getstate__(self) -> dict:  # picklable for DataLoader workers; caches are rebuilt
        return {k: v for k, v in self.__dict__.items() if k not in ("_chunks", "_pieces")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_caches()

    # ------------------------------------------------------------------------- loading and saving
    @classmethod
    def from_vocab(cls, path: Union[str, os.PathLike], lowercase: bool = True,
                   max_input_chars_per_word: int = 100, **kwargs: Any) -> Tokenizer:
        """Read a vocab.txt (one token per line, id = line number - 1)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"vocabulary file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text ({e})") from None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the newline that ends the last line
        tokens = [t[:-1] if t.endswith("\r") else t for t in lines]  # tolerate CRLF files
        return cls(tokens, lowercase=lowercase, max_input_chars_per_word=max_input_chars_per_word,
                   source=str(path), **kwargs)

    @classmethod
    def from_pretrained(cls, directory: Union[str, os.PathLike], **kwargs: Any) -> Tokenizer:
        """Read dir/vocab.txt and, if present, dir/tokenizer_config.json (HF layout, D5)."""
        directory = Path(directory)
        if directory.is_file():
            raise ValueError(f"{directory} is a file; from_pretrained takes a directory "
                             f"(use Tokenizer.from_vocab for a vocab.txt)")
        vocab_path = directory / _VOCAB_FILE
        if not vocab_path.is_file():
            raise FileNotFoundError(f"no {_VOCAB_FILE} in {directory}")
        cfg: dict[str, Any] = {}
        cfg_path = directory / _CONFIG_FILE
        if cfg_path.is_file():
            try:
                cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ValueError(f"{cfg_path}: invalid JSON ({e})") from None
            if not isinstance(cfg, dict):
                raise ValueError(f"{cfg_path}: expected a JSON object")
        lowercase = bool(cfg.get("do_lower_case", True))
        strip = cfg.get("strip_accents")
        if (strip is not None and bool(strip) != lowercase) or cfg.get("tokenize_chinese_chars", True) is False \
                or cfg.get("do_basic_tokenize", True) is False:
            raise ValueError(f"{cfg_path}: unsupported options (strip_accents={strip!r}, tokenize_chinese_chars="
                             f"{cfg.get('tokenize_chinese_chars')!r}, do_basic_tokenize="
                             f"{cfg.get('do_basic_tokenize')!r}); bertforge strips accents iff it lowercases")
        for name, default in zip(("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"), SPECIAL_TOKENS):
            value = cfg.get(name, default)
            value = value.get("content") if isinstance(value, dict) else value
            if value != default:
                raise ValueError(f"{cfg_path}: {name}={value!r} unsupported (bertforge uses {default})")
        mml = cfg.get("model_max_length")
        kwargs.setdefault("model_max_length", mml if isinstance(mml, int) and 0 < mml < 10**9 else None)
        kwargs.setdefault("max_input_chars_per_word", cfg.get("max_input_chars_per_word", 100))
        kwargs.setdefault("lowercase", lowercase)
        return cls.from_vocab(vocab_path, **kwargs)

    def save_pretrained(self, directory: Union[str, os.PathLike]) -> Path:
        """Write vocab.txt and tokenizer_config.json atomically; HF BertTokenizer.from_pretrained reads them."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(directory / _VOCAB_FILE, "".join(t + "\n" for t in self._tokens))
        cfg: dict[str, Any] = {
            "tokenizer_class": "BertTokenizer", "do_lower_case": self._lowercase, "do_basic_tokenize": True,
            "tokenize_chinese_chars": True, "strip_accents": None, "clean_up_tokenization_spaces": True,
            "pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
            "mask_token": "[MASK]"}
        if self.model_max_length is not None:
            cfg["model_max_length"] = self.model_max_length
        if self.max_input_chars_per_word != 100:
            cfg["max_input_chars_per_word"] = self.max_input_chars_per_word  # read by bertforge only
        atomic_write_json(directory / _CONFIG_FILE, cfg)
        return directory

    # ------------------------------------------------------------------------- vocabulary
    @property
    def vocab(self) -> dict[str, int]:
        """token -> id (a copy; use convert_tokens_to_ids in loops)."""
        return dict(self._vocab)

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    @property
    def lowercase(self) -> bool:
        return self._lowercase

    @property
    def all_special_tokens(self) -> list[str]:
        return list(SPECIAL_TOKENS)

    @property
    def all_special_ids(self) -> list[int]:
        return [self._vocab[t] for t in SPECIAL_TOKENS]

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """[CLS] A [SEP] -> 2; [CLS] A [SEP] B [SEP] -> 3."""
        return 3 if pair else 2

    def convert_tokens_to_ids(self, tokens: Union[str, Sequence[str]]) -> Union[int, list[int]]:
        """Unknown tokens map to [UNK]'s id, as in HF."""
        if isinstance(tokens, str):
            return self._vocab.get(tokens, self.unk_token_id)
        get, unk = self._vocab.get, self.unk_token_id
        return [get(check_text(t, "token"), unk) for t in tokens]

    def convert_ids_to_tokens(self, ids: Union[int, Iterable[int]],
                              skip_special_tokens: bool = False) -> Union[str, list[str]]:
        """Ids outside [0, vocab_size) raise ValueError."""
        if isinstance(ids, int) or (hasattr(ids, "ndim") and ids.ndim == 0):
            return self._tokens[self._check_id(int(ids))]
        ids = ids.tolist() if hasattr(ids, "tolist") else ids
        special = set(self.all_special_ids) if skip_special_tokens else ()
        return [self._tokens[self._check_id(i)] for i in ids if i not in special]

    def _check_id(self, i: int) -> int:
        if not 0 <= i < len(self._tokens):
            raise ValueError(f"token id {i} is outside the vocabulary [0, {len(self._tokens)})")
        return i

    # ------------------------------------------------------------------------- tokenization
    def basic_tokenize(self, text: str) -> list[str]:
        """The words WordPiece sees: cleaned, CJK-spaced, NFC, lowercased/accent-stripped if uncased,
        split on whitespace and punctuation, special tokens whole."""
        return self._basic.tokenize(text)

    def tokenize(self, text: str) -> list[str]:
        """'unaffable' -> ['una', '##ffa', '##ble'] with bert-base's vocab (no [CLS]/[SEP])."""
        check_text(text)
        # printable ASCII has no whitespace but ' ', so str.split() finds exactly the chunks
        chunks = text.split() if text.isascii() and text.isprintable() else _CHUNK_RE.findall(text)
        return list(chain.from_iterable(map(_TOKENS, map(self._chunks.__getitem__, chunks))))

    def tokenize_with_offsets(self, text: str) -> tuple[list[str], list[tuple[int, int]]]:
        """Tokens and their (start, end) character spans in `text`."""
        toks, _, offsets, _ = self._sequence(check_text(text))
        return toks, offsets

    def _sequence(self, text: str) -> _Seq:
        """Tokens, ids, offsets and word ids of one text (the hot path: a regex split + cache hits)."""
        if text.isascii() and text.isprintable():  # the only whitespace is ' '
            chunks = text.split(" ")  # '' between two spaces encodes to nothing
            pos: Iterable[int] = map(add, accumulate(map(len, chunks), initial=0), count())  # chunk starts
        else:
            parts = _WS_SPLIT_RE.split(text)  # [chunk, spaces, chunk, ..., chunk]; chunks may be ''
            chunks = parts[::2]
            pos = list(accumulate(map(len, parts), initial=0))[::2]
        entries = list(map(self._chunks.__getitem__, chunks))
        toks = list(chain.from_iterable(map(_TOKENS, entries)))
        ids = list(chain.from_iterable(map(_IDS, entries)))
        offsets = [(s + a, s + b) for s, e in zip(pos, entries) for a, b in e[2]]
        w0 = accumulate([e[4] for e in entries], initial=0)
        word_ids = [w + k for w, e in zip(w0, entries) for k in e[3]]
        return toks, ids, offsets, word_ids

    def _words_sequence(self, words: Sequence[str], name: str) -> _Seq:
        """is_split_into_words: each word tokenized alone; offsets into that word; word id = its index."""
        if isinstance(words, str) or not isinstance(words, (list, tuple)):
            raise TypeError(f"{name} must be a list of str when is_split_into_words=True, "
                            f"got {type(words).__name__}")
        toks, ids, offsets, word_ids = [], [], [], []
        for w, word in enumerate(words):
            t, i, o, _ = self._sequence(check_text(word, f"{name}[{w}]"))
            toks += t
            ids += i
            offsets += o
            word_ids += [w] * len(i)
        return toks, ids, offsets, word_ids

    # ------------------------------------------------------------------------- encoding
    def encode(self, text: Union[str, Sequence[str]], pair: Union[str, Sequence[str], None] = None,
               max_length: Union[int, None] = None, truncation: Union[bool, str] = False,
               padding: Union[bool, str] = False, add_special_tokens: bool = True,
               is_split_into_words: bool = False) -> Encoding:
        """[CLS] text [SEP] (pair [SEP]) -> Encoding. Truncation as HF: longest_first removes from the
        longer sequence (the pair on ties), only_first/only_second from one; impossible -> ValueError.
        padding: False, 'longest' (no-op for one example) or 'max_length' (right-padded with [PAD])."""
        strategy = _truncation_strategy(truncation)
        pad = _padding_strategy(padding)
        if strategy or pad == "max_length":
            max_length = self._resolve_max_length(max_length, strategy, pad)
        if is_split_into_words:
            a = self._words_sequence(text, "text")
            b = None if pair is None else self._words_sequence(pair, "pair")
        else:
            a = self._sequence(check_text(text))
            b = None if pair is None else self._sequence(check_text(pair, "pair"))
        if strategy:
            a, b = self._truncate(a, b, max_length, strategy, add_special_tokens)
        enc = self._assemble(a, b, add_special_tokens)
        if pad == "max_length":
            self._pad(enc, max_length)
        return enc

    def _resolve_max_length(self, max_length: Union[int, None], strategy: str, pad: str) -> int:
        if max_length is None:
            max_length = self.model_max_length
        if max_length is None:
            raise ValueError(f"truncation={strategy!r} / padding={pad!r} need max_length "
                             f"(or a tokenizer with model_max_length)")
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
            raise ValueError(f"max_length must be a positive int, got {max_length!r}")
        return max_length

    def _truncate(self, a: _Seq, b: Union[_Seq, None], max_length: int, strategy: str,
                  add_special: bool) -> tuple[_Seq, Union[_Seq, None]]:
        n_special = self.num_special_tokens_to_add(b is not None) if add_special else 0
        len_a, len_b = len(a[1]), 0 if b is None else len(b[1])
        remove = len_a + len_b + n_special - max_length
        if remove <= 0:
            return a, b
        if max_length < n_special:
            raise ValueError(f"max_length={max_length} leaves no room: {n_special} special tokens are added")
        if strategy == "only_second" and b is None:
            raise ValueError("truncation='only_second' needs a pair")
        if strategy == "only_first" or (strategy == "longest_first" and b is None):
            if len_a <= remove:
                raise ValueError(f"truncation={strategy!r}: the first sequence has {len_a} tokens, "
                                 f"{remove} must go; use another strategy or a larger max_length")
            return _cut(a, len_a - remove), b
        if strategy == "only_second":
            if len_b <= remove:
                raise ValueError(f"truncation='only_second': the second sequence has {len_b} tokens, "
                                 f"{remove} must go; use another strategy or a larger max_length")
            return a, _cut(b, len_b - remove)
        # longest_first on a pair: trim the longer one down to the shorter, then alternate (HF's
        # arithmetic: the second sequence loses the odd token). E.g. 10 + 4 tokens, remove 8:
        # 6 from the first (10 -> 4), then 1 each -> 3 + 3.
        first = min(abs(len_b - len_a), remove)
        second = remove - first
        if len_a > len_b:
            cut_a, cut_b = first + second // 2, second - second // 2
        else:
            cut_a, cut_b = second // 2, first + second - second // 2
        return _cut(a, max(0, len_a - cut_a)), _cut(b, max(0, len_b - cut_b))

    def _assemble(self, a: _Seq, b: Union[_Seq, None], add_special: bool) -> Encoding:
        """[CLS] a [SEP] (b [SEP]); the lists of `a` are fresh (from _sequence/_cut) and are reused."""
        toks, ids, offsets, word_ids = a
        n = len(ids)
        seq_ids: list = [0] * n
        if add_special:
            toks.insert(0, "[CLS]")
            ids.insert(0, self.cls_token_id)
            offsets.insert(0, (0, 0))
            word_ids.insert(0, None)
            seq_ids.insert(0, None)
            toks.append("[SEP]")
            ids.append(self.sep_token_id)
            offsets.append((0, 0))
            word_ids.append(None)
            seq_ids.append(None)
        type_ids = [0] * len(ids)
        if b is not None:
            m = len(b[1])
            toks += b[0]
            ids += b[1]
            offsets += b[2]
            word_ids += b[3]
            seq_ids += [1] * m
            type_ids += [1] * m
            if add_special:
                toks.append("[SEP]")
                ids.append(self.sep_token_id)
                offsets.append((0, 0))
                word_ids.append(None)
                seq_ids.append(None)
                type_ids.append(1)
        return Encoding(ids, type_ids, [1] * len(ids), offsets, seq_ids, word_ids, toks)

    def _pad(self, enc: Encoding, length: int) -> None:
        k = length - len(enc.input_ids)
        if k > 0:
            enc.input_ids += [self.pad_token_id] * k
            enc.token_type_ids += [0] * k
            enc.attention_mask += [0] * k
            enc.offsets += [(0, 0)] * k
            enc.sequence_ids += [None] * k
            enc.word_ids += [None] * k
            enc.tokens += ["[PAD]"] * k

    def encode_batch(self, texts: Sequence[Union[str, Sequence[str]]],
                     pairs: Union[Sequence[Union[str, Sequence[str]]], None] = None,
                     max_length: Union[int, None] = None, truncation: Union[bool, str] = False,
                     padding: Union[bool, str] = "longest", return_tensors: Union[str, None] = None,
                     add_special_tokens: bool = True, is_split_into_words: bool = False) -> BatchEncoding:
        """encode() each example, then pad the three model inputs to the longest or to max_length.

        Only the batch's input_ids / token_type_ids / attention_mask are padded (what HF pads too):
        `batch.encodings[i]` holds example i's unpadded tokens, offsets, word ids, ...; `batch.input_ids[i]`
        is its padded row ([PAD] id, type 0, mask 0 on the right). With padding=False the rows are the
        encodings' own lists."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of str; use encode() for a single text")
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(pairs)} pairs")
        if return_tensors not in (None, "pt"):
            raise ValueError(f"return_tensors must be None or 'pt', got {return_tensors!r}")
        pad = _padding_strategy(padding)
        if pad == "max_length" or _truncation_strategy(truncation):
            max_length = self._resolve_max_length(max_length, _truncation_strategy(truncation), pad)
        encs = [self.encode(t, None if pairs is None else pairs[i], max_length=max_length,
                            truncation=truncation, add_special_tokens=add_special_tokens,
                            is_split_into_words=is_split_into_words) for i, t in enumerate(texts)]
        if pad:  # fresh rows; an example longer than max_length (no truncation) stays longer
            target = max_length if pad == "max_length" else max(map(len, encs), default=0)
            pad_id = self.pad_token_id
            cols = ([e.input_ids + [pad_id] * (target - len(e.input_ids)) for e in encs],
                    [e.token_type_ids + [0] * (target - len(e.input_ids)) for e in encs],
                    [e.attention_mask + [0] * (target - len(e.input_ids)) for e in encs])
        else:
            cols = ([e.input_ids for e in encs], [e.token_type_ids for e in encs], [e.attention_mask for e in encs])
        if return_tensors == "pt":
            if len({len(c) for c in cols[0]}) > 1:
                raise ValueError("return_tensors='pt' needs equal lengths: use padding='longest' or 'max_length'")
            import torch
            n = len(cols[0][0]) if encs else 0
            cols = tuple(torch.tensor(c, dtype=torch.long).reshape(len(encs), n) for c in cols)
        return BatchEncoding(*cols, encodings=encs)

    # ------------------------------------------------------------------------- decoding
    def decode(self, ids: Union[int, Iterable[int]], skip_special_tokens: bool = True,
               clean_up_tokenization_spaces: bool = True) -> str:
        """Tokens joined by spaces with ' ##' removed; the clean-up (HF's default) also glues
        ' .', ' ?', ' !', ' ,', " ' ", " n't", " 'm", " 's", " 've", " 're" to the left."""
        toks = self.convert_ids_to_tokens(ids, skip_special_tokens=skip_special_tokens)
        toks = [toks] if isinstance(toks, str) else toks
        text = " ".join(toks).replace(" ##", "").strip()
        if clean_up_tokenization_spaces:
            for old, new in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                             (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
                text = text.replace(old, new)
        return text

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={len(self)}, lowercase={self._lowercase})"


def _cut(seq: _Seq, n: int) -> _Seq:
    return seq[0][:n], seq[1][:n], seq[2][:n], seq[3][:n]


def _truncation_strategy(truncation: Union[bool, str]) -> str:
    """-> '' (none) or one of TRUNCATION_STRATEGIES."""
    if truncation is True:
        return "longest_first"
    if truncation is False or truncation is None or truncation == "do_not_truncate":
        return ""
    if truncation in TRUNCATION_STRATEGIES:
        return truncation
    raise ValueError(f"truncation must be True, False or one of {TRUNCATION_STRATEGIES}, got {truncation!r}")


def _padding_strategy(padding: Union[bool, str]) -> str:
    """-> '' (none), 'longest' or 'max_length'."""
    if padding is True:
        return "longest"
    if padding is False or padding is None or padding == "do_not_pad":
        return ""
    if padding in ("longest", "max_length"):
        return padding
    raise ValueError(f"padding must be False, True, 'longest' or 'max_length', got {padding!r}")


def train_vocab(*args: Any, **kwargs: Any) -> Path:
    """See bertforge.tokenizer.training.train_vocab (re-exported here)."""
    from bertforge.tokenizer.training import train_vocab as _train
    return _train(*args, **kwargs)


def check_fits(tokenizer: Tokenizer, config: Any, where: Union[str, os.PathLike], exact: bool = True) -> None:
    """Refuse a vocab.txt that does not belong to a model's config.json: more ids than the embedding has
    rows (any size other than vocab_size when `exact`), or [PAD] not at the config's pad_token_id."""
    size = config.vocab_size
    if tokenizer.vocab_size > size or (exact and tokenizer.vocab_size != size):
        raise ValueError(f"{where}: vocab.txt has {tokenizer.vocab_size} tokens but config.json says vocab_size "
                         f"{size}: this vocabulary does not belong to this model")
    pad = getattr(config, "pad_token_id", None)
    if pad is not None and pad != tokenizer.pad_token_id:
        raise ValueError(f"{where}: [PAD] is token {tokenizer.pad_token_id} of vocab.txt but config.json says "
                         f"pad_token_id {pad}: this vocabulary does not belong to this model")
