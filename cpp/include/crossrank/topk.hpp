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
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
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

// The same selection for float scores and uint32 indices, built for many candidates. Each
// candidate becomes one uint64 key, ordered like `better` (high 32 bits: the float's bits mapped to
// an unsigned total order; low 32 bits: the complemented index, so a lower index ranks first), which
// turns every comparison into one integer compare. Candidates above the current k-th best key go to
// a buffer of 2k; a full buffer is cut back to its best k (nth_element), which raises the bar.
// Costs one compare per rejected candidate and O(1) amortised per accepted one.
// Scores must not be NaN; -0.0 ranks just below +0.0 (BM25 never produces -0.0).
class TopKFloat {
  public:
    explicit TopKFloat(std::size_t k) : k_(k) { buf_.reserve(kSlack * k + 1); }

    std::size_t capacity() const noexcept { return k_; }

    static std::uint64_t key(float score, std::uint32_t index) noexcept {
        std::uint32_t bits;
        std::memcpy(&bits, &score, sizeof bits);
        bits ^= (bits >> 31) ? 0xFFFFFFFFu : 0x80000000u;
        return (static_cast<std::uint64_t>(bits) << 32) | static_cast<std::uint32_t>(~index);
    }
    static float score_of(std::uint64_t key) noexcept {
        std::uint32_t bits = static_cast<std::uint32_t>(key >> 32);
        bits ^= (bits >> 31) ? 0x80000000u : 0xFFFFFFFFu;
        float s;
        std::memcpy(&s, &bits, sizeof s);
        return s;
    }
    static std::uint32_t index_of(std::uint64_t key) noexcept { return ~static_cast<std::uint32_t>(key); }

    // Score of the current k-th best (-inf until k items were kept): a candidate scoring below it
    // cannot enter, so callers can skip push() for it.
    float bar_score() const noexcept {
        return bar_ ? score_of(bar_) : -std::numeric_limits<float>::infinity();
    }

    void push(float score, std::uint32_t index) {
        const std::uint64_t k = key(score, index);
        if (k <= bar_) return;
        buf_.push_back(k);
        if (buf_.size() == kSlack * k_) shrink();
    }

    // Raises the bar to the k-th best kept key as soon as k keys are kept (instead of waiting for
    // 2k): with exactly k keys that is their minimum, found without reordering.
    void tighten() {
        if (buf_.size() == k_ && k_ > 0) {
            bar_ = *std::min_element(buf_.begin(), buf_.end());
        } else if (buf_.size() > k_) {
            shrink();
        }
    }

    // Writes the best min(k, pushed) items best first and empties the selection; returns the count.
    template <class OutScore, class OutIndex>
    std::size_t drain_sorted(OutScore* scores, OutIndex* indices) {
        if (buf_.size() > k_) shrink();
        std::sort(buf_.begin(), buf_.end(), std::greater<std::uint64_t>());
        const std::size_t n = buf_.size();
        for (std::size_t i = 0; i < n; ++i) {
            scores[i] = static_cast<OutScore>(score_of(buf_[i]));
            indices[i] = static_cast<OutIndex>(index_of(buf_[i]));
        }
        buf_.clear();
        bar_ = 0;
        return n;
    }

  private:
    void shrink() {
        std::nth_element(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(k_ - 1), buf_.end(),
                         std::greater<std::uint64_t>());
        buf_.resize(k_);
        bar_ = buf_[k_ - 1];  // the k-th best; everything kept is at least as good
    }

    std::size_t k_;
    std::vector<std::uint64_t> buf_;
    std::uint64_t bar_ = 0;                   // below every real key
    static constexpr std::size_t kSlack = 2;  // buffer of kSlack * k keys between cuts
};

}  // namespace crossrank
