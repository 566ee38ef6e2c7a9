// Exact top-k selection with deterministic tie-breaking.
//
// Order: higher score first; equal scores by lower index first. The selection therefore equals the
// first k items of a stable sort of all items by (-score, index), whatever order they are pushed in,
// which keeps results bit-identical for 1 and N threads. Scores must not be NaN (callers guarantee
// it: BM25 impacts are finite by construction and validated on load).
//
// Memory: a binary heap of at most k (score, index) pairs whose top is the worst kept item, so a
// candidate that cannot enter costs one comparison.
#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

namespace crossrank {

template <class Score, class Index>
class TopK {
  public:
    using Item = std::pair<Score, Index>;

    explicit TopK(std::size_t k) : k_(k) { heap_.reserve(k); }

    // a ranks before b: higher score, then lower index.
    static bool better(const Item& a, const Item& b) noexcept {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
    }

    void clear() noexcept { heap_.clear(); }
    std::size_t size() const noexcept { return heap_.size(); }
    std::size_t capacity() const noexcept { return k_; }

    void push(Score score, Index index) {
        if (k_ == 0) return;
        Item item{score, index};
        if (heap_.size() < k_) {
            heap_.push_back(item);
            std::push_heap(heap_.begin(), heap_.end(), better);
        } else if (better(item, heap_.front())) {
            std::pop_heap(heap_.begin(), heap_.end(), better);
            heap_.back() = item;
            std::push_heap(heap_.begin(), heap_.end(), better);
        }
    }

    // Writes the kept items best first into scores[0..size()) and indices[0..size()) and empties
    // the selection.
    template <class OutScore, class OutIndex>
    void drain_sorted(OutScore* scores, OutIndex* indices) {
        std::sort_heap(heap_.begin(), heap_.end(), better);
        for (std::size_t i = 0; i < heap_.size(); ++i) {
            scores[i] = static_cast<OutScore>(heap_[i].first);
            indices[i] = static_cast<OutIndex>(heap_[i].second);
        }
        heap_.clear();
    }

  private:
    std::size_t k_;
    std::vector<Item> heap_;
};

}  // namespace crossrank
