"""Pre-training data (D7, D8): sentence split, NSP instances, shards, masking statistics."""
from __future__ import annotations

import random

import numpy as np
import pytest

from bertforge.data.pretraining import (
    IGNORE_INDEX,
    MaskingConfig,
    PretrainingCollator,
    PretrainingDataset,
    VocabInfo,
    build_pretraining_data,
    create_nsp_instances,
    mask_tokens,
    pack_sentences,
    read_documents,
    split_sentences,
    truncate_seq_pair,
)
from bertforge.tokenizer.tokenizer import Tokenizer

WORDS = [f"w{i}" for i in range(400)]
SPECIAL = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused2]"]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer(SPECIAL + WORDS + [f"##p{i}" for i in range(40)] + [".", ","])


def synthetic_documents(n_docs: int, seed: int = 0) -> list[list[list[int]]]:
    """Token d*10000 + s*10 + k is token k of sentence s of document d: provenance is readable from ids."""
    rng = random.Random(seed)
    return [[[d * 10000 + s * 10 + k for k in range(rng.randint(3, 9))] for s in range(rng.randint(5, 30))]
            for d in range(n_docs)]


def test_split_sentences_rule():
    assert split_sentences("He left. She stayed! Did he? \"Yes.\" (Then) 3 more.") == [
        "He left.", "She stayed!", "Did he?", "\"Yes.\"", "(Then) 3 more."]
    assert split_sentences("e.g. this is one sentence.") == ["e.g. this is one sentence."]
    assert split_sentences("   ") == []


def test_read_documents_blank_lines_and_files(tmp_path):
    (tmp_path / "a.txt").write_text("One. Two.\nThree\n\n\nFour\n")
    (tmp_path / "b.txt").write_text("Five\n")
    assert list(read_documents(tmp_path)) == [["One.", "Two.", "Three"], ["Four"], ["Five"]]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list(read_documents(tmp_path / "nope.txt"))


