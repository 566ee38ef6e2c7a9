"""Inference backends that run an ONNX graph on NumPy feeds: ONNX Runtime and OpenVINO.

Both sit behind :class:`InferenceBackend` (``input_names`` + ``run(feeds) -> outputs``), are fed by the
same packed batches, and are safe to call from several Python threads at once (ONNX Runtime's
``InferenceSession.run`` is thread-safe; OpenVINO gets one infer request per thread). Loaded backends are
shared: :func:`load_backend` returns the same object for the same file, backend, precision and threads.

Choosing (``backend="auto"``, ``precision="auto"``):

* a CUDA GPU with ``onnxruntime-gpu`` → ONNX Runtime on the CUDA provider, fp32;
* a CPU with bf16 units (``avx512_bf16`` or ``amx_bf16`` in ``/proc/cpuinfo``) and ``openvino``
  installed → OpenVINO with the bf16 inference precision hint (several times faster than fp32 there);
* otherwise ONNX Runtime on the CPU, fp32.

``precision="fp32"`` always gives full-precision results (ONNX Runtime unless OpenVINO is forced);
``precision="int8"`` runs the int8 graph beside the given one: the calibrated static graph
(``model_int8_static.onnx``, ``crossrank export --int8-static``) when there is one, else
``model_int8.onnx`` (dynamic, ``crossrank export --int8``) or ``model_quantized.onnx``, else a dynamically
quantized copy (made once with :func:`crossrank.models.export.quantize_onnx` and cached), unless the
graph is already quantized.

An OpenVINO int8 model made by NNCF (``int8_openvino/``, ``crossrank export --int8-static --int8-engine
openvino``, :mod:`crossrank.models.quantize_openvino`) comes first for ``precision="int8"`` on backend
``auto`` or ``openvino`` when ``openvino`` is installed: on CPUs with VNNI it is the fastest int8 path.

``precision="auto"`` on the CPU picks a calibrated int8 model when its manifest records a mean top-10
overlap with fp32 of at least :data:`crossrank.models.quantize_static.FAITHFUL_TOP10_OVERLAP` (0.98) on
held-out calibration queries: the OpenVINO one (backend ``auto``/``openvino``), else the static ONNX graph
(``int8_static.json``; backend ``auto``/``onnxruntime``); otherwise it chooses as above.

Threads: intra-op threads default to the cgroup CPU quota (``crossrank._core.default_num_threads()``),
inter-op threads to 1, so one inference never oversubscribes the cores crossrank's own pool uses.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from .._common import resolve_threads
from ..errors import missing_extra

__all__ = [
    "Backend",
    "InferenceBackend",
    "OnnxRuntimeBackend",
    "OpenVINOBackend",
    "Precision",
    "cpu_flags",
    "cpu_has_bf16",
    "load_backend",
    "resolve_threads",
]

Backend = Literal["auto", "onnxruntime", "openvino"]
Precision = Literal["auto", "fp32", "bf16", "fp16", "int8"]
_BACKENDS = ("auto", "onnxruntime", "openvino")
_PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")


@runtime_checkable
class InferenceBackend(Protocol):
    """What every backend offers: the graph's input names and a thread-safe ``run``."""

    name: str
    precision: str
    input_names: list[str]
    output_names: list[str]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the graph on ``feeds`` (name → array; int64 token inputs) and return its outputs in order.

        Parameters
        ----------
        feeds : dict of str to numpy.ndarray
            Input name -> array, e.g. ``input_ids``, ``attention_mask`` and ``token_type_ids``, each
            int64 [batch, seq_len]. Names the graph does not take (not in :attr:`input_names`) are
            ignored.

        Returns
        -------
        list of numpy.ndarray
            One array per :attr:`output_names`, in that order (e.g. float32 logits [batch, k]).
        """
        ...


@functools.cache
def cpu_flags() -> frozenset[str]:
    """Return the CPU feature flags of this machine from ``/proc/cpuinfo`` (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_bf16() -> bool:
    """Return True when the CPU computes bf16 natively (AVX-512 BF16 or AMX BF16)."""
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _has_openvino() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def _ort_cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def _graph_is_quantized(path: Path) -> bool:
    """Cheap check for a quantized graph: its name, or quantization ops in the first megabytes."""
    name = path.name.lower()
    if any(tag in name for tag in ("int8", "qint8", "quint8", "quantized")):
        return True
    with path.open("rb") as f:
        head = f.read(4 << 20)
    return b"MatMulInteger" in head or b"DynamicQuantizeLinear" in head or b"QLinearMatMul" in head


class OnnxRuntimeBackend:
    """ONNX Runtime session (CUDA provider when available, else CPU), shared across threads.

    Parameters
    ----------
    onnx_path : Path
        The graph.
    num_threads : int
        Intra-op threads (inter-op is 1).
    providers : list of str, optional
        Execution providers; default CUDA then CPU when CUDA is available, else CPU.
    precision : str
        Label reported in ``precision`` (the graph decides the arithmetic).
    """

    name = "onnxruntime"

    def __init__(
        self,
        onnx_path: Path,
        *,
        num_threads: int,
        providers: list[str] | None = None,
        precision: str = "fp32",
    ) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning threads burn the other engineers' cores between batches; one short batch at a
        # time gains little from it.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if providers is None:
            providers = (
                ["CUDAExecutionProvider", "CPUExecutionProvider"]
                if _ort_cuda_available()
                else ["CPUExecutionProvider"]
            )
        self.onnx_path = Path(onnx_path)
        self.num_threads = num_threads
        self.precision = precision
        self._session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=providers)
        self.providers: list[str] = list(self._session.get_providers())
        self.input_names = [i.name for i in self._session.get_inputs()]
        self.output_names = [o.name for o in self._session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the graph; see :class:`InferenceBackend`.

        Parameters
        ----------
        feeds : dict of str to numpy.ndarray
            Input name -> int64 array [batch, seq_len]; names not in :attr:`input_names` are ignored.

        Returns
        -------
        list of numpy.ndarray
            The outputs in :attr:`output_names` order (fresh arrays the caller may keep).
        """
        return list(self._session.run(None, {k: v for k, v in feeds.items() if k in self.input_names}))

    def __repr__(self) -> str:
        return (
            f"OnnxRuntimeBackend({self.onnx_path.name!r}, providers={self.providers}, "
            f"threads={self.num_threads}, precision={self.precision!r})"
        )


class OpenVINOBackend:
    """OpenVINO CPU model compiled from the ONNX graph with an inference precision hint.

    Shapes stay dynamic (batch and sequence); OpenVINO specialises per shape it meets, and crossrank's
    packer pads batches to a few shape buckets so there are few.

    Parameters
    ----------
    onnx_path : Path
        The graph (ONNX, or OpenVINO IR ``.xml``).
    num_threads : int
        Inference threads.
    precision : {"bf16", "fp32", "fp16", "int8"}
        ``INFERENCE_PRECISION_HINT``; ``int8`` is for a model NNCF quantized
        (:mod:`crossrank.models.quantize_openvino`): its int8 layers run in int8 whatever the hint, and the
        layers it left unquantized run in bf16 where the CPU has bf16 units, else fp32.
    """

    name = "openvino"

    def __init__(self, onnx_path: Path, *, num_threads: int, precision: str = "bf16") -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise missing_extra("openvino", "openvino") from exc
        int8_rest = "bf16" if cpu_has_bf16() else "f32"
        hint = {"bf16": "bf16", "fp32": "f32", "fp16": "f16", "int8": int8_rest}.get(precision)
        if hint is None:
            raise ValueError(
                f"the openvino backend runs precision 'bf16', 'fp32', 'fp16' or 'int8', got {precision!r}"
            )
        core = ov.Core()
        model = core.read_model(str(onnx_path))
        config = {
            "INFERENCE_PRECISION_HINT": hint,
            "INFERENCE_NUM_THREADS": num_threads,
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
        }
        self.onnx_path = Path(onnx_path)
        self.num_threads = num_threads
        self.precision = precision
        self._compiled = core.compile_model(model, "CPU", config)
        self.input_names = [p.get_any_name() for p in self._compiled.inputs]
        self.output_names = [p.get_any_name() for p in self._compiled.outputs]
        self._local = threading.local()

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the graph; see :class:`InferenceBackend`.

        Parameters
        ----------
        feeds : dict of str to numpy.ndarray
            Input name -> int64 array [batch, seq_len]; names not in :attr:`input_names` are ignored.

        Returns
        -------
        list of numpy.ndarray
            The outputs in :attr:`output_names` order (fresh arrays the caller may keep).
        """
        req = getattr(self._local, "request", None)
        if req is None:
            req = self._compiled.create_infer_request()
            self._local.request = req
        req.infer({k: v for k, v in feeds.items() if k in self.input_names})
        # The request reuses its output buffers: copy before the next call overwrites them.
        return [np.array(req.get_output_tensor(i).data, copy=True) for i in range(len(self.output_names))]

    def __repr__(self) -> str:
        return f"OpenVINOBackend({self.onnx_path.name!r}, threads={self.num_threads}, precision={self.precision!r})"


_CACHE: dict[tuple[Any, ...], InferenceBackend] = {}
_CACHE_LOCK = threading.Lock()


def _choose(backend: str, precision: str) -> tuple[str, str]:
    """Resolve ``auto`` backend/precision for this machine."""
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(_BACKENDS)}; got {backend!r}")
    if precision not in _PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(_PRECISIONS)}; got {precision!r}")
    if backend == "auto":
        if precision in ("auto", "bf16") and not _ort_cuda_available() and _has_openvino() and cpu_has_bf16():
            backend = "openvino"
        elif precision == "bf16":
            if not _has_openvino():
                raise missing_extra("openvino", "openvino")
            backend = "openvino"
        else:
            backend = "onnxruntime"
    if precision == "auto":
        precision = "bf16" if backend == "openvino" and cpu_has_bf16() else "fp32"
    if backend == "onnxruntime" and precision in ("bf16", "fp16"):
        raise ValueError(
            f"precision {precision!r} is not available on the onnxruntime backend; "
            "use backend='openvino' (pip install \"crossrank[openvino]\") or precision 'fp32'/'int8'"
        )
    # (int8 on openvino never gets here: _openvino_int8 runs the NNCF model or says why it cannot.)
    return backend, precision


