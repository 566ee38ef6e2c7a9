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
using F32 = py::array_t<float, py::array::c_style>;
using I64 = py::array_t<std::int64_t, py::array::c_style>;

// The numpy dtype a packed buffer of `dtype` must have: float32, float16, or uint16 for bf16.
void check_packed_array(const py::array& a, ms::DType dtype, const char* what) {
    const char kind = a.dtype().kind();
    const auto size = a.dtype().itemsize();
    bool ok = false;
    const char* expected = "";
    switch (dtype) {
        case ms::DType::fp32:
            ok = kind == 'f' && size == 4;
            expected = "float32";
            break;
        case ms::DType::fp16:
            ok = kind == 'f' && size == 2;
            expected = "float16";
            break;
        case ms::DType::bf16:
            ok = kind == 'u' && size == 2;
            expected = "uint16 (raw bfloat16 bits)";
            break;
    }
    if (!ok)
        throw std::invalid_argument(std::string(what) + " must have numpy dtype " + expected +
                                    " for storage '" + ms::dtype_name(dtype) + "', got " +
                                    std::string(py::str(a.dtype())));
    if (a.ndim() != 2)
        throw std::invalid_argument(std::string(what) + " must be 2-D [n_rows, stride], got " +
                                    std::to_string(a.ndim()) + "-D");
    if (!(a.flags() & py::array::c_style))
        throw std::invalid_argument(std::string(what) + " must be C-contiguous; try np.ascontiguousarray");
}

void check_2d(const py::array& a, const char* what) {
    if (a.ndim() != 2)
        throw std::invalid_argument(std::string(what) + " must be 2-D [n_tokens, dim], got " +
                                    std::to_string(a.ndim()) + "-D");
}

void check_1d(const py::array& a, const char* what) {
    if (a.ndim() != 1)
        throw std::invalid_argument(std::string(what) + " must be 1-D, got " + std::to_string(a.ndim()) +
                                    "-D");
}

}  // namespace

void bind_maxsim(py::module_& m) {
    m.def("maxsim_row_stride", [](std::size_t dim, const std::string& dtype) {
        return ms::row_stride(dim, ms::dtype_from_name(dtype));
    });
    m.def(
        "maxsim_kernel",
        [](const std::string& dtype, const std::optional<std::string>& isa) {
            return ms::kernel_name(ms::dtype_from_name(dtype),
                                   isa ? simd::isa_from_name(*isa) : simd::active_isa());
        },
        py::arg("dtype"), py::arg("isa") = py::none());

    m.def(
        "maxsim_pack",
        [](F32 src, py::array dst, const std::string& dtype_name, bool normalize, int num_threads) {
            const ms::DType dtype = ms::dtype_from_name(dtype_name);
            check_2d(src, "token vectors");
            check_packed_array(dst, dtype, "packed buffer");
            const auto n = static_cast<std::size_t>(src.shape(0)),
                       dim = static_cast<std::size_t>(src.shape(1));
            if (static_cast<std::size_t>(dst.shape(0)) != n ||
                static_cast<std::size_t>(dst.shape(1)) != ms::row_stride(dim, dtype))
                throw std::invalid_argument("packed buffer must have shape [" + std::to_string(n) + ", " +
                                            std::to_string(ms::row_stride(dim, dtype)) + "]");
            if (!dst.writeable()) throw std::invalid_argument("packed buffer must be writeable");
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
        [](py::array src, std::size_t dim, const std::string& dtype_name) {
            const ms::DType dtype = ms::dtype_from_name(dtype_name);
            check_packed_array(src, dtype, "packed buffer");
            if (static_cast<std::size_t>(src.shape(1)) != ms::row_stride(dim, dtype))
                throw std::invalid_argument("packed buffer has the wrong row stride for dim " +
                                            std::to_string(dim));
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
        [](F32 queries, I64 query_offsets, py::array data, const std::string& dtype_name, std::size_t dim,
           I64 offsets, std::optional<I64> doc_ids, int num_threads) {
            const ms::DType dtype = ms::dtype_from_name(dtype_name);
            check_2d(queries, "query vectors");
            check_1d(query_offsets, "query offsets");
            check_1d(offsets, "document offsets");
            check_packed_array(data, dtype, "packed documents");
            if (query_offsets.shape(0) < 1 || offsets.shape(0) < 1)
                throw std::invalid_argument("offsets must have at least one entry (0)");
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
                check_1d(*doc_ids, "doc_ids");
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
