// Splitting a scan over threads: how many, and contiguous chunks (shared by the match code).
#pragma once

#include <algorithm>
#include <cstddef>
#include <thread>
#include <vector>

namespace fastface {
namespace detail {

inline int thread_count(int requested, std::size_t work) {
    if (requested > 0) return requested;
    // Below ~4M multiply-adds a thread start costs more than it saves.
    const std::size_t by_work = work / (std::size_t{1} << 22) + 1;
    const std::size_t hw = std::max(1u, std::thread::hardware_concurrency());
    return static_cast<int>(std::min(hw, by_work));
}

// Runs body(begin, end, worker) over [0, n) split into `threads` contiguous chunks.
template <typename Body>
void parallel_chunks(std::size_t n, int threads, Body body) {
    threads = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(threads), std::max<std::size_t>(n, 1)));
    if (threads <= 1) {
        body(0, n, 0);
        return;
    }
    std::vector<std::thread> pool;
    const std::size_t chunk = (n + threads - 1) / threads;
    for (int t = 0; t < threads; ++t) {
        const std::size_t begin = std::min(n, t * chunk), end = std::min(n, begin + chunk);
        pool.emplace_back(body, begin, end, t);
    }
    for (std::thread& th : pool) th.join();
}

}  // namespace detail
}  // namespace fastface