def _quantized_copy(onnx_path: Path) -> Path:
    """Return a dynamically int8-quantized copy of ``onnx_path`` (made once, kept in the cache)."""
    from .export import quantize_onnx
    from .hub import cache_dir

    st = onnx_path.stat()
    key = hashlib.sha256(f"{onnx_path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:24]
    out = cache_dir() / "quantized" / f"{key}.onnx"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".tmp{os.getpid()}.onnx")
        quantize_onnx(onnx_path, tmp)
        os.replace(tmp, out)
    return out


def _fuse_check(plain: Path, fused: Path) -> bool:
    """Return True when the fused graph gives the plain graph's outputs (1e-4) on a small random batch."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    a = ort.InferenceSession(str(plain), sess_options=opts, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(fused), sess_options=opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in a.get_inputs()]
    if names != [i.name for i in b.get_inputs()]:
        return False
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 100, size=(2, 9), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    feeds = {k: v for k, v in feeds.items() if k in names}
    ra, rb = a.run(None, feeds)[0], b.run(None, feeds)[0]
    if ra.ndim == 3:
        ra, rb = ra[mask.astype(bool)], rb[mask.astype(bool)]
    return ra.shape == rb.shape and bool(np.all(np.abs(ra - rb) <= 1e-4))


def _heads_and_hidden(onnx_path: Path) -> tuple[int, int]:
    """Attention heads and hidden size from the config.json beside the graph (0, 0 = let ORT detect)."""
    import json

    for d in (onnx_path.parent, onnx_path.parent.parent):
        cfg = d / "config.json"
        if cfg.is_file():
            try:
                c = json.loads(cfg.read_text(encoding="utf-8"))
                return int(c.get("num_attention_heads") or 0), int(c.get("hidden_size") or 0)
            except (ValueError, OSError):
                break
    return 0, 0


def _fused_copy(onnx_path: Path) -> Path | None:
    """Return a graph with ONNX Runtime's transformer fusions applied, or None when they do not apply.

    ONNX Runtime's load-time optimizer does not fuse the attention of graphs exported from PyTorch's
    eager attention; the offline fusion (``onnxruntime.transformers.optimizer``) does: MiniLM-L6 at
    16 x 512 needed 431 MB of activations instead of 940 MB, and ran ~6% faster (same speed at 64 x 128). ``model_optimized.onnx`` beside the graph
    (``crossrank export --optimize``) is used when present; otherwise the fused graph is made once,
    checked against the plain one, and cached (a marker remembers graphs that do not fuse).
    """
    sibling = onnx_path.with_name("model_optimized.onnx")
    if onnx_path.name == "model.onnx" and sibling.is_file():
        return sibling
    from .hub import cache_dir

    st = onnx_path.stat()
    key = hashlib.sha256(f"{onnx_path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:24]
    out = cache_dir() / "fused" / f"{key}.onnx"
    marker = out.with_suffix(".nofuse")
    if out.is_file():
        return out
    if marker.is_file():
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}.onnx")
    try:
        import logging

        from onnxruntime.transformers.optimizer import optimize_model

        logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
        heads, hidden = _heads_and_hidden(onnx_path)
        opt = optimize_model(
            str(onnx_path), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1, use_gpu=False
        )
        stats = opt.get_fused_operator_statistics()
        if stats.get("Attention", 0) + stats.get("MultiHeadAttention", 0) == 0:
            raise ValueError("no attention fused")
        opt.save_model_to_file(str(tmp))
        if not _fuse_check(onnx_path, tmp):
            raise ValueError("fused graph differs")
        os.replace(tmp, out)
        return out
    except Exception:  # an architecture the fusions do not know: run the plain graph
        marker.write_text("")
        return None
    finally:
        tmp.unlink(missing_ok=True)


def _faithful_static_int8(path: Path) -> bool:
    """True when a static int8 graph beside ``path`` records top-10 overlap >= the faithful bar (CPU only)."""
    from .quantize_static import FAITHFUL_TOP10_OVERLAP, static_int8_fidelity

    fid = static_int8_fidelity(path)
    if not fid or _ort_cuda_available():
        return False
    overlap = fid.get("top10_overlap_mean")
    return isinstance(overlap, (int, float)) and overlap >= FAITHFUL_TOP10_OVERLAP


def _openvino_int8(path: Path, backend: str, precision: str) -> Path | None:
    """The OpenVINO int8 model (``int8_openvino/model.xml``) to run for this request, else None.

    ``int8`` on backend ``auto``/``openvino`` runs it when it exists (and ``openvino`` is installed);
    ``auto`` runs it only when its recorded top-10 overlap with fp32 is faithful. A CUDA GPU keeps its path.
    """
    if backend not in ("auto", "openvino") or precision not in ("auto", "int8"):
        return None
    from .quantize_openvino import OPENVINO_INT8_DIR, openvino_int8_fidelity, openvino_int8_graph

    graph = openvino_int8_graph(path)
    if backend == "openvino" and precision == "int8":
        if graph is None:
            raise ValueError(
                f"precision 'int8' on the openvino backend runs the NNCF model in {path.parent}/"
                f"{OPENVINO_INT8_DIR}/, and there is none made from {path.name} "
                "(crossrank export --int8-static --int8-engine openvino); or use backend='onnxruntime'"
            )
        if not _has_openvino():
            raise missing_extra("openvino", "openvino")
        return graph
    if graph is None or not _has_openvino() or (backend == "auto" and _ort_cuda_available()):
        return None
    if precision == "auto":
        from .quantize_static import FAITHFUL_TOP10_OVERLAP

        fid = openvino_int8_fidelity(path)
        if not fid or float(fid.get("top10_overlap_mean", 0.0)) < FAITHFUL_TOP10_OVERLAP:
            return None
    return graph


def _has_contrib_ops(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(4 << 20)
    return b"com.microsoft" in head


def load_backend(
    onnx_path: str | os.PathLike[str],
    *,
    backend: Backend | str = "auto",
    precision: Precision | str = "auto",
    num_threads: int | None = None,
    fuse: bool = True,
) -> InferenceBackend:
    """Load (or reuse) an inference backend for an ONNX graph.

    Parameters
    ----------
    onnx_path : str or PathLike
        The ONNX graph.
    backend : {"auto", "onnxruntime", "openvino"}
        Which runtime; ``auto`` chooses as described in the module docstring.
    precision : {"auto", "fp32", "bf16", "fp16", "int8"}
        Arithmetic; ``auto`` is a calibrated int8 model beside ``onnx_path`` when its recorded fidelity
        is faithful (top-10 overlap >= 0.98, CPU), else bf16 on OpenVINO with bf16 units, else fp32.
        ``int8`` prefers the OpenVINO int8 model (``int8_openvino/``, backend ``auto``/``openvino``), then
        ``model_int8_static.onnx``, then the dynamic graph.
    num_threads : int, optional
        Intra-op threads; None = the cgroup CPU quota.
    fuse : bool
        ONNX Runtime fp32: run the graph with transformer fusions applied (attention, LayerNorm, GELU;
        ``model_optimized.onnx`` beside it, or a fused copy made once and cached) when they apply.

    Returns
    -------
    InferenceBackend
        Shared: the same object for the same arguments (thread-safe).

    Raises
    ------
    FileNotFoundError
        No such graph.
    ValueError
        Unknown backend/precision, or a combination the backend cannot run (``int8`` on ``openvino``
        without an ``int8_openvino/`` model).
    ImportError
        ``backend="openvino"`` without the ``openvino`` package.
    """
    path = Path(onnx_path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX graph {path} does not exist")
    threads = resolve_threads(num_threads)
    ov_int8 = _openvino_int8(path, str(backend), str(precision))
    if ov_int8 is not None:  # an NNCF-quantized model beside the graph, asked for or measured faithful
        chosen_backend, chosen_precision = "openvino", "int8"
        path = ov_int8
    else:
        if precision == "auto" and backend in ("auto", "onnxruntime") and _faithful_static_int8(path):
            precision = "int8"  # a calibrated int8 graph measured faithful: the fastest CPU path
        chosen_backend, chosen_precision = _choose(str(backend), str(precision))
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, chosen_backend, chosen_precision, threads, fuse)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            return hit
        result: InferenceBackend
        if chosen_backend == "openvino":
            result = OpenVINOBackend(path, num_threads=threads, precision=chosen_precision)
        else:
            graph = path
            if chosen_precision == "int8" and not _graph_is_quantized(path):
                # An int8 graph exported beside this one (crossrank export --int8, Optimum's naming),
                # else a quantized copy made once and cached.
                names = ("model_int8_static.onnx", "model_int8.onnx", "model_quantized.onnx")
                siblings = [path.with_name(n) for n in names]
                graph = next((s for s in siblings if s.is_file()), None) or _quantized_copy(path)
            elif (
                fuse
                and chosen_precision == "fp32"
                and not _graph_is_quantized(path)
                and not _has_contrib_ops(path)
            ):
                graph = _fused_copy(path) or path
            result = OnnxRuntimeBackend(graph, num_threads=threads, precision=chosen_precision)
        _CACHE[key] = result
        return result


def clear_backend_cache() -> None:
    """Forget the shared backends (they are freed once no caller holds them)."""
    with _CACHE_LOCK:
        _CACHE.clear()
