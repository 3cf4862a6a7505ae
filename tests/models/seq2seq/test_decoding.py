"""Greedy and beam decoding: cache == no cache, beam 1 == greedy, batching, a hand-made beam case, copy task."""
from __future__ import annotations

import math

import pytest
import torch

from bertforge.data.translation import TokenBatchLoader, TranslationCollator, exact_match, toy_sequences
from bertforge.models.seq2seq.decoding import beam_search, greedy_decode, length_penalty
from bertforge.models.seq2seq.model import Seq2SeqConfig, Seq2SeqTransformer
from bertforge.training.schedules import noam
from bertforge.training.trainer import TrainConfig, Trainer

PAD, BOS, EOS, FIRST = 0, 2, 3, 5  # ids below FIRST are special, as in a BERT vocabulary
NUM_SYMBOLS = 10
V = FIRST + NUM_SYMBOLS
COLLATE = TranslationCollator(PAD, BOS, EOS)


def shifted(task: str, n: int, seed: int) -> list[tuple[list[int], list[int]]]:
    return [([FIRST + a for a in x], [FIRST + a for a in y]) for x, y in toy_sequences(task, n, NUM_SYMBOLS, 3, 10,
                                                                                        seed=seed)]


def model_for(seed: int = 0, **overrides) -> Seq2SeqTransformer:
    torch.manual_seed(seed)
    cfg = Seq2SeqConfig.preset("tiny", src_vocab_size=V, tgt_vocab_size=V, share_embeddings=True, **overrides)
    return Seq2SeqTransformer(cfg).eval()


@pytest.fixture(scope="module")
def copy_model(tmp_path_factory):
    """A tiny model trained on the copy task with the shared Trainer (about 30 s on one CPU thread)."""
    torch.set_num_threads(1)
    train = shifted("copy", 4000, seed=0)
    model = model_for(0)
    loader = TokenBatchLoader(train, 512, COLLATE, seed=0)
    # warm-up then linear decay (peak 3e-3): the noam schedule's slow decay leaves this toy model noisier
    cfg = TrainConfig(out_dir=str(tmp_path_factory.mktemp("copy")), max_steps=600, lr=3e-3, warmup_steps=100,
                      schedule="linear", weight_decay=0.0, adam_betas=(0.9, 0.98), adam_eps=1e-9, progress=False,
                      log_every=100)
    Trainer(model, cfg, loader).train()
    return model.eval()


@pytest.fixture(scope="module")
def held_out():
    train = {tuple(s) for s, _ in shifted("copy", 4000, seed=0)}
    test = [(s, t) for s, t in shifted("copy", 300, seed=1) if tuple(s) not in train]
    assert len(test) > 250
    return test


def test_copy_task_reaches_exact_match_on_held_out_sequences(copy_model, held_out):
    batch = COLLATE.source([s for s, _ in held_out])
    hyps = greedy_decode(copy_model, **batch)
    assert exact_match(hyps, [t for _, t in held_out]) == 1.0


def test_cached_equals_uncached_and_beam_one_equals_greedy_on_the_trained_model(copy_model, held_out):
    batch = COLLATE.source([s for s, _ in held_out[:64]])
    greedy = greedy_decode(copy_model, **batch)
    assert greedy_decode(copy_model, **batch, use_cache=False) == greedy
    assert beam_search(copy_model, **batch, beam_size=1) == greedy
    beam = beam_search(copy_model, **batch, beam_size=4)
    assert beam_search(copy_model, **batch, beam_size=4, use_cache=False) == beam


@pytest.mark.parametrize("seed", [0, 2, 3])  # seeds whose random model does not stop at once
def test_untrained_model_cached_uncached_greedy_beam_agree(seed):
    """A random model makes long, varied outputs: the strongest check that the cache changes nothing."""
    model = model_for(seed)
    sources = [s for s, _ in shifted("copy", 12, seed=seed + 10)]
    batch = COLLATE.source(sources)
    greedy = greedy_decode(model, **batch, max_new_tokens=25)
    assert any(len(h) > 5 for h in greedy)
    assert greedy_decode(model, **batch, max_new_tokens=25, use_cache=False) == greedy
    assert beam_search(model, **batch, beam_size=1, max_new_tokens=25) == greedy
    for early in (True, False):
        cached = beam_search(model, **batch, beam_size=3, max_new_tokens=25, early_stopping=early)
        assert beam_search(model, **batch, beam_size=3, max_new_tokens=25, early_stopping=early,
                           use_cache=False) == cached


def test_cached_step_logits_match_full_forward():
    """Feeding one token at a time through the cache gives the full forward's logits at every position."""
    from bertforge.models.seq2seq.model import new_caches

    model = model_for(3)
    src = torch.tensor([[7, 8, 9, 10, EOS], [11, 12, EOS, PAD, PAD]])
    mask = src.ne(PAD).long()
    tgt = torch.tensor([[BOS, 6, 7, 8, 9], [BOS, 10, 11, 12, 13]])
    full = model(src, tgt, attention_mask=mask).logits
    memory = model.encode(src, mask)
    caches = new_caches(len(model.decoder.layers))
    steps = [model.project(model.decode(tgt[:, t:t + 1], memory, mask, caches=caches)) for t in range(tgt.size(1))]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)


