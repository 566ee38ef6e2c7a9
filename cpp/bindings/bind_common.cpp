#include <pybind11/stl.h>

#include "bindings.hpp"
#include "crossrank/errors.hpp"
#include "crossrank/parallel.hpp"
#include "crossrank/simd.hpp"

namespace crossrank::bindings {

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
