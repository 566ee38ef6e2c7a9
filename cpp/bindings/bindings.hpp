// Declarations of the per-area binding functions wired together in module.cpp.
// Binding rule (see CONTRIBUTING.md): validate and allocate outputs with the GIL held, take raw
// views, release the GIL around the core call, return. Never touch Python objects while released.
#pragma once

#include <pybind11/pybind11.h>

namespace crossrank::bindings {
namespace py = pybind11;

void bind_common(py::module_& m);  // build info, threads, SIMD dispatch, error translation
// Each area adds its own line here and in module.cpp:
void bind_pack(py::module_& m);      // cross-encoder pair packing (pack.hpp)
void bind_analyzer(py::module_& m);  // text analyzer: tokenize, lowercase, stopwords, stem
void bind_maxsim(py::module_& m);    // ColBERT MaxSim kernel, packing
void bind_bm25(py::module_& m);      // BM25 postings, impacts, search; Vocabulary
}  // namespace crossrank::bindings
