"""Readers parse every row of the shared datasets (counts from each SOURCE.md) and the formats users have;
word-piece label alignment on hand-made cases."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from bertforge.data.choice import encode_choices, read_commonsenseqa, read_copa, read_swag
from bertforge.data.classify import encode_label, label_kind, label_list, read_classification_file
from bertforge.data.glue import GLUE_TASKS, read_glue
from bertforge.data.ner import (
    IGNORE_INDEX,
    TaggedSentence,
    align_labels,
    encode_tagged,
    read_conll,
    tag_list,
    word_predictions,
)
from tests.helpers import require_data

# glue/SOURCE.md: (train, dev, test) rows, header excluded
GLUE_COUNTS = {"cola": (8551, 1043, 1063), "sst2": (67349, 872, 1821), "mrpc": (3668, 408, 1725),
               "rte": (2490, 277, 3000), "stsb": (5749, 1500, 1379), "wnli": (635, 71, 146)}
# glue/SOURCE.md label distributions
GLUE_LABELS = {("cola", "train"): {"1": 6023, "0": 2528}, ("cola", "dev"): {"1": 721, "0": 322},
               ("sst2", "train"): {"1": 37569, "0": 29780}, ("sst2", "dev"): {"1": 444, "0": 428},
               ("mrpc", "train"): {"1": 2474, "0": 1194}, ("mrpc", "dev"): {"1": 279, "0": 129},
               ("rte", "train"): {"entailment": 1249, "not_entailment": 1241},
               ("rte", "dev"): {"entailment": 146, "not_entailment": 131}}


@pytest.mark.parametrize("task", sorted(GLUE_COUNTS))
def test_glue_every_row(task):
    root = require_data("glue")
    for split, n in zip(("train", "dev", "test"), GLUE_COUNTS[task]):
        examples = read_glue(task, split, root)
        assert len(examples) == n, (task, split)
        assert all(e.text for e in examples)
        assert (GLUE_TASKS[task].text_pair is None) == all(e.text_pair is None for e in examples)
        if split == "test":
            assert all(e.label is None for e in examples)
        elif (task, split) in GLUE_LABELS:
            assert Counter(e.label for e in examples) == GLUE_LABELS[task, split]
        assert len({e.guid for e in examples}) == n


def test_glue_quotes_bom_and_scores_survive():
    root = require_data("glue")
    sst = read_glue("sst2", "train", root)
    assert sst[0].text == "hide new secretions from the parental units " and sst[0].label == "0"
    mrpc = read_glue("mrpc", "train", root)  # BOM stripped, bare quotes kept inside the sentence
    assert mrpc[0].text.startswith("Amrozi accused his brother , whom he called \" the witness \" ,")
    assert mrpc[0].text_pair.startswith("Referring to him as only \" the witness \"")
    stsb = read_glue("stsb", "dev", root)
    assert stsb[0].label == 5.0 and all(0.0 <= e.label <= 5.0 for e in stsb)
    cola = read_glue("cola", "train", root)  # headerless file: the sentence is the 4th column
    assert cola[0].text == "Our friends won't buy this analysis, let alone the next one we propose."


def test_glue_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown GLUE task"):
        read_glue("mnli", "train", tmp_path)
    with pytest.raises(FileNotFoundError, match="RTE/train.tsv"):
        read_glue("rte", "train", tmp_path)
    (tmp_path / "RTE").mkdir()
    (tmp_path / "RTE" / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(ValueError, match="dev.tsv:2: label 'maybe'"):
        read_glue("rte", "dev", tmp_path)
    (tmp_path / "RTE" / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\n")
    with pytest.raises(ValueError, match="3 fields, expected 4"):
        read_glue("rte", "dev", tmp_path)


@pytest.mark.parametrize("path, sentences, tokens, entities", [
    ("conll2003/train.txt", 14041, 203621, {"LOC": 7140, "PER": 6600, "ORG": 6321, "MISC": 3438}),
    ("conll2003/valid.txt", 3250, 51362, {"LOC": 1837, "PER": 1842, "ORG": 1341, "MISC": 922}),
    ("conll2003/test.txt", 3453, 46435, {"LOC": 1668, "PER": 1617, "ORG": 1661, "MISC": 702}),
    ("wnut17/wnut17train.conll", 3394, 62730, 1975),
    ("wnut17/emerging.dev.conll", 1009, 15733, 836),
    ("wnut17/emerging.test.annotated", 1287, 23394, 1079),
])
def test_conll_every_sentence(path, sentences, tokens, entities):
    data = read_conll(require_data(*path.split("/")))
    assert len(data) == sentences
    assert sum(len(s.words) for s in data) == tokens
    assert all(len(s.words) == len(s.tags) for s in data)
    b_tags = Counter(t[2:] for s in data for t in s.tags if t.startswith("B-"))
    if isinstance(entities, dict):
        assert b_tags == entities
    else:
        assert sum(b_tags.values()) == entities and len(b_tags) == 6  # WNUT's six types


def test_conll_first_sentence_and_tag_list():
    data = read_conll(require_data("conll2003", "train.txt"))
    assert data[0].words[:3] == ["EU", "rejects", "German"] and data[0].tags[:3] == ["B-ORG", "O", "B-MISC"]
    assert tag_list(data) == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def test_conll_errors(tmp_path):
    bad = tmp_path / "bad.conll"
    bad.write_text("Paris\tB-LOC\nis\tO\nnice\tLOCATION\n")
    with pytest.raises(ValueError, match="bad.conll:3: tag 'LOCATION' is not IOB2"):
        read_conll(bad)
    with pytest.raises(FileNotFoundError):
        read_conll(tmp_path / "absent.conll")


def test_commonsenseqa_every_question():
    root = require_data("commonsenseqa")
    expected = {"train_rand_split.jsonl": (9741, {0: 1909, 1: 1973, 2: 1946, 3: 1985, 4: 1928}),
                "dev_rand_split.jsonl": (1221, {0: 239, 1: 255, 2: 241, 3: 251, 4: 235}),
                "test_rand_split_no_answers.jsonl": (1140, None)}
    for name, (n, dist) in expected.items():
        data = read_commonsenseqa(root / name)
        assert len(data) == n and all(len(e.choices) == 5 for e in data)
        assert (Counter(e.label for e in data) == dist) if dist else all(e.label is None for e in data)
    first = read_commonsenseqa(root / "dev_rand_split.jsonl")[0]
    assert first.context.startswith("A revolving door is convenient") and first.choices[0] == "bank"


def test_copa_every_example():
    root = require_data("copa")
    for name, n, dist in (("train.jsonl", 400, {0: 195, 1: 205}), ("val.jsonl", 100, {0: 55, 1: 45}),
                          ("test.jsonl", 500, None)):
        data = read_copa(root / name)
        assert len(data) == n and all(len(e.choices) == 2 for e in data)
        assert (Counter(e.label for e in data) == dist) if dist else all(e.label is None for e in data)
    val = read_copa(root / "val.jsonl")
    assert val[0].context == "The man turned on the faucet. What happened as a result?"
    assert val[0].choices[val[0].label] == "Water flowed from the spout."
    causes = sum(e.context.endswith("What was the cause?") for e in read_copa(root / "train.jsonl"))
    assert causes == 198  # copa/SOURCE.md: 198 cause / 202 effect


SWAG_CSV = (
    ",video-id,fold-ind,startphrase,sent1,sent2,gold-source,ending0,ending1,ending2,ending3,label\n"
    '0,lsmdc1,5,"Someone opens the door. He","Someone opens the door.",He,gold,walks in.,flies away.,'
    '"sings, loudly.",melts.,0\n'
    "1,anetv_2,17,A man sits. He,A man sits.,He,gen,reads a book.,eats the chair.,is a cloud.,runs upside down.,0\n"
    "2,anetv_3,42,The dog barks. It,The dog barks.,It,gold,is a cat.,wags its tail.,sings opera.,melts.,1\n"
)


def test_swag_csv_layout(tmp_path):
    path = tmp_path / "val.csv"
    path.write_text(SWAG_CSV)
    data = read_swag(path)
    assert len(data) == 3 and [e.label for e in data] == [0, 0, 1]
    assert data[0].context == "Someone opens the door." and data[0].choices[2] == "He sings, loudly."
    test = tmp_path / "test.csv"  # SWAG's test file has no label column
    test.write_text("\n".join(",".join(r.split(",")[:-1]) if i == 0 else r.rsplit(",", 1)[0]
                              for i, r in enumerate(SWAG_CSV.strip().split("\n"))) + "\n")
    assert [e.label for e in read_swag(test)] == [None] * 3
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not SWAG's CSV layout"):
        read_swag(tmp_path / "other.csv")


def test_user_csv_and_jsonl(tmp_path):
    csv_path = tmp_path / "mine.csv"
    csv_path.write_text('text,text_pair,label\n"Hello, world","",pos\n"She said ""no""",Was it no?,neg\n',
                        encoding="utf-8-sig")
    data = read_classification_file(csv_path)
    assert [(e.text, e.text_pair, e.label) for e in data] == [("Hello, world", None, "pos"),
                                                              ('She said "no"', "Was it no?", "neg")]
    jl = tmp_path / "mine.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in [{"text": "a", "label": ["x", "y"]},
                                                   {"text": "b", "label": ["y"]}, {"text": "c", "label": []}]))
    data = read_classification_file(jl, require_label=False)
    assert [e.label for e in data] == [["x", "y"], ["y"], None]
    kind = label_kind([e.label for e in data])
    assert kind == "multi_label_classification" and label_list([e.label for e in data], kind) == ["x", "y"]
    assert encode_label(["y"], kind, {"x": 0, "y": 1}) == [0.0, 1.0]
    with pytest.raises(ValueError, match="mine.jsonl:3: no 'label'"):
        read_classification_file(jl)
    tsv = tmp_path / "scores.tsv"
    tsv.write_text("sentence\tscore\nx\t3.8\ny\t1\n")
    data = read_classification_file(tsv, text_column="sentence", label_column="score")
    assert label_kind([e.label for e in data]) == "regression"


