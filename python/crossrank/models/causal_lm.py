"""Export a Qwen2/Qwen3 causal LM as pointwise-reranker graphs with a shared-prefix key/value cache.

``crossrank export MODEL -o OUT --task causal-lm-reranker`` writes two ONNX graphs that read the model's own
weights (traced from :class:`ScoringDecoder`, a plain re-statement of the decoder's forward pass, so the
trace holds no cache objects or shape-specific mask code):

* ``prefix.onnx``: ``input_ids``, ``attention_mask``, ``position_ids`` ``[batch, prefix]`` ->
  ``present.{i}.key`` / ``present.{i}.value`` ``[batch, kv_heads, prefix, head_dim]`` for every layer
  (the key/value state of a prompt's common prefix, computed once per query);
* ``model.onnx``: ``input_ids``, ``position_ids`` ``[batch, suffix]``, ``attention_mask``
  ``[batch, past + suffix]``, ``past_key_values.{i}.key`` / ``.value`` ``[past_batch, kv_heads, past,
  head_dim]`` (``past_batch`` 1 is broadcast to every row without a copy; ``past`` may be 0: a full prompt),
  ``last_index`` ``[batch]`` (each row's last real token: rows are right-padded) and ``score_ids`` ``[k]``
  -> ``scores`` ``[batch, k]``: the next-token logits of the ``score_ids`` vocabulary rows at the last real
  token only (the rest of the vocabulary is never multiplied).

Both are verified against ``transformers``' ``AutoModelForCausalLM`` on the same full prompts (prefix then
right-padded suffixes of several lengths, and whole prompts with an empty past) before anything is written.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StateError

__all__ = ["SUPPORTED_MODEL_TYPES", "export_causal_lm_reranker", "past_names"]

SUPPORTED_MODEL_TYPES = ("qwen2", "qwen3")
# Rope variants whose frequencies do not depend on the sequence length (a fixed inv_freq and scale).
_STATIC_ROPE = ("default", "linear", "llama3", "yarn")


def past_names(n_layers: int, prefix: str = "past_key_values") -> list[str]:
    """Return ``[f"{prefix}.0.key", f"{prefix}.0.value", ...]`` for ``n_layers`` layers.

    Parameters
    ----------
    n_layers : int
        Decoder layers.
    prefix : str
        ``past_key_values`` (inputs of ``model.onnx``) or ``present`` (outputs of ``prefix.onnx``).
    """
    return [f"{prefix}.{i}.{kind}" for i in range(n_layers) for kind in ("key", "value")]


def _build_module(torch: Any, hf: Any) -> Any:
    """Return a ``torch.nn.Module`` computing a Qwen2/Qwen3 decoder from ``hf``'s weights (fp32)."""
    config = hf.config
    model_type = str(getattr(config, "model_type", ""))
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"--task causal-lm-reranker supports model types {', '.join(SUPPORTED_MODEL_TYPES)}; "
            f"this checkpoint is {model_type!r}"
        )
    if getattr(config, "use_sliding_window", False):
        raise ValueError("sliding-window attention is not supported by --task causal-lm-reranker")
    rotary = hf.model.rotary_emb
    rope_type = str(getattr(rotary, "rope_type", "default"))
    if rope_type not in _STATIC_ROPE:
        raise ValueError(f"rope type {rope_type!r} is not supported (only {', '.join(_STATIC_ROPE)})")
    nn = torch.nn
    inner = hf.model
    n_heads = int(config.num_attention_heads)
    n_kv = int(getattr(config, "num_key_value_heads", None) or n_heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // n_heads)
    groups = n_heads // n_kv
    eps = float(config.rms_norm_eps)
    scale = head_dim**-0.5
    inv_freq = rotary.inv_freq.detach().float().clone()
    rope_scale = float(getattr(rotary, "attention_scaling", 1.0))

    def rms(x: Any, weight: Any) -> Any:
        var = x.pow(2).mean(-1, keepdim=True)
        return weight * (x * torch.rsqrt(var + eps))

    def rotate(x: Any, cos: Any, sin: Any) -> Any:
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]
        return x * cos + torch.cat((-x2, x1), dim=-1) * sin

    class ScoringDecoder(nn.Module):  # type: ignore[name-defined]
        """The decoder's forward pass with an optional broadcast past and last-token scoring."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = inner
            self.lm_weight = hf.get_output_embeddings().weight
            self.register_buffer("inv_freq", inv_freq, persistent=False)

        def layers_forward(
            self, input_ids: Any, attention_mask: Any, position_ids: Any, past: list[Any]
        ) -> Any:
            """Hidden states [B, S, D] and each layer's new keys/values ([B, kv, S, hd])."""
            b, s = input_ids.shape
            h = self.inner.embed_tokens(input_ids)
            freqs = position_ids.float()[..., None] * self.inv_freq  # [B, S, hd/2]
            emb = torch.cat((freqs, freqs), dim=-1)[:, None, None]  # [B, 1, 1, S, hd]
            cos, sin = emb.cos() * rope_scale, emb.sin() * rope_scale
            # Key j is visible to the query at position p when j <= p and j is not padding.
            kpos = torch.cumsum(torch.ones_like(attention_mask), dim=-1) - 1  # [B, P+S]
            allowed = (kpos[:, None, :] <= position_ids[:, :, None]) & (attention_mask[:, None, :] > 0)
            bias = torch.where(allowed, 0.0, torch.finfo(torch.float32).min)[:, None, None]  # [B,1,1,S,P+S]
            present = []
            for i, layer in enumerate(self.inner.layers):
                attn = layer.self_attn
                x = rms(h, layer.input_layernorm.weight)
                q = attn.q_proj(x).view(b, s, n_kv, groups, head_dim)
                k = attn.k_proj(x).view(b, s, n_kv, 1, head_dim)
                v = attn.v_proj(x).view(b, s, n_kv, 1, head_dim)
                if hasattr(attn, "q_norm"):  # Qwen3: RMSNorm per head before rope
                    q = rms(q, attn.q_norm.weight)
                    k = rms(k, attn.k_norm.weight)
                q = rotate(q.permute(0, 2, 3, 1, 4), cos, sin)  # [B, kv, g, S, hd]
                k = rotate(k.permute(0, 2, 3, 1, 4), cos, sin)  # [B, kv, 1, S, hd]
                v = v.permute(0, 2, 3, 1, 4)
                present.append((k[:, :, 0], v[:, :, 0]))
                scores = torch.matmul(q, k.transpose(-1, -2))
                if past:
                    # The past has batch 1 (one prefix) or B; matmul broadcasts it without a copy.
                    pk, pv = past[2 * i][:, :, None], past[2 * i + 1][:, :, None]
                    n_past = pk.shape[-2]
                    scores = torch.cat((torch.matmul(q, pk.transpose(-1, -2)), scores), dim=-1)
                    probs = torch.softmax(scores * scale + bias, dim=-1)
                    out = torch.matmul(probs[..., :n_past], pv) + torch.matmul(probs[..., n_past:], v)
                else:
                    probs = torch.softmax(scores * scale + bias, dim=-1)
                    out = torch.matmul(probs, v)
                out = out.permute(0, 3, 1, 2, 4).reshape(b, s, n_heads * head_dim)
                h = h + attn.o_proj(out)
                x = rms(h, layer.post_attention_layernorm.weight)
                mlp = layer.mlp
                h = h + mlp.down_proj(torch.nn.functional.silu(mlp.gate_proj(x)) * mlp.up_proj(x))
            return h, present

        def score(self, h: Any, last_index: Any, score_ids: Any) -> Any:
            idx = last_index.view(-1, 1, 1).expand(-1, 1, h.shape[-1])
            last = torch.gather(h, 1, idx)[:, 0]  # [B, D]
            last = rms(last, self.inner.norm.weight)
            return torch.matmul(last, torch.index_select(self.lm_weight, 0, score_ids).t())

    class PrefixGraph(nn.Module):  # type: ignore[name-defined]
        def __init__(self, core: Any) -> None:
            super().__init__()
            self.core = core

        def forward(self, input_ids: Any, attention_mask: Any, position_ids: Any) -> Any:
            _, present = self.core.layers_forward(input_ids, attention_mask, position_ids, [])
            return tuple(t for kv in present for t in kv)

    class ScoreGraph(nn.Module):  # type: ignore[name-defined]
        def __init__(self, core: Any) -> None:
            super().__init__()
            self.core = core

        def forward(
            self,
            input_ids: Any,
            attention_mask: Any,
            position_ids: Any,
            last_index: Any,
            score_ids: Any,
            *past: Any,
        ) -> Any:
            h, _ = self.core.layers_forward(input_ids, attention_mask, position_ids, list(past))
            return self.core.score(h, last_index, score_ids)

    core = ScoringDecoder().eval()
    dims = {"layers": len(inner.layers), "kv_heads": n_kv, "head_dim": head_dim}
    return PrefixGraph(core).eval(), ScoreGraph(core).eval(), dims


