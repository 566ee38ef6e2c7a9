// Term -> id mapping for the BM25 index.
//
// Ids are dense (0..size()-1) and given in order of first insertion, so indexing documents in
// order, or indexing some and then adding the rest, yields the same ids. Terms live in one
// character arena with offsets (the on-disk layout, see python/crossrank/bm25.py), and an
// open-addressing table of ids (linear probing, load <= 1/2) finds them without allocating a
// std::string per lookup.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace crossrank {

class Vocabulary {
  public:
    Vocabulary();

    // Rebuild from the arena layout: term i is chars[offsets[i], offsets[i+1]). Throws
    // crossrank::StateError when offsets are not a non-decreasing sequence from 0 to n_chars or
    // when a term appears twice.
    static Vocabulary from_arena(const char* chars, std::size_t n_chars, const std::uint64_t* offsets,
                                 std::size_t n_terms);

    std::size_t size() const noexcept { return offsets_.size() - 1; }
    // Id of term, or -1 when absent.
    std::int64_t find(std::string_view term) const noexcept;
    // Id of term, inserting it when absent.
    std::uint32_t add(std::string_view term);
    std::string_view term(std::size_t id) const noexcept {
        return std::string_view(chars_.data() + offsets_[id], offsets_[id + 1] - offsets_[id]);
    }

    const std::string& chars() const noexcept { return chars_; }
    const std::vector<std::uint64_t>& offsets() const noexcept { return offsets_; }

  private:
    void rehash(std::size_t n_slots);
    std::size_t slot_of(std::string_view term) const noexcept;

    static constexpr std::uint32_t kEmpty = 0xFFFFFFFFu;
    std::string chars_;
    std::vector<std::uint64_t> offsets_;  // size() + 1 entries
    std::vector<std::uint32_t> slots_;    // power-of-two table of ids or kEmpty
};

}  // namespace crossrank
