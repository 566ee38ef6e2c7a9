// Bindings of the BM25 core (bm25.hpp, vocabulary.hpp) as private functions over NumPy arrays; the
// typed public class is python/crossrank/bm25.py. Arrays are accepted only with the exact dtype and
// C order (no silent copies): the Python layer converts visibly. Read-only arrays (memory maps) are
// fine: the core only reads them.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string_view>

#include "bindings.hpp"
#include "crossrank/analyzer.hpp"
#include "crossrank/bm25.hpp"
#include "crossrank/bm25_text.hpp"
#include "crossrank/errors.hpp"
#include "crossrank/vocabulary.hpp"

namespace crossrank::bindings {
namespace {

template <class T>
using carray = py::array_t<T, py::array::c_style>;

// Hands a vector's buffer to NumPy without copying.
template <class T>
py::array_t<T> to_numpy(std::vector<T>&& v) {
    auto* heap = new std::vector<T>(std::move(v));
    py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
    return py::array_t<T>({static_cast<py::ssize_t>(heap->size())}, {sizeof(T)}, heap->data(), owner);
}

template <class T>
void check_1d(const carray<T>& a, const char* name, py::ssize_t size = -1) {
    if (a.ndim() != 1)
        throw std::invalid_argument(std::string(name) + " must be 1-D, got " + std::to_string(a.ndim()) +
                                    " dimensions");
    if (size >= 0 && a.shape(0) != size)
        throw std::invalid_argument(std::string(name) + " must have " + std::to_string(size) +
                                    " entries, got " + std::to_string(a.shape(0)));
}

// UTF-8 views of a list of str, valid while the list and `keep` are alive (CPython caches the
// UTF-8 form in the str object). A str with lone surrogates is encoded with "surrogatepass", as
// the analyzer does: its surrogates become ill-formed bytes, i.e. separators. Needs the GIL.
std::vector<std::string_view> utf8_views(const py::list& items, const char* what,
                                         std::vector<py::object>& keep) {
    std::vector<std::string_view> out;
    out.reserve(items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
        PyObject* o = items[i].ptr();
        if (!PyUnicode_Check(o))
            throw py::type_error(std::string(what) + "[" + std::to_string(i) + "] must be str, got " +
                                 Py_TYPE(o)->tp_name);
        Py_ssize_t n = 0;
        const char* s = PyUnicode_AsUTF8AndSize(o, &n);
        if (!s) {
            PyErr_Clear();
            PyObject* b = PyUnicode_AsEncodedString(o, "utf-8", "surrogatepass");
            if (!b) throw py::error_already_set();
            keep.push_back(py::reinterpret_steal<py::object>(b));
            s = PyBytes_AS_STRING(b);
            n = PyBytes_GET_SIZE(b);
        }
        out.emplace_back(s, static_cast<std::size_t>(n));
    }
    return out;
}

// The view over already shape-checked arrays (term_ptr has >= 1 entry); callers add their own checks
// and choose the error type (ValueError for new input, StateError for a loaded index).
bm25::PostingsView raw_postings_view(const carray<std::int64_t>& term_ptr, const carray<std::uint32_t>& docs,
                                     const carray<std::uint32_t>& tfs,
                                     const carray<std::uint32_t>& doc_lens) {
    bm25::PostingsView v;
    v.n_terms = static_cast<std::size_t>(term_ptr.shape(0) - 1);
    v.n_docs = static_cast<std::size_t>(doc_lens.shape(0));
    v.term_ptr = term_ptr.data();
    v.docs = docs.data();
    v.tfs = tfs.data();
    v.doc_lens = doc_lens.data();
    return v;
}

bm25::PostingsView postings_view(const carray<std::int64_t>& term_ptr, const carray<std::uint32_t>& docs,
                                 const carray<std::uint32_t>& tfs, const carray<std::uint32_t>& doc_lens) {
    check_1d(term_ptr, "term_ptr");
    if (term_ptr.shape(0) < 1) throw std::invalid_argument("term_ptr must have n_terms + 1 >= 1 entries");
    check_1d(docs, "docs");
    check_1d(tfs, "tfs", docs.shape(0));
    check_1d(doc_lens, "doc_lens");
    const bm25::PostingsView v = raw_postings_view(term_ptr, docs, tfs, doc_lens);
    const std::int64_t last = term_ptr.data()[v.n_terms];
    if (term_ptr.data()[0] != 0 || last != docs.shape(0))
        throw std::invalid_argument("term_ptr must run from 0 to len(docs)");
    return v;
}

bm25::IndexView index_view(std::size_t n_docs, const carray<std::int64_t>& term_ptr,
                           const carray<std::uint32_t>& docs, const carray<float>& impacts,
                           const carray<float>& nonocc) {
    check_1d(term_ptr, "term_ptr");
    if (term_ptr.shape(0) < 1) throw std::invalid_argument("term_ptr must have n_terms + 1 >= 1 entries");
    check_1d(docs, "docs");
    check_1d(impacts, "impacts", docs.shape(0));
    check_1d(nonocc, "nonoccurrence", term_ptr.shape(0) - 1);
    if (term_ptr.data()[0] != 0 || term_ptr.data()[term_ptr.shape(0) - 1] != docs.shape(0))
        throw std::invalid_argument("term_ptr must run from 0 to len(docs)");
    bm25::IndexView v;
    v.n_docs = n_docs;
    v.n_terms = static_cast<std::size_t>(term_ptr.shape(0) - 1);
    v.term_ptr = term_ptr.data();
    v.docs = docs.data();
    v.impacts = impacts.data();
    v.nonoccurrence = nonocc.data();
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

// Maps tokens (ragged by offsets) to vocabulary ids; unknown tokens are added (grow) or dropped.
py::tuple map_tokens(Vocabulary& vocab, const py::list& tokens, const carray<std::int64_t>& offsets,
                     bool grow) {
    check_1d(offsets, "offsets");
    if (offsets.shape(0) < 1) throw std::invalid_argument("offsets must have n + 1 >= 1 entries");
    const std::size_t n = static_cast<std::size_t>(offsets.shape(0) - 1);
    const std::int64_t* off = offsets.data();
    if (off[0] != 0 || off[n] != static_cast<std::int64_t>(tokens.size()))
        throw std::invalid_argument("offsets must run from 0 to the number of tokens");
    for (std::size_t i = 0; i < n; ++i)
        if (off[i + 1] < off[i]) throw std::invalid_argument("offsets decrease at " + std::to_string(i));
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

}  // namespace

void bind_bm25(py::module_& m) {
    py::class_<Vocabulary>(m, "Vocabulary", "Term -> id map (ids in order of first insertion).")
        .def(py::init<>())
        .def("__len__", &Vocabulary::size)
        .def("find", [](const Vocabulary& v, const std::string& t) { return v.find(t); })
        .def("term",
             [](const Vocabulary& v, std::size_t id) {
                 if (id >= v.size()) throw py::index_error("term id out of range");
                 return py::str(v.term(id).data(), v.term(id).size());
             })
        .def("arena",
             [](const Vocabulary& v) {
                 std::vector<std::uint8_t> chars(v.chars().begin(), v.chars().end());
                 std::vector<std::uint64_t> offsets(v.offsets());
                 return py::make_tuple(to_numpy(std::move(chars)), to_numpy(std::move(offsets)));
             })
        .def_static(
            "from_arena",
            [](const carray<std::uint8_t>& chars, const carray<std::uint64_t>& offsets) {
                check_1d(chars, "chars");
                check_1d(offsets, "offsets");
                if (offsets.shape(0) < 1)
                    throw std::invalid_argument("offsets must have n_terms + 1 >= 1 entries");
                py::gil_scoped_release release;
                return Vocabulary::from_arena(reinterpret_cast<const char*>(chars.data()),
                                              static_cast<std::size_t>(chars.shape(0)), offsets.data(),
                                              static_cast<std::size_t>(offsets.shape(0) - 1));
            },
            py::arg("chars"), py::arg("offsets"))
        .def("copy", [](const Vocabulary& v) { return Vocabulary(v); })
        .def("map_tokens", &map_tokens, py::arg("tokens"), py::arg("offsets"), py::arg("grow"));

    m.def(
        "bm25_analyze_to_ids",
        [](const Analyzer& analyzer, Vocabulary& vocab, const py::list& texts, bool grow, int num_threads) {
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
        [](std::size_t n_terms, const carray<std::uint32_t>& term_ids,
           const carray<std::int64_t>& doc_offsets, const carray<std::int64_t>& base_term_ptr,
           const carray<std::uint32_t>& base_docs, const carray<std::uint32_t>& base_tfs,
           const carray<std::uint32_t>& base_doc_lens) {
            check_1d(term_ids, "term_ids");
            check_1d(doc_offsets, "doc_offsets");
            if (doc_offsets.shape(0) < 1)
                throw std::invalid_argument("doc_offsets must have n + 1 >= 1 entries");
            const std::size_t n_new = static_cast<std::size_t>(doc_offsets.shape(0) - 1);
            if (doc_offsets.data()[n_new] != term_ids.shape(0))
                throw std::invalid_argument("doc_offsets must end at len(term_ids)");
            auto base = postings_view(base_term_ptr, base_docs, base_tfs, base_doc_lens);
            bm25::Postings out;
            {
                py::gil_scoped_release release;
                out = bm25::build_postings(base, n_terms, term_ids.data(), doc_offsets.data(), n_new);
            }
            return py::make_tuple(to_numpy(std::move(out.term_ptr)), to_numpy(std::move(out.docs)),
                                  to_numpy(std::move(out.tfs)), to_numpy(std::move(out.doc_lens)));
        },
        py::arg("n_terms"), py::arg("term_ids"), py::arg("doc_offsets"), py::arg("base_term_ptr"),
        py::arg("base_docs"), py::arg("base_tfs"), py::arg("base_doc_lens"));

    m.def(
        "bm25_compute_impacts",
        [](const std::string& variant, double k1, double b, double delta,
           const carray<std::int64_t>& term_ptr, const carray<std::uint32_t>& docs,
           const carray<std::uint32_t>& tfs, const carray<std::uint32_t>& doc_lens, int num_threads) {
            const auto p = make_params(variant, k1, b, delta);
            auto view = postings_view(term_ptr, docs, tfs, doc_lens);
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
        [](const carray<std::int64_t>& term_ptr, const carray<std::uint32_t>& docs,
           const carray<std::uint32_t>& tfs, const carray<std::uint32_t>& doc_lens,
           const carray<float>& impacts, const carray<float>& nonocc) {
            check_1d(term_ptr, "term_ptr");
            if (term_ptr.shape(0) < 1) throw StateError("term_ptr must have n_terms + 1 >= 1 entries");
            check_1d(impacts, "impacts", docs.shape(0));
            check_1d(nonocc, "nonoccurrence", term_ptr.shape(0) - 1);
            check_1d(tfs, "tfs", docs.shape(0));
            check_1d(doc_lens, "doc_lens");
            const bm25::PostingsView v = raw_postings_view(term_ptr, docs, tfs, doc_lens);
            py::gil_scoped_release release;
            bm25::validate_index(v, static_cast<std::size_t>(docs.shape(0)), impacts.data(), nonocc.data());
        },
        py::arg("term_ptr"), py::arg("docs"), py::arg("tfs"), py::arg("doc_lens"), py::arg("impacts"),
        py::arg("nonoccurrence"));

    m.def(
        "bm25_search",
        [](std::size_t n_docs, const carray<std::int64_t>& term_ptr, const carray<std::uint32_t>& docs,
           const carray<float>& impacts, const carray<float>& nonocc,
           const carray<std::uint32_t>& query_terms, const carray<std::int64_t>& query_offsets,
           std::int64_t k, int num_threads) {
            if (k <= 0) throw std::invalid_argument("k must be >= 1, got " + std::to_string(k));
            if (n_docs == 0) throw std::invalid_argument("the index has no documents");
            auto view = index_view(n_docs, term_ptr, docs, impacts, nonocc);
            check_1d(query_terms, "query_terms");
            check_1d(query_offsets, "query_offsets");
            if (query_offsets.shape(0) < 1)
                throw std::invalid_argument("query_offsets must have n + 1 >= 1 entries");
            const std::size_t nq = static_cast<std::size_t>(query_offsets.shape(0) - 1);
            if (query_offsets.data()[nq] != query_terms.shape(0))
                throw std::invalid_argument("query_offsets must end at len(query_terms)");
            const std::size_t kk = std::min<std::size_t>(static_cast<std::size_t>(k), n_docs);
            py::array_t<std::int64_t> out_docs({static_cast<py::ssize_t>(nq), static_cast<py::ssize_t>(kk)});
            py::array_t<float> out_scores({static_cast<py::ssize_t>(nq), static_cast<py::ssize_t>(kk)});
            std::int64_t* pd = out_docs.mutable_data();
            float* ps = out_scores.mutable_data();
            {
                py::gil_scoped_release release;
                bm25::search(view, query_terms.data(), query_offsets.data(), nq, kk, num_threads, pd, ps);
            }
            return py::make_tuple(out_docs, out_scores);
        },
        py::arg("n_docs"), py::arg("term_ptr"), py::arg("docs"), py::arg("impacts"), py::arg("nonoccurrence"),
        py::arg("query_terms"), py::arg("query_offsets"), py::arg("k"), py::arg("num_threads"));

    m.def(
        "bm25_score_all",
        [](std::size_t n_docs, const carray<std::int64_t>& term_ptr, const carray<std::uint32_t>& docs,
           const carray<float>& impacts, const carray<float>& nonocc,
           const carray<std::uint32_t>& query_terms) {
            auto view = index_view(n_docs, term_ptr, docs, impacts, nonocc);
            check_1d(query_terms, "query_terms");
            py::array_t<float> out(static_cast<py::ssize_t>(n_docs));
            float* po = out.mutable_data();
            {
                py::gil_scoped_release release;
                bm25::score_all(view, query_terms.data(), static_cast<std::size_t>(query_terms.shape(0)), po);
            }
            return out;
        },
        py::arg("n_docs"), py::arg("term_ptr"), py::arg("docs"), py::arg("impacts"), py::arg("nonoccurrence"),
        py::arg("query_terms"));
}

}  // namespace crossrank::bindings