def _random_case(
    rng: np.random.Generator, vocab: int, prefix: int, lengths: list[int]
) -> dict[str, np.ndarray]:
    """One prefix and right-padded suffixes of the given real lengths (the verification inputs)."""
    width = max(lengths)
    ids = rng.integers(0, vocab, size=(len(lengths), width), dtype=np.int64)
    mask = np.zeros((len(lengths), prefix + width), np.int64)
    mask[:, :prefix] = 1
    for r, n in enumerate(lengths):
        mask[r, prefix : prefix + n] = 1
        ids[r, n:] = 0
    return {
        "prefix_ids": rng.integers(0, vocab, size=(1, prefix), dtype=np.int64),
        "input_ids": ids,
        "attention_mask": mask,
        "position_ids": np.broadcast_to(np.arange(prefix, prefix + width, dtype=np.int64), ids.shape).copy(),
        "last_index": np.asarray(lengths, np.int64) - 1,
    }


def export_causal_lm_reranker(
    model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    opset: int = 17,
    atol: float = 1e-4,
    verbose: bool = False,
) -> Any:
    """Export a Qwen2/Qwen3 causal LM checkpoint as verified prefix + scoring graphs (module docstring).

    Parameters
    ----------
    model_dir : str or PathLike
        A local checkpoint (or a hub id transformers can load).
    out_dir : str or PathLike
        Directory to write.
    opset : int
        ONNX opset.
    atol : float
        Max absolute error of the scoring logits against transformers (fp32).
    verbose : bool
        Print progress.

    Returns
    -------
    crossrank.models.export.ExportReport

    Raises
    ------
    ValueError
        An unsupported architecture (not Qwen2/Qwen3, sliding windows, length-dependent rope).
    crossrank.errors.StateError
        A graph does not match transformers within ``atol`` (nothing is written).
    """
    from .export import ExportReport, _copy_side_files, _import_torch

    torch, transformers = _import_torch()
    t0 = time.perf_counter()
    src, out = Path(model_dir), Path(out_dir)
    load_from = str(src) if src.exists() else str(model_dir)
    say = print if verbose else (lambda *a, **k: None)
    hf = transformers.AutoModelForCausalLM.from_pretrained(load_from, attn_implementation="eager")
    hf = hf.float().eval()
    prefix_graph, score_graph, dims = _build_module(torch, hf)
    n_layers = dims["layers"]
    vocab = int(hf.config.vocab_size)
    presents, pasts = past_names(n_layers, "present"), past_names(n_layers)
    score_inputs = ["input_ids", "attention_mask", "position_ids", "last_index", "score_ids", *pasts]
    out.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(0)
    cases = [_random_case(rng, vocab, p, lens) for p, lens in ((7, [5, 1, 9]), (3, [12, 12]), (19, [1]))]
    score_ids = np.array(sorted({0, vocab - 1, vocab // 2, vocab // 3}), np.int64)
    refs = []
    with torch.inference_mode():
        for c in cases:
            rows = []
            for r, last in enumerate(c["last_index"].tolist()):
                full = np.concatenate([c["prefix_ids"][0], c["input_ids"][r, : last + 1]])[None]
                logits = hf(input_ids=torch.from_numpy(full)).logits[0, -1]
                rows.append(logits[torch.from_numpy(score_ids)].float().numpy())
            refs.append(np.stack(rows))

    kv = {0: "past_batch", 2: "past"}
    dyn_prefix: dict[str, dict[int, str]] = {
        n: {0: "batch", 1: "sequence"} for n in ("input_ids", "attention_mask", "position_ids")
    }
    dyn_prefix.update({n: {0: "batch", 2: "sequence"} for n in presents})
    dyn_score: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch", 1: "sequence"},
        "position_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "total"},
        "last_index": {0: "batch"},
        "score_ids": {0: "k"},
        "scores": {0: "batch", 1: "k"},
    }
    dyn_score.update({n: dict(kv) for n in pasts})
    c0 = cases[0]
    p0 = c0["prefix_ids"].shape[1]
    prefix_example = (
        torch.from_numpy(c0["prefix_ids"]),
        torch.ones((1, p0), dtype=torch.int64),
        torch.arange(p0, dtype=torch.int64)[None],
    )
    with torch.inference_mode():
        past_example = prefix_graph(*prefix_example)
    score_example = (
        torch.from_numpy(c0["input_ids"]),
        torch.from_numpy(c0["attention_mask"]),
        torch.from_numpy(c0["position_ids"]),
        torch.from_numpy(c0["last_index"]),
        torch.from_numpy(score_ids),
        *past_example,
    )
    # Each graph is staged in its own folder: a model over 2 GB gets its weights written as external data
    # files named after its tensors, which must not mix with the other graph's.
    stage = out / f".staging.{os.getpid()}"
    tmp = {name: stage / name / f"{name}.onnx" for name in ("prefix", "model")}
    for path in tmp.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    say(f"exporting {load_from} ({type(hf).__name__}) as prefix + scoring graphs, opset {opset}")
    report = ExportReport(
        out_dir=str(out), task="causal-lm-reranker", inputs=score_inputs, outputs=["scores"]
    )
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                prefix_graph, prefix_example, str(tmp["prefix"]),
                input_names=["input_ids", "attention_mask", "position_ids"], output_names=presents,
                dynamic_axes=dyn_prefix, opset_version=opset, do_constant_folding=True, dynamo=False,
            )  # fmt: skip
            torch.onnx.export(
                score_graph, score_example, str(tmp["model"]),
                input_names=score_inputs, output_names=["scores"],
                dynamic_axes=dyn_score, opset_version=opset, do_constant_folding=True, dynamo=False,
            )  # fmt: skip
        for name, path in tmp.items():
            _one_data_file(path, f"{name}.onnx.data")
        report.max_abs_err = _verify(
            tmp["prefix"], tmp["model"], cases, refs, score_ids, n_layers, dims, atol
        )
        for name, path in tmp.items():
            data = path.with_name(f"{name}.onnx.data")
            if data.is_file():
                os.replace(data, out / data.name)
                report.files.append(data.name)
            os.replace(path, out / f"{name}.onnx")
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    report.files += ["model.onnx", "prefix.onnx"]
    say(f"max abs error vs transformers: {report.max_abs_err}")
    hf.config.save_pretrained(str(out))
    if src.is_dir() and (src / "crossrank_pointwise.json").is_file():
        shutil.copy2(src / "crossrank_pointwise.json", out / "crossrank_pointwise.json")
        report.files.append("crossrank_pointwise.json")
    report.files += _copy_side_files(src, out, load_from, transformers)
    report.seconds = time.perf_counter() - t0
    body = asdict(report) | {"graph": {"past": pasts, "present": presents, **dims}}
    (out / "crossrank_export.json").write_text(json.dumps(body, indent=2))
    return report


def _one_data_file(path: Path, data_name: str) -> None:
    """Gather a graph's external data files (written for models over 2 GB) into one ``data_name`` file."""
    others = [p for p in path.parent.iterdir() if p != path]
    if not others:
        return
    import onnx

    model = onnx.load(str(path))  # reads the external tensors
    for p in others:
        p.unlink()
    onnx.save_model(
        model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=data_name
    )


def _verify(
    prefix_path: Path,
    model_path: Path,
    cases: list[dict[str, np.ndarray]],
    refs: list[np.ndarray],
    score_ids: np.ndarray,
    n_layers: int,
    dims: dict[str, int],
    atol: float,
) -> dict[str, float]:
    """Max abs error of the cached (prefix + suffix) and full-prompt (empty past) paths vs transformers."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    prefix = ort.InferenceSession(str(prefix_path), sess_options=opts, providers=["CPUExecutionProvider"])
    model = ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
    pasts = past_names(n_layers)
    errs = {"prefix_cache": 0.0, "full_prompt": 0.0}
    for c, ref in zip(cases, refs, strict=True):
        p = c["prefix_ids"].shape[1]
        kv = prefix.run(
            None,
            {
                "input_ids": c["prefix_ids"],
                "attention_mask": np.ones((1, p), np.int64),
                "position_ids": np.arange(p, dtype=np.int64)[None],
            },
        )
        feeds = {k: c[k] for k in ("input_ids", "attention_mask", "position_ids", "last_index")}
        got = model.run(None, {**feeds, "score_ids": score_ids, **dict(zip(pasts, kv, strict=True))})[0]
        errs["prefix_cache"] = max(errs["prefix_cache"], float(np.max(np.abs(got - ref))))
        # The same rows as whole prompts: prefix + suffix in input_ids, an empty past.
        rows = len(c["input_ids"])
        full_ids = np.concatenate([np.repeat(c["prefix_ids"], rows, 0), c["input_ids"]], axis=1)
        empty = np.zeros((1, dims["kv_heads"], 0, dims["head_dim"]), np.float32)
        full = {
            "input_ids": full_ids,
            "attention_mask": c["attention_mask"],
            "position_ids": np.broadcast_to(
                np.arange(full_ids.shape[1], dtype=np.int64), full_ids.shape
            ).copy(),
            "last_index": c["last_index"] + p,
            "score_ids": score_ids,
            **dict.fromkeys(pasts, empty),
        }
        got = model.run(None, full)[0]
        errs["full_prompt"] = max(errs["full_prompt"], float(np.max(np.abs(got - ref))))
    for what, err in errs.items():
        if not err <= atol:
            raise StateError(
                f"the exported causal-LM reranker graph ({what}) does not match transformers: max abs error "
                f"{err:.3g} > {atol:g}; not written. Report this with the model's config.json."
            )
    return errs
