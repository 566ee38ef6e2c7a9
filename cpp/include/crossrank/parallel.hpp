// The one way the core runs work on several threads.
//
// parallel_for splits [0, n) into chunks handed out dynamically to `num_threads` workers. An
// exception thrown by any worker stops the others from taking new chunks and is re-thrown on the
// caller's thread. Callers keep results bit-identical for 1 and N threads by writing each item's
// result to its own slot (never reducing across threads in a scheduling-dependent order).
// No OpenMP: ONNX Runtime shares the process and mixing runtimes oversubscribes the cores.
#pragma once

#include <cstddef>
#include <functional>

namespace crossrank {

// Threads this process may use: the cgroup CPU quota (v2 cpu.max or v1 cfs quota), capped by the
// CPU affinity mask and hardware_concurrency. Always >= 1.
int default_num_threads();

// num_threads <= 0 means default_num_threads(). Never starts more threads than chunks.
int resolve_num_threads(int num_threads);

// Calls fn(begin, end) over chunks of at most `chunk` items covering [0, n).
void parallel_for(std::size_t n, int num_threads, std::size_t chunk,
                  const std::function<void(std::size_t begin, std::size_t end)>& fn);

}  // namespace crossrank
