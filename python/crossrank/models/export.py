"""Export a Hugging Face checkpoint to ONNX, fuse it for ONNX Runtime, and quantize it to int8.

``export_model(MODEL_DIR, OUT)`` writes a directory crossrank (and any ONNX consumer) loads:

* ``model.onnx``: the fp32 graph with dynamic ``batch`` and ``sequence`` axes, traced from PyTorch
  (TorchScript exporter, opset 17, eager attention so the trace holds no shape-specific mask code);
  portable: ONNX Runtime applies its own fusions when it loads it, and OpenVINO reads it;
* ``model_optimized.onnx`` (``optimize=True``): the same graph with ONNX Runtime's transformer fusions
  applied offline (``EmbedLayerNormalization``, ``Attention``, ``SkipLayerNormalization``, ``BiasGelu``;
  the counts are checked and recorded). It uses ONNX Runtime contrib ops, so only ONNX Runtime runs it;
* ``model_int8.onnx`` (``int8=True``): dynamic int8 quantization of the MatMul weights
  (:func:`quantize_onnx`, settings in :data:`INT8_DEFAULTS`);
* ``config.json``, the tokenizer files (``tokenizer.json`` always; made from the slow tokenizer when the
  checkpoint lacks it) and sentence-transformers configs, copied beside the graphs;
* ``crossrank_export.json``: task, inputs/outputs, the verification errors and fusion counts.

Every graph is verified against the PyTorch model before it is written: the same random token batches
(several shapes, padding, both token types) through both, max absolute difference of the outputs (on real
tokens) at most ``atol`` (fp32: 1e-4) or, for int8, :func:`int8_tolerance` (0.25, or 0.75 standard
deviations of the PyTorch outputs when they spread wider).

PyTorch and transformers are needed only here: ``pip install "crossrank[export]"``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import StateError, missing_extra

__all__ = [
    "INT8_DEFAULTS",
    "INT8_STD_FRACTION",
    "TASKS",
    "ExportReport",
    "export_model",
    "int8_tolerance",
    "quantize_onnx",
]

Task = Literal["cross-encoder", "embedding", "token-embedding", "causal-lm-reranker"]
TASKS: tuple[str, ...] = ("cross-encoder", "embedding", "token-embedding", "causal-lm-reranker")

# Dynamic int8 settings, chosen by measurement (bench/int8_settings.py; figures in bench/RESULTS.md,
# "int8 settings"): per-channel weight scales cut the error by ~3x against per-tensor (max error 0.54 vs
# 1.5 logit standard deviations on MiniLM-L6) for a small cost in speed; reduce_range (7-bit weights,
# for CPUs without VNNI) only lost accuracy and speed; signed weights feed the u8s8 VNNI kernels and
# measured as fast and as accurate as unsigned ones. Quantizing the offline-fused graph is not possible
# (ONNX Runtime's quantizer cannot infer types through its contrib ops); ONNX Runtime fuses the int8 graph
# when it loads it.
INT8_DEFAULTS: dict[str, Any] = {"weight_type": "qint8", "per_channel": True, "reduce_range": False}

# int8 outputs must lie within max(INT8_ATOL, INT8_STD_FRACTION x std of the fp32 outputs) of them (max
# abs error). Measured max errors of int8 MiniLM-L6 + seeded head logits against PyTorch: 0.15 on 256
# SciFact pairs (0.54 logit standard deviations), 0.13 on random tokens, 0.11 on synthetic word lists
# whose logits barely vary (std 0.06); the tiny random test BERT: ~0.02-0.04. The check catches a broken
# graph, not ranking quality: the benchmark reports top-10 overlap with fp32 for that.
INT8_ATOL = 0.25
INT8_STD_FRACTION = 0.75


def int8_tolerance(
    reference: np.ndarray, fraction: float = INT8_STD_FRACTION, atol: float = INT8_ATOL
) -> float:
    """Return the max abs error an int8 graph may have: ``max(atol, fraction x std of the fp32 outputs)``.

    Parameters
    ----------
    reference : numpy.ndarray
        The fp32 graph's outputs on the check inputs, any shape (e.g. logits [batch] or [batch, k]);
        read as float64. When empty, ``atol`` is returned.
    fraction : float
        Share of the outputs' standard deviation allowed as error.
    atol : float
        Floor of the tolerance (absolute).
    """
    ref = np.asarray(reference, dtype=np.float64)
    return max(atol, fraction * float(ref.std())) if ref.size else atol


_SIDE_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "merges.txt",
    "vocab.json",
    "sentencepiece.bpe.model",
    "spiece.model",
    "added_tokens.json",
    "modules.json",
    "config_sentence_transformers.json",
    "sentence_bert_config.json",
)


@dataclass
class ExportReport:
    """What :func:`export_model` wrote and how well each graph matched PyTorch."""

    out_dir: str
    task: str
    inputs: list[str]
    outputs: list[str]
    files: list[str] = field(default_factory=list)
    max_abs_err: dict[str, float] = field(default_factory=dict)
    fusions: dict[str, int] = field(default_factory=dict)
    int8_settings: dict[str, Any] = field(default_factory=dict)
    int8_tolerance: float = 0.0
    seconds: float = 0.0


def _import_torch() -> Any:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise missing_extra(getattr(exc, "name", None) or "torch", "export") from exc
    return torch, transformers


def quantize_onnx(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    weight_type: str = INT8_DEFAULTS["weight_type"],
    per_channel: bool = INT8_DEFAULTS["per_channel"],
    reduce_range: bool = INT8_DEFAULTS["reduce_range"],
) -> Path:
    """Quantize the MatMul weights of an ONNX graph to int8 (dynamic activations); no PyTorch needed.

    Parameters
    ----------
    src, dst : str or PathLike
        fp32 graph in, int8 graph out.
    weight_type : {"qint8", "quint8"}
        Signed or unsigned weights.
    per_channel : bool
        One scale per output channel instead of per tensor.
    reduce_range : bool
        7-bit weights (for CPUs without VNNI).

    Returns
    -------
    Path
        ``dst``.
    """
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:  # onnxruntime.quantization needs the onnx package
        raise missing_extra(getattr(exc, "name", None) or "onnx", "export") from exc

    types = {"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}
    if weight_type not in types:
        raise ValueError(f"weight_type must be 'qint8' or 'quint8', got {weight_type!r}")
    quantize_dynamic(
        Path(src),
        Path(dst),
        weight_type=types[weight_type],
        per_channel=per_channel,
        reduce_range=reduce_range,
        op_types_to_quantize=["MatMul", "Attention"],
        extra_options={"MatMulConstBOnly": True},
    )
    return Path(dst)


def _sample_batches(
    vocab_size: int, max_len: int, with_types: bool, seed: int = 0
) -> list[dict[str, np.ndarray]]:
    """Random token batches of several shapes with padding and both token types (the verification set)."""
    rng = np.random.default_rng(seed)
    batches = []
    for rows, length in ((1, 5), (3, 17), (4, min(64, max_len)), (2, min(max_len, 200))):
        ids = rng.integers(5, max(6, vocab_size), size=(rows, length), dtype=np.int64)
        mask = np.ones_like(ids)
        for r in range(1, rows):  # rows after the first are padded
            keep = int(rng.integers(1, length + 1))
            mask[r, keep:] = 0
            ids[r, keep:] = 0
        feeds = {"input_ids": ids, "attention_mask": mask}
        if with_types:
            types = np.zeros_like(ids)
            types[:, length // 2 :] = 1
            feeds["token_type_ids"] = types * mask
        batches.append(feeds)
    return batches


def _real(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Outputs at real tokens (hidden states) or all of them (logits)."""
    return x[mask.astype(bool)] if x.ndim == 3 else x


