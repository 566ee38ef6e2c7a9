#include "crossrank/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

namespace crossrank {
namespace {

// CPU quota from cgroup v2 ("max 100000" or "150000 100000"), else v1; 0 when unlimited/unknown.
int cgroup_cpu_quota() {
    {
        std::ifstream f("/sys/fs/cgroup/cpu.max");
        std::string quota, period;
        if (f >> quota >> period && quota != "max") {
            double q = std::stod(quota), p = std::stod(period);
            if (q > 0 && p > 0) return std::max(1, static_cast<int>(std::ceil(q / p)));
        }
    }
    {
        std::ifstream fq("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
        std::ifstream fp("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
        long q = -1, p = -1;
        if (fq >> q && fp >> p && q > 0 && p > 0) {
            return std::max(1, static_cast<int>(std::ceil(static_cast<double>(q) / static_cast<double>(p))));
        }
    }
    return 0;
}

int affinity_cpus() {
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
#endif
    return 0;
}

}  // namespace

int default_num_threads() {
    static const int cached = [] {
        int n = static_cast<int>(std::thread::hardware_concurrency());
        if (n <= 0) n = 1;
        int aff = affinity_cpus();
        if (aff > 0) n = std::min(n, aff);
        int quota = cgroup_cpu_quota();
        if (quota > 0) n = std::min(n, quota);
        return std::max(1, n);
    }();
    return cached;
}

int resolve_num_threads(int num_threads) { return num_threads > 0 ? num_threads : default_num_threads(); }

void parallel_for(std::size_t n, int num_threads, std::size_t chunk,
                  const std::function<void(std::size_t, std::size_t)>& fn) {
    if (n == 0) return;
    if (chunk == 0) chunk = 1;
    const std::size_t n_chunks = (n + chunk - 1) / chunk;
    const std::size_t workers =
        std::min<std::size_t>(static_cast<std::size_t>(resolve_num_threads(num_threads)), n_chunks);
    if (workers <= 1) {
        fn(0, n);
        return;
    }
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    std::exception_ptr error;
    std::mutex error_mutex;
    auto work = [&] {
        while (!failed.load(std::memory_order_relaxed)) {
            std::size_t c = next.fetch_add(1, std::memory_order_relaxed);
            if (c >= n_chunks) break;
            std::size_t begin = c * chunk, end = std::min(n, begin + chunk);
            try {
                fn(begin, end);
            } catch (...) {
                std::lock_guard<std::mutex> lock(error_mutex);
                if (!error) error = std::current_exception();
                failed.store(true);
            }
        }
    };
    std::vector<std::thread> threads;
    threads.reserve(workers - 1);
    try {
        for (std::size_t t = 0; t + 1 < workers; ++t) threads.emplace_back(work);
    } catch (...) {
        // Could not start a thread: the caller's thread still does all remaining work below.
    }
    work();
    for (auto& t : threads) t.join();
    if (error) std::rethrow_exception(error);
}

}  // namespace crossrank