def test_nsp_labels_are_balanced_and_notnext_comes_from_another_document():
    docs = synthetic_documents(300)
    instances = create_nsp_instances(docs, 64, 0.1, random.Random(1))
    labels = np.array([x.is_random_next for x in instances])
    assert abs(labels.mean() - 0.5) < 0.04, labels.mean()  # ~1000 instances: 4% is > 2.5 sigma
    for x in instances:
        assert 1 <= len(x.tokens_a) and 1 <= len(x.tokens_b) and len(x.tokens_a) + len(x.tokens_b) <= 61
        doc_a = {t // 10000 for t in x.tokens_a}
        doc_b = {t // 10000 for t in x.tokens_b}
        assert len(doc_a) == 1 and len(doc_b) == 1  # A is one document's text, so is B
        if x.is_random_next:
            assert doc_a != doc_b
        else:
            assert doc_a == doc_b
            assert max(x.tokens_a) < min(x.tokens_b)  # B continues A


def test_unused_segments_are_put_back():
    # With only NotNext pairs (B never from the chunk) every sentence still appears in some A.
    docs = synthetic_documents(20)

    class AlwaysRandom(random.Random):
        def random(self):  # noqa: A003 - 0.0 < 0.5: every coin says NotNext, short_seq_prob never fires
            return 0.0

    instances = create_nsp_instances(docs, 64, 0.0, AlwaysRandom(0))
    seen_in_a = {t // 10 for x in instances for t in x.tokens_a}
    every_sentence = {s[0] // 10 for d in docs for s in d}
    truncated = sum(1 for x in instances if len(x.tokens_a) + len(x.tokens_b) == 61)
    assert len(every_sentence - seen_in_a) <= truncated  # only truncation can drop a whole short sentence


def test_truncate_seq_pair_trims_the_longer_side():
    a, b = list(range(10)), list(range(100, 104))
    truncate_seq_pair(a, b, 8, random.Random(0))
    assert len(a) + len(b) == 8 and len(b) == 4  # B was never the longer one
    assert a == list(range(a[0], a[0] + 4))  # a contiguous window of A


def test_single_document_corpus_is_a_clear_error(tok):
    with pytest.raises(ValueError, match="at least 2 documents"):
        create_nsp_instances(synthetic_documents(1), 64, 0.1, random.Random(0))


def test_packed_rows_are_contiguous_sentences_of_one_document():
    docs = synthetic_documents(10)
    rows = pack_sentences(docs, 32)
    assert all(len(r.tokens_a) <= 30 and not r.tokens_b for r in rows)
    flat = [t for r in rows for t in r.tokens_a]
    assert flat == [t for d in docs for s in d for t in s]  # nothing lost, order kept
    assert all(len({t // 10000 for t in r.tokens_a}) == 1 for r in rows)


def test_build_shards_and_dataset(tmp_path, tok):
    lines = []
    for d in range(12):
        lines += [" ".join(random.Random(d * 100 + s).choices(WORDS, k=6)) + "." for s in range(8)] + [""]
    lines.insert(3, " ".join(WORDS[:300]))  # one line longer than the window: cut into pieces
    (tmp_path / "c.txt").write_text("\n".join(lines))
    meta = build_pretraining_data(tmp_path / "c.txt", tok, tmp_path / "data", max_seq_length=32, docs_per_group=5)
    assert len(meta["shards"]) == 3 and meta["documents"] == 12 and meta["long_sentences_split"] == 1
    ds = PretrainingDataset(tmp_path / "data")
    assert len(ds) == meta["instances"]
    for i in range(len(ds)):
        item = ds[i]
        ids = item["input_ids"]
        assert len(ids) <= 32 and ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
        sep = np.flatnonzero(ids == tok.sep_token_id)
        assert len(sep) == 2  # [CLS] A [SEP] B [SEP]
        assert (item["token_type_ids"][: sep[0] + 1] == 0).all() and (item["token_type_ids"][sep[0] + 1:] == 1).all()
    with pytest.raises(ValueError, match="empty"):
        (tmp_path / "empty.txt").write_text("\n\n  \n")
        build_pretraining_data(tmp_path / "empty.txt", tok, tmp_path / "d2")
    with pytest.raises(ValueError, match="single document"):
        (tmp_path / "one.txt").write_text("a b c.\nd e f.\n")
        build_pretraining_data(tmp_path / "one.txt", tok, tmp_path / "d3")
    packed = build_pretraining_data(tmp_path / "one.txt", tok, tmp_path / "d4", nsp=False)
    assert packed["instances"] == 1
    again = build_pretraining_data(tmp_path / "c.txt", tok, tmp_path / "d4", max_seq_length=32)  # replaces shards
    assert len(PretrainingDataset(tmp_path / "d4")) == again["instances"] > 1
    with pytest.raises(ValueError, match="other files"):  # never wipes a folder that is not ours
        build_pretraining_data(tmp_path / "c.txt", tok, tmp_path, max_seq_length=32)
    assert (tmp_path / "c.txt").exists()


def _random_sequences(tok, n: int, length: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    ordinary = np.array(tok.convert_tokens_to_ids(WORDS))
    seqs = []
    for _ in range(n):
        ids = rng.choice(ordinary, size=length)
        ids[0], ids[length // 2], ids[-1] = tok.cls_token_id, tok.sep_token_id, tok.sep_token_id
        seqs.append(ids)
    return seqs


@pytest.mark.parametrize("rate", [0.15, 0.3])
def test_dynamic_masking_statistics(tok, rate):
    vocab, cfg = VocabInfo(tok), MaskingConfig(rate=rate)
    rng = np.random.default_rng(0)
    chosen = masked = randomised = kept = candidates = 0
    for ids in _random_sequences(tok, 2000, 128):
        out, labels = mask_tokens(ids, vocab, cfg, rng)
        sel = labels != IGNORE_INDEX
        assert not vocab.is_special[ids[sel]].any()  # never a special token
        assert (out[~sel] == ids[~sel]).all() and (labels[sel] == ids[sel]).all()
        assert not vocab.is_special[out[sel & (out != tok.mask_token_id)]].any()  # no [unused]/[PAD] drawn
        candidates += (~vocab.is_special[ids]).sum()
        chosen += sel.sum()
        masked += (out[sel] == tok.mask_token_id).sum()
        randomised += ((out[sel] != ids[sel]) & (out[sel] != tok.mask_token_id)).sum()
        kept += (out[sel] == ids[sel]).sum()
    # 250k candidates: binomial std of the rate is < 0.001; of the 80/10/10 split < 0.003.
    assert chosen / candidates == pytest.approx(rate, abs=0.004)
    assert masked / chosen == pytest.approx(0.8, abs=0.01)
    # a random draw equals the original with probability 1/400: "kept" gains 0.1/400
    assert randomised / chosen == pytest.approx(0.1, abs=0.01)
    assert kept / chosen == pytest.approx(0.1, abs=0.01)


def test_random_replacements_are_never_special_or_unused(tok):
    vocab = VocabInfo(tok)
    drawn = set(vocab.replacements.tolist())
    assert not drawn & {tok.convert_tokens_to_ids(t) for t in SPECIAL}
    assert drawn == {i for i in range(tok.vocab_size) if not tok.convert_ids_to_tokens(i).startswith("[")}


def test_static_masking_is_exact_count_and_fixed_per_example(tok):
    collate = PretrainingCollator(tok, MaskingConfig(static=True), seed=5)
    seqs = _random_sequences(tok, 6, 41)
    examples = [{"input_ids": s, "token_type_ids": np.zeros_like(s), "next_sentence_label": 0, "index": i}
                for i, s in enumerate(seqs)]
    a = collate(examples, seeds=[1, 2, 3, 4, 5, 6])
    b = collate(examples[::-1], seeds=[7, 8, 9, 10, 11, 12])  # another epoch, another batch order
    assert ((a["labels"] != IGNORE_INDEX).sum(1) == round(0.15 * 38)).all()  # 38 non-special tokens
    assert (a["labels"] == b["labels"].flip(0)).all() and (a["input_ids"] == b["input_ids"].flip(0)).all()


def test_dynamic_masking_follows_the_seeds(tok):
    collate = PretrainingCollator(tok)
    seqs = _random_sequences(tok, 4, 64)
    examples = [{"input_ids": s, "token_type_ids": np.zeros_like(s), "next_sentence_label": 1} for s in seqs]
    a, b, c = collate(examples, seeds=[1, 2, 3, 4]), collate(examples, seeds=[1, 2, 3, 4]), collate(
        examples, seeds=[5, 6, 7, 8])
    assert (a["input_ids"] == b["input_ids"]).all() and (a["labels"] == b["labels"]).all()
    assert (a["labels"] != c["labels"]).any()
    assert a["next_sentence_label"].tolist() == [1, 1, 1, 1]


def test_whole_word_masking_takes_all_pieces_of_a_word(tok):
    rng = np.random.default_rng(0)
    word_ids = tok.convert_tokens_to_ids(WORDS)
    piece_ids = tok.convert_tokens_to_ids([f"##p{i}" for i in range(40)])
    vocab = VocabInfo(tok)
    for static in (False, True):
        cfg = MaskingConfig(whole_word=True, static=static)
        total_sel = total = 0
        for _ in range(300):
            ids, words = [tok.cls_token_id], []
            for _ in range(30):  # words of 1-3 pieces
                start = len(ids)
                ids += [int(rng.choice(word_ids))] + [int(rng.choice(piece_ids)) for _ in range(rng.integers(0, 3))]
                words.append(range(start, len(ids)))
            ids = np.array(ids + [tok.sep_token_id])
            _, labels = mask_tokens(ids, vocab, cfg, rng)
            sel = labels != IGNORE_INDEX
            for w in words:
                assert sel[list(w)].all() or not sel[list(w)].any()  # all pieces or none
            if static:
                assert sel.sum() <= max(1, round(0.15 * (len(ids) - 2)))
            total_sel += sel.sum()
            total += len(ids) - 2
        assert total_sel / total == pytest.approx(0.15, abs=0.03 if static else 0.02)


def test_bad_masking_config():
    with pytest.raises(ValueError, match="rate"):
        MaskingConfig(rate=0.0)
    with pytest.raises(ValueError, match="mask_prob"):
        MaskingConfig(mask_prob=0.9, random_prob=0.2)
