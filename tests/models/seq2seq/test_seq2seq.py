"""The encoder-decoder Transformer: masks, label smoothing, tying, checkpoints, data and BLEU plumbing."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bertforge.data.translation import (
    IGNORE_INDEX,
    TokenBatchLoader,
    TranslationCollator,
    detokenize,
    merge_wordpieces,
    read_parallel,
    token_batches,
    toy_pairs,
    toy_sequences,
)
from bertforge.metrics.bleu import corpus_bleu
from bertforge.models.seq2seq.model import Seq2SeqConfig, Seq2SeqTransformer
from bertforge.nn.losses import label_smoothed_cross_entropy
from tests.helpers import require_data

V = 20


def tiny_model(seed: int = 0, **overrides) -> Seq2SeqTransformer:
    torch.manual_seed(seed)
    cfg = Seq2SeqConfig.preset("tiny", src_vocab_size=V, tgt_vocab_size=V, **overrides)
    return Seq2SeqTransformer(cfg).eval()


def random_batch(B: int = 3, S: int = 7, T: int = 6, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(5, V, (B, S), generator=g)
    tgt = torch.randint(5, V, (B, T), generator=g)
    return src, tgt


# ---- masks -------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_position_t_ignores_later_target_tokens(impl, norm_first):
    model = tiny_model(attn_implementation=impl, norm_first=norm_first)
    src, tgt = random_batch()
    t = 2
    changed = tgt.clone()
    changed[:, t + 1:] = torch.randint(5, V, changed[:, t + 1:].shape, generator=torch.Generator().manual_seed(9))
    assert not torch.equal(changed, tgt)
    a = model(src, tgt).logits
    b = model(src, changed).logits
    torch.testing.assert_close(a[:, :t + 1], b[:, :t + 1], rtol=0, atol=1e-6)
    assert (a[:, t + 1:] - b[:, t + 1:]).abs().max() > 1e-3  # later positions do see the change


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_cross_attention_ignores_source_padding(impl):
    """Extra padded source positions, whatever ids they hold, change nothing (encoder and cross-attention)."""
    model = tiny_model(attn_implementation=impl)
    src, tgt = random_batch(B=2, S=5)
    mask = torch.ones_like(src)
    padded = torch.cat([src, torch.randint(5, V, (2, 4), generator=torch.Generator().manual_seed(3))], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(2, 4, dtype=torch.long)], dim=1)
    a = model(src, tgt, attention_mask=mask).logits
    b = model(padded, tgt, attention_mask=padded_mask).logits
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    # ...and the mask matters: attending to those positions changes the output
    c = model(padded, tgt, attention_mask=torch.ones_like(padded)).logits
    assert (a - c).abs().max() > 1e-3


def test_cross_attention_probabilities_are_zero_on_source_padding():
    model = tiny_model(attn_implementation="eager")
    src, tgt = random_batch(B=2, S=6)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    memory = model.encode(src, mask)
    y = model.positions(model.tgt_embed(tgt))
    from bertforge.nn import look_ahead_mask, padding_mask
    _, attn = model.decoder(y, memory, look_ahead_mask(tgt.size(1)), padding_mask(mask), output_attentions=True)
    for _, cross in attn:  # (B, H, T, S)
        assert cross[1, :, :, 3:].abs().max() == 0
        torch.testing.assert_close(cross.sum(-1), torch.ones_like(cross.sum(-1)))


# ---- label smoothing ---------------------------------------------------------------------------


def test_label_smoothing_hand_computed_with_padding():
    """K = 3, eps = 0.1, loss = (1 - eps)(-log p_y) + eps * mean_k(-log p_k); the padded row is ignored.

    Row 1: p = (1/4, 1/2, 1/4), y = 1: -log p_y = ln 2, mean_k -log p_k = (2 + 1 + 2) ln2 / 3 = 5 ln2 / 3
           loss = 0.9 ln2 + 0.1 * 5 ln2 / 3 = (0.9 + 1/6) ln2
    Row 2: p = (1/4, 1/4, 1/2), y = 0: -log p_y = 2 ln2 -> loss = (1.8 + 1/6) ln2
    Row 3: label -100 (padding), logits large enough that log p underflows in probability space.
    """
    logits = torch.tensor([[0.0, math.log(2), 0.0], [0.0, 0.0, math.log(2)], [1e4, -1e4, 0.0]])
    labels = torch.tensor([1, 0, IGNORE_INDEX])
    ln2 = math.log(2)
    expected = ((0.9 + 1 / 6) * ln2 + (1.8 + 1 / 6) * ln2) / 2
    loss, nll, n = label_smoothed_cross_entropy(logits, labels, epsilon=0.1, return_parts=True)
    assert n == 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert nll.item() == pytest.approx((ln2 + 2 * ln2) / 2, rel=1e-6)
    ref = F.cross_entropy(logits, labels, label_smoothing=0.1, ignore_index=IGNORE_INDEX)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    total = label_smoothed_cross_entropy(logits, labels, epsilon=0.1, reduction="sum")
    assert total.item() == pytest.approx(2 * expected, rel=1e-6)


def test_label_smoothing_never_takes_log_zero():
    """A counted position whose probabilities underflow to 0 in float32 still gives a finite loss and grad."""
    logits = torch.tensor([[200.0, -200.0, 0.0]], requires_grad=True)  # softmax(...)[1] == 0 in float32
    assert torch.softmax(logits, -1)[0, 1] == 0
    loss = label_smoothed_cross_entropy(logits, torch.tensor([0]), epsilon=0.1)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    # the uniform part puts eps/K on the impossible class: 0.1/3 * 400 (its -log p) dominates
    assert loss.item() == pytest.approx(0.1 / 3 * (0 + 400 + 200), rel=1e-4)


def test_label_smoothing_all_padding_and_bad_shapes():
    assert label_smoothed_cross_entropy(torch.zeros(2, 4), torch.full((2,), IGNORE_INDEX)).item() == 0.0
    with pytest.raises(ValueError, match="do not match"):
        label_smoothed_cross_entropy(torch.zeros(2, 4), torch.zeros(3, dtype=torch.long))


def test_model_loss_is_label_smoothed_ce_over_non_pad_labels():
    model = tiny_model()
    collate = TranslationCollator(pad_token_id=0, bos_token_id=2, eos_token_id=3)
    batch = collate([([5, 6, 7], [8, 9]), ([10], [11, 12, 13, 14])])
    assert batch["labels"][0].tolist() == [8, 9, 3, IGNORE_INDEX, IGNORE_INDEX]
    assert batch["decoder_input_ids"][0].tolist() == [2, 8, 9, 0, 0]
    out = model(**batch)
    ref = F.cross_entropy(out.logits.reshape(-1, V), batch["labels"].reshape(-1), label_smoothing=0.1)
    assert out.loss.item() == pytest.approx(ref.item(), rel=1e-5)
    assert out.num_tokens.item() == 3 + 5


# ---- architecture, presets, checkpoints --------------------------------------------------------


def test_presets_and_tying():
    base = Seq2SeqConfig.preset("transformer-base")
    assert (base.d_model, base.num_encoder_layers, base.num_decoder_layers, base.num_heads, base.d_ff,
            base.dropout, base.norm_first) == (512, 6, 6, 8, 2048, 0.1, False)
    big = Seq2SeqConfig.preset("transformer-big")
    assert (big.d_model, big.num_heads, big.d_ff) == (1024, 16, 4096)
    with pytest.raises(ValueError, match="unknown preset"):
        Seq2SeqConfig.preset("transformer-huge")
    with pytest.raises(ValueError, match="share_embeddings"):
        Seq2SeqConfig(src_vocab_size=10, tgt_vocab_size=12, share_embeddings=True)

    shared = tiny_model(share_embeddings=True)
    assert shared.src_embed is shared.tgt_embed
    assert shared.output_projection.weight is shared.tgt_embed.weight
    separate = tiny_model(tie_output=False)
    assert separate.src_embed is not separate.tgt_embed
    assert separate.output_projection.weight is not separate.tgt_embed.weight
    # paper-size base with a 37k shared vocabulary: ~63M parameters (table 3 reports 65M)
    with torch.device("meta"):
        n = Seq2SeqTransformer(Seq2SeqConfig.preset("transformer-base", src_vocab_size=37000,
                                                    tgt_vocab_size=37000, share_embeddings=True)).num_parameters()
    assert 60e6 < n < 66e6


def test_embeddings_are_scaled_by_sqrt_d_model():
    model = tiny_model()
    ids = torch.tensor([[5, 6]])
    torch.testing.assert_close(model.src_embed(ids), model.src_embed.weight[ids] * math.sqrt(64))


def test_save_and_load_round_trip(tmp_path):
    model = tiny_model(share_embeddings=True)
    src, tgt = random_batch()
    model.save_pretrained(tmp_path / "m")
    loaded = Seq2SeqTransformer.from_pretrained(tmp_path / "m")
    assert loaded.output_projection.weight is loaded.tgt_embed.weight is loaded.src_embed.weight
    torch.testing.assert_close(model(src, tgt).logits, loaded(src, tgt).logits, rtol=0, atol=0)
    with pytest.raises(FileNotFoundError):
        Seq2SeqTransformer.from_pretrained(tmp_path / "missing")


# ---- data --------------------------------------------------------------------------------------


def test_token_batches_respect_the_budget_and_cover_every_example():
    lengths = [3, 9, 4, 12, 5, 5, 7, 2, 11, 6] * 5
    batches = token_batches(lengths, max_tokens=30, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) * max(lengths[i] for i in b) <= 30
    with pytest.raises(ValueError, match="longer"):
        token_batches([40], max_tokens=30)


def test_token_batch_loader_resumes_exactly_and_shards():
    examples = toy_sequences("copy", 200, seed=0)
    collate = TranslationCollator(0, 2, 3)
    full = TokenBatchLoader(examples, 60, collate, seed=4)
    first = [b["input_ids"] for b in full]  # epoch 0
    second = [b["input_ids"] for b in full]  # epoch 1: another order
    assert len(first) == len(full) and any(a.shape != b.shape or not torch.equal(a, b)
                                           for a, b in zip(first, second))
    resumed = TokenBatchLoader(examples, 60, collate, seed=4)
    it = iter(resumed)
    for _ in range(3):
        next(it)
    state = resumed.state_dict()
    again = TokenBatchLoader(examples, 60, collate, seed=4)
    again.load_state_dict(state)
    rest = [b["input_ids"] for b in again]
    assert len(rest) == len(first) - 3 and all(torch.equal(a, b) for a, b in zip(rest, first[3:]))
    shards = [TokenBatchLoader(examples, 60, collate, seed=4, rank=r, world_size=2) for r in range(2)]
    got = [list(s) for s in shards]
    assert len(got[0]) == len(got[1]) == len(first) // 2
    assert all(torch.equal(got[r][k]["input_ids"], first[2 * k + r]) for k in range(len(got[0])) for r in (0, 1))


def test_read_parallel_checks_alignment(tmp_path):
    (tmp_path / "a.de").write_text("eins\nzwei\n", encoding="utf-8")
    (tmp_path / "a.en").write_text("one\n", encoding="utf-8")
    with pytest.raises(ValueError, match="aligned"):
        read_parallel(tmp_path / "a.de", tmp_path / "a.en")
    with pytest.raises(FileNotFoundError):
        read_parallel(tmp_path / "b.de", tmp_path / "a.en")


def test_toy_pairs():
    pairs = toy_pairs("reverse", 5, seed=1)
    for src, tgt in pairs:
        assert src.split()[::-1] == tgt.split()
    with pytest.raises(ValueError, match="toy task"):
        toy_pairs("sort", 5)


@pytest.mark.parametrize("words,text", [
    (["A", "man", "in", "a", "T", "-", "shirt", "."], "A man in a T-shirt."),
    (["The", "man", "'", "s", "dog", "(", "brown", ")", "runs", "!"], "The man's dog (brown) runs!"),
    (["He", "said", '"', "hi", '"', "and", "left", ",", "3", ".", "5", "km", "."],
     'He said "hi" and left, 3.5 km.'),
    (["don", "'", "t", "go"], "don't go"),
])
def test_detokenize(words, text):
    assert detokenize(words) == text


def test_merge_wordpieces():
    assert merge_wordpieces(["T", "-", "sh", "##irt", "##s"]) == ["T", "-", "shirts"]


def test_detokenize_round_trips_multi30k_references():
    """Basic-tokenise and detokenise the real test references: sacreBLEU against the originals ~ 100."""
    from bertforge.data.translation import multi30k
    from bertforge.tokenizer.tokenizer import BasicTokenizer

    refs = [en for _, en in multi30k("test2016", "de", "en", require_data("multi30k"))]
    basic = BasicTokenizer(lowercase=False)
    round_trip = [detokenize(basic.tokenize(r)) for r in refs]
    exact = sum(a == b for a, b in zip(round_trip, refs)) / len(refs)
    assert exact > 0.97
    assert corpus_bleu(round_trip, refs).score > 99.5


def test_corpus_bleu_matches_sacrebleu_and_prints_signature():
    import sacrebleu

    hyps, refs = ["A dog runs on the grass.", "Two men talk."], ["A dog is running on the grass.", "Two men talk."]
    result = corpus_bleu(hyps, refs)
    assert result.score == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert "tok:13a" in result.signature and "case:mixed" in result.signature
    with pytest.raises(ValueError):
        corpus_bleu(hyps, refs[:1])


# ---- commands ----------------------------------------------------------------------------------


def test_translate_command_keeps_lines_aligned(tmp_path, monkeypatch, capsys):
    import io

    from bertforge.cli.main import main
    from bertforge.tasks.translation import Translator
    from bertforge.tokenizer.tokenizer import SPECIAL_TOKENS, Tokenizer

    tok = Tokenizer(list(SPECIAL_TOKENS) + list("abcdefghij"), lowercase=True)
    torch.manual_seed(0)
    model = Seq2SeqTransformer(Seq2SeqConfig.preset("tiny", src_vocab_size=tok.vocab_size,
                                                    tgt_vocab_size=tok.vocab_size, share_embeddings=True))
    Translator(model, tok, tok).save_pretrained(tmp_path / "m")
    monkeypatch.setattr("sys.stdin", io.StringIO("a b c\n\nd e\n"))
    assert main(["translate", "--model", str(tmp_path / "m"), "--beam", "2"]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""  # 3 lines, the blank one kept blank
    assert all(w in "abcdefghij" for w in " ".join(lines).split())  # output is decoded text, no [SEP]/[CLS]
    assert main(["translate", "--model", str(tmp_path / "missing")]) == 2
    assert main(["train-translation", "--out", str(tmp_path / "run")]) == 2  # neither --data nor --task


@pytest.mark.slow
def test_train_translation_copy_command_end_to_end(tmp_path, capsys):
    from bertforge.cli.main import main

    assert main(["train-translation", "--task", "copy", "--out", str(tmp_path / "run"), "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "beam 1: BLEU 100.00, exact match 1.000" in err and "tok:13a" in err


def test_train_translation_on_aligned_files_with_separate_vocabularies(tmp_path):
    """The recipe on a folder of <split>.<lang> files: vocabularies, Trainer, checkpoints that load as models."""
    from bertforge.tasks.translation import (
        TranslationTrainConfig,
        Translator,
        train_translation,
        translation_train_defaults,
    )

    de = ["ein Hund läuft .", "zwei Männer sprechen .", "eine Frau liest ein Buch .", "ein Kind spielt ."] * 10
    en = ["a dog runs .", "two men talk .", "a woman reads a book .", "a child plays ."] * 10
    data = tmp_path / "data"
    data.mkdir()
    for split, n in (("train", 40), ("dev", 4)):
        (data / f"{split}.de").write_text("\n".join(de[:n]) + "\n", encoding="utf-8")
        (data / f"{split}.en").write_text("\n".join(en[:n]) + "\n", encoding="utf-8")
    train = translation_train_defaults(out_dir=str(tmp_path / "run"), max_steps=4, eval_every=2, save_every=2,
                                       warmup_steps=2)
    cfg = TranslationTrainConfig(train=train, data_dir=str(data), preset="tiny", vocab_size=120,
                                 joint_vocab=False, max_tokens=64, eval_sentences=4)
    translator = train_translation(cfg, log=lambda msg: None)
    assert translator.src_tokenizer is not translator.tgt_tokenizer
    assert "ä" in translator.src_tokenizer.vocab and "ä" not in translator.tgt_tokenizer.vocab  # per language
    assert not translator.model.config.share_embeddings
    for folder in ("run", "run/checkpoint-4", "run/best"):
        loaded = Translator.from_pretrained(tmp_path / folder)
        assert len(loaded.translate(["ein Hund läuft ."], beam_size=2)) == 1
