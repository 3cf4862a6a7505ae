"""GPT (decoder-only LM): HF GPT-2 parity both ways, the look-ahead mask, the KV cache, generation, a copy task,
the fused linear cross-entropy, train-lm (resume exactness) and the generate CLI."""
from __future__ import annotations

import io
import json
import logging
import math

import pytest
import torch
import torch.nn.functional as F

from bertforge.cli.main import main as cli
from bertforge.errors import BertforgeError
from bertforge.models.gpt.checkpoint import hf_to_ours, ours_to_hf
from bertforge.models.gpt.config import GPTConfig
from bertforge.models.gpt.generation import apply_repetition_penalty, generate, top_k_filter, top_p_filter
from bertforge.models.gpt.modeling import GPTLMHeadModel, GPTModel, new_caches
from bertforge.nn.losses import linear_cross_entropy
from tests.helpers import SRC

transformers = pytest.importorskip("transformers")

V = 50
SHAPE = dict(vocab_size=V, n_positions=24, n_embd=16, n_layer=2, n_head=4, bos_token_id=1, eos_token_id=2,
             pad_token_id=0)
NO_DROPOUT = dict(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    yield


def hf_gpt2(seed: int = 0, **overrides) -> transformers.GPT2LMHeadModel:
    torch.manual_seed(seed)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(**{**SHAPE, **NO_DROPOUT, **overrides})).eval()


def ours_from(hf) -> GPTLMHeadModel:
    model = GPTLMHeadModel(GPTConfig(**SHAPE, **NO_DROPOUT)).eval()
    model.load_state_dict(hf.state_dict())
    return model


def ids_batch(B: int = 3, T: int = 10, seed: int = 1) -> torch.Tensor:
    return torch.randint(3, V, (B, T), generator=torch.Generator().manual_seed(seed))


# ---- HF GPT-2 parity -----------------------------------------------------------------------------


def test_hf_state_dict_gives_hf_logits_and_loss():
    hf = hf_gpt2()
    ours = ours_from(hf)
    ids = ids_batch()
    a, b = hf(ids, labels=ids), ours(ids, labels=ids)
    torch.testing.assert_close(b.logits, a.logits, atol=1e-5, rtol=1e-5)
    assert float(b.loss) == pytest.approx(float(a.loss), abs=1e-6)


def test_left_padded_batch_matches_hf_with_the_same_positions():
    hf = hf_gpt2(seed=3)
    ours = ours_from(hf)
    ids = ids_batch(seed=4)
    mask = torch.ones_like(ids)
    mask[0, :4] = 0
    mask[2, :1] = 0
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    a = hf(ids, attention_mask=mask, position_ids=pos).logits
    b = ours(ids, attention_mask=mask).logits  # positions from the mask by default
    real = mask.bool()
    torch.testing.assert_close(b[real], a[real], atol=1e-5, rtol=1e-5)


def test_checkpoint_moves_both_ways_through_files(tmp_path):
    torch.manual_seed(5)
    ours = GPTLMHeadModel(GPTConfig(**SHAPE, **NO_DROPOUT)).eval()
    ours.save_pretrained(tmp_path / "ours")
    hf, info = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    ids = ids_batch()
    torch.testing.assert_close(hf.eval()(ids).logits, ours(ids).logits, atol=1e-5, rtol=1e-5)
    # ... and HF's own save (Conv1D layout, fused c_attn) loads back here.
    hf.save_pretrained(tmp_path / "hf")
    back = GPTLMHeadModel.from_pretrained(tmp_path / "hf")
    torch.testing.assert_close(back(ids).logits, ours(ids).logits, atol=1e-6, rtol=1e-6)
    assert back.lm_head.weight is back.transformer.wte.weight  # still tied
    base = GPTModel.from_pretrained(tmp_path / "hf")  # the base model takes the LM checkpoint too
    torch.testing.assert_close(base(ids).last_hidden_state, ours.transformer(ids).last_hidden_state)


