"""word2vec: the sampling distributions, the SGNS gradient, the SGD step, training, files, evaluation, CLI."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from bertforge.cli.main import main
from bertforge.models.word2vec.evaluation import (
    evaluate_analogies,
    evaluate_word_pairs,
    gensim_test_file,
    rankdata,
    spearman,
)
from bertforge.models.word2vec.keyed_vectors import KeyedVectors
from bertforge.models.word2vec.model import (
    Vocab,
    Word2Vec,
    Word2VecConfig,
    draw_negatives,
    keep_probabilities,
    negative_cdf,
    read_sentences,
    sgns_grad,
    sgns_loss,
    subsample_mask,
    tokenize,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest


def topic_corpus(n_sentences: int = 1500, seed: int = 0) -> list[list[str]]:
    """Sentences from one of two disjoint topics, sharing function words: a model must separate the topics."""
    rng = random.Random(seed)
    topics = [["cat", "dog", "horse", "cow", "sheep", "goat"], ["red", "blue", "green", "yellow", "white", "black"]]
    glue = ["the", "a", "and", "of"]
    out = []
    for _ in range(n_sentences):
        words = topics[rng.randrange(2)]
        out.append([rng.choice(words) if rng.random() < 0.7 else rng.choice(glue) for _ in range(10)])
    return out


# ---------------------------------------------------------------------------------------------
# Sampling distributions
# ---------------------------------------------------------------------------------------------


def test_negative_table_follows_count_to_the_three_quarters():
    counts = np.array([5000, 1200, 300, 40, 7, 1])
    cdf = negative_cdf(counts, 0.75)
    p = counts ** 0.75 / (counts ** 0.75).sum()
    np.testing.assert_allclose(np.diff(cdf.numpy(), prepend=0.0), p, rtol=1e-12)  # each word's share
    # drawing samples P_n: 5-sigma binomial bounds on 400k draws
    draws = draw_negatives(cdf, (400_000,), torch.Generator().manual_seed(0))
    freq = np.bincount(draws.numpy(), minlength=len(counts)) / 400_000
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / 400_000) + 1e-6)
    # exponent 1 is the unigram distribution itself, 0 the uniform one
    np.testing.assert_allclose(np.diff(negative_cdf(counts, 1.0).numpy(), prepend=0.0), counts / counts.sum())
    np.testing.assert_allclose(np.diff(negative_cdf(counts, 0.0).numpy(), prepend=0.0), np.full(6, 1 / 6))


def test_negative_table_equals_gensims_cum_table():
    gensim = pytest.importorskip("gensim")
    counts = np.array([900, 350, 350, 20, 6, 5])
    model = gensim.models.Word2Vec(vector_size=4, min_count=1, negative=5, workers=1)
    model.build_vocab_from_freq({f"w{i}": int(c) for i, c in enumerate(counts)})
    order = [int(w[1:]) for w in model.wv.index_to_key]  # gensim sorts by count; ties in its own order
    theirs = model.cum_table / float(model.cum_table[-1])  # gensim: integers up to 2^31 - 1
    np.testing.assert_allclose(negative_cdf(counts[order], 0.75).numpy(), theirs, atol=1e-9)


def test_keep_probabilities_are_the_c_tools_formula_and_gensims():
    counts = np.array([60_000, 9_000, 1_000, 120, 5])
    sample = 1e-3
    T = counts.sum()
    # word2vec.c: ran = (sqrt(cn / (sample * train_words)) + 1) * (sample * train_words) / cn
    expected = [min(1.0, (math.sqrt(c / (sample * T)) + 1) * (sample * T) / c) for c in counts]
    np.testing.assert_allclose(keep_probabilities(counts, sample), expected, rtol=1e-12)
    assert keep_probabilities(counts, 1e-3)[-1] == 1.0  # rare words are always kept
    np.testing.assert_array_equal(keep_probabilities(counts, 0), np.ones(5))

    gensim = pytest.importorskip("gensim")
    words = [f"w{i}" for i in range(len(counts))]
    model = gensim.models.Word2Vec(vector_size=4, min_count=1, sample=sample, workers=1)
    model.build_vocab_from_freq(dict(zip(words, counts.tolist())))
    theirs = [model.wv.get_vecattr(w, "sample_int") / 2**32 for w in words]  # gensim stores p * 2^32
    np.testing.assert_allclose(keep_probabilities(counts, sample), theirs, atol=1e-9)


def test_subsampling_keeps_each_word_at_its_probability():
    counts = np.array([50_000, 10])
    keep = torch.tensor(keep_probabilities(counts, 1e-3), dtype=torch.float32)
    ids = torch.tensor([0] * 200_000 + [1] * 1000)  # word 1 is rare: keep probability 1
    kept = subsample_mask(ids, keep, torch.Generator().manual_seed(0))
    rate = kept[:200_000].float().mean().item()
    p = keep[0].item()
    assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / 200_000)
    assert kept[200_000:].all()  # keep probability 1


# ---------------------------------------------------------------------------------------------
# The loss, its gradient, and one SGD step
# ---------------------------------------------------------------------------------------------


def test_sgns_gradient_hand_computed_case():
    h = torch.tensor([[[1.0, 0.0]]], dtype=torch.float64)  # one context vector
    w = torch.tensor([[[2.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)  # target (2, 0), one negative (0, 1)
    valid = torch.ones(1, 1, 2, dtype=torch.float64)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    # L = -log sigma(h.w_pos) - log sigma(-h.w_neg) = -log sigma(2) - log sigma(0)
    assert sgns_loss(h, w, valid).item() == pytest.approx(-math.log(sig(2)) - math.log(0.5), rel=1e-12)
    gh, gw, losses = sgns_grad(h, w, valid)
    # dL/dh = (sigma(2) - 1) w_pos + sigma(0) w_neg
    np.testing.assert_allclose(gh[0, 0].numpy(), [(sig(2) - 1) * 2, 0.5], rtol=1e-12)
    # dL/dw_pos = (sigma(2) - 1) h, dL/dw_neg = sigma(0) h
    np.testing.assert_allclose(gw[0].numpy(), [[sig(2) - 1, 0], [0.5, 0]], rtol=1e-12)
    assert losses.sum().item() == pytest.approx(sgns_loss(h, w, valid).item(), rel=1e-12)


@pytest.mark.parametrize("M", [1, 6])
def test_sgns_gradient_matches_autograd(M):
    g = torch.Generator().manual_seed(M)
    h = torch.randn(7, M, 12, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(7, 6, 12, generator=g, dtype=torch.float64, requires_grad=True)
    valid = (torch.rand(7, M, 6, generator=g) < 0.8).double()
    sgns_loss(h, w, valid).backward()
    gh, gw, losses = sgns_grad(h.detach(), w.detach(), valid)
    torch.testing.assert_close(gh, h.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gw, w.grad, rtol=1e-10, atol=1e-12)
    assert losses.sum().item() == pytest.approx(sgns_loss(h, w, valid).item(), rel=1e-10)


@pytest.mark.parametrize("sg", [True, False])
def test_one_step_is_sgd_on_the_summed_loss(sg):
    """`_step` = syn -= alpha * dL/dsyn for the batch's loss (CBOW: each context word gets dL/dh undivided);
    rows repeated in the batch (centre 0, context 3) get the summed gradient."""
    V, D, K = 30, 8, 3
    model = Word2Vec(Word2VecConfig(sg=sg, vector_size=D, negative=K, min_count=1, dup_cap=10**6))
    model.vocab = Vocab([f"w{i}" for i in range(V)], np.ones(V, dtype=np.int64))
    g = torch.Generator().manual_seed(0)
    model.syn0 = torch.randn(V, D, generator=g) * 0.3
    model.syn1neg = torch.randn(V, D, generator=g) * 0.3
    syn0, syn1 = model.syn0.clone().double(), model.syn1neg.clone().double()
    centre = torch.tensor([0, 1, 2, 0])
    ctx = torch.tensor([[3, 4, 5, 6], [7, 0, 9, 10], [11, 12, 3, 14], [3, 15, 16, 17]])
    ok = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 1], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)
    neg = torch.tensor([[5, 0, 8], [1, 2, 29], [3, 3, 2], [7, 0, 11]])  # 0 in row 0, 1 in row 1: skipped
    targets = torch.cat([centre[:, None], neg], 1)
    tvalid = torch.ones(4, 1 + K)
    tvalid[:, 1:] = (neg != centre[:, None]).float()
    loss, pairs = model._step(targets, tvalid, ctx, ok.float(), alpha=0.1)

    # reference: autograd on the same loss, in float64
    s0, s1 = syn0.clone().requires_grad_(), syn1.clone().requires_grad_()
    tvalid, okf = tvalid.double(), ok.double()
    if sg:
        h = s0[ctx]
        valid = okf[:, :, None] * tvalid[:, None, :]
        ref = sgns_loss(h, s1[targets], valid)
        ref.backward()
        exp0, exp1 = syn0 - 0.1 * s0.grad, syn1 - 0.1 * s1.grad
        assert pairs == int(ok.sum())
    else:
        h = ((s0[ctx] * okf[:, :, None]).sum(1) / okf.sum(1).clamp(min=1)[:, None])[:, None, :]
        h.retain_grad()
        valid = (tvalid * (okf.sum(1) > 0).double()[:, None])[:, None, :]
        ref = sgns_loss(h, s1[targets], valid)
        ref.backward()
        exp1 = syn1 - 0.1 * s1.grad
        exp0 = syn0.clone()
        for n in range(4):  # word2vec.c: neu1e (= dL/dh) added to every context word, not divided
            for m in range(ctx.size(1)):
                if ok[n, m]:
                    exp0[ctx[n, m]] -= 0.1 * h.grad[n, 0]
        assert pairs == 3  # the centre with no context is not trained
    assert loss == pytest.approx(ref.item(), rel=1e-5)
    torch.testing.assert_close(model.syn0.double(), exp0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.syn1neg.double(), exp1, rtol=1e-5, atol=1e-6)


def test_row_scale_caps_the_step_of_rows_repeated_in_a_batch():
    from bertforge.models.word2vec.model import _row_scale

    rows = torch.tensor([4, 4, 4, 7, 4, 9, 9])  # row 4 four times, 9 twice, 7 once
    assert _row_scale(rows, cap=2).tolist() == pytest.approx([0.5, 0.5, 0.5, 1.0, 0.5, 1.0, 1.0])
    assert _row_scale(rows, cap=4).tolist() == [1.0] * 7  # at most `cap` occurrences: plain SGD


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def topic_model(one_thread) -> Word2Vec:
    cfg = Word2VecConfig(sg=True, vector_size=16, window=3, min_count=1, sample=0, epochs=5, batch_size=256,
                         chunk_words=4096, seed=3)
    return Word2Vec(cfg).train(topic_corpus())


def test_training_separates_the_topics_and_the_loss_falls(topic_model):
    wv = topic_model.wv
    animals = {"cat", "dog", "horse", "cow", "sheep", "goat"}
    for w in ("cat", "horse"):
        near = {x for x, _ in wv.most_similar(w, topn=5)}
        assert near == animals - {w}
    assert wv.similarity("cat", "dog") > wv.similarity("cat", "red") + 0.3
    losses = topic_model.epoch_losses
    assert len(losses) == 5 and losses[-1] < losses[0]
    # the tally is per epoch: each epoch counts its own pairs, about the same number each time
    assert all(abs(p - topic_model.epoch_pairs[0]) < 0.05 * topic_model.epoch_pairs[0] for p in topic_model.epoch_pairs)
    assert topic_model.words_trained == 5 * 15_000


def test_cbow_trains_too():
    cfg = Word2VecConfig(sg=False, vector_size=16, window=3, min_count=1, sample=0, epochs=5, batch_size=256, seed=1)
    wv = Word2Vec(cfg).train(topic_corpus(800)).wv
    assert wv.similarity("red", "blue") > wv.similarity("red", "cat") + 0.3


def test_one_worker_is_reproducible_and_two_workers_train_too():
    cfg = dict(sg=True, vector_size=16, window=3, min_count=1, sample=0, epochs=2, batch_size=128, chunk_words=2000)
    corpus = topic_corpus(400)
    a = Word2Vec(Word2VecConfig(**cfg, seed=7)).train(corpus)
    b = Word2Vec(Word2VecConfig(**cfg, seed=7)).train(corpus)
    assert torch.equal(a.syn0, b.syn0) and a.epoch_losses == b.epoch_losses
    c = Word2Vec(Word2VecConfig(**cfg, seed=8)).train(corpus)
    assert not torch.equal(a.syn0, c.syn0)
    threads = torch.get_num_threads()
    hog = Word2Vec(Word2VecConfig(**{**cfg, "epochs": 5}, workers=2, seed=7)).train(topic_corpus())
    assert torch.get_num_threads() == threads  # the intra-op setting is restored
    assert hog.wv.similarity("cat", "dog") > hog.wv.similarity("cat", "red") + 0.3
    assert len(hog.epoch_losses) == 5 and hog.epoch_losses[-1] < hog.epoch_losses[0]


def test_vocab_min_count_order_and_encoding():
    vocab = Vocab.build([["b", "a", "b", "c"], ["a", "b", "d"]], min_count=2)
    assert vocab.words == ["b", "a"] and vocab.counts.tolist() == [3, 2]
    ids, sent, raw = vocab.encode([["b", "x", "a"], ["c"], ["a"]])
    assert ids.tolist() == [0, 1, 1] and sent.tolist() == [0, 0, 2] and raw == 5
    with pytest.raises(ValueError, match="empty vocabulary"):
        Vocab.build([["a"]], min_count=2)


def test_tokenize_and_read_sentences(tmp_path):
    assert tokenize("It ran down, please. Don't!") == ["it", "ran", "down", "please", "don't"]
    (tmp_path / "c.txt").write_text("Hello world.\n\nA b\n", encoding="utf-8")
    assert list(read_sentences(tmp_path / "c.txt")) == [["hello", "world"], ["a", "b"]]
    with pytest.raises(FileNotFoundError):
        list(read_sentences(tmp_path / "missing.txt"))


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="window"):
        Word2VecConfig(window=0)
    with pytest.raises(ValueError, match="min_alpha"):
        Word2VecConfig(alpha=0.01, min_alpha=0.1)
    with pytest.raises(ValueError, match="negative"):
        Word2VecConfig(negative=0)


# ---------------------------------------------------------------------------------------------
# Vectors: queries and files (gensim as the reference)
# ---------------------------------------------------------------------------------------------


def test_most_similar_similarity_and_analogy_by_hand():
    kv = KeyedVectors(["man", "king", "woman", "queen", "apple"],
                      np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1], [1, -1, 0.2]], dtype=np.float32))
    assert kv.similarity("man", "king") == pytest.approx(1 / math.sqrt(2), rel=1e-6)
    assert kv.analogy("man", "king", "woman")[0][0] == "queen"
    assert [w for w, _ in kv.most_similar("man", topn=10)] == ["king", "apple", "woman", "queen"][: len(kv) - 1]
    with pytest.raises(KeyError, match="not in vocabulary"):
        kv.most_similar("pear")


@pytest.mark.parametrize("binary", [False, True])
def test_our_files_load_in_gensim_with_the_same_neighbours(topic_model, tmp_path, binary):
    gensim = pytest.importorskip("gensim")
    wv = topic_model.wv
    path = tmp_path / ("v.bin" if binary else "v.txt")
    wv.save_word2vec_format(path, binary=binary)
    theirs = gensim.models.KeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert theirs.index_to_key == wv.words
    np.testing.assert_array_equal(theirs.vectors, wv.vectors)  # exact: %.9g round-trips float32
    for w in ("cat", "red", "the"):
        ours, ref = wv.most_similar(w, topn=8), theirs.most_similar(w, topn=8)
        assert [x for x, _ in ours] == [x for x, _ in ref]
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in ref], atol=1e-5)
    ours = wv.most_similar(positive=["cat", "red"], negative=["dog"], topn=5)
    ref = theirs.most_similar(positive=["cat", "red"], negative=["dog"], topn=5)
    assert [x for x, _ in ours] == [x for x, _ in ref]
    assert wv.similarity("cat", "dog") == pytest.approx(float(theirs.similarity("cat", "dog")), abs=1e-6)
    # and back: our reader, with format detection, gives the same vectors
    again = KeyedVectors.load_word2vec_format(path)
    assert again.words == wv.words and np.array_equal(again.vectors, wv.vectors)


@pytest.mark.parametrize("binary", [False, True])
def test_we_read_gensim_files(tmp_path, binary):
    gensim = pytest.importorskip("gensim")
    rng = np.random.default_rng(0)
    kv = gensim.models.KeyedVectors(5)
    kv.add_vectors(["alpha", "beta", "gamma", "café", "x"], rng.normal(size=(5, 5)).astype(np.float32))
    path = tmp_path / "g.vec"
    kv.save_word2vec_format(str(path), binary=binary)
    ours = KeyedVectors.load_word2vec_format(path, binary=binary)
    assert ours.words == kv.index_to_key
    np.testing.assert_allclose(ours.vectors, kv.vectors, rtol=1e-6)
    assert KeyedVectors.load_word2vec_format(path, limit=2).words == ["alpha", "beta"]


def test_bad_vector_files(tmp_path):
    (tmp_path / "bad.txt").write_text("hello world\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a word2vec file"):
        KeyedVectors.load_word2vec_format(tmp_path / "bad.txt")
    (tmp_path / "short.txt").write_text("2 3\na 1 2 3\nb 1 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 3 has 2 numbers, expected 3"):
        KeyedVectors.load_word2vec_format(tmp_path / "short.txt", binary=False)
    with pytest.raises(FileNotFoundError):
        KeyedVectors.load_word2vec_format(tmp_path / "none.txt")


# ---------------------------------------------------------------------------------------------
# Evaluation: gensim's numbers on the same vectors
# ---------------------------------------------------------------------------------------------


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 6, 200).astype(float), rng.normal(size=200)
    np.testing.assert_allclose(rankdata(x), stats.rankdata(x))
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


@pytest.fixture(scope="module")
def eval_vectors():
    """Vectors for the words of the three files, with the analogy offsets planted (plus noise) for
    some sections, so the scores are far from trivial."""
    gensim = pytest.importorskip("gensim")
    files = {k: gensim_test_file(v) for k, v in
             (("ws", "wordsim353.tsv"), ("sl", "simlex999.txt"), ("an", "questions-words.txt"))}
    rng = np.random.default_rng(0)
    words: dict[str, np.ndarray] = {}
    offsets: dict[str, np.ndarray] = {}
    section = ""
    for line in files["an"].read_text().splitlines():
        if line.startswith(":"):
            section = line[1:].strip()
            offsets[section] = rng.normal(size=32) * 2
            continue
        a, b, c, d = line.lower().split()
        for x, y in ((a, b), (c, d)):
            words.setdefault(x, rng.normal(size=32))
            words.setdefault(y, words[x] + offsets[section] + rng.normal(size=32) * 0.9)
    for key in ("ws", "sl"):
        for line in files[key].read_text().splitlines():
            if not line.startswith("#"):
                a, b, score = line.lower().split("\t")
                words.setdefault(a, rng.normal(size=32))
                words.setdefault(b, words[a] * float(score) / 5 + rng.normal(size=32))  # nearer when similar
    names = sorted(words)
    rng.shuffle(names)
    names = names[: int(len(names) * 0.9)]  # leave some words out: unknown-word handling is exercised
    vecs = np.stack([words[w] for w in names]).astype(np.float32)
    theirs = gensim.models.KeyedVectors(32)
    theirs.add_vectors(names, vecs)
    return KeyedVectors(names, vecs), theirs, files


def test_word_pair_spearman_equals_gensim(eval_vectors):
    ours, theirs, files = eval_vectors
    for key in ("ws", "sl"):
        r = evaluate_word_pairs(ours, files[key])
        pear, spear, oov_pct = theirs.evaluate_word_pairs(str(files[key]))
        assert r.spearman == pytest.approx(spear.statistic, abs=1e-6)
        assert r.pearson == pytest.approx(pear.statistic, abs=1e-6)
        assert 100 * r.oov_ratio == pytest.approx(oov_pct, abs=1e-9)
        assert r.oov_pairs > 0 and r.spearman > 0.2


def test_analogy_accuracy_equals_gensim_on_the_top_words(eval_vectors):
    ours, theirs, files = eval_vectors
    restrict = 700  # fewer than the vocabulary: the restriction matters
    r = evaluate_analogies(ours, files["an"], restrict_vocab=restrict)
    score, sections = theirs.evaluate_word_analogies(str(files["an"]), restrict_vocab=restrict)
    assert r.accuracy == pytest.approx(score, abs=1e-12)
    total = next(s for s in sections if s["section"] == "Total accuracy")
    assert (r.correct, r.total) == (len(total["correct"]), len(total["correct"]) + len(total["incorrect"]))
    for s in sections[:-1]:
        assert r.sections[s["section"]] == (len(s["correct"]), len(s["correct"]) + len(s["incorrect"]))
    assert 0.05 < r.accuracy < 0.95 and r.oov_questions > 0


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def test_cli_train_eval_similar(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("\n".join(" ".join(s) for s in topic_corpus(600)), encoding="utf-8")
    (corpus / "heldout.txt").write_text("zzz " * 50, encoding="utf-8")
    out = tmp_path / "vec.bin"
    assert main(["word2vec", "train", "--corpus", str(corpus), "--out", str(out), "--sg", "--dim", "12",
                 "--min-count", "1", "--epochs", "3", "--binary", "--quiet", "--exclude", "heldout.txt"]) == 0
    kv = KeyedVectors.load_word2vec_format(out)
    assert kv.vector_size == 12 and "zzz" not in kv and "cat" in kv
    capsys.readouterr()
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("# a\ncat\tdog\t9\ncat\tred\t1\nred\tblue\t8\nunknownword\tcat\t3\n", encoding="utf-8")
    questions = tmp_path / "q.txt"
    questions.write_text(": s\ncat dog red blue\n", encoding="utf-8")
    assert main(["word2vec", "eval", str(out), "--wordsim", str(pairs), "--simlex", str(pairs),
                 "--analogies", str(questions)]) == 0
    text = capsys.readouterr().out
    assert "WordSim-353: Spearman" in text and "1 skipped" in text and "Google analogies" in text
    assert main(["word2vec", "similar", str(out), "cat", "--topn", "3"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["word2vec", "train", "--corpus", str(tmp_path / "nope"), "--out", str(tmp_path / "v")]) == 2
    assert "corpus path not found" in capsys.readouterr().err
    vec = tmp_path / "v.txt"
    KeyedVectors(["a", "b"], np.eye(2)).save_word2vec_format(vec)
    assert main(["word2vec", "similar", str(vec), "zebra"]) == 2
    assert "not in the vocabulary" in capsys.readouterr().err
