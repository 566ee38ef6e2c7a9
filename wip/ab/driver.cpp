// One implementation's search behind a C interface (compiled twice: old tree, new tree).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "crossrank/bm25.hpp"
#ifdef AB_NEW
#include "bm25_codec.hpp"
#endif

namespace bm = crossrank::bm25;
namespace {
struct Ix {
    bm::IndexView v;
    bm::BlockMax bm;
#ifdef AB_NEW
    bm::codec::Packed packed;
#endif
};
}  // namespace

extern "C" void* AB(make)(std::size_t n_docs, std::size_t n_terms, const std::int64_t* tp, const std::uint32_t* docs,
                          const std::uint32_t* tfs, const float* imp, const float* nonocc) {
    auto* ix = new Ix;
    ix->v.n_docs = n_docs;
    ix->v.n_terms = n_terms;
    ix->v.term_ptr = tp;
    ix->v.impacts = imp;
    ix->v.nonoccurrence = nonocc;
#ifdef AB_NEW
    ix->packed = bm::codec::pack(n_terms, tp, docs, tfs);
    ix->v.packed_block_ptr = ix->packed.block_ptr.data();
    ix->v.packed_block_last = ix->packed.block_last.data();
    ix->v.packed_block_off = ix->packed.block_off.data();
    ix->v.packed_data = ix->packed.data.data();
    ix->v.packed_size = ix->packed.data.size();
#else
    ix->v.docs = docs;
#endif
    ix->bm = bm::build_block_max(ix->v, 1);
    ix->v.block_ptr = ix->bm.block_ptr.data();
    ix->v.term_max = ix->bm.term_max.data();
    ix->v.block_max = ix->bm.block_max.data();
    ix->v.block_last = ix->bm.block_last.data();
    return ix;
}

extern "C" void AB(search)(void* p, const std::uint32_t* qt, const std::int64_t* qo, std::size_t nq, std::size_t k,
                           int strategy, std::int64_t* od, float* os) {
    const auto* ix = static_cast<Ix*>(p);
    const bm::Strategy s = strategy == 0 ? bm::Strategy::exhaustive
                           : strategy == 1 ? bm::Strategy::pruned
                                           : bm::Strategy::automatic;
    bm::search(ix->v, qt, qo, nq, k, 1, od, os, s);
}