def test_name_mapping_is_a_round_trip_and_transposes_conv1d():
    hf = hf_gpt2()
    state = hf.state_dict()
    ours = hf_to_ours(state)
    w = state["transformer.h.0.attn.c_attn.weight"]  # (D, 3D), Conv1D layout
    torch.testing.assert_close(ours["transformer.blocks.layers.0.self_attn.w_k.weight"], w[:, 16:32].t())
    back = ours_to_hf(ours)
    assert set(back) == set(state)
    for k in state:
        torch.testing.assert_close(back[k], state[k], msg=k)


def test_training_loss_and_gradients_equal_hf():
    """Training mode uses the fused chunked cross-entropy; same loss and gradients as HF's unfused one."""
    hf = hf_gpt2(seed=2)
    ours = ours_from(hf)
    hf.train(), ours.train()
    ids = ids_batch(seed=7)
    labels = ids.clone()
    labels[1, 5:] = -100
    out = ours(ids, labels=labels)
    assert out.logits is None  # not materialised
    ref = hf(ids, labels=labels).loss
    assert float(out.loss) == pytest.approx(float(ref), abs=1e-6)
    out.loss.backward(), ref.backward()
    torch.testing.assert_close(ours.transformer.wte.weight.grad, hf.transformer.wte.weight.grad, atol=1e-6, rtol=1e-4)
    hf_grads = hf_to_ours({k: p.grad for k, p in hf.named_parameters()})
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, hf_grads[name], atol=1e-6, rtol=1e-4, msg=name)


@pytest.mark.parametrize("chunk_rows", [1, 3, None])
def test_linear_cross_entropy_equals_the_unfused_formula(chunk_rows):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(10, 8, generator=g, requires_grad=True)
    w = torch.randn(30, 8, generator=g, requires_grad=True)
    y = torch.randint(0, 30, (10,), generator=g)
    y[[2, 7]] = -100
    loss = linear_cross_entropy(h, w, y, chunk_rows=chunk_rows)
    ref = F.cross_entropy(h @ w.t(), y)
    assert float(loss) == pytest.approx(float(ref), abs=1e-6)
    gh, gw = torch.autograd.grad(loss * 3, (h, w))
    rh, rw = torch.autograd.grad(ref * 3, (h, w))
    torch.testing.assert_close(gh, rh), torch.testing.assert_close(gw, rw)
    assert float(linear_cross_entropy(h, w, torch.full_like(y, -100))) == 0.0  # nothing to predict


