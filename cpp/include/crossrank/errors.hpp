// Error types of the core. The bindings map them to Python:
//   std::invalid_argument -> ValueError, std::out_of_range -> IndexError,
//   std::bad_alloc -> MemoryError, crossrank::StateError -> crossrank.errors.StateError.
// Messages say what was expected, what was received, and how to fix it.
#pragma once

#include <stdexcept>
#include <string>

namespace crossrank {

// A file or object is in a state we cannot use: truncated, corrupted, foreign, or the wrong
// format version.
class StateError : public std::runtime_error {
  public:
    explicit StateError(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace crossrank