def test_label_kinds_and_order():
    assert label_kind(["1", "0", "10", "2"]) == "single_label_classification"
    assert label_list(["1", "0", "10", "2"], "single_label_classification") == ["0", "1", "2", "10"]
    assert label_kind([0, 1, 1.0]) == "single_label_classification"  # integral numbers are class ids
    assert label_list([0, 1, 1.0], "single_label_classification") == ["0", "1"]
    assert label_kind([0.5, 1, 4.25]) == "regression" and label_list([0.5], "regression") == ["LABEL_0"]
    with pytest.raises(ValueError, match="multi-label"):
        label_kind([["a"], "b"])
    with pytest.raises(ValueError, match="unknown label"):
        encode_label("maybe", "single_label_classification", {"yes": 0, "no": 1})


def test_user_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_classification_file(tmp_path / "nope.csv")
    p = tmp_path / "x.xlsx"
    p.write_text("")
    with pytest.raises(ValueError, match="unknown format"):
        read_classification_file(p)
    p = tmp_path / "x.csv"
    p.write_text("sentence,label\nhello,1\n")
    with pytest.raises(ValueError, match="no 'text'"):
        read_classification_file(p)
    p = tmp_path / "x.jsonl"
    p.write_text('{"text": "a", "label": 1}\n{"text": "b", label: 0}\n')
    with pytest.raises(ValueError, match="x.jsonl:2: not valid JSON"):
        read_classification_file(p)


