"""crossrank.train units: data split, negatives, losses against written-out references, batching.

The tiny dataset (``make_dataset``) is shared with test_train_run.py: seeded syllable texts where each
query's positive repeats the query's words, so a tiny BERT can learn it in a few steps.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from model_fixtures import SYLLABLES

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


def _words(rng: np.random.Generator, k: int) -> list[str]:
    return ["".join(rng.choice(SYLLABLES, size=2)) for _ in range(k)]


def make_dataset(
    root: Path,
    *,
    n_train: int = 24,
    n_test: int = 6,
    n_docs: int = 60,
    seed: int = 0,
    train_split: bool = True,
    no_positive: int = 0,
) -> Path:
    """Write a BEIR folder: corpus, queries, qrels/train.tsv (unless not train_split), qrels/test.tsv."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "qrels").mkdir(exist_ok=True)
    docs = {f"d{i}": " ".join(_words(rng, int(rng.integers(8, 20)))) for i in range(n_docs)}
    queries, train, test = {}, [], []
    n_q = n_train + n_test + no_positive
    for i in range(n_q):
        qid = f"q{i}"
        q_words = _words(rng, 3)
        queries[qid] = " ".join(q_words)
        target = f"d{i % n_docs}"
        # The positive shares the query's words; a distractor shares one of them.
        docs[target] = " ".join(q_words + _words(rng, 6))
        distractor = f"d{(i + n_docs // 2) % n_docs}"
        docs[distractor] = docs[distractor] + " " + q_words[0]
        if i < n_train:
            train.append((qid, target, 1))
        elif i < n_train + n_test:
            test.append((qid, target, 1))
        else:
            train.append((qid, target, 0))  # judged, but no positive
    with open(root / "corpus.jsonl", "w") as fh:
        for did, text in docs.items():
            fh.write(json.dumps({"_id": did, "title": "", "text": text}) + "\n")
    with open(root / "queries.jsonl", "w") as fh:
        for qid, text in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    splits = {"test": test, **({"train": train} if train_split else {})}
    for name, rows in splits.items():
        with open(root / "qrels" / f"{name}.tsv", "w") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            for q, d, g in rows:
                fh.write(f"{q}\t{d}\t{g}\n")
    return root


# ------------------------------------------------------------------------------------------------ data
def test_dev_split_is_drawn_from_train_and_disjoint_from_test(tmp_path: Path) -> None:
    from crossrank.train.data import load_train_data

    root = make_dataset(tmp_path / "ds", n_train=30, n_test=8)
    # A test query that also appears in the train judgements must be left out of both splits.
    with open(root / "qrels" / "train.tsv", "a") as fh:
        fh.write("q31\td31\t1\n")
    data = load_train_data(root, dev_queries=0.2, seed=3)
    train_qrels = {
        line.split("\t")[0] for line in (root / "qrels" / "train.tsv").read_text().splitlines()[1:]
    }
    assert set(data.dev_qids) <= train_qrels
    assert not set(data.dev_qids) & set(data.train_qids)
    assert not (set(data.dev_qids) | set(data.train_qids)) & data.test_qids
    assert "q31" in data.skipped["in_test"]
    assert len(data.dev_qids) == round(0.2 * 30)
    again = load_train_data(root, dev_queries=0.2, seed=3)
    assert again.dev_qids == data.dev_qids  # seeded
    other = load_train_data(root, dev_queries=0.2, seed=4)
    assert other.dev_qids != data.dev_qids


def test_queries_without_positives_are_skipped_and_counted(tmp_path: Path) -> None:
    from crossrank.train.data import load_train_data

    root = make_dataset(tmp_path / "ds", no_positive=3)
    data = load_train_data(root, dev_queries=0)
    assert len(data.skipped["no_positive"]) == 3
    assert data.summary()["skipped"] == {"no_positive": 3}
    assert all(data.positives(q) for q in data.train_qids)


def test_dataset_without_train_split_is_a_clear_error(tmp_path: Path) -> None:
    from crossrank.train.data import load_train_data

    root = make_dataset(tmp_path / "ds", train_split=False)
    with pytest.raises(FileNotFoundError, match=r"no train split \(qrels/train.tsv\)"):
        load_train_data(root)


def test_only_queries_without_positives_is_a_clear_error(tmp_path: Path) -> None:
    from crossrank.train.data import load_train_data

    root = make_dataset(tmp_path / "ds", n_train=0, no_positive=4)
    with pytest.raises(ValueError, match=r"no usable training query.*no_positive: 4"):
        load_train_data(root)


