// Bindings of crossrank/maxsim.hpp. Private: the typed API is python/crossrank/maxsim.py.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <optional>
#include <stdexcept>
#include <string>

#include "bindings.hpp"
#include "crossrank/maxsim.hpp"
#include "crossrank/simd.hpp"

namespace crossrank::bindings {
namespace {

namespace ms = crossrank::maxsim;

// Largest token vector dimension accepted (far above any encoder's; keeps row sizes in range).
constexpr std::int64_t kMaxDim = 1 << 20;
using F32 = carray<float>;
using I64 = carray<std::int64_t>;

// A packed buffer of storage `dtype` as the caller passed it (never converted): a C-contiguous 2-D
// ndarray of float32, float16, or uint16 for bf16 (raw bits).
py::array take_packed(py::handle obj, ms::DType dtype, const char* name) {
    const char* expected = dtype == ms::DType::fp32   ? "float32"
                           : dtype == ms::DType::fp16 ? "float16"
                                                      : "uint16";
    const std::string what = std::string(name) + " must be a C-contiguous 2-D " + expected + " array" +
                             (dtype == ms::DType::bf16 ? " (raw bfloat16 bits)" : "") + " for storage '" +
                             ms::dtype_name(dtype) + "'";
    const std::string fix = std::string(": pass np.ascontiguousarray(x, dtype=np.") + expected + ")";
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(what + ", got " + std::string(Py_TYPE(obj.ptr())->tp_name) + fix);
    auto a = py::reinterpret_borrow<py::array>(obj);
    if (!py::dtype(expected).equal(a.dtype()))
        throw py::type_error(what + ", got " + py::str(a.dtype()).cast<std::string>() + fix);
    if (!(a.flags() & py::array::c_style))
        throw py::value_error(what + ", got a non-contiguous view (a transpose or a strided slice)" + fix);
    if (a.ndim() != 2)
        throw py::value_error(std::string(name) + " must be 2-D [n_rows, stride], got " +
                              std::to_string(a.ndim()) + "-D");
    return a;
}

}  // namespace

void bind_maxsim(py::module_& m) {
    m.def(
        "maxsim_row_stride",
        [](std::int64_t dim, const std::string& dtype) {
            return ms::row_stride(static_cast<std::size_t>(check_range(dim, "dim", 1, kMaxDim)),
                                  ms::dtype_from_name(dtype));
        },
        py::arg("dim"), py::arg("dtype"));
    m.def(
        "maxsim_kernel",
        [](const std::string& dtype, const std::optional<std::string>& isa) {
            return ms::kernel_name(ms::dtype_from_name(dtype),
                                   isa ? simd::isa_from_name(*isa) : simd::active_isa());
        },
        py::arg("dtype"), py::arg("isa") = py::none());

    m.def(
        "maxsim_pack",
        [](const In<float>& src_arg, const py::object& dst_arg, const std::string& dtype_name, bool normalize,
           std::int64_t num_threads_arg) {
            const ms::DType dtype = ms::dtype_from_name(dtype_name);
            const F32 src = take<float>(src_arg, "src", 2);
            py::array dst = take_packed(dst_arg, dtype, "dst");
            const int num_threads = check_threads(num_threads_arg);
            const auto n = static_cast<std::size_t>(src.shape(0)),
                       dim = static_cast<std::size_t>(src.shape(1));
            if (static_cast<std::size_t>(dst.shape(0)) != n ||
                static_cast<std::size_t>(dst.shape(1)) != ms::row_stride(dim, dtype))
                throw std::invalid_argument("dst must have shape [" + std::to_string(n) + ", " +
                                            std::to_string(ms::row_stride(dim, dtype)) + "]");
            if (!dst.writeable()) throw std::invalid_argument("dst must be writeable");
            const float* s = src.data();
            void* d = dst.mutable_data();
            {
                py::gil_scoped_release release;
                ms::pack(s, n, dim, dtype, normalize, d, num_threads);
            }
        },
        py::arg("src"), py::arg("dst"), py::arg("dtype"), py::arg("normalize"), py::arg("num_threads"));

    m.def(
        "maxsim_unpack",
        [](const py::object& src_arg, std::int64_t dim_arg, const std::string& dtype_name) {
            const ms::DType dtype = ms::dtype_from_name(dtype_name);
            const auto dim = static_cast<std::size_t>(check_range(dim_arg, "dim", 1, kMaxDim));
            const py::array src = take_packed(src_arg, dtype, "src");
            if (static_cast<std::size_t>(src.shape(1)) != ms::row_stride(dim, dtype))
                throw std::invalid_argument("src has the wrong row stride for dim " + std::to_string(dim) +
                                            ": " + std::to_string(src.shape(1)) + " instead of " +
                                            std::to_string(ms::row_stride(dim, dtype)));
            const auto n = static_cast<std::size_t>(src.shape(0));
            F32 out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(dim)});
            const void* s = src.data();
            float* o = out.mutable_data();
            {
                py::gil_scoped_release release;
                ms::unpack(s, n, dim, dtype, o);
            }
            return out;
        },
        py::arg("src"), py::arg("dim"), py::arg("dtype"));

    m.def(
        "maxsim_score",
        [](const In<float>& queries_arg, const In<std::int64_t>& query_offsets_arg,
           const py::object& data_arg, const std::string& dtype_name, std::int64_t dim_arg,
           const In<std::int64_t>& offsets_arg, const In<std::int64_t>& doc_ids_arg,
           std::int64_t num_threads_arg) {
            const ms::DType dtype = ms::dtype_from_name(dtype_name);
            const auto dim = static_cast<std::size_t>(check_range(dim_arg, "dim", 1, kMaxDim));
            const F32 queries = take<float>(queries_arg, "queries", 2);
            const I64 query_offsets = take<std::int64_t>(query_offsets_arg, "query_offsets", 1);
            const py::array data = take_packed(data_arg, dtype, "data");
            const I64 offsets = take<std::int64_t>(offsets_arg, "offsets", 1);
            const auto doc_ids = take_optional<std::int64_t>(doc_ids_arg, "doc_ids", 1);
            const int num_threads = check_threads(num_threads_arg);
            check_min_size(query_offsets, "query_offsets", 1, "n_queries + 1 >= 1 entries");
            check_min_size(offsets, "offsets", 1, "n_docs + 1 >= 1 entries");
            const auto n_queries = static_cast<std::size_t>(query_offsets.shape(0) - 1);
            if (static_cast<std::size_t>(queries.shape(1)) != dim)
                throw std::invalid_argument("query vectors have dim " + std::to_string(queries.shape(1)) +
                                            " but the documents have dim " + std::to_string(dim) +
                                            "; encode both with the same model");
            if (n_queries > 0 && query_offsets.at(n_queries) != queries.shape(0))
                throw std::invalid_argument("query offsets must end at the number of query rows");
            ms::DocsView docs;
            docs.dtype = dtype;
            docs.data = data.data();
            docs.n_rows = static_cast<std::size_t>(data.shape(0));
            docs.stride = static_cast<std::size_t>(data.shape(1));
            docs.dim = dim;
            docs.offsets = offsets.data();
            docs.n_docs = static_cast<std::size_t>(offsets.shape(0) - 1);
            const std::int64_t* ids = nullptr;
            std::size_t n_out = docs.n_docs;
            if (doc_ids) {
                ids = doc_ids->data();
                n_out = static_cast<std::size_t>(doc_ids->shape(0));
            }
            F32 out({static_cast<py::ssize_t>(n_queries), static_cast<py::ssize_t>(n_out)});
            const float* q = queries.data();
            const std::int64_t* qo = query_offsets.data();
            float* o = out.mutable_data();
            {
                py::gil_scoped_release release;
                ms::score(q, qo, n_queries, dim, docs, ids, n_out, o, num_threads);
            }
            return out;
        },
        py::arg("queries"), py::arg("query_offsets"), py::arg("data"), py::arg("dtype"), py::arg("dim"),
        py::arg("offsets"), py::arg("doc_ids"), py::arg("num_threads"));
}

}  // namespace crossrank::bindings
