// Bindings of the BM25 core (bm25.hpp, vocabulary.hpp) as private functions over NumPy arrays; the
// typed public class is python/crossrank/retrieve/bm25.py. Arrays are accepted only with the exact
// dtype and C order (take<T>, no silent copies): the Python layer converts visibly. Read-only arrays
// (memory maps) are fine: the core only reads them. A BM25View binds an index's arrays once, so a
// search passes only the query.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string_view>

#include "../src/bm25_codec.hpp"
#include "bindings.hpp"
#include "crossrank/analyzer.hpp"
#include "crossrank/bm25.hpp"
#include "crossrank/bm25_text.hpp"
#include "crossrank/errors.hpp"
#include "crossrank/vocabulary.hpp"

namespace crossrank::bindings {
namespace {

using I64 = carray<std::int64_t>;
using U32 = carray<std::uint32_t>;
using F32 = carray<float>;

// The view over already shape-checked arrays (term_ptr has >= 1 entry); callers add their own checks
// and choose the error type (ValueError for new input, StateError for a loaded index).
bm25::PostingsView raw_postings_view(const I64& term_ptr, const U32& docs, const U32& tfs,
                                     const U32& doc_lens) {
    bm25::PostingsView v;
    v.n_terms = static_cast<std::size_t>(term_ptr.shape(0) - 1);
    v.n_docs = static_cast<std::size_t>(doc_lens.shape(0));
    v.term_ptr = term_ptr.data();
    v.docs = docs.data();
    v.tfs = tfs.data();
    v.doc_lens = doc_lens.data();
    return v;
}

// term_ptr[0] == 0 and term_ptr[-1] == len(docs) (the core checks the steps in between).
void check_term_ptr_ends(const I64& term_ptr, const U32& docs) {
    if (term_ptr.data()[0] != 0 || term_ptr.data()[term_ptr.shape(0) - 1] != docs.shape(0))
        throw py::value_error("term_ptr must run from 0 to len(docs)");
}

bm25::PostingsView postings_view(const I64& term_ptr, const U32& docs, const U32& tfs, const U32& doc_lens) {
    check_min_size(term_ptr, "term_ptr", 1, "n_terms + 1 >= 1 entries");
    check_size(tfs, "tfs", docs.shape(0));
    check_term_ptr_ends(term_ptr, docs);
    return raw_postings_view(term_ptr, docs, tfs, doc_lens);
}

// Packed postings' array sizes agree with term_ptr (block counts) and each other; a packed index
// of the wrong shape is a bad file (StateError). The contents are codec::check's.
void check_packed_shapes(const I64& term_ptr, const I64& block_ptr, const U32& block_last,
                         const carray<std::uint64_t>& block_off, const carray<std::uint8_t>& data) {
    const auto n_terms = term_ptr.shape(0) - 1;
    if (block_ptr.shape(0) != n_terms + 1) throw StateError("block_ptr must have n_terms + 1 entries");
    const std::int64_t* bp = block_ptr.data();
    const std::int64_t* tp = term_ptr.data();
    const auto bs = static_cast<std::int64_t>(bm25::kBlockSize);
    if (bp[0] != 0) throw StateError("block_ptr must start at 0");
    for (py::ssize_t t = 0; t < n_terms; ++t) {
        const std::int64_t len = tp[t + 1] - tp[t];
        if (len < 0 || bp[t + 1] - bp[t] != (len + bs - 1) / bs)
            throw StateError("block_ptr does not match term_ptr at term " + std::to_string(t));
    }
    if (block_last.shape(0) != bp[n_terms] || block_off.shape(0) != bp[n_terms] + 1)
        throw StateError("block_last / block_off do not have one entry per block (+1)");
    if (data.shape(0) < static_cast<py::ssize_t>(bm25::codec::kPad))
        throw StateError("packed data is shorter than its padding");
}

bm25::codec::PackedView packed_view(const I64& term_ptr, const I64& block_ptr, const U32& block_last,
                                    const carray<std::uint64_t>& block_off,
                                    const carray<std::uint8_t>& data) {
    bm25::codec::PackedView v;
    v.n_terms = static_cast<std::size_t>(term_ptr.shape(0) - 1);
    v.term_ptr = term_ptr.data();
    v.block_ptr = block_ptr.data();
    v.block_last = block_last.data();
    v.block_off = block_off.data();
    v.data = data.data();
    v.data_size = static_cast<std::size_t>(data.shape(0));
    return v;
}

bm25::Params make_params(const std::string& variant, double k1, double b, double delta) {
    bm25::Params p;
    p.variant = bm25::variant_from_name(variant);
    p.k1 = k1;
    p.b = b;
    p.delta = delta;
    bm25::validate(p);
    return p;
}

// Ragged offsets of n items over `total` entries: n + 1 >= 1 entries, from 0 to total. The core
// checks that they never decrease.
std::size_t ragged_count(const I64& offsets, const char* name, py::ssize_t total, const char* total_name) {
    check_min_size(offsets, name, 1, "n + 1 >= 1 entries");
    const auto n = offsets.shape(0) - 1;
    if (offsets.data()[0] != 0 || offsets.data()[n] != total)
        throw py::value_error(std::string(name) + " must run from 0 to " + total_name + " (" +
                              std::to_string(total) + "), got " + std::to_string(offsets.data()[0]) + " to " +
                              std::to_string(offsets.data()[n]));
    return static_cast<std::size_t>(n);
}

// Maps tokens (ragged by offsets) to vocabulary ids; unknown tokens are added (grow) or dropped.
py::tuple map_tokens(Vocabulary& vocab, const py::list& tokens, const In<std::int64_t>& offsets_arg,
                     bool grow) {
    const I64 offsets = take<std::int64_t>(offsets_arg, "offsets", 1);
    const std::size_t n =
        ragged_count(offsets, "offsets", static_cast<py::ssize_t>(tokens.size()), "the number of tokens");
    const std::int64_t* off = offsets.data();
    for (std::size_t i = 0; i < n; ++i)
        if (off[i + 1] < off[i]) throw py::value_error("offsets decrease at " + std::to_string(i));
    std::vector<py::object> keep;
    auto views = utf8_views(tokens, "tokens", keep);
    std::vector<std::uint32_t> ids;
    std::vector<std::int64_t> out_off(n + 1, 0);
    {
        py::gil_scoped_release release;
        ids.reserve(views.size());
        for (std::size_t i = 0; i < n; ++i) {
            for (std::int64_t j = off[i]; j < off[i + 1]; ++j) {
                if (grow) {
                    ids.push_back(vocab.add(views[j]));
                } else {
                    const std::int64_t id = vocab.find(views[j]);
                    if (id >= 0) ids.push_back(static_cast<std::uint32_t>(id));
                }
            }
            out_off[i + 1] = static_cast<std::int64_t>(ids.size());
        }
    }
    return py::make_tuple(to_numpy(std::move(ids)), to_numpy(std::move(out_off)));
}

// An index's search arrays, checked once and kept alive with the raw view the core reads. Searches
// only read them and take their working memory from a thread-safe pool, so one view may serve
// several threads at once (each call releases the GIL).
class BM25View {
  public:
    // Documents packed by bm25_pack_postings (block_ptr, block_last, block_off, data), already
    // checked (bm25_check_packed) by whoever made or loaded them.
    BM25View(std::int64_t n_docs, const In<std::int64_t>& term_ptr, const In<float>& impacts,
             const In<float>& nonoccurrence, const In<std::int64_t>& block_ptr,
             const In<std::uint32_t>& block_last, const In<std::uint64_t>& block_off,
             const In<std::uint8_t>& data)
        : term_ptr_(take<std::int64_t>(term_ptr, "term_ptr", 1)),
          impacts_(take<float>(impacts, "impacts", 1)),
          nonocc_(take<float>(nonoccurrence, "nonoccurrence", 1)),
          block_ptr_(take<std::int64_t>(block_ptr, "block_ptr", 1)),
          block_last_(take<std::uint32_t>(block_last, "block_last", 1)),
          block_off_(take<std::uint64_t>(block_off, "block_off", 1)),
          data_(take<std::uint8_t>(data, "data", 1)) {
        check_range(n_docs, "n_docs", 0, std::numeric_limits<std::uint32_t>::max());
        check_min_size(term_ptr_, "term_ptr", 1, "n_terms + 1 >= 1 entries");
        check_size(nonocc_, "nonoccurrence", term_ptr_.shape(0) - 1);
        if (term_ptr_.data()[0] != 0 || term_ptr_.data()[term_ptr_.shape(0) - 1] != impacts_.shape(0))
            throw py::value_error("term_ptr must run from 0 to len(impacts)");
        check_packed_shapes(term_ptr_, block_ptr_, block_last_, block_off_, data_);
        view_.n_docs = static_cast<std::size_t>(n_docs);
        view_.n_terms = static_cast<std::size_t>(term_ptr_.shape(0) - 1);
        view_.term_ptr = term_ptr_.data();
        view_.packed_block_ptr = block_ptr_.data();
        view_.packed_block_last = block_last_.data();
        view_.packed_block_off = block_off_.data();
        view_.packed_data = data_.data();
        view_.packed_size = static_cast<std::size_t>(data_.shape(0));
        view_.impacts = impacts_.data();
        view_.nonoccurrence = nonocc_.data();
        {
            // Derived from the impacts each time a view is made, so it is exact for any index.
            py::gil_scoped_release release;
            blocks_ = bm25::build_block_max(view_, 1);
        }
        view_.block_ptr = blocks_.block_ptr.data();
        view_.term_max = blocks_.term_max.data();
        view_.block_max = blocks_.block_max.data();
        view_.block_last = blocks_.block_last.data();
    }