def test_batched_decoding_equals_one_sentence_at_a_time():
    model = model_for(4)
    sources = [s for s, _ in shifted("reverse", 4, seed=5)]
    batch = COLLATE.source(sources)
    greedy = greedy_decode(model, **batch, max_new_tokens=8)
    beam = beam_search(model, **batch, beam_size=3, max_new_tokens=8)
    for i, s in enumerate(sources):
        one = COLLATE.source([s])
        assert greedy_decode(model, **one, max_new_tokens=8) == [greedy[i]]
        assert beam_search(model, **one, beam_size=3, max_new_tokens=8) == [beam[i]]


class ScriptedModel(Seq2SeqTransformer):
    """A model whose next-token distribution is a fixed table of the prefix (a hand-checkable beam case).

    Vocabulary: PAD 0, BOS 2, EOS 3, a 5, b 6 (others ~0). After BOS: p(a) = 0.5, p(b) = 0.4.
    After "a": p(EOS) = 0.3 and the rest spread thin; after "b": p(EOS) = 0.9.
    Greedy takes "a" then EOS: p = 0.5 * 0.3 = 0.15; the best sentence is "b EOS": 0.4 * 0.9 = 0.36.
    """

    TABLE = {(BOS,): {5: 0.5, 6: 0.4}, (BOS, 5): {EOS: 0.3}, (BOS, 6): {EOS: 0.9}}

    def decode(self, decoder_input_ids, memory, attention_mask=None, decoder_attention_mask=None, caches=None):
        """'Hidden state' at position t = the prefix y_0..y_t, padded with -1: (B, T, T)."""
        assert caches is None, "the table needs the whole prefix: decode without the cache"
        B, T = decoder_input_ids.shape
        hidden = torch.full((B, T, T), -1)
        for t in range(T):
            hidden[:, t, :t + 1] = decoder_input_ids[:, :t + 1]
        return hidden

    def project(self, hidden):  # (R, T) prefixes -> (R, V) log-probabilities from the table
        V = self.config.tgt_vocab_size
        out = torch.empty(hidden.size(0), V)
        for r, row in enumerate(hidden.tolist()):
            table = self.TABLE.get(tuple(x for x in row if x >= 0), {})
            probs = torch.zeros(V)
            rest = [i for i in range(V) if i not in table and i not in (PAD, BOS)]
            probs[rest] = (1.0 - sum(table.values())) / len(rest)
            for tok, p in table.items():
                probs[tok] = p
            out[r] = probs.log()
        return out


def test_beam_search_finds_the_sequence_greedy_misses():
    model = ScriptedModel(Seq2SeqConfig.preset("tiny", src_vocab_size=10, tgt_vocab_size=10))
    src = torch.tensor([[7, EOS]])
    assert greedy_decode(model, src, max_new_tokens=3, use_cache=False) == [[5]]
    assert beam_search(model, src, beam_size=2, alpha=0.0, max_new_tokens=3, use_cache=False) == [[6]]
    assert beam_search(model, src, beam_size=1, alpha=0.0, max_new_tokens=3, use_cache=False) == [[5]]


def test_length_penalty_formula():
    assert length_penalty(7, 0.6) == pytest.approx(((5 + 7) / 6) ** 0.6)
    assert length_penalty(30, 0.0) == 1.0


def test_decoding_rejects_bad_arguments():
    model = model_for(0)
    src = torch.tensor([[6, 7, EOS]])
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(model, src, beam_size=0)
    with pytest.raises(ValueError, match="too large"):
        beam_search(model, src, beam_size=8)
    with pytest.raises(ValueError, match="batch, src_len"):
        greedy_decode(model, src[0])


def test_noam_schedule_as_the_translation_recipe_uses_it(tmp_path):
    """lr at step s (1-based) = factor * d_model^-0.5 * min(s^-0.5, s * warmup^-1.5): rises, peaks at warmup, decays."""
    model = model_for(0)
    loader = TokenBatchLoader(shifted("copy", 200, seed=0), 256, COLLATE, seed=0)
    factor, warmup, d = 2.0, 4, model.config.d_model
    cfg = TrainConfig(out_dir=str(tmp_path), max_steps=10, lr=factor, schedule="noam", noam_d_model=d,
                      warmup_steps=warmup, weight_decay=0.0, progress=False, log_every=1, save_every=0)
    log = Trainer(model, cfg, loader).train()
    lrs = [r["lr"] for r in log if "lr" in r]
    expected = [factor * d ** -0.5 * min(s ** -0.5, s * warmup ** -1.5) for s in range(1, 11)]
    assert lrs == pytest.approx(expected, rel=1e-9)
    assert max(range(10), key=lambda i: lrs[i]) == warmup - 1
    assert lrs[0] == pytest.approx(factor * noam(0, warmup, 0, d))
    assert math.isclose(lrs[warmup - 1], factor * (d * warmup) ** -0.5)