def test_trec_qrels_and_tsv_queries(tmp_path: Path) -> None:
    from crossrank.train.data import load_train_data

    root = make_dataset(tmp_path / "ds", train_split=False)
    (tmp_path / "q.tsv").write_text("a1\tkasu bela\na2\tmimo\n")
    (tmp_path / "qrels.txt").write_text("a1 0 d1 2\na2 0 d2 0\n")
    data = load_train_data(root, qrels=tmp_path / "qrels.txt", queries=tmp_path / "q.tsv", dev_queries=0)
    assert data.train_qids == ["a1"]
    assert data.skipped == {"no_positive": ["a2"]}
    with pytest.raises(ValueError, match="test split"):
        load_train_data(root, qrels=root / "qrels" / "test.tsv")


# ------------------------------------------------------------------------------------------ negatives
def test_negatives_never_include_judged_positives(tmp_path: Path) -> None:
    from crossrank.train.batching import epoch_groups
    from crossrank.train.data import load_train_data
    from crossrank.train.negatives import FirstStage, mine_candidates, sample_negatives

    root = make_dataset(tmp_path / "ds")
    data = load_train_data(root, dev_queries=0)
    # Extra positives per query, so exclusion covers every judged positive, not only the group's.
    for i, q in enumerate(data.train_qids):
        data.qrels[q][f"d{(i + 1) % 60}"] = 2
    stage = FirstStage("bm25", data.doc_ids, data.docs)
    cands = mine_candidates(stage, data.queries, data.train_qids, 40)
    positives = {q: data.positives(q) for q in data.train_qids}
    # The first stage does retrieve positives: the exclusion is doing work.
    assert any(set(cands[q]) & set(positives[q]) for q in data.train_qids)
    for epoch in range(3):
        groups = epoch_groups(data.train_qids, positives, cands, 5, seed=0, epoch=epoch)
        assert len(groups) == sum(len(p) for p in positives.values())
        for g in groups:
            assert g.doc_ids[0] in positives[g.qid]
            assert not set(g.doc_ids[1:]) & set(positives[g.qid])
            assert len(set(g.doc_ids)) == len(g.doc_ids)
    rng = np.random.default_rng(0)
    assert sample_negatives(["a", "b", "c"], {"a", "b", "c"}, 2, rng) == []
    assert sorted(sample_negatives(["a", "b", "c"], {"b"}, 5, rng)) == ["a", "c"]


def test_negatives_are_resampled_each_epoch_and_seeded(tmp_path: Path) -> None:
    from crossrank.train.batching import epoch_groups

    cands = {"q": [f"d{i}" for i in range(50)]}
    pos = {"q": ["p"]}
    e0 = epoch_groups(["q"], pos, cands, 7, seed=1, epoch=0)
    e1 = epoch_groups(["q"], pos, cands, 7, seed=1, epoch=1)
    assert e0 != e1
    assert e0 == epoch_groups(["q"], pos, cands, 7, seed=1, epoch=0)


# --------------------------------------------------------------------------------------------- losses
def _scores_case() -> tuple:
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(3, 5, generator=g, dtype=torch.float64)
    labels = torch.zeros(3, 5, dtype=torch.float64)
    labels[:, 0] = 1
    labels[2, 3] = 1  # two positives in the last group
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 3:] = False  # a shorter group
    teacher = torch.randn(3, 5, generator=g, dtype=torch.float64)
    teacher[0, 2] = math.nan  # a document the teacher did not score
    return scores, labels, mask, teacher


def test_listwise_loss_equals_written_out_log_softmax() -> None:
    from crossrank.train.losses import listwise_loss

    scores, labels, mask, _ = _scores_case()
    want = 0.0
    for i in range(3):
        idx = [j for j in range(5) if mask[i, j]]
        z = [float(scores[i, j]) for j in idx]
        m = max(z)
        log_norm = m + math.log(sum(math.exp(v - m) for v in z))
        pos = [j for j in idx if labels[i, j] > 0]
        want += -sum(float(scores[i, j]) - log_norm for j in pos) / len(pos)
    want /= 3
    got = float(listwise_loss(scores, labels, mask))
    assert got == pytest.approx(want, abs=1e-12)


def test_bce_loss_equals_reference() -> None:
    from crossrank.train.losses import bce_loss

    scores, labels, mask, _ = _scores_case()
    vals = []
    for i in range(3):
        for j in range(5):
            if mask[i, j]:
                x, y = float(scores[i, j]), float(labels[i, j])
                p = 1 / (1 + math.exp(-x))
                vals.append(-(y * math.log(p) + (1 - y) * math.log(1 - p)))
    assert float(bce_loss(scores, labels, mask)) == pytest.approx(sum(vals) / len(vals), abs=1e-12)


