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
