// The shared helpers of the bindings (array checks, int checks, UTF-8 views, zero-copy results) and
// the per-area binding functions wired together in module.cpp.
//
// Binding rules (see CONTRIBUTING.md):
// - Validate and allocate outputs with the GIL held, take raw views, release the GIL around the
//   core call (py::gil_scoped_release), return. Never touch Python objects while released.
// - No silent copies: an array argument is declared `const In<T>&` (any object reaches the binding,
//   no conversion by pybind11) and taken with take<T>(arg, "name"), which accepts only a NumPy
//   array of exactly dtype T in C order and otherwise raises TypeError / ValueError naming the
//   argument and the fix. The Python layer converts visibly (np.ascontiguousarray(x, dtype=...))
//   where a conversion is intended.
// - Ints with a range are checked here with a sentence naming the argument and the range, instead of
//   pybind11's "incompatible function arguments" signature dump.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crossrank::bindings {
namespace py = pybind11;

void bind_common(py::module_& m);  // build info, threads, SIMD dispatch, error translation
// Each area adds its own line here and in module.cpp:
void bind_pack(py::module_& m);      // cross-encoder pair packing (pack.hpp)
void bind_analyzer(py::module_& m);  // text analyzer: tokenize, lowercase, stopwords, stem
void bind_maxsim(py::module_& m);    // ColBERT MaxSim kernel, packing
void bind_bm25(py::module_& m);      // BM25 postings, impacts, search; Vocabulary

// Every class of the module is created with the plain `type` metaclass: the classes need none of
// pybind11's metaclass features (static properties, Python subclasses), and their stubs in
// _core.pyi then match the runtime for mypy.stubtest.
inline py::metaclass plain_metaclass() { return py::metaclass(reinterpret_cast<PyObject*>(&PyType_Type)); }

// A C-contiguous NumPy array of exactly T, held by reference (never a copy of the caller's data).
template <class T>
using carray = py::array_t<T, py::array::c_style>;

// An array argument as the binding receives it: the caller's object, unconverted. Declared in a
// signature so that pybind11 shows "numpy.typing.NDArray[...]" and never casts; take<T>() checks it.
template <class T>
class In : public py::object {
  public:
    using py::object::object;
    static bool check_(py::handle) { return true; }  // every object loads; take<T>() explains a bad one
};

// The numpy name of T, for messages ("int64", "float32", ...).
template <class T>
std::string dtype_name() {
    return py::str(py::dtype::of<T>()).cast<std::string>();
}

// The numpy spelling of T in a fix hint ("np.int64").
template <class T>
std::string np_name() {
    return "np." + dtype_name<T>();
}

// The caller's array as carray<T> without copying: it must be a numpy.ndarray of dtype T (native
// byte order) in C order, and have `ndim` dimensions when ndim >= 0. Raises TypeError for another
// type or dtype and ValueError for another layout, each naming `name` and the fix. Needs the GIL.
template <class T>
carray<T> take(py::handle obj, const char* name, int ndim = -1) {
    const std::string what = std::string(name) + " must be a C-contiguous " + dtype_name<T>() + " array";
    const std::string fix = ": pass np.ascontiguousarray(x, dtype=" + np_name<T>() + ")";
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(what + ", got " + std::string(Py_TYPE(obj.ptr())->tp_name) + fix);
    auto a = py::reinterpret_borrow<py::array>(obj);
    if (!py::dtype::of<T>().equal(a.dtype()))
        throw py::type_error(what + ", got " + py::str(a.dtype()).cast<std::string>() + fix);
    if (!(a.flags() & py::array::c_style))
        throw py::value_error(what + ", got a non-contiguous view (a transpose or a strided slice)" + fix);
    if (ndim >= 0 && a.ndim() != ndim)
        throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) + "-D, got " +
                              std::to_string(a.ndim()) + "-D");
    return py::reinterpret_borrow<carray<T>>(a);
}

// take<T>() of an argument that may be None.
template <class T>
std::optional<carray<T>> take_optional(py::handle obj, const char* name, int ndim = -1) {
    if (obj.is_none()) return std::nullopt;
    return take<T>(obj, name, ndim);
}

// Checks a 1-D array's length (size >= 0) or minimum length (min_size >= 0).
void check_size(const py::array& a, const char* name, py::ssize_t size);
void check_min_size(const py::array& a, const char* name, py::ssize_t min_size, const char* meaning);

// An int argument in [lo, hi]; ValueError naming it and the range otherwise.
std::int64_t check_range(std::int64_t value, const char* name, std::int64_t lo,
                         std::int64_t hi = std::numeric_limits<std::int64_t>::max());

// num_threads as the core takes it: 0 for the CPU quota, else a thread count.
int check_threads(std::int64_t num_threads);

// UTF-8 view of a str, valid while the str and `keep` are alive (CPython caches the UTF-8 form in
// the str object). A str holding lone surrogates is encoded with "surrogatepass", as the analyzer
// does: its surrogates become ill-formed bytes, i.e. separators. Needs the GIL.
std::string_view utf8_of(PyObject* obj, py::object& keep);

// utf8_of() of every item of a list of str; TypeError naming `what`[i] for a non-str item.
std::vector<std::string_view> utf8_views(const py::list& items, const char* what,
                                         std::vector<py::object>& keep);

// Hands a vector's buffer to NumPy without copying (the array owns it).
template <class T>
py::array_t<T> to_numpy(std::vector<T>&& v) {
    auto* heap = new std::vector<T>(std::move(v));
    py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
    return py::array_t<T>({static_cast<py::ssize_t>(heap->size())}, {static_cast<py::ssize_t>(sizeof(T))},
                          heap->data(), owner);
}

// A read-only NumPy view of a vector owned by `owner` (zero copy; keeps owner alive).
template <class T>
py::array readonly_view(const std::vector<T>& v, py::handle owner) {
    py::array_t<T> a({static_cast<py::ssize_t>(v.size())}, {static_cast<py::ssize_t>(sizeof(T))}, v.data(),
                     owner);
    py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    return std::move(a);
}

}  // namespace crossrank::bindings

namespace pybind11::detail {
// In<T> shows the dtype it wants in signatures and docstrings.
template <class T>
struct handle_type_name<crossrank::bindings::In<T>> {
    static constexpr auto name =
        const_name("numpy.typing.NDArray[") + npy_format_descriptor<T>::name + const_name("]");
};
}  // namespace pybind11::detail
