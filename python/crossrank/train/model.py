"""Load the base checkpoint as a one-logit cross-encoder: an encoder with a fresh, seeded head.

A checkpoint that already is a one-label sequence classifier (a cross-encoder) keeps its head, so
training continues from it. Decoder-only and encoder-decoder models are refused: the pair template,
the packing and the ONNX export all assume a BERT-like encoder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import missing_extra

__all__ = ["import_torch", "load_base_model", "set_dropout"]


def import_torch() -> tuple[Any, Any]:
    """Return (torch, transformers) or raise the ImportError naming the ``[train]`` extra."""
    try:
        import torch
    except ImportError as exc:
        raise missing_extra("torch", "train") from exc
    try:
        import transformers
    except ImportError as exc:
        raise missing_extra("transformers", "train") from exc
    return torch, transformers


def _check_encoder(transformers: Any, config: Any, where: str) -> None:
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    kind = getattr(config, "model_type", "?")
    if getattr(config, "is_encoder_decoder", False) or getattr(config, "is_decoder", False):
        raise ValueError(
            f"base model {where} is a {kind} decoder / encoder-decoder, not an encoder: crossrank train "
            "fine-tunes BERT-like encoders (BERT, MiniLM, RoBERTa, ELECTRA, DeBERTa, XLM-R, ...)"
        )
    if kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        raise ValueError(
            f"base model {where} has model_type {kind!r}, which is not an encoder architecture: "
            "crossrank train fine-tunes BERT-like encoders (BERT, MiniLM, RoBERTa, ELECTRA, DeBERTa, XLM-R, ...)"
        )


def load_base_model(base: str, *, seed: int, dropout: bool) -> tuple[Any, Path]:
    """Load ``base`` as ``AutoModelForSequenceClassification`` with one label.

    Parameters
    ----------
    base : str
        Local checkpoint folder (config.json, weights, tokenizer.json).
    seed : int
        Seeds the new head's initialisation.
    dropout : bool
        Keep the checkpoint's dropout (True) or set every dropout probability to 0.

    Returns
    -------
    (model, folder)

    Raises
    ------
    FileNotFoundError
        No such folder, or no config.json / tokenizer.json in it.
    ValueError
        Not an encoder, or a classifier with more than one label.
    """
    torch, transformers = import_torch()
    root = Path(base).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"base model {base!r} is not a local checkpoint folder")
    if not (root / "config.json").is_file():
        raise FileNotFoundError(f"base model {root} has no config.json: not a Hugging Face checkpoint")
    if not (root / "tokenizer.json").is_file():
        raise FileNotFoundError(f"base model {root} has no tokenizer.json (a fast tokenizer is needed)")
    try:
        raw = json.loads((root / "config.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{root / 'config.json'} is not valid JSON ({exc.msg})") from None
    if not isinstance(raw, dict) or "model_type" not in raw:
        raise ValueError(f"base model {root}: config.json has no model_type, not a transformers checkpoint")
    config = transformers.AutoConfig.from_pretrained(str(root))
    _check_encoder(transformers, config, str(root))
    archs = raw.get("architectures") or []
    is_classifier = any(str(a).endswith("ForSequenceClassification") for a in archs)
    if is_classifier and int(getattr(config, "num_labels", 1)) != 1:
        raise ValueError(
            f"base model {root} is a classifier with {config.num_labels} labels; a cross-encoder has one"
        )
    config.num_labels = 1
    config.problem_type = None
    if not dropout:
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            if hasattr(config, name):
                setattr(config, name, 0.0)
    torch.manual_seed(seed)
    try:
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            str(root), config=config, attn_implementation="sdpa"
        )
    except (TypeError, ValueError):
        model = transformers.AutoModelForSequenceClassification.from_pretrained(str(root), config=config)
    if not dropout:
        set_dropout(model, 0.0)
    return model, root


def set_dropout(model: Any, p: float) -> None:
    """Set every ``torch.nn.Dropout`` of ``model`` to probability ``p``.

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    p : float
        Dropout probability.
    """
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
