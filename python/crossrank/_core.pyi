# Type stubs of the compiled module crossrank._core (private; use the crossrank package).
import numpy as np
import numpy.typing as npt

__version__: str

def default_num_threads() -> int: ...
def simd_compiled() -> list[str]: ...
def simd_available() -> list[str]: ...
def simd_active() -> str: ...
def simd_force(name: str | None) -> None: ...

# --- maxsim (ColBERT late interaction) ---

def maxsim_row_stride(dim: int, dtype: str) -> int: ...
def maxsim_kernel(dtype: str, isa: str | None = None) -> str: ...
def maxsim_pack(
    src: npt.NDArray[np.float32], dst: npt.NDArray[np.generic], dtype: str, normalize: bool, num_threads: int
) -> None: ...
def maxsim_unpack(src: npt.NDArray[np.generic], dim: int, dtype: str) -> npt.NDArray[np.float32]: ...
def maxsim_score(
    queries: npt.NDArray[np.float32],
    query_offsets: npt.NDArray[np.int64],
    data: npt.NDArray[np.generic],
    dtype: str,
    dim: int,
    offsets: npt.NDArray[np.int64],
    doc_ids: npt.NDArray[np.int64] | None,
    num_threads: int,
) -> npt.NDArray[np.float32]: ...

# --- packing (cross-encoder pairs; crossrank/pack.hpp, used by crossrank.packing) ---

class PackPlanCore:
    # No constructor: pack_plan() makes one (calling the class raises TypeError).
    def __init__(self, *args: object, **kwargs: object) -> None: ...
    @property
    def n_pairs(self) -> int: ...
    @property
    def n_rows(self) -> int: ...
    @property
    def n_batches(self) -> int: ...
    @property
    def peak_batch_tokens(self) -> int: ...
    @property
    def truncated(self) -> npt.NDArray[np.uint8]: ...
    @property
    def n_tokens(self) -> npt.NDArray[np.int32]: ...
    @property
    def query_kept(self) -> npt.NDArray[np.int32]: ...
    @property
    def row_offsets(self) -> npt.NDArray[np.int64]: ...
    @property
    def row_pair(self) -> npt.NDArray[np.int64]: ...
    @property
    def row_window(self) -> npt.NDArray[np.int32]: ...
    @property
    def row_start(self) -> npt.NDArray[np.int32]: ...
    @property
    def row_end(self) -> npt.NDArray[np.int32]: ...
    @property
    def row_tokens(self) -> npt.NDArray[np.int32]: ...
    @property
    def order(self) -> npt.NDArray[np.int64]: ...
    @property
    def batch_offsets(self) -> npt.NDArray[np.int64]: ...
    @property
    def batch_length(self) -> npt.NDArray[np.int32]: ...
    def materialize(
        self, batch: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...

def pack_plan(
    q_values: npt.NDArray[np.int32],
    q_offsets: npt.NDArray[np.int64],
    d_values: npt.NDArray[np.int32],
    d_offsets: npt.NDArray[np.int64],
    prefix: list[int],
    prefix_types: list[int],
    middle: list[int],
    middle_types: list[int],
    suffix: list[int],
    suffix_types: list[int],
    query_type: int,
    doc_type: int,
    pad_id: int,
    pad_type: int,
    max_length: int,
    truncation: str,
    max_query_length: int | None,
    max_batch_tokens: int,
    max_batch_size: int,
    bucket_multiple: int,
    bucket_lengths: list[int],
    window_stride: int | None,
    max_windows: int | None,
) -> PackPlanCore: ...
def ragged_from_sequences(seqs: object, name: str) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]: ...

# --- analyzer (cpp/bindings/bind_analyzer.cpp) ---
analyzer_max_term_bytes: int

class Analyzer:
    def __init__(self, *, lowercase: bool, stem: bool, stopwords: list[str], cjk: str) -> None: ...
    def analyze(self, text: str) -> list[str]: ...
    def _analyze_bytes(self, data: bytes) -> list[str]: ...
    def analyze_batch(self, texts: list[str] | tuple[str, ...], num_threads: int) -> list[list[str]]: ...

