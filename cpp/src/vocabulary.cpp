#include "crossrank/vocabulary.hpp"

#include <functional>
#include <stdexcept>

#include "crossrank/errors.hpp"

namespace crossrank {

Vocabulary::Vocabulary() : offsets_{0}, slots_(16, kEmpty) {}

std::size_t Vocabulary::slot_of(std::string_view term) const noexcept {
    const std::size_t mask = slots_.size() - 1;
    std::size_t s = std::hash<std::string_view>{}(term)&mask;
    while (slots_[s] != kEmpty && this->term(slots_[s]) != term) s = (s + 1) & mask;
    return s;
}

std::int64_t Vocabulary::find(std::string_view term) const noexcept {
    const std::uint32_t id = slots_[slot_of(term)];
    return id == kEmpty ? -1 : static_cast<std::int64_t>(id);
}

std::uint32_t Vocabulary::add(std::string_view term) {
    std::size_t s = slot_of(term);
    if (slots_[s] != kEmpty) return slots_[s];
    const std::size_t id = size();
    if (id >= kEmpty - 1) throw std::length_error("vocabulary is full (2^32 - 2 terms)");
    chars_.append(term.data(), term.size());
    offsets_.push_back(chars_.size());
    if (2 * (id + 1) > slots_.size()) {
        rehash(slots_.size() * 2);
        s = slot_of(term);
    }
    slots_[s] = static_cast<std::uint32_t>(id);
    return static_cast<std::uint32_t>(id);
}

void Vocabulary::rehash(std::size_t n_slots) {
    slots_.assign(n_slots, kEmpty);
    const std::size_t mask = n_slots - 1;
    for (std::size_t id = 0; id < size(); ++id) {
        std::size_t s = std::hash<std::string_view>{}(term(id)) & mask;
        while (slots_[s] != kEmpty) s = (s + 1) & mask;
        slots_[s] = static_cast<std::uint32_t>(id);
    }
}

Vocabulary Vocabulary::from_arena(const char* chars, std::size_t n_chars, const std::uint64_t* offsets,
                                  std::size_t n_terms) {
    if (n_terms >= kEmpty - 1) throw StateError("vocabulary has too many terms");
    if (offsets[0] != 0 || offsets[n_terms] != n_chars)
        throw StateError("vocabulary offsets must start at 0 and end at the number of term bytes (" +
                         std::to_string(n_chars) + "), got " + std::to_string(offsets[0]) + " and " +
                         std::to_string(offsets[n_terms]));
    for (std::size_t i = 0; i < n_terms; ++i) {
        if (offsets[i + 1] < offsets[i])
            throw StateError("vocabulary offsets decrease at term " + std::to_string(i));
    }
    Vocabulary v;
    v.chars_.assign(chars, n_chars);
    v.offsets_.assign(offsets, offsets + n_terms + 1);
    std::size_t n_slots = 16;
    while (n_slots < 2 * n_terms) n_slots *= 2;
    v.slots_.assign(n_slots, kEmpty);
    const std::size_t mask = n_slots - 1;
    for (std::size_t id = 0; id < n_terms; ++id) {
        const std::string_view t = v.term(id);
        std::size_t s = std::hash<std::string_view>{}(t)&mask;
        while (v.slots_[s] != kEmpty) {
            if (v.term(v.slots_[s]) == t)
                throw StateError("vocabulary term " + std::to_string(id) + " duplicates term " +
                                 std::to_string(v.slots_[s]));
            s = (s + 1) & mask;
        }
        v.slots_[s] = static_cast<std::uint32_t>(id);
    }
    return v;
}

}  // namespace crossrank