# ---- word-piece label alignment -------------------------------------------------------------------

def test_align_labels_hand_made():
    # [CLS] eu rejects nad ##im lad ##ki [SEP]  for words EU rejects Nadim Ladki
    word_ids = [None, 0, 1, 2, 2, 3, 3, None]
    assert align_labels(word_ids, [5, 0, 7, 8]) == [-100, 5, 0, 7, -100, 8, -100, -100]
    # a word that became three pieces, then a one-piece word
    assert align_labels([None, 0, 0, 0, 1, None], [3, 1]) == [-100, 3, -100, -100, 1, -100]
    # a pair's second sequence restarts word numbering: the restart is still a new word
    assert align_labels([None, 0, 1, None, 0, 0, None], [4, 2]) == [-100, 4, 2, -100, 4, -100, -100]


def test_word_predictions_hand_made():
    names = {0: "O", 1: "B-PER", 2: "I-PER"}
    word_ids = [None, 0, 1, 1, 2, None]
    # the continuation piece's prediction (2) is ignored; word 3 was truncated away -> O
    assert word_predictions(word_ids, [0, 1, 2, 0, 2, 0], 4, names) == ["B-PER", "I-PER", "I-PER", "O"]


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    from bertforge.tokenizer.tokenizer import Tokenizer

    return Tokenizer.from_pretrained(minilm_dir)