    std::size_t n_docs() const { return view_.n_docs; }
    std::size_t n_terms() const { return view_.n_terms; }

    py::tuple search(const In<std::uint32_t>& query_terms_arg, const In<std::int64_t>& query_offsets_arg,
                     std::int64_t k, std::int64_t num_threads_arg, const std::string& strategy_arg) const {
        bm25::Strategy strategy = bm25::Strategy::automatic;
        if (strategy_arg == "exhaustive")
            strategy = bm25::Strategy::exhaustive;
        else if (strategy_arg == "pruned")
            strategy = bm25::Strategy::pruned;
        else if (strategy_arg != "auto")
            throw py::value_error("strategy must be 'auto', 'exhaustive' or 'pruned', got '" + strategy_arg +
                                  "'");
        const U32 query_terms = take<std::uint32_t>(query_terms_arg, "query_terms", 1);
        const I64 query_offsets = take<std::int64_t>(query_offsets_arg, "query_offsets", 1);
        check_range(k, "k", 1);
        const int num_threads = check_threads(num_threads_arg);
        if (view_.n_docs == 0) throw py::value_error("the index has no documents");
        const std::size_t nq =
            ragged_count(query_offsets, "query_offsets", query_terms.shape(0), "len(query_terms)");
        const std::size_t kk = std::min<std::size_t>(static_cast<std::size_t>(k), view_.n_docs);
        py::array_t<std::int64_t> out_docs({static_cast<py::ssize_t>(nq), static_cast<py::ssize_t>(kk)});
        py::array_t<float> out_scores({static_cast<py::ssize_t>(nq), static_cast<py::ssize_t>(kk)});
        std::int64_t* pd = out_docs.mutable_data();
        float* ps = out_scores.mutable_data();
        const std::uint32_t* qt = query_terms.data();
        const std::int64_t* qo = query_offsets.data();
        {
            py::gil_scoped_release release;
            bm25::search(view_, qt, qo, nq, kk, num_threads, pd, ps, strategy, &pool_);
        }
        return py::make_tuple(out_docs, out_scores);
    }

