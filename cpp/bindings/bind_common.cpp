#include <pybind11/stl.h>

#include <limits>
#include <string>

#include "bindings.hpp"
#include "crossrank/errors.hpp"
#include "crossrank/parallel.hpp"
#include "crossrank/simd.hpp"

namespace crossrank::bindings {

void check_size(const py::array& a, const char* name, py::ssize_t size) {
    if (a.shape(0) != size)
        throw py::value_error(std::string(name) + " must have " + std::to_string(size) + " entries, got " +
                              std::to_string(a.shape(0)));
}

void check_min_size(const py::array& a, const char* name, py::ssize_t min_size, const char* meaning) {
    if (a.shape(0) < min_size)
        throw py::value_error(std::string(name) + " must have " + meaning + ", got " +
                              std::to_string(a.shape(0)) + " entries");
}

std::int64_t check_range(std::int64_t value, const char* name, std::int64_t lo, std::int64_t hi) {
    if (value < lo || value > hi) {
        std::string range = hi == std::numeric_limits<std::int64_t>::max()
                                ? ">= " + std::to_string(lo)
                                : "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
        throw py::value_error(std::string(name) + " must be an int " + range + ", got " +
                              std::to_string(value));
    }
    return value;
}

int check_threads(std::int64_t num_threads) {
    if (num_threads < 0 || num_threads > std::numeric_limits<int>::max())
        throw py::value_error("num_threads must be 0 (use the CPU quota) or a thread count in [1, " +
                              std::to_string(std::numeric_limits<int>::max()) + "], got " +
                              std::to_string(num_threads));
    return static_cast<int>(num_threads);
}

std::string_view utf8_of(PyObject* obj, py::object& keep) {
    Py_ssize_t n = 0;
    const char* s = PyUnicode_AsUTF8AndSize(obj, &n);
    if (s) return {s, static_cast<std::size_t>(n)};
    PyErr_Clear();
    PyObject* b = PyUnicode_AsEncodedString(obj, "utf-8", "surrogatepass");
    if (!b) throw py::error_already_set();
    keep = py::reinterpret_steal<py::object>(b);
    return {PyBytes_AS_STRING(b), static_cast<std::size_t>(PyBytes_GET_SIZE(b))};
}

std::vector<std::string_view> utf8_views(const py::list& items, const char* what,
                                         std::vector<py::object>& keep) {
    std::vector<std::string_view> out;
    out.reserve(items.size());
    keep.reserve(keep.size() + items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
        PyObject* o = items[i].ptr();
        if (!PyUnicode_Check(o))
            throw py::type_error(std::string(what) + "[" + std::to_string(i) + "] must be str, got " +
                                 Py_TYPE(o)->tp_name);
        py::object k;
        out.push_back(utf8_of(o, k));
        if (k) keep.push_back(std::move(k));
    }
    return out;
}

void bind_common(py::module_& m) {
    m.attr("__version__") = CROSSRANK_VERSION;

    // crossrank::StateError -> crossrank.errors.StateError (defined in Python so users can import
    // and catch it without touching the private module).
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const crossrank::StateError& e) {
            py::object cls = py::module_::import("crossrank.errors").attr("StateError");
            PyErr_SetString(cls.ptr(), e.what());
        }
    });

    m.def("default_num_threads", &crossrank::default_num_threads,
          "Threads the core uses when num_threads is None: the cgroup CPU quota capped by affinity.");

    namespace simd = crossrank::simd;
    auto names = [](const std::vector<simd::Isa>& v) {
        std::vector<std::string> out;
        for (auto isa : v) out.emplace_back(simd::isa_name(isa));
        return out;
    };
    m.def("simd_compiled", [names] { return names(simd::compiled_isas()); });
    m.def("simd_available", [names] { return names(simd::available_isas()); });
    m.def("simd_active", [] { return std::string(simd::isa_name(simd::active_isa())); });
    m.def(
        "simd_force",
        [](const std::optional<std::string>& name) {
            if (name)
                simd::force_isa(simd::isa_from_name(*name));
            else
                simd::clear_forced_isa();
        },
        py::arg("name"), "Force a SIMD path by name (tests, benchmarks); None restores automatic choice.");
}

}  // namespace crossrank::bindings