def test_linear_cross_entropy_under_bf16_autocast_is_close():
    g = torch.Generator().manual_seed(1)
    h, w = torch.randn(64, 32, generator=g), torch.randn(500, 32, generator=g) * 0.1
    y = torch.randint(0, 500, (64,), generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = linear_cross_entropy(h, w, y)
    assert float(loss) == pytest.approx(float(F.cross_entropy(h @ w.t(), y)), rel=1e-2)


def test_config_json_is_hf_gpt2_config_and_unsupported_options_are_refused(tmp_path):
    GPTConfig(**SHAPE).save(tmp_path / "config.json")
    hc = transformers.GPT2Config.from_pretrained(tmp_path)
    assert (hc.n_embd, hc.n_layer, hc.n_head, hc.vocab_size) == (16, 2, 4, V)
    with pytest.raises(BertforgeError, match="scale_attn_by_inverse_layer_idx"):
        GPTConfig.from_dict({**SHAPE, "scale_attn_by_inverse_layer_idx": True})
    with pytest.raises(BertforgeError, match="divisible"):
        GPTConfig(n_embd=30, n_head=4)


# ---- the look-ahead mask and the KV cache -------------------------------------------------------


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_changing_a_later_token_never_changes_earlier_logits(impl):
    model = GPTLMHeadModel(GPTConfig(**SHAPE, **NO_DROPOUT, attn_implementation=impl)).eval()
    ids = ids_batch()
    for t in range(ids.size(1) - 1):
        changed = ids.clone()
        changed[:, t + 1] = (changed[:, t + 1] + 7) % V
        a, b = model(ids).logits, model(changed).logits
        torch.testing.assert_close(a[:, :t + 1], b[:, :t + 1], rtol=0, atol=1e-6)
        assert (a[:, t + 1] - b[:, t + 1]).abs().max() > 1e-4  # position t + 1 itself does see it


def test_cached_step_by_step_logits_equal_the_full_forward():
    model = GPTLMHeadModel(GPTConfig(**SHAPE, **NO_DROPOUT)).eval()
    ids = ids_batch(T=12)
    full = model(ids).logits
    caches = new_caches(model.config)
    steps = [model(ids[:, :5], caches=caches).logits]  # a prompt, then one token at a time
    for t in range(5, 12):
        steps.append(model(ids[:, t:t + 1], caches=caches).logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_greedy_generation_equals_hf_generate_with_and_without_cache():
    hf = hf_gpt2(seed=11)
    ours = ours_from(hf)
    ids = ids_batch(B=2, T=5, seed=12)
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    ids[0, :2] = 0
    ref = hf.generate(ids, attention_mask=mask, max_new_tokens=12, do_sample=False, eos_token_id=None,
                      pad_token_id=0)
    for use_cache in (True, False):
        out = generate(ours, ids, mask, max_new_tokens=12, eos_token_id=None, use_cache=use_cache)
        assert torch.equal(out, ref)
    alone = generate(ours, ids[:1, 2:], max_new_tokens=12, eos_token_id=None)  # left padding changes nothing
    assert torch.equal(alone[0], ref[0, 2:])


def test_seeded_sampling_is_reproducible_and_the_seed_matters():
    model = GPTLMHeadModel(GPTConfig(**SHAPE, **NO_DROPOUT)).eval()
    ids = ids_batch(B=2, T=3)
    kw = dict(max_new_tokens=15, do_sample=True, temperature=1.5, top_k=20, top_p=0.95, eos_token_id=None)
    a, b = generate(model, ids, seed=7, **kw), generate(model, ids, seed=7, **kw)
    assert torch.equal(a, b)
    assert torch.equal(generate(model, ids, seed=7, use_cache=False, **kw), a)  # the cache changes nothing
    assert not torch.equal(generate(model, ids, seed=8, **kw), a)
    greedy = generate(model, ids, max_new_tokens=15, eos_token_id=None)
    assert torch.equal(generate(model, ids, seed=3, **{**kw, "temperature": 0.0}), greedy)  # T = 0: greedy


def test_eos_ends_a_row_and_the_rest_is_padding():
    model = GPTLMHeadModel(GPTConfig(**SHAPE, **NO_DROPOUT)).eval()
    ids = ids_batch(B=1, T=3)
    free = generate(model, ids, max_new_tokens=10, eos_token_id=None)
    eos = int(free[0, 5])  # pretend the 3rd new token is end-of-text
    out = generate(model, ids, max_new_tokens=10, eos_token_id=eos, pad_token_id=0)
    assert out.size(1) <= 3 + 10 and int(out[0, 3:].tolist().index(eos)) <= 2
    first = out[0, 3:].tolist().index(eos)
    assert out[0, 3 + first + 1:].eq(0).all()


# ---- sampling processors on hand-computed cases --------------------------------------------------


def test_top_k_top_p_and_repetition_penalty_by_hand():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    keep = lambda x: torch.isfinite(x)[0].tolist()  # noqa: E731
    assert keep(top_k_filter(logits, 2)) == [True, True, False, False]
    assert keep(top_p_filter(logits, 0.7)) == [True, True, False, False]  # 0.5 < 0.7 <= 0.8
    assert keep(top_p_filter(logits, 0.8)) == [True, True, False, False]  # 0.8 reached exactly
    assert keep(top_p_filter(logits, 0.81)) == [True, True, True, False]
    assert keep(top_p_filter(logits, 0.1)) == [True, False, False, False]  # the top token always stays
    scores = torch.tensor([[2.0, -2.0, 1.0]])
    out = apply_repetition_penalty(scores, torch.tensor([[0, 1, 2]]), torch.tensor([[1, 1, 0]]), 2.0)
    assert out.tolist() == [[1.0, -4.0, 1.0]]  # token 2 is padding in the context: untouched


def test_bad_generation_input_is_refused_or_documented(caplog):
    model = GPTLMHeadModel(GPTConfig(**SHAPE, **NO_DROPOUT)).eval()
    ids = ids_batch(B=1, T=4)
    for kw, msg in [(dict(top_p=0.0, do_sample=True), "top_p"), (dict(top_p=1.5, do_sample=True), "top_p"),
                    (dict(temperature=-1.0, do_sample=True), "temperature"),
                    (dict(max_new_tokens=24), "context window"), (dict(repetition_penalty=0.0), "repetition_penalty")]:
        with pytest.raises(BertforgeError, match=msg):
            generate(model, ids, **{"max_new_tokens": 3, **kw})
    with pytest.raises(BertforgeError, match="empty"):
        generate(model, ids[:, :0])
    right_padded = torch.ones(2, 4, dtype=torch.long)
    right_padded[1, 3] = 0
    with pytest.raises(BertforgeError, match="left-padded"):
        generate(model, ids.repeat(2, 1), right_padded)
    long_prompt = ids_batch(B=1, T=22)
    with caplog.at_level(logging.WARNING, logger="bertforge"):
        out = generate(model, long_prompt, max_new_tokens=5, eos_token_id=None)
    assert "keeping the last 19 prompt tokens" in caplog.text
    assert torch.equal(out[0, :19], long_prompt[0, 3:])  # cut from the left
    assert torch.equal(out, generate(model, long_prompt[:, 3:], max_new_tokens=5, eos_token_id=None))


# ---- a tiny model learns to copy -------------------------------------------------------------------


def test_tiny_gpt_learns_to_copy_to_full_greedy_accuracy(tmp_path):
    """[bos] x1..x5 [sep] -> x1..x5 for random x: 100% exact copies by greedy decoding after 250 steps."""
    from bertforge.data.loader import ResumableLoader
    from bertforge.training.trainer import TrainConfig, Trainer

    L = 5

    def sequences(n: int, seed: int) -> torch.Tensor:
        x = torch.randint(3, V, (n, L), generator=torch.Generator().manual_seed(seed))
        return torch.cat([torch.full((n, 1), 1), x, torch.full((n, 1), 2), x], dim=1)

    train = sequences(16000, 0)

    def collate(rows):
        ids = torch.stack([r for r in rows])
        labels = ids.clone()
        labels[:, :L + 2] = -100  # only the copy is scored
        return {"input_ids": ids, "labels": labels}

    torch.manual_seed(0)
    model = GPTLMHeadModel(GPTConfig(**{**SHAPE, "n_embd": 32, "n_head": 2}, **NO_DROPOUT))
    trainer = Trainer(model, TrainConfig(out_dir=str(tmp_path), max_steps=250, lr=3e-3, weight_decay=0.0,
                                         warmup_steps=10, progress=False, log_every=50),
                      ResumableLoader(list(train), 64, collate))
    trainer.train()
    test = sequences(300, 1)
    out = generate(model, test[:, :L + 2], max_new_tokens=L, eos_token_id=None)
    assert (out[:, L + 2:] == test[:, L + 2:]).all(dim=1).float().mean() == 1.0


# ---- train-lm, generate, and the text helpers -------------------------------------------------------

CORPUS = ("The cat sat on the mat. The dog sat on the log.\nA cat and a dog met in the park.\n\n"
          "The sun rose over the hills. Birds sang in the trees.\n\nIt was a bright cold day in April.\n"
          "The clocks were striking thirteen. The cat slept.\n")


def write_vocab(path) -> None:
    words = sorted(set(CORPUS.lower().replace(".", " . ").split()))
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")


def train_args(tmp_path, out: str, *extra: str) -> list[str]:
    return ["train-lm", "--corpus", str(tmp_path / "c.txt"), "--vocab", str(tmp_path / "vocab.txt"), "--out",
            str(tmp_path / out), "--config", "tiny", "--block-size", "8", "--batch-size", "2", "--eval-every", "2",
            "--save-every", "2", "--warmup-ratio", "0", "--lr", "3e-3", "--quiet", *extra]


@pytest.fixture()
def corpus(tmp_path):
    (tmp_path / "c.txt").write_text(CORPUS)
    write_vocab(tmp_path / "vocab.txt")
    return tmp_path


def test_train_lm_resume_is_exact_and_the_model_loads_in_hf(corpus, capsys):
    """A run that dies after its step-2 checkpoint and is resumed ends where the uninterrupted run ends."""
    import shutil

    tmp_path = corpus
    assert cli(train_args(tmp_path, "straight", "--max-steps", "4")) == 0
    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
    for gone in ("checkpoint-4", "model"):  # the crash: nothing after step 2 was written
        shutil.rmtree(tmp_path / "resumed" / gone)
    metrics = tmp_path / "resumed" / "metrics.jsonl"
    metrics.write_text("".join(x + "\n" for x in metrics.read_text().splitlines() if json.loads(x)["step"] <= 2))
    assert cli(train_args(tmp_path, "resumed", "--max-steps", "4", "--resume")) == 0
    a = GPTLMHeadModel.from_pretrained(tmp_path / "straight" / "model")
    b = GPTLMHeadModel.from_pretrained(tmp_path / "resumed" / "model")
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name
    rec = lambda run: [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert [r for r in rec("resumed") if "eval_loss" in r] == [r for r in rec("straight") if "eval_loss" in r]
    last = rec("straight")[-1]
    assert last["eval_perplexity"] == pytest.approx(math.exp(last["eval_loss"]))
    assert (tmp_path / "straight" / "perplexity.png").stat().st_size > 1000
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "straight" / "model").eval()
    ids = torch.tensor([[3, 5, 6, 7]])
    torch.testing.assert_close(hf(ids).logits, a(ids).logits, atol=1e-5, rtol=1e-5)
    assert "held-out at step 4" in capsys.readouterr().out


def test_generate_cli_streams_batches_and_refuses_bad_input(corpus, capsys):
    tmp_path = corpus
    assert cli(train_args(tmp_path, "run", "--max-steps", "2")) == 0
    model_dir = str(tmp_path / "run" / "model")
    capsys.readouterr()
    assert cli(["generate", "--model", model_dir, "the cat", "--greedy", "--max-new-tokens", "6"]) == 0
    streamed = capsys.readouterr().out.strip()
    assert cli(["generate", "--model", model_dir, "the cat", "--greedy", "--max-new-tokens", "6", "--no-stream"]) == 0
    assert capsys.readouterr().out.strip() == streamed  # streaming prints the same text
    assert cli(["generate", "--model", model_dir, "the cat", "a dog", "--max-new-tokens", "4", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("the cat") and lines[1].startswith("a dog")
    assert cli(["generate", "--model", model_dir, "  "]) == 2
    assert "prompt is empty" in capsys.readouterr().err
    assert cli(["generate", "--model", model_dir, "the cat", "--top-p", "0"]) == 2
    assert "top_p must be in (0, 1]" in capsys.readouterr().err
    try:  # argparse rejects it at parse time (usage error, status 2)
        rc = cli(["generate", "--model", model_dir, "the cat", "--temperature", "-1"])
    except SystemExit as e:
        rc = e.code
    assert rc == 2 and "--temperature" in capsys.readouterr().err
    assert cli(train_args(tmp_path, "run", "--max-steps", "2")) == 2  # a run is there already
    assert "--resume" in capsys.readouterr().err
    assert cli(train_args(tmp_path, "run", "--max-steps", "2", "--overwrite")) == 0


def test_stop_strings_and_the_streamer_cut_the_text(corpus):
    from bertforge.tasks.language_modeling import TextStreamer, complete, load_lm

    tmp_path = corpus
    assert cli(train_args(tmp_path, "run", "--max-steps", "6")) == 0
    model, tok = load_lm(tmp_path / "run" / "model")
    full = complete(model, tok, "the cat", max_new_tokens=8)[0]
    words = full.split()
    assert len(words) >= 3
    stop = words[2]
    cut = complete(model, tok, "the cat", max_new_tokens=8, stop_strings=[stop])[0]
    assert cut == full[:full.index(stop)]
    sink = io.StringIO()
    assert complete(model, tok, "the cat", max_new_tokens=8, stop_strings=[stop], stream=True, file=sink)[0] == cut
    assert sink.getvalue().strip() == cut.strip()
    assert isinstance(TextStreamer(tok), TextStreamer)


def test_score_texts_is_the_summed_next_token_log_likelihood(corpus):
    from bertforge.tasks.language_modeling import encode_prompts, gpt_fill_blank, score_texts

    torch.manual_seed(0)
    from bertforge.tokenizer.tokenizer import Tokenizer

    tok = Tokenizer.from_vocab(corpus / "vocab.txt")
    model = GPTLMHeadModel(GPTConfig.preset("tiny", vocab_size=tok.vocab_size, bos_token_id=tok.sep_token_id,
                                            eos_token_id=tok.sep_token_id, pad_token_id=0, **NO_DROPOUT)).eval()
    texts = ["the cat sat on the mat.", "a dog"]
    scores = score_texts(model, tok, texts)
    for text, s in zip(texts, scores):
        ids, _ = encode_prompts(tok, [text], tok.sep_token_id, 0)
        mean_nll = float(model(ids, labels=ids).loss)
        assert s == pytest.approx(-mean_nll * (ids.size(1) - 1), rel=1e-5)
    out = gpt_fill_blank(model, tok, "the [MASK] sat on the mat.", candidates=["cat", "dog", "sun"], top_k=3)
    assert len(out["left"]) == 3 and sorted(w for w, _ in out["rescored"]) == ["cat", "dog", "sun"]
    assert sum(p for _, p in out["rescored"]) == pytest.approx(1.0)
    with pytest.raises(BertforgeError, match="exactly one"):
        gpt_fill_blank(model, tok, "no blank here")


def test_every_lm_option_has_help():
    from bertforge.cli.flags import options_without_help
    from bertforge.cli.main import build_parser

    missing = [m for m in options_without_help(build_parser()) if "train-lm" in m or "generate" in m]
    assert missing == []


@pytest.mark.slow
def test_train_lm_under_torchrun_two_processes_equals_one(corpus):
    """DDP (gloo): 2 processes x batch 1 end where 1 process x batch 2 ends (same blocks, same steps)."""
    import os
    import subprocess
    import sys

    tmp_path = corpus
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SRC)}
    args = train_args(tmp_path, "ddp", "--max-steps", "3", "--dropout", "0")
    args[args.index("--batch-size") + 1] = "1"  # batch 1 per process, 2 in all
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(29600 + os.getpid() % 1000), "-m", "bertforge.cli.main", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert cli(train_args(tmp_path, "one", "--max-steps", "3", "--dropout", "0")) == 0
    a = GPTLMHeadModel.from_pretrained(tmp_path / "ddp" / "model")
    b = GPTLMHeadModel.from_pretrained(tmp_path / "one" / "model")
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-4, msg=name)
