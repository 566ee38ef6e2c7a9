"""Model fixtures shared by the test files (imported into conftest.py): tiny seeded BERTs and MiniLM-L6.

Every model here is built from seeded random weights, saved as a Hugging Face checkpoint, and exported
to ONNX with crossrank's own exporter (which verifies the graph against PyTorch before writing it), so
tests compare crossrank's results with ``transformers`` on the very same weights.

* ``tiny_bert_checkpoint`` / ``tiny_bert_onnx``: BERT, hidden 32, 2 layers, a ~1,000-piece WordPiece
  vocabulary built here, ``max_position_embeddings=128``, one label (cross-encoder), exported with
  ``int8=True`` (``model.onnx`` + ``model_int8.onnx``).
* ``tiny_bert_multilabel_onnx``: the same encoder with 3 labels (shapes ``[n, 3]``).
* ``tiny_bert_embedding_onnx``: the encoder exported with ``task="embedding"`` (``last_hidden_state``).
* ``minilm_ce_checkpoint`` / ``minilm_ce_onnx``: all-MiniLM-L6-v2 from ../shared/models with a seeded
  one-label classification head (the exact cost of ms-marco-MiniLM-L-6-v2); exported with int8 and
  optimize. Slower (~15 s once per session); skips when the model is absent.

``tiny_texts(n, seed)`` makes texts from the tiny vocabulary's syllables (every word tokenizes to known
pieces), and ``reference_logits(checkpoint, pairs, max_length)`` scores pairs with transformers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"
SYLLABLES = [c + v for c in CONSONANTS for v in VOWELS]  # 70


def _tiny_vocab() -> list[str]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"()-")
    pieces = chars + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    syll = SYLLABLES + ["##" + s for s in SYLLABLES]
    rng = np.random.default_rng(7)
    words = sorted({"".join(rng.choice(SYLLABLES, size=2)) for _ in range(900)})
    vocab = specials + pieces + syll + [w for w in words if w not in set(syll)]
    return vocab[:1000]


def tiny_texts(n: int, seed: int, *, min_words: int = 1, max_words: int = 40) -> list[str]:
    """Return ``n`` seeded texts of syllable words (some in the vocabulary, some split into pieces)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(min_words, max_words + 1))
        words = ["".join(rng.choice(SYLLABLES, size=int(rng.integers(1, 4)))) for _ in range(k)]
        if rng.random() < 0.3:
            words.append(str(rng.choice([".", ",", "?", "!"])))
        out.append(" ".join(words))
    return out


def build_tiny_bert(
    out: Path, *, num_labels: int = 1, seed: int = 0, max_position_embeddings: int = 128
) -> Path:
    """Save a seeded random BERT (hidden 32, 2 layers) with its WordPiece tokenizer into ``out``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    vocab = _tiny_vocab()
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(
        vocab={t: i for i, t in enumerate(vocab)}, model_max_length=max_position_embeddings
    )
    tok.save_pretrained(str(out))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=max_position_embeddings,
        num_labels=num_labels,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():  # larger than default init so scores spread and ranking is meaningful
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.2)
    model.save_pretrained(str(out))
    return out


def reference_logits(
    checkpoint: Path, pairs: list[tuple[str, str]], max_length: int, **tok_kwargs: object
) -> np.ndarray:
    """Score pairs with transformers (AutoTokenizer + AutoModelForSequenceClassification), float32 [n, labels]."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(checkpoint))
    model = AutoModelForSequenceClassification.from_pretrained(str(checkpoint)).eval()
    outs = []
    for start in range(0, len(pairs), 16):
        chunk = pairs[start : start + 16]
        enc = tok(
            [q for q, _ in chunk],
            [d for _, d in chunk],
            truncation=tok_kwargs.get("truncation", "longest_first"),
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        with torch.inference_mode():
            outs.append(model(**enc).logits.float().numpy())
    return np.concatenate(outs) if outs else np.zeros((0, 1), np.float32)


def _export(checkpoint: Path, out: Path, **kwargs: object) -> Path:
    from crossrank.models.export import export_model

    export_model(checkpoint, out, **kwargs)  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="session", autouse=True)
def _crossrank_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep crossrank's cache (fused/quantized graphs, exports) out of the user's home during tests."""
    import os

    if "CROSSRANK_CACHE" not in os.environ:
        os.environ["CROSSRANK_CACHE"] = str(tmp_path_factory.mktemp("crossrank_cache"))


@pytest.fixture(scope="session")
def tiny_bert_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert_ckpt"), num_labels=1, seed=0)


@pytest.fixture(scope="session")
def tiny_bert_onnx(tiny_bert_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tiny_bert_checkpoint, tmp_path_factory.mktemp("tiny_bert_onnx"), int8=True)


@pytest.fixture(scope="session")
def tiny_bert_multilabel_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert3_ckpt"), num_labels=3, seed=1)


@pytest.fixture(scope="session")
def tiny_bert_multilabel_onnx(
    tiny_bert_multilabel_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return _export(tiny_bert_multilabel_checkpoint, tmp_path_factory.mktemp("tiny_bert3_onnx"))


@pytest.fixture(scope="session")
def tiny_bert_embedding_onnx(tiny_bert_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tiny_bert_checkpoint, tmp_path_factory.mktemp("tiny_bert_emb_onnx"), task="embedding")


@pytest.fixture(scope="session")
def minilm_ce_checkpoint(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """all-MiniLM-L6-v2 encoder + seeded one-label head, saved as a checkpoint."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    out = tmp_path_factory.mktemp("minilm_ce_ckpt")
    torch.manual_seed(1234)
    model = transformers.BertForSequenceClassification.from_pretrained(str(minilm_dir), num_labels=1).eval()
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 0.5)
        model.classifier.bias.zero_()
    model.save_pretrained(str(out))
    tok = transformers.AutoTokenizer.from_pretrained(str(minilm_dir))
    tok.save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def minilm_ce_onnx(minilm_ce_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(minilm_ce_checkpoint, tmp_path_factory.mktemp("minilm_ce_onnx"), int8=True, optimize=True)


__all__ = [
    "_crossrank_cache",
    "build_tiny_bert",
    "minilm_ce_checkpoint",
    "minilm_ce_onnx",
    "reference_logits",
    "tiny_bert_checkpoint",
    "tiny_bert_embedding_onnx",
    "tiny_bert_multilabel_checkpoint",
    "tiny_bert_multilabel_onnx",
    "tiny_bert_onnx",
    "tiny_texts",
]