def stem_english(word: str) -> str: ...
def english_stopwords() -> list[str]: ...
def analyzer_unicode_version() -> str: ...

# --- bm25 (cpp/bindings/bind_bm25.cpp) ---
class Vocabulary:
    def __init__(self) -> None: ...
    def __len__(self) -> int: ...
    def find(self, term: str) -> int: ...
    def term(self, id: int) -> str: ...
    def arena(self) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint64]]: ...
    @staticmethod
    def from_arena(chars: npt.NDArray[np.uint8], offsets: npt.NDArray[np.uint64]) -> Vocabulary: ...
    def copy(self) -> Vocabulary: ...
    def map_tokens(
        self, tokens: list[str], offsets: npt.NDArray[np.int64], grow: bool
    ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64]]: ...

def bm25_analyze_to_ids(
    analyzer: Analyzer, vocab: Vocabulary, texts: list[str], grow: bool, num_threads: int
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64]]: ...
def bm25_validate_params(variant: str, k1: float, b: float, delta: float) -> None: ...
def bm25_build_postings(
    n_terms: int,
    term_ids: npt.NDArray[np.uint32],
    doc_offsets: npt.NDArray[np.int64],
    base_term_ptr: npt.NDArray[np.int64],
    base_docs: npt.NDArray[np.uint32],
    base_tfs: npt.NDArray[np.uint32],
    base_doc_lens: npt.NDArray[np.uint32],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint32], npt.NDArray[np.uint32], npt.NDArray[np.uint32]]: ...
def bm25_compute_impacts(
    variant: str,
    k1: float,
    b: float,
    delta: float,
    term_ptr: npt.NDArray[np.int64],
    docs: npt.NDArray[np.uint32],
    tfs: npt.NDArray[np.uint32],
    doc_lens: npt.NDArray[np.uint32],
    num_threads: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
def bm25_validate_index(
    term_ptr: npt.NDArray[np.int64],
    docs: npt.NDArray[np.uint32] | None,
    tfs: npt.NDArray[np.uint32] | None,
    doc_lens: npt.NDArray[np.uint32],
    impacts: npt.NDArray[np.float32],
    nonoccurrence: npt.NDArray[np.float32],
) -> None: ...
def bm25_pack_postings(
    term_ptr: npt.NDArray[np.int64], docs: npt.NDArray[np.uint32], tfs: npt.NDArray[np.uint32]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint32], npt.NDArray[np.uint64], npt.NDArray[np.uint8]]: ...
def bm25_check_packed(
    term_ptr: npt.NDArray[np.int64],
    block_ptr: npt.NDArray[np.int64],
    block_last: npt.NDArray[np.uint32],
    block_off: npt.NDArray[np.uint64],
    data: npt.NDArray[np.uint8],
    n_docs: int,
) -> None: ...
def bm25_unpack_postings(
    term_ptr: npt.NDArray[np.int64],
    block_ptr: npt.NDArray[np.int64],
    block_last: npt.NDArray[np.uint32],
    block_off: npt.NDArray[np.uint64],
    data: npt.NDArray[np.uint8],
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]: ...

class BM25View:
    def __init__(
        self,
        n_docs: int,
        term_ptr: npt.NDArray[np.int64],
        impacts: npt.NDArray[np.float32],
        nonoccurrence: npt.NDArray[np.float32],
        block_ptr: npt.NDArray[np.int64],
        block_last: npt.NDArray[np.uint32],
        block_off: npt.NDArray[np.uint64],
        data: npt.NDArray[np.uint8],
    ) -> None: ...
    @property
    def n_docs(self) -> int: ...
    @property
    def n_terms(self) -> int: ...
    def search(
        self,
        query_terms: npt.NDArray[np.uint32],
        query_offsets: npt.NDArray[np.int64],
        k: int,
        num_threads: int,
        strategy: str = "auto",
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
    def score_all(self, query_terms: npt.NDArray[np.uint32]) -> npt.NDArray[np.float32]: ...