def test_kl_distillation_equals_reference() -> None:
    from crossrank.train.losses import kl_loss

    scores, _, mask, teacher = _scores_case()
    total, n = 0.0, 0
    for i in range(3):
        idx = [j for j in range(5) if mask[i, j] and not math.isnan(float(teacher[i, j]))]
        t = [float(teacher[i, j]) for j in idx]
        s = [float(scores[i, j]) for j in idx]
        pt = [math.exp(v) / sum(math.exp(u) for u in t) for v in t]
        ps = [math.exp(v) / sum(math.exp(u) for u in s) for v in s]
        total += sum(a * math.log(a / b) for a, b in zip(pt, ps, strict=True))
        n += 1
    assert float(kl_loss(scores, teacher, mask)) == pytest.approx(total / n, abs=1e-12)
    # Temperature divides both score sets.
    assert float(kl_loss(scores, teacher, mask, temperature=2.0)) == pytest.approx(
        float(kl_loss(scores / 2, teacher / 2, mask)), abs=1e-12
    )


def test_margin_mse_distillation_equals_reference() -> None:
    from crossrank.train.losses import margin_mse_loss

    scores, _, mask, teacher = _scores_case()
    terms = []
    for i in range(3):
        for j in range(1, 5):
            if mask[i, j] and not math.isnan(float(teacher[i, j])):
                sm = float(scores[i, 0] - scores[i, j])
                tm = float(teacher[i, 0] - teacher[i, j])
                terms.append((sm - tm) ** 2)
    assert float(margin_mse_loss(scores, teacher, mask)) == pytest.approx(sum(terms) / len(terms), abs=1e-12)


def test_label_weight_mixes_the_label_loss_into_the_distillation_loss() -> None:
    from crossrank.train.losses import kl_loss, listwise_loss, training_loss

    scores, labels, mask, teacher = _scores_case()
    kl, hard = float(kl_loss(scores, teacher, mask)), float(listwise_loss(scores, labels, mask))
    assert float(training_loss("kl", scores, labels, teacher, mask)) == kl
    for w in (0.25, 1.0):
        mixed = training_loss("kl", scores, labels, teacher, mask, label_loss="listwise", label_weight=w)
        assert float(mixed) == pytest.approx((1 - w) * kl + w * hard, abs=1e-12)


def test_label_weight_is_checked() -> None:
    from crossrank.train import TrainConfig

    base = TrainConfig("m", "d", "o", teacher="t.trec", distill="kl")
    for bad in (-0.1, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match="label_weight must be in"):
            dataclasses.replace(base, label_weight=bad).validate()
    with pytest.raises(ValueError, match="needs a teacher"):
        TrainConfig("m", "d", "o", label_weight=0.5).validate()
    mixed = dataclasses.replace(base, label_weight=0.5)
    mixed.validate()
    assert mixed.loss_description == "0.5 kl + 0.5 listwise"
    # at its default the setting stays out of the resume fingerprint (older checkpoints still resume)
    assert "label_weight" not in base.fingerprint()
    assert mixed.fingerprint()["label_weight"] == 0.5


def test_losses_have_gradients_only_on_valid_slots() -> None:
    from crossrank.train.losses import compute_loss

    scores, labels, mask, teacher = _scores_case()
    for name in ("listwise", "bce", "kl", "margin-mse"):
        s = scores.clone().requires_grad_(True)
        compute_loss(name, s, labels, teacher, mask).backward()
        assert s.grad is not None
        assert torch.all(s.grad[~mask] == 0), name
    with pytest.raises(ValueError, match="loss must be one of"):
        compute_loss("hinge", scores, labels, teacher, mask)


# ------------------------------------------------------------------------------------------- batching
def test_pack_step_keeps_every_pair_once_under_the_token_budget(tiny_bert_checkpoint: Path) -> None:
    from crossrank.text.packing import PairTemplate
    from crossrank.text.tokenization import TextEncoder, load_tokenizer
    from crossrank.train.batching import Group, TokenTable, pack_step
    from model_fixtures import tiny_texts

    tok = load_tokenizer(tiny_bert_checkpoint / "tokenizer.json")
    table = TokenTable(TextEncoder(tok, cache_tokens=0), 48)
    texts = tiny_texts(20, seed=1, max_words=60)
    table.add("d", [f"d{i}" for i in range(20)], texts)
    table.add("q", ["a", "b"], ["kasu bela", "mimo tuke raso"])
    groups = [
        Group("a", tuple(f"d{i}" for i in range(8)), (1.0,) + (0.0,) * 7),
        Group("b", tuple(f"d{i}" for i in range(8, 13)), (1.0,) + (0.0,) * 4),
    ]
    step = pack_step(groups, table, PairTemplate.from_tokenizer(tok), max_length=48, max_batch_tokens=96)
    assert step.n_pairs == 13
    seen = np.concatenate([b.pair_index for b in step.batches])
    assert sorted(seen.tolist()) == list(range(13))
    assert all(b.input_ids.size <= 96 for b in step.batches)
    assert step.mask.sum() == 13
    assert step.mask[1, 5:].sum() == 0
    assert step.labels[:, 0].tolist() == [1.0, 1.0]
