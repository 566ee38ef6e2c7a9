// Bindings of crossrank/pack.hpp. A PackPlanCore owns the core plan and holds references to the
// flat token arrays it was planned from, so materialize() reads memory that stays alive. The plan
// stores absolute positions checked at planning time, so materialize() never reads offsets again.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "crossrank/pack.hpp"

namespace crossrank::bindings {

namespace {

using I32 = carray<std::int32_t>;
using I64 = carray<std::int64_t>;

struct PackPlanCore {
    pack::Plan plan;
    pack::PairTemplate tmpl;
    I32 q_values, d_values;
    I64 q_offsets, d_offsets;

    pack::Ragged queries() const {
        return {q_values.data(), static_cast<std::size_t>(q_values.size()), q_offsets.data(),
                static_cast<std::size_t>(q_offsets.size() - 1)};
    }
    pack::Ragged docs() const {
        return {d_values.data(), static_cast<std::size_t>(d_values.size()), d_offsets.data(),
                static_cast<std::size_t>(d_offsets.size() - 1)};
    }
};

// Offsets of a ragged list: 1-D with n + 1 >= 1 entries (the core checks the values).
void check_offsets(const I64& offsets, const char* name) {
    check_min_size(offsets, name, 1, "n + 1 >= 1 entries (offsets[0] = 0 for an empty list)");
}

}  // namespace

// Flattens a sequence of int sequences (Python lists from tokenizers) into int32 values + int64
// offsets in one pass over the Python objects, rejecting non-integers (floats, bools, strings) and ids
// outside [0, 2^31). Runs with the GIL held: it reads Python objects throughout.
py::tuple ragged_from_sequences(const py::sequence& seqs, const std::string& name) {
    const auto n = static_cast<py::ssize_t>(py::len(seqs));
    std::vector<py::object> fast;
    fast.reserve(static_cast<std::size_t>(n));
    I64 offsets(n + 1);
    auto* off = offsets.mutable_data();
    off[0] = 0;
    for (py::ssize_t i = 0; i < n; ++i) {
        py::object item = seqs[i];
        if (PyUnicode_Check(item.ptr()) || PyBytes_Check(item.ptr()))
            throw py::type_error(name + "[" + std::to_string(i) + "] is a string; pass token ids, not text");
        PyObject* f = PySequence_Fast(item.ptr(), "");
        if (f == nullptr) {
            PyErr_Clear();
            throw py::type_error(name + "[" + std::to_string(i) + "] must be a sequence of token ids, got " +
                                 std::string(py::str(py::type::of(item).attr("__name__"))));
        }
        fast.push_back(py::reinterpret_steal<py::object>(f));
        off[i + 1] = off[i] + PySequence_Fast_GET_SIZE(f);
    }
    I32 values(off[n]);
    auto* out = values.mutable_data();
    for (py::ssize_t i = 0; i < n; ++i) {
        PyObject* f = fast[static_cast<std::size_t>(i)].ptr();
        PyObject** items = PySequence_Fast_ITEMS(f);
        const py::ssize_t len = PySequence_Fast_GET_SIZE(f);
        for (py::ssize_t j = 0; j < len; ++j) {
            PyObject* v = items[j];
            long long x;
            if (PyLong_CheckExact(v)) {
                x = PyLong_AsLongLong(v);
            } else if (!PyBool_Check(v) && !PyFloat_Check(v) && PyIndex_Check(v)) {  // NumPy integers
                py::object idx = py::reinterpret_steal<py::object>(PyNumber_Index(v));
                if (!idx) throw py::error_already_set();
                x = PyLong_AsLongLong(idx.ptr());
            } else {
                throw py::type_error(name + " must hold integer token ids; " + name + "[" +
                                     std::to_string(i) + "][" + std::to_string(j) + "] is " +
                                     std::string(py::str(py::type::of(py::handle(v)).attr("__name__"))));
            }
            if (x == -1 && PyErr_Occurred()) {
                PyErr_Clear();
                x = std::numeric_limits<long long>::max();
            }
            if (x < 0)
                throw std::invalid_argument(name + " hold the negative token id " + std::to_string(x) +
                                            " at " + name + "[" + std::to_string(i) + "][" +
                                            std::to_string(j) + "]; token ids must be >= 0");
            if (x > std::numeric_limits<std::int32_t>::max())
                throw std::invalid_argument(name + "[" + std::to_string(i) + "][" + std::to_string(j) +
                                            "] holds a token id above the int32 range");
            *out++ = static_cast<std::int32_t>(x);
        }
    }
    return py::make_tuple(values, offsets);
}

void bind_pack(py::module_& m) {
    py::class_<PackPlanCore>(m, "PackPlanCore", plain_metaclass(),
                             "Plan of packed cross-encoder batches (private; use crossrank.packing).")
        .def_property_readonly("n_pairs", [](const PackPlanCore& s) { return s.plan.n_pairs; })
        .def_property_readonly("n_rows", [](const PackPlanCore& s) { return s.plan.n_rows(); })
        .def_property_readonly("n_batches", [](const PackPlanCore& s) { return s.plan.n_batches(); })
        .def_property_readonly("peak_batch_tokens",
                               [](const PackPlanCore& s) { return s.plan.peak_batch_tokens(); })
        .def_property_readonly("truncated",
                               [](py::object self) {
                                   return readonly_view(self.cast<const PackPlanCore&>().plan.truncated,
                                                        self);
                               })
        .def_property_readonly("n_tokens",
                               [](py::object self) {
                                   return readonly_view(self.cast<const PackPlanCore&>().plan.n_tokens, self);
                               })
        .def_property_readonly("query_kept",
                               [](py::object self) {
                                   return readonly_view(self.cast<const PackPlanCore&>().plan.query_kept,
                                                        self);
                               })
        .def_property_readonly("row_offsets",
                               [](py::object self) {
                                   return readonly_view(self.cast<const PackPlanCore&>().plan.row_offsets,
                                                        self);
                               })
        .def_property_readonly("row_pair",
                               [](py::object self) {
                                   return readonly_view(self.cast<const PackPlanCore&>().plan.row_pair, self);
                               })
        .def_property_readonly("row_window",
                               [](py::object self) {
                                   return readonly_view(self.cast<const PackPlanCore&>().plan.row_window,
                                                        self);
                               })
        .def_property_readonly("row_start",
                               [](py::object self) {
                                   return readonly_view(self.cast<const PackPlanCore&>().plan.row_start,
                                                        self);
                               })
        .def_property_readonly("row_end",
                               [](py::object self) {
                                   return readonly_view(self.cast<const PackPlanCore&>().plan.row_end, self);
                               })
        .def_property_readonly("row_tokens",
                               [](py::object self) {
                                   return readonly_view(self.cast<const PackPlanCore&>().plan.row_tokens,
                                                        self);
                               })
        .def_property_readonly(
            "order",
            [](py::object self) { return readonly_view(self.cast<const PackPlanCore&>().plan.order, self); })
        .def_property_readonly("batch_offsets",
                               [](py::object self) {
                                   return readonly_view(self.cast<const PackPlanCore&>().plan.batch_offsets,
                                                        self);
                               })
        .def_property_readonly("batch_length",
                               [](py::object self) {
                                   return readonly_view(self.cast<const PackPlanCore&>().plan.batch_length,
                                                        self);
                               })
        .def(
            "materialize",
            [](const PackPlanCore& s, py::ssize_t b) {
                if (b < 0 || static_cast<std::size_t>(b) >= s.plan.n_batches())
                    throw std::out_of_range("batch index " + std::to_string(b) +
                                            " out of range for a plan of " +
                                            std::to_string(s.plan.n_batches()) + " batches");
                const auto rows = static_cast<py::ssize_t>(s.plan.batch_rows(static_cast<std::size_t>(b)));
                const auto L = static_cast<py::ssize_t>(s.plan.batch_length[static_cast<std::size_t>(b)]);
                I64 ids({rows, L}), mask({rows, L}), types({rows, L});
                auto* pi = ids.mutable_data();
                auto* pm = mask.mutable_data();
                auto* pt = types.mutable_data();
                {
                    py::gil_scoped_release release;
                    pack::materialize(s.plan, s.queries(), s.docs(), s.tmpl, static_cast<std::size_t>(b), pi,
                                      pm, pt);
                }
                return py::make_tuple(ids, mask, types);
            },
            py::arg("batch"),
            "Fill batch `batch`: (input_ids, attention_mask, token_type_ids), int64 [rows, L].");

    m.def("ragged_from_sequences", &ragged_from_sequences, py::arg("seqs"), py::arg("name"),
          "Flatten a sequence of int sequences into (int32 values, int64 offsets), strictly typed.");

    m.def(
        "pack_plan",
        [](const In<std::int32_t>& q_values_arg, const In<std::int64_t>& q_offsets_arg,
           const In<std::int32_t>& d_values_arg, const In<std::int64_t>& d_offsets_arg,
           std::vector<std::int32_t> prefix, std::vector<std::int32_t> prefix_types,
           std::vector<std::int32_t> middle, std::vector<std::int32_t> middle_types,
           std::vector<std::int32_t> suffix, std::vector<std::int32_t> suffix_types, std::int32_t query_type,
           std::int32_t doc_type, std::int32_t pad_id, std::int32_t pad_type, std::int64_t max_length,
           const std::string& truncation, std::optional<std::int64_t> max_query_length,
           std::int64_t max_batch_tokens, std::int64_t max_batch_size, std::int64_t bucket_multiple,
           std::vector<std::int64_t> bucket_lengths, std::optional<std::int64_t> window_stride,
           std::optional<std::int64_t> max_windows) {
            I32 q_values = take<std::int32_t>(q_values_arg, "q_values", 1);
            I64 q_offsets = take<std::int64_t>(q_offsets_arg, "q_offsets", 1);
            I32 d_values = take<std::int32_t>(d_values_arg, "d_values", 1);
            I64 d_offsets = take<std::int64_t>(d_offsets_arg, "d_offsets", 1);
            check_offsets(q_offsets, "q_offsets");
            check_offsets(d_offsets, "d_offsets");
            auto core = std::make_unique<PackPlanCore>();
            core->tmpl.prefix = std::move(prefix);
            core->tmpl.prefix_types = std::move(prefix_types);
            core->tmpl.middle = std::move(middle);
            core->tmpl.middle_types = std::move(middle_types);
            core->tmpl.suffix = std::move(suffix);
            core->tmpl.suffix_types = std::move(suffix_types);
            core->tmpl.query_type = query_type;
            core->tmpl.doc_type = doc_type;
            core->tmpl.pad_id = pad_id;
            core->tmpl.pad_type = pad_type;
            pack::Options opt;
            opt.max_length = max_length;
            opt.truncation = pack::truncation_from_name(truncation);
            if (max_query_length) {
                if (*max_query_length < 1)
                    throw std::invalid_argument("max_query_length must be >= 1 (or None), got " +
                                                std::to_string(*max_query_length));
                opt.max_query_length = *max_query_length;
            }
            opt.max_batch_tokens = max_batch_tokens;
            opt.max_batch_size = max_batch_size;
            opt.bucket_multiple = bucket_multiple;
            opt.bucket_lengths = std::move(bucket_lengths);
            if (window_stride) {
                if (*window_stride < 1)
                    throw std::invalid_argument("window_stride must be >= 1 (or None), got " +
                                                std::to_string(*window_stride));
                opt.window_stride = *window_stride;
            }
            if (max_windows) {
                if (*max_windows < 1)
                    throw std::invalid_argument("max_windows must be >= 1 (or None), got " +
                                                std::to_string(*max_windows));
                opt.max_windows = *max_windows;
            }
            core->q_values = std::move(q_values);
            core->q_offsets = std::move(q_offsets);
            core->d_values = std::move(d_values);
            core->d_offsets = std::move(d_offsets);
            const pack::Ragged qs = core->queries(), ds = core->docs();
            {
                py::gil_scoped_release release;
                core->plan = pack::plan(qs, ds, core->tmpl, opt);
            }
            return core;
        },
        py::arg("q_values"), py::arg("q_offsets"), py::arg("d_values"), py::arg("d_offsets"),
        py::arg("prefix"), py::arg("prefix_types"), py::arg("middle"), py::arg("middle_types"),
        py::arg("suffix"), py::arg("suffix_types"), py::arg("query_type"), py::arg("doc_type"),
        py::arg("pad_id"), py::arg("pad_type"), py::arg("max_length"), py::arg("truncation"),
        py::arg("max_query_length"), py::arg("max_batch_tokens"), py::arg("max_batch_size"),
        py::arg("bucket_multiple"), py::arg("bucket_lengths"), py::arg("window_stride"),
        py::arg("max_windows"),
        "Plan truncation, windows, sort and batch cuts (private; use crossrank.packing.plan_pairs).");
}

}  // namespace crossrank::bindings
