// Per-ISA kernels of the BM25 dense scan (isa/bm25_scan_<isa>.cpp), driven by bm25_scan.hpp. Plain
// arrays only: an ISA object must not instantiate inline or template code that baseline callers
// share (the linker could keep its copy for them; .ci/check_isa_objects.py), so the selection's
// pushes stay in the baseline driver.
#pragma once

#include <cstddef>

namespace crossrank::bm25::detail {

#ifdef CROSSRANK_HAVE_AVX512
// For d in [from, end) (end - from a multiple of 32), 32 documents at a time: score = acc[d] + c,
// acc[d] = 0, until a block of 32 holds a score that may enter (> bar with after_kept, else >=
// bar). Returns that block's start, its 32 scores in block[0, 32); end when no block does.
std::size_t scan_blocks_avx512(float* acc, std::size_t from, std::size_t end, float c, float bar,
                               bool after_kept, float* block);
#endif

}  // namespace crossrank::bm25::detail
