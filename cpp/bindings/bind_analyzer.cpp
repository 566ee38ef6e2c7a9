// Bindings of crossrank/analyzer.hpp. Texts are read as UTF-8 views of the Python str objects
// (with the GIL held), analyzed with the GIL released, and the terms are turned into Python str
// objects afterwards, each distinct term of a call created once and shared.
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bindings.hpp"
#include "crossrank/analyzer.hpp"
#include "crossrank/parallel.hpp"

namespace crossrank::bindings {
namespace {

// Builds Python str objects for terms, one object per distinct term. Keys view the caller's
// term strings, which must outlive this object.
class TermObjects {
  public:
    PyObject* get(std::string_view term) {  // new reference
        auto it = cache_.find(term);
        if (it == cache_.end()) {
            PyObject* o = PyUnicode_DecodeUTF8(term.data(), static_cast<Py_ssize_t>(term.size()), "strict");
            if (!o) throw py::error_already_set();
            it = cache_.emplace(term, py::reinterpret_steal<py::object>(o)).first;
        }
        Py_INCREF(it->second.ptr());
        return it->second.ptr();
    }
    py::list list_of(const std::vector<std::string>& terms) {
        py::list out(terms.size());
        for (std::size_t i = 0; i < terms.size(); ++i)
            PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i), get(terms[i]));
        return out;
    }

  private:
    std::unordered_map<std::string_view, py::object> cache_;
};

CjkMode cjk_from_name(const std::string& name) {
    if (name == "bigram") return CjkMode::bigram;
    if (name == "unigram") return CjkMode::unigram;
    throw std::invalid_argument("cjk must be 'bigram' or 'unigram', got '" + name + "'");
}

}  // namespace

void bind_analyzer(py::module_& m) {
    py::class_<Analyzer>(m, "Analyzer", plain_metaclass())
        .def(py::init(
                 [](bool lowercase, bool stem, std::vector<std::string> stopwords, const std::string& cjk) {
                     AnalyzerConfig c;
                     c.lowercase = lowercase;
                     c.stem = stem;
                     c.stopwords = std::move(stopwords);
                     c.cjk = cjk_from_name(cjk);
                     return Analyzer(std::move(c));
                 }),
             py::kw_only(), py::arg("lowercase"), py::arg("stem"), py::arg("stopwords"), py::arg("cjk"))
        .def(
            "analyze",
            [](const Analyzer& a, py::handle text) {
                if (!PyUnicode_Check(text.ptr()))
                    throw py::type_error(std::string("text must be str, got ") +
                                         Py_TYPE(text.ptr())->tp_name);
                py::object keep;
                std::string_view view = utf8_of(text.ptr(), keep);
                std::vector<std::string> terms;
                {
                    py::gil_scoped_release release;
                    a.analyze(view, terms);
                }
                TermObjects objs;
                return objs.list_of(terms);
            },
            py::arg("text"))
        .def(
            "_analyze_bytes",
            [](const Analyzer& a, const py::bytes& data) {
                std::string_view view(PyBytes_AS_STRING(data.ptr()),
                                      static_cast<std::size_t>(PyBytes_GET_SIZE(data.ptr())));
                std::vector<std::string> terms;
                {
                    py::gil_scoped_release release;
                    a.analyze(view, terms);
                }
                TermObjects objs;
                return objs.list_of(terms);
            },
            py::arg("data"), "Analyze raw bytes as UTF-8 (tests of invalid UTF-8).")
        .def(
            "analyze_batch",
            [](const Analyzer& a, const py::sequence& texts, std::int64_t num_threads_arg) {
                const int num_threads = check_threads(num_threads_arg);
                const std::size_t n = texts.size();
                std::vector<std::string_view> views(n);
                std::vector<py::object> keep(n);
                std::vector<py::object> items(n);
                for (std::size_t i = 0; i < n; ++i) {
                    items[i] = texts[i];
                    if (!PyUnicode_Check(items[i].ptr()))
                        throw py::type_error("texts[" + std::to_string(i) + "] must be str, got " +
                                             Py_TYPE(items[i].ptr())->tp_name);
                    views[i] = utf8_of(items[i].ptr(), keep[i]);
                }
                std::vector<std::vector<std::string>> terms(n);
                {
                    py::gil_scoped_release release;
                    parallel_for(n, num_threads, 16, [&](std::size_t b, std::size_t e) {
                        for (std::size_t i = b; i < e; ++i) a.analyze(views[i], terms[i]);
                    });
                }
                TermObjects objs;
                py::list out(n);
                for (std::size_t i = 0; i < n; ++i) {
                    py::list inner = objs.list_of(terms[i]);
                    PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i), inner.release().ptr());
                }
                return out;  // `objs` (viewing `terms`) is destroyed before `terms`
            },
            py::arg("texts"), py::arg("num_threads"));

    m.def(
        "stem_english", [](const std::string& word) { return stem_english(word); }, py::arg("word"),
        "Snowball English stem of one (lowercased) word; equals PyStemmer's 'english'.");
    m.def("english_stopwords", &english_stopwords);
    m.def("analyzer_unicode_version", [] { return std::string(analyzer_unicode_version()); });
    m.attr("analyzer_max_term_bytes") = py::int_(kMaxTermBytes);
}

}  // namespace crossrank::bindings