def test_encode_tagged_with_real_word_pieces(tokenizer):
    label2id = {"O": 0, "B-ORG": 1, "B-PER": 2, "I-PER": 3}
    s = TaggedSentence(["EU", "rejects", "Nadim", "Ladki"], ["B-ORG", "O", "B-PER", "I-PER"])
    (feature,), (word_ids,) = encode_tagged(tokenizer, [s], 128, label2id)
    pieces = tokenizer.convert_ids_to_tokens(feature["input_ids"])
    assert pieces == ["[CLS]", "eu", "rejects", "nad", "##im", "lad", "##ki", "[SEP]"]
    assert feature["labels"] == [IGNORE_INDEX, 1, 0, 2, IGNORE_INDEX, 3, IGNORE_INDEX, IGNORE_INDEX]
    # round trip: predicting the gold label at every piece gives back the word tags
    id2label = {v: k for k, v in label2id.items()}
    gold_at_pieces = [max(x, 0) for x in feature["labels"]]
    assert word_predictions(word_ids, gold_at_pieces, 4, id2label) == s.tags


def test_encode_tagged_truncation_and_dropped_words(tokenizer):
    label2id = {"O": 0, "B-LOC": 1}
    # "\u200b" (zero-width space) has no word piece at all; the last words fall to truncation
    s = TaggedSentence(["Paris", "\u200b", "is", "lovely", "in", "spring"], ["B-LOC", "O", "O", "O", "O", "O"])
    (feature,), (word_ids,) = encode_tagged(tokenizer, [s], 5, label2id)
    assert len(feature["input_ids"]) == 5 and word_ids == [None, 0, 2, 3, None]
    assert feature["labels"] == [IGNORE_INDEX, 1, 0, 0, IGNORE_INDEX]
    tags = word_predictions(word_ids, [0, 1, 1, 1, 0], len(s.words), {0: "O", 1: "B-LOC"})
    assert tags == ["B-LOC", "O", "B-LOC", "B-LOC", "O", "O"]  # dropped and cut words default to O
    with pytest.raises(ValueError, match="unknown tags"):
        encode_tagged(tokenizer, [TaggedSentence(["x"], ["B-PER"])], 16, label2id)


def test_encode_choices_shapes(tokenizer, tmp_path):
    path = tmp_path / "val.csv"
    path.write_text(SWAG_CSV)
    features = encode_choices(tokenizer, read_swag(path), 16)
    assert len(features) == 3 and all(len(f["input_ids"]) == 4 for f in features)
    ids = features[0]["input_ids"][2]
    assert tokenizer.decode(ids) == "someone opens the door. he sings, loudly."
    assert features[0]["token_type_ids"][2].count(1) == len(tokenizer.tokenize("He sings, loudly.")) + 1
    assert features[2]["labels"] == 1