def _max_err(got: np.ndarray, want: np.ndarray, mask: np.ndarray) -> float:
    if got.shape != want.shape:
        raise StateError(f"exported graph output shape {got.shape} differs from PyTorch's {want.shape}")
    if got.ndim == 3:  # hidden states: compare real tokens only
        sel = mask.astype(bool)
        got, want = got[sel], want[sel]
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) if got.size else 0.0


def _verify(
    path: Path, batches: list[dict[str, np.ndarray]], refs: list[np.ndarray], atol: float, what: str
) -> float:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    err = 0.0
    for feeds, ref in zip(batches, refs, strict=True):
        out = sess.run(None, {k: v for k, v in feeds.items() if k in names})[0]
        err = max(err, _max_err(out, ref, feeds["attention_mask"]))
    if not err <= atol:  # also catches NaN
        raise StateError(
            f"the {what} graph does not match PyTorch: max abs error {err:.3g} > {atol:g}; not written. "
            "Report this with the model's config.json."
        )
    return err


def export_model(
    model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    task: Task | str = "cross-encoder",
    int8: bool = False,
    optimize: bool = False,
    opset: int = 17,
    atol: float = 1e-4,
    int8_std_fraction: float = INT8_STD_FRACTION,
    int8_settings: dict[str, Any] | None = None,
    verbose: bool = False,
) -> ExportReport:
    """Export a Hugging Face checkpoint to a verified ONNX model directory.

    Parameters
    ----------
    model_dir : str or PathLike
        A local checkpoint (``config.json`` + weights + tokenizer), or a hub id transformers can load.
    out_dir : str or PathLike
        Directory to write (created; existing files of the same names are replaced).
    task : {"cross-encoder", "embedding", "token-embedding"}
        ``cross-encoder``: ``AutoModelForSequenceClassification``, output ``logits`` float32
        ``[batch, num_labels]``. ``embedding`` / ``token-embedding``: ``AutoModel``, output
        ``last_hidden_state`` float32 ``[batch, sequence, hidden]`` (pooling, normalisation and any
        ColBERT projection are applied by the embedder / ColBERT reranker, as for hub ONNX files).
        ``causal-lm-reranker``: a Qwen2/Qwen3 ``AutoModelForCausalLM`` as ``prefix.onnx`` +
        ``model.onnx`` (shared-prefix key/value cache, last-token logits of chosen vocabulary rows; see
        :mod:`crossrank.models.causal_lm`), for :class:`~crossrank.LLMPointwiseReranker`.
    int8 : bool
        Also write ``model_int8.onnx`` (dynamic int8, verified within :func:`int8_tolerance`).
    optimize : bool
        Also write ``model_optimized.onnx`` with ONNX Runtime's transformer fusions (BERT-like models).
    opset : int
        ONNX opset (17 has LayerNormalization).
    atol : float
        fp32 tolerance against PyTorch.
    int8_std_fraction : float
        int8 tolerance against PyTorch fp32, in standard deviations of the fp32 outputs.
    int8_settings : dict, optional
        Overrides of :data:`INT8_DEFAULTS` (``weight_type``, ``per_channel``, ``reduce_range``).
    verbose : bool
        Print progress.

    Returns
    -------
    ExportReport

    Raises
    ------
    ImportError
        PyTorch or transformers missing (``pip install "crossrank[export]"``).
    ValueError
        Unknown task.
    crossrank.errors.StateError
        A graph does not match PyTorch within tolerance (nothing of it is written).
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    if task == "causal-lm-reranker":  # prefix + scoring graphs of a decoder (models/causal_lm.py)
        if int8 or optimize:
            raise ValueError("--int8 and --optimize do not apply to --task causal-lm-reranker")
        from .causal_lm import export_causal_lm_reranker

        return export_causal_lm_reranker(model_dir, out_dir, opset=opset, atol=atol, verbose=verbose)
    torch, transformers = _import_torch()
    t0 = time.perf_counter()
    src = Path(model_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = print if verbose else (lambda *a, **k: None)

    load_from = str(src) if src.exists() else str(model_dir)
    auto = (
        transformers.AutoModelForSequenceClassification if task == "cross-encoder" else transformers.AutoModel
    )
    try:
        model = auto.from_pretrained(load_from, attn_implementation="eager")
    except (TypeError, ValueError):  # architectures without the eager switch
        model = auto.from_pretrained(load_from)
    model = model.float().eval()
    config = model.config

    import inspect

    params = inspect.signature(model.forward).parameters
    with_types = "token_type_ids" in params and int(getattr(config, "type_vocab_size", 0) or 0) > 1
    inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_types else [])
    output = "logits" if task == "cross-encoder" else "last_hidden_state"

    class _Graph(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:
            res = self.inner(**dict(zip(inputs, args, strict=True)))
            return res.logits if task == "cross-encoder" else res.last_hidden_state

    graph = _Graph(model).eval()
    max_len = int(getattr(config, "max_position_embeddings", 512) or 512)
    # XLM-R-like models offset positions by the padding index: keep the trace and checks in range.
    max_len = max(8, min(max_len - 2, 512))
    batches = _sample_batches(int(config.vocab_size), max_len, with_types)
    with torch.inference_mode():
        refs = [graph(*(torch.from_numpy(b[name]) for name in inputs)).float().numpy() for b in batches]
    example = tuple(torch.from_numpy(batches[1][name]) for name in inputs)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in inputs}
    dynamic[output] = {0: "batch"} if task == "cross-encoder" else {0: "batch", 1: "sequence"}

    report = ExportReport(out_dir=str(out), task=str(task), inputs=inputs, outputs=[output])
    tmp = out / f".model.{os.getpid()}.onnx"
    say(f"exporting {load_from} ({type(model).__name__}) to ONNX opset {opset}")
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            example,
            str(tmp),
            input_names=inputs,
            output_names=[output],
            dynamic_axes=dynamic,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    try:
        report.max_abs_err["fp32"] = _verify(tmp, batches, refs, atol, "fp32")
        os.replace(tmp, out / "model.onnx")
    finally:
        tmp.unlink(missing_ok=True)
    report.files.append("model.onnx")
    say(f"model.onnx: max abs error vs PyTorch {report.max_abs_err['fp32']:.2e}")

    if optimize:
        report.fusions = _optimize(out / "model.onnx", out / "model_optimized.onnx", config)
        report.max_abs_err["optimized"] = _verify(
            out / "model_optimized.onnx", batches, refs, atol, "optimized"
        )
        report.files.append("model_optimized.onnx")
        say(f"model_optimized.onnx: fusions {report.fusions}, error {report.max_abs_err['optimized']:.2e}")

    if int8:
        settings = {**INT8_DEFAULTS, **(int8_settings or {})}
        tmp8 = out / f".model_int8.{os.getpid()}.onnx"
        try:
            quantize_onnx(out / "model.onnx", tmp8, **settings)
            flat = np.concatenate(
                [_real(r, b["attention_mask"]).ravel() for r, b in zip(refs, batches, strict=True)]
            )
            report.int8_tolerance = int8_tolerance(flat, int8_std_fraction)
            report.max_abs_err["int8"] = _verify(tmp8, batches, refs, report.int8_tolerance, "int8")
            os.replace(tmp8, out / "model_int8.onnx")
        finally:
            tmp8.unlink(missing_ok=True)
        report.int8_settings = settings
        report.files.append("model_int8.onnx")
        say(f"model_int8.onnx: max abs error vs PyTorch {report.max_abs_err['int8']:.2e} ({settings})")

    config.save_pretrained(str(out))
    report.files += _copy_side_files(src, out, load_from, transformers)
    report.seconds = time.perf_counter() - t0
    (out / "crossrank_export.json").write_text(json.dumps(asdict(report), indent=2))
    return report


def _optimize(src: Path, dst: Path, config: Any) -> dict[str, int]:
    """Apply ONNX Runtime's BERT fusions offline; return the fused-operator counts (checked non-zero)."""
    from onnxruntime.transformers.optimizer import optimize_model

    model_type = {
        "bert": "bert",
        "roberta": "bert",
        "xlm-roberta": "bert",
        "distilbert": "bert",
        "electra": "bert",
    }
    mt = model_type.get(str(getattr(config, "model_type", "")), "bert")
    opt = optimize_model(
        str(src),
        model_type=mt,
        num_heads=int(getattr(config, "num_attention_heads", 0) or 0),
        hidden_size=int(getattr(config, "hidden_size", 0) or 0),
        opt_level=1,
        use_gpu=False,
    )
    stats = {k: int(v) for k, v in opt.get_fused_operator_statistics().items() if v}
    layers = int(getattr(config, "num_hidden_layers", 0) or 0)
    if stats.get("Attention", 0) + stats.get("MultiHeadAttention", 0) < layers:
        raise StateError(
            f"ONNX Runtime fused attention in {stats.get('Attention', 0)} of {layers} layers; "
            "this architecture is not supported by --optimize (model.onnx is fine without it)"
        )
    opt.save_model_to_file(str(dst))
    return stats