    py::array_t<float> score_all(const In<std::uint32_t>& query_terms_arg) const {
        const U32 query_terms = take<std::uint32_t>(query_terms_arg, "query_terms", 1);
        py::array_t<float> out(static_cast<py::ssize_t>(view_.n_docs));
        float* po = out.mutable_data();
        const std::uint32_t* qt = query_terms.data();
        {
            py::gil_scoped_release release;
            bm25::score_all(view_, qt, static_cast<std::size_t>(query_terms.shape(0)), po);
        }
        return out;
    }

  private:
    I64 term_ptr_;
    F32 impacts_, nonocc_;
    I64 block_ptr_;
    U32 block_last_;
    carray<std::uint64_t> block_off_;
    carray<std::uint8_t> data_;
    bm25::BlockMax blocks_;
    bm25::IndexView view_;
    // Search working memory kept between calls (thread-safe; see bm25::ScratchPool): one query per
    // call no longer allocates and zero-fills an n_docs accumulator each time.
    mutable bm25::ScratchPool pool_;
};

}  // namespace

void bind_bm25(py::module_& m) {
    py::class_<Vocabulary>(m, "Vocabulary", plain_metaclass(),
                           "Term -> id map (ids in order of first insertion).")
        .def(py::init<>())
        .def("__len__", &Vocabulary::size)
        .def(
            "find", [](const Vocabulary& v, const std::string& t) { return v.find(t); }, py::arg("term"))
        .def(
            "term",
            [](const Vocabulary& v, std::int64_t id) {
                if (id < 0 || static_cast<std::size_t>(id) >= v.size())
                    throw py::index_error("term id " + std::to_string(id) +
                                          " out of range for a vocabulary of " + std::to_string(v.size()) +
                                          " terms");
                const auto t = v.term(static_cast<std::size_t>(id));
                return py::str(t.data(), t.size());
            },
            py::arg("id"))
        .def("arena",
             [](const Vocabulary& v) {
                 std::vector<std::uint8_t> chars(v.chars().begin(), v.chars().end());
                 std::vector<std::uint64_t> offsets(v.offsets());
                 return py::make_tuple(to_numpy(std::move(chars)), to_numpy(std::move(offsets)));
             })
        .def_static(
            "from_arena",
            [](const In<std::uint8_t>& chars_arg, const In<std::uint64_t>& offsets_arg) {
                const auto chars = take<std::uint8_t>(chars_arg, "chars", 1);
                const auto offsets = take<std::uint64_t>(offsets_arg, "offsets", 1);
                check_min_size(offsets, "offsets", 1, "n_terms + 1 >= 1 entries");
                const char* pc = reinterpret_cast<const char*>(chars.data());
                const auto nc = static_cast<std::size_t>(chars.shape(0));
                const std::uint64_t* po = offsets.data();
                const auto nt = static_cast<std::size_t>(offsets.shape(0) - 1);
                py::gil_scoped_release release;
                return Vocabulary::from_arena(pc, nc, po, nt);
            },
            py::arg("chars"), py::arg("offsets"))
        .def("copy", [](const Vocabulary& v) { return Vocabulary(v); })
        .def("map_tokens", &map_tokens, py::arg("tokens"), py::arg("offsets"), py::arg("grow"));

    m.def(
        "bm25_analyze_to_ids",
        [](const Analyzer& analyzer, Vocabulary& vocab, const py::list& texts, bool grow,
           std::int64_t num_threads_arg) {
            const int num_threads = check_threads(num_threads_arg);
            std::vector<py::object> keep;
            auto views = utf8_views(texts, "texts", keep);
            std::vector<std::uint32_t> ids;
            std::vector<std::int64_t> offsets{0};
            {
                py::gil_scoped_release release;
                bm25::analyze_to_ids(analyzer, vocab, views, grow, num_threads, ids, offsets);
            }
            return py::make_tuple(to_numpy(std::move(ids)), to_numpy(std::move(offsets)));
        },
        py::arg("analyzer"), py::arg("vocab"), py::arg("texts"), py::arg("grow"), py::arg("num_threads"),
        "Analyse texts into (term ids uint32, offsets int64 (n+1,)); unknown terms added (grow) or dropped.");

    m.def(
        "bm25_validate_params",
        [](const std::string& variant, double k1, double b, double delta) {
            make_params(variant, k1, b, delta);
        },
        py::arg("variant"), py::arg("k1"), py::arg("b"), py::arg("delta"));

    m.def(
        "bm25_build_postings",
        [](std::int64_t n_terms, const In<std::uint32_t>& term_ids_arg,
           const In<std::int64_t>& doc_offsets_arg, const In<std::int64_t>& base_term_ptr,
           const In<std::uint32_t>& base_docs, const In<std::uint32_t>& base_tfs,
           const In<std::uint32_t>& base_doc_lens) {
            check_range(n_terms, "n_terms", 0, std::numeric_limits<std::uint32_t>::max());
            const U32 term_ids = take<std::uint32_t>(term_ids_arg, "term_ids", 1);
            const I64 doc_offsets = take<std::int64_t>(doc_offsets_arg, "doc_offsets", 1);
            const I64 tp = take<std::int64_t>(base_term_ptr, "base_term_ptr", 1);
            const U32 bd = take<std::uint32_t>(base_docs, "base_docs", 1);
            const U32 bt = take<std::uint32_t>(base_tfs, "base_tfs", 1);
            const U32 bl = take<std::uint32_t>(base_doc_lens, "base_doc_lens", 1);
            const std::size_t n_new =
                ragged_count(doc_offsets, "doc_offsets", term_ids.shape(0), "len(term_ids)");
            const auto base = postings_view(tp, bd, bt, bl);
            const std::uint32_t* ti = term_ids.data();
            const std::int64_t* off = doc_offsets.data();
            bm25::Postings out;
            {
                py::gil_scoped_release release;
                out = bm25::build_postings(base, static_cast<std::size_t>(n_terms), ti, off, n_new);
            }
            return py::make_tuple(to_numpy(std::move(out.term_ptr)), to_numpy(std::move(out.docs)),
                                  to_numpy(std::move(out.tfs)), to_numpy(std::move(out.doc_lens)));
        },
        py::arg("n_terms"), py::arg("term_ids"), py::arg("doc_offsets"), py::arg("base_term_ptr"),
        py::arg("base_docs"), py::arg("base_tfs"), py::arg("base_doc_lens"));

    m.def(
        "bm25_compute_impacts",
        [](const std::string& variant, double k1, double b, double delta,
           const In<std::int64_t>& term_ptr_arg, const In<std::uint32_t>& docs_arg,
           const In<std::uint32_t>& tfs_arg, const In<std::uint32_t>& doc_lens_arg,
           std::int64_t num_threads_arg) {
            const auto p = make_params(variant, k1, b, delta);
            const int num_threads = check_threads(num_threads_arg);
            const I64 term_ptr = take<std::int64_t>(term_ptr_arg, "term_ptr", 1);
            const U32 docs = take<std::uint32_t>(docs_arg, "docs", 1);
            const U32 tfs = take<std::uint32_t>(tfs_arg, "tfs", 1);
            const U32 doc_lens = take<std::uint32_t>(doc_lens_arg, "doc_lens", 1);
            const auto view = postings_view(term_ptr, docs, tfs, doc_lens);
            py::array_t<float> impacts(docs.shape(0));
            py::array_t<float> nonocc(static_cast<py::ssize_t>(view.n_terms));
            float* pi = impacts.mutable_data();
            float* pn = nonocc.mutable_data();
            {
                py::gil_scoped_release release;
                bm25::compute_impacts(p, view, pi, pn, num_threads);
            }
            return py::make_tuple(impacts, nonocc);
        },
        py::arg("variant"), py::arg("k1"), py::arg("b"), py::arg("delta"), py::arg("term_ptr"),
        py::arg("docs"), py::arg("tfs"), py::arg("doc_lens"), py::arg("num_threads"));

    m.def(
        "bm25_validate_index",
        [](const In<std::int64_t>& term_ptr_arg, const py::object& docs_arg, const py::object& tfs_arg,
           const In<std::uint32_t>& doc_lens_arg, const In<float>& impacts_arg, const In<float>& nonocc_arg) {
            const I64 term_ptr = take<std::int64_t>(term_ptr_arg, "term_ptr", 1);
            // docs / tfs are None for packed postings (bm25_check_packed checks those).
            const auto docs = take_optional<std::uint32_t>(docs_arg, "docs", 1);
            const auto tfs = take_optional<std::uint32_t>(tfs_arg, "tfs", 1);
            const U32 doc_lens = take<std::uint32_t>(doc_lens_arg, "doc_lens", 1);
            const F32 impacts = take<float>(impacts_arg, "impacts", 1);
            const F32 nonocc = take<float>(nonocc_arg, "nonoccurrence", 1);
            // A loaded index of the wrong shape is a bad file: StateError, like the core's checks.
            if (term_ptr.shape(0) < 1) throw StateError("term_ptr must have n_terms + 1 >= 1 entries");
            if (docs.has_value() != tfs.has_value())
                throw py::value_error("give both docs and tfs, or neither");
            auto same = [](const py::array& a, const char* name, py::ssize_t n) {
                if (a.shape(0) != n)
                    throw StateError(std::string(name) + " must have " + std::to_string(n) +
                                     " entries, got " + std::to_string(a.shape(0)));
            };
            const py::ssize_t n_post = docs ? docs->shape(0) : impacts.shape(0);
            same(impacts, "impacts", n_post);
            same(nonocc, "nonoccurrence", term_ptr.shape(0) - 1);
            if (tfs) same(*tfs, "tfs", n_post);
            bm25::PostingsView v;
            v.n_terms = static_cast<std::size_t>(term_ptr.shape(0) - 1);
            v.n_docs = static_cast<std::size_t>(doc_lens.shape(0));
            v.term_ptr = term_ptr.data();
            v.docs = docs ? docs->data() : nullptr;
            v.tfs = tfs ? tfs->data() : nullptr;
            v.doc_lens = doc_lens.data();
            const auto nnz = static_cast<std::size_t>(n_post);
            const float* pi = impacts.data();
            const float* pn = nonocc.data();
            py::gil_scoped_release release;
            bm25::validate_index(v, nnz, pi, pn);
        },
        py::arg("term_ptr"), py::arg("docs"), py::arg("tfs"), py::arg("doc_lens"), py::arg("impacts"),
        py::arg("nonoccurrence"));

    m.def(
        "bm25_pack_postings",
        [](const In<std::int64_t>& term_ptr_arg, const In<std::uint32_t>& docs_arg,
           const In<std::uint32_t>& tfs_arg) {
            const I64 term_ptr = take<std::int64_t>(term_ptr_arg, "term_ptr", 1);
            const U32 docs = take<std::uint32_t>(docs_arg, "docs", 1);
            const U32 tfs = take<std::uint32_t>(tfs_arg, "tfs", 1);
            check_min_size(term_ptr, "term_ptr", 1, "n_terms + 1 >= 1 entries");
            check_size(tfs, "tfs", docs.shape(0));
            check_term_ptr_ends(term_ptr, docs);
            const auto n_terms = static_cast<std::size_t>(term_ptr.shape(0) - 1);
            const std::int64_t* tp = term_ptr.data();
            for (std::size_t t = 0; t < n_terms; ++t)
                if (tp[t + 1] < tp[t])
                    throw py::value_error("term_ptr decreases at term " + std::to_string(t));
            const std::uint32_t* pd = docs.data();
            const std::uint32_t* pt = tfs.data();
            bm25::codec::Packed out;
            {
                py::gil_scoped_release release;
                out = bm25::codec::pack(n_terms, tp, pd, pt);
            }
            return py::make_tuple(to_numpy(std::move(out.block_ptr)), to_numpy(std::move(out.block_last)),
                                  to_numpy(std::move(out.block_off)), to_numpy(std::move(out.data)));
        },
        py::arg("term_ptr"), py::arg("docs"), py::arg("tfs"),
        "Pack CSR postings (bm25_codec.hpp): (block_ptr int64, block_last uint32, block_off uint64, data "
        "uint8).");

    m.def(
        "bm25_check_packed",
        [](const In<std::int64_t>& term_ptr_arg, const In<std::int64_t>& block_ptr_arg,
           const In<std::uint32_t>& block_last_arg, const In<std::uint64_t>& block_off_arg,
           const In<std::uint8_t>& data_arg, std::int64_t n_docs) {
            const I64 term_ptr = take<std::int64_t>(term_ptr_arg, "term_ptr", 1);
            const I64 block_ptr = take<std::int64_t>(block_ptr_arg, "block_ptr", 1);
            const U32 block_last = take<std::uint32_t>(block_last_arg, "block_last", 1);
            const auto block_off = take<std::uint64_t>(block_off_arg, "block_off", 1);
            const auto data = take<std::uint8_t>(data_arg, "data", 1);
            check_range(n_docs, "n_docs", 0, std::numeric_limits<std::uint32_t>::max());
            if (term_ptr.shape(0) < 1) throw StateError("term_ptr must have n_terms + 1 >= 1 entries");
            check_packed_shapes(term_ptr, block_ptr, block_last, block_off, data);
            const auto v = packed_view(term_ptr, block_ptr, block_last, block_off, data);
            py::gil_scoped_release release;
            bm25::codec::check(v, static_cast<std::size_t>(n_docs));
        },
        py::arg("term_ptr"), py::arg("block_ptr"), py::arg("block_last"), py::arg("block_off"),
        py::arg("data"), py::arg("n_docs"), "Check packed postings (StateError naming what is wrong).");

    m.def(
        "bm25_unpack_postings",
        [](const In<std::int64_t>& term_ptr_arg, const In<std::int64_t>& block_ptr_arg,
           const In<std::uint32_t>& block_last_arg, const In<std::uint64_t>& block_off_arg,
           const In<std::uint8_t>& data_arg) {
            const I64 term_ptr = take<std::int64_t>(term_ptr_arg, "term_ptr", 1);
            const I64 block_ptr = take<std::int64_t>(block_ptr_arg, "block_ptr", 1);
            const U32 block_last = take<std::uint32_t>(block_last_arg, "block_last", 1);
            const auto block_off = take<std::uint64_t>(block_off_arg, "block_off", 1);
            const auto data = take<std::uint8_t>(data_arg, "data", 1);
            if (term_ptr.shape(0) < 1) throw StateError("term_ptr must have n_terms + 1 >= 1 entries");
            check_packed_shapes(term_ptr, block_ptr, block_last, block_off, data);
            const auto v = packed_view(term_ptr, block_ptr, block_last, block_off, data);
            const auto nnz = term_ptr.data()[term_ptr.shape(0) - 1];
            py::array_t<std::uint32_t> docs(nnz), tfs(nnz);
            std::uint32_t* pd = docs.mutable_data();
            std::uint32_t* pt = tfs.mutable_data();
            {
                py::gil_scoped_release release;
                bm25::codec::unpack(v, pd, pt);
            }
            return py::make_tuple(docs, tfs);
        },
        py::arg("term_ptr"), py::arg("block_ptr"), py::arg("block_last"), py::arg("block_off"),
        py::arg("data"),
        "Decode packed postings (checked by bm25_check_packed) back to (docs uint32, tfs uint32).");

    py::class_<BM25View>(m, "BM25View", plain_metaclass(),
                         "An index's search arrays bound once (checked, kept alive); search passes only the "
                         "query. Read-only: one view may be shared across threads.")
        .def(py::init<std::int64_t, const In<std::int64_t>&, const In<float>&, const In<float>&,
                      const In<std::int64_t>&, const In<std::uint32_t>&, const In<std::uint64_t>&,
                      const In<std::uint8_t>&>(),
             py::arg("n_docs"), py::arg("term_ptr"), py::arg("impacts"), py::arg("nonoccurrence"),
             py::arg("block_ptr"), py::arg("block_last"), py::arg("block_off"), py::arg("data"))
        .def_property_readonly("n_docs", &BM25View::n_docs)
        .def_property_readonly("n_terms", &BM25View::n_terms)
        .def("search", &BM25View::search, py::arg("query_terms"), py::arg("query_offsets"), py::arg("k"),
             py::arg("num_threads"), py::arg("strategy") = "auto",
             "Top-min(k, n_docs) of each query: (doc positions int64 [nq, k], scores float32 [nq, k]). "
             "strategy: 'auto', 'exhaustive' or 'pruned' (block-max MaxScore); all give the same result.")
        .def("score_all", &BM25View::score_all, py::arg("query_terms"),
             "All n_docs scores of one query (float32), the values search ranks.");
}

}  // namespace crossrank::bindings
