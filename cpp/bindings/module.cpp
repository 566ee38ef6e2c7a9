#include "bindings.hpp"

PYBIND11_MODULE(_core, m) {
    m.doc() = "crossrank compiled core (private; use the crossrank package)";
    namespace b = crossrank::bindings;
    b::bind_common(m);
    b::bind_maxsim(m);
    b::bind_pack(m);
    b::bind_analyzer(m);
    b::bind_bm25(m);
}