def _copy_side_files(src: Path, out: Path, load_from: str, transformers: Any) -> list[str]:
    """Copy tokenizer and sentence-transformers files next to the graph; make tokenizer.json if missing."""
    copied: list[str] = []
    if src.is_dir():
        for name in _SIDE_FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, out / name)
                copied.append(name)
        for sub in sorted(src.glob("[0-9]_*")):  # sentence-transformers modules (1_Pooling, 2_Normalize...)
            if sub.is_dir():
                shutil.copytree(sub, out / sub.name, dirs_exist_ok=True)
                copied.append(sub.name + "/")
    if not (out / "tokenizer.json").is_file():
        tok = transformers.AutoTokenizer.from_pretrained(load_from, use_fast=True)
        if not getattr(tok, "is_fast", False):
            raise StateError(f"{load_from} has no fast tokenizer; crossrank needs tokenizer.json")
        tok.save_pretrained(str(out))
        copied.append("tokenizer.json")
    return copied


def describe(report: ExportReport) -> str:
    """Return a short human summary of an export."""
    errs = ", ".join(f"{k} {v:.2e}" for k, v in report.max_abs_err.items())
    lines = [f"wrote {report.out_dir}: {', '.join(report.files)}", f"max abs error vs PyTorch: {errs}"]
    if report.fusions:
        lines.append("fusions: " + ", ".join(f"{k}={v}" for k, v in report.fusions.items()))
    if report.int8_settings:
        lines.append(f"int8 settings: {report.int8_settings}")
    return "\n".join(lines)
