// griffin/parallel.hpp: a small fork-join thread pool for the kernels. The
// calling thread takes part, so a pool of n threads starts n - 1 workers.
// Workers spin briefly between jobs (a decode step runs hundreds of short
// parallel matrix products) and then sleep on an atomic wait.
//
//   griffin::thread_pool pool(2);
//   pool.run(tasks, [&](std::size_t task) { ... });   // returns when all are done
//   pool.run_shares(n, grain, piece, [&](std::size_t begin, std::size_t end) { ... });
//
// A pool runs one job at a time: a call made while another thread's job is
// running (or from inside a task) runs its tasks inline on the calling
// thread, so const model methods stay safe to call from several threads.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#endif

namespace griffin {

/// The number of hardware threads (at least 1): the default thread count.
inline std::size_t hardware_threads() noexcept {
  return std::max<std::size_t>(1, std::thread::hardware_concurrency());
}

class thread_pool {
 public:
  /// A pool of `threads` threads in all, the caller included (0 means hardware_threads()).
  explicit thread_pool(std::size_t threads = 0) {
    const std::size_t n = threads == 0 ? hardware_threads() : threads;
    shares_ = std::vector<share>(n);
    workers_.reserve(n - 1);
    for (std::size_t i = 1; i < n; ++i) workers_.emplace_back([this] { work(); });
  }
  ~thread_pool() {
    stop_.store(true, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    for (auto& w : workers_) w.join();
  }
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;

  /// Threads in the pool, the caller included.
  [[nodiscard]] std::size_t size() const noexcept { return workers_.size() + 1; }

  /// Calls f(begin, end) on pieces that cover [0, n) once, each a multiple
  /// of `grain` long (the last may be shorter) and at most `piece` grains.
  /// Every thread starts on its own contiguous share and walks it in order;
  /// one that finishes early takes the back half of what is left of the
  /// busiest other share and walks that in order in turn (work stealing).
  /// So each thread reads one long sequence, as hardware prefetchers want
  /// (small pieces handed out in turn from one counter ran the 2B decode at
  /// 65-90% of the speed of fixed halves), and a thread the machine slows
  /// does not hold up the others (on the shared 2-core machine the fixed
  /// halves of the decode matmuls finished apart by ~13% of a decode step).
  /// f runs on several threads at once; nested or concurrent calls run
  /// f(0, n) inline, as run does.
  template <class F>
  void run_shares(std::size_t n, std::size_t grain, std::size_t piece, F&& f) {
    if (n == 0) return;
    grain = std::max<std::size_t>(grain, 1);
    piece = std::max<std::size_t>(piece, 1);
    const std::size_t units = (n + grain - 1) / grain, threads = std::min(size(), units);
    if (threads <= 1 || units >= (std::size_t{1} << 32) || !acquire()) {
      f(std::size_t{0}, n);
      return;
    }
    const release guard{busy_};
    for (std::size_t t = 0; t < threads; ++t)
      shares_[t].range.store(pack(units * t / threads, units * (t + 1) / threads), std::memory_order_relaxed);
    dispatch(threads, [&](std::size_t t) {
      share& own = shares_[t];
      for (;;) {
        // Walk the own share from its front.
        std::uint64_t v = own.range.load(std::memory_order_acquire);
        for (;;) {
          const std::size_t front = v >> 32, end = v & 0xffffffffu;
          if (front >= end) break;
          const std::size_t next = std::min(end, front + piece);
          if (!own.range.compare_exchange_weak(v, pack(next, end), std::memory_order_acq_rel, std::memory_order_acquire)) continue;
          f(front * grain, std::min(n, next * grain));
          v = own.range.load(std::memory_order_acquire);
        }
        // Take the back half of the share with the most left.
        bool stole = false;
        for (;;) {
          std::size_t victim = threads, most = 1;
          for (std::size_t s = 0; s < threads; ++s) {
            const std::uint64_t r = shares_[s].range.load(std::memory_order_acquire);
            const std::size_t left = (r & 0xffffffffu) > (r >> 32) ? (r & 0xffffffffu) - (r >> 32) : 0;
            if (s != t && left > most) victim = s, most = left;
          }
          if (victim == threads) break;  // nothing worth splitting: the owners finish their last pieces
          std::uint64_t r = shares_[victim].range.load(std::memory_order_acquire);
          const std::size_t front = r >> 32, end = r & 0xffffffffu;
          if (end <= front + 1) continue;
          const std::size_t mid = front + (end - front + 1) / 2;
          if (!shares_[victim].range.compare_exchange_strong(r, pack(front, mid), std::memory_order_acq_rel, std::memory_order_acquire))
            continue;
          own.range.store(pack(mid, end), std::memory_order_release);
          stole = true;
          break;
        }
        if (!stole) return;
      }
    });
  }

  /// Calls f(task) for every task in [0, tasks), spread over the pool's
  /// threads, and returns when all calls have returned. The first exception
  /// a task throws is rethrown here (after the other tasks have finished).
  template <class F>
  void run(std::size_t tasks, F&& f) {
    if (tasks == 0) return;
    if (tasks == 1 || !acquire()) {
      for (std::size_t t = 0; t < tasks; ++t) f(t);
      return;
    }
    const release guard{busy_};
    dispatch(tasks, f);
  }

 private:
  // Takes the pool for one job: false when it has no workers or runs another.
  bool acquire() noexcept { return !workers_.empty() && !busy_.exchange(true, std::memory_order_acquire); }
  struct release {
    std::atomic<bool>& busy;
    ~release() { busy.store(false, std::memory_order_release); }
  };

  // Runs f(task) for [0, tasks) on the workers and the calling thread, which
  // holds the pool (acquire).
  //
  // A worker may still be in take_tasks for the previous job, about to claim
  // from next_ after its last task. So next_ first moves to this job with no
  // task open (a claim needs a compare-exchange on the old value, which now
  // fails), then the job is written, then its tasks open. Writing the job
  // first let such a worker claim "task n" of the old generation against the
  // new task count: it ran a task of the new job twice, or done_ passed
  // `tasks` and this wait never ended (a pool of 2 hung within ~10^5 jobs).
  template <class F>
  void dispatch(std::size_t tasks, F&& f) {
    const std::uint64_t g = generation_.load(std::memory_order_relaxed) + 1;
    next_.store(g << 32 | 0xffffffffu, std::memory_order_seq_cst);
    job_ = &f;
    invoke_ = [](const void* fn, std::size_t t) { (*static_cast<std::remove_reference_t<F>*>(const_cast<void*>(fn)))(t); };
    tasks_.store(tasks, std::memory_order_relaxed);
    error_ = nullptr;
    done_.store(0, std::memory_order_relaxed);
    next_.store(g << 32, std::memory_order_release);
    generation_.store(g, std::memory_order_release);
    generation_.notify_all();
    take_tasks(g);
    // Wait for tasks still running on workers.
    for (std::size_t spins = 0; done_.load(std::memory_order_acquire) != tasks; ++spins) pause(spins);
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

  static void pause(std::size_t spins) noexcept {
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
    if (spins < 4096) {
      _mm_pause();
      return;
    }
#endif
    if (spins % 64 == 0) std::this_thread::yield();
  }

  // Claims tasks of job g (the generation in next_'s high half, the next task
  // in its low half) until none is left or a later job has begun.
  void take_tasks(std::uint64_t g) {
    for (;;) {
      std::uint64_t v = next_.load(std::memory_order_acquire);
      do {
        if (v >> 32 != (g & 0xffffffffu) || (v & 0xffffffffu) >= tasks_.load(std::memory_order_relaxed)) return;
      } while (!next_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_acquire));
      const std::size_t t = v & 0xffffffffu;
      try {
        invoke_(job_, t);
      } catch (...) {
        std::lock_guard g(error_mutex_);
        if (!error_) error_ = std::current_exception();
      }
      done_.fetch_add(1, std::memory_order_acq_rel);
    }
  }

  static std::uint64_t pack(std::size_t front, std::size_t end) noexcept {
    return static_cast<std::uint64_t>(front) << 32 | static_cast<std::uint64_t>(end);
  }

  void work() {
    std::uint64_t seen = 0;
    for (;;) {
      // Spin a while for the next job, then sleep until the generation changes.
      std::uint64_t g = generation_.load(std::memory_order_acquire);
      for (std::size_t spins = 0; g == seen && spins < (1u << 16); ++spins) {
        pause(spins % 4096);
        g = generation_.load(std::memory_order_acquire);
      }
      if (g == seen) {
        generation_.wait(seen, std::memory_order_acquire);
        continue;
      }
      seen = g;
      if (stop_.load(std::memory_order_relaxed)) return;
      take_tasks(g);
    }
  }

  // run_shares: the units [front, end) of each thread's share still to be
  // claimed, front << 32 | end, one cache line each.
  struct alignas(64) share {
    std::atomic<std::uint64_t> range{0};
  };
  std::vector<share> shares_;
  std::vector<std::thread> workers_;
  std::atomic<bool> busy_{false};          // true while a job runs
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  const void* job_ = nullptr;
  void (*invoke_)(const void*, std::size_t) = nullptr;
  std::atomic<std::size_t> tasks_{0};  // read by a worker of the last job as it leaves take_tasks
  std::atomic<std::uint64_t> next_{0};  // generation << 32 | next task
  std::atomic<std::size_t> done_{0};
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

/// Runs f(task) for task in [0, tasks) on `pool`, or inline when it is null.
template <class F>
inline void parallel_run(thread_pool* pool, std::size_t tasks, F&& f) {
  if (pool) {
    pool->run(tasks, std::forward<F>(f));
  } else {
    for (std::size_t t = 0; t < tasks; ++t) f(t);
  }
}

/// Shares out `rows` rows of `width` elements each in pieces, f(row, begin,
/// end), on `pool`: about two pieces per thread in all, none narrower than
/// `min_piece` (but a row's last), every begin a multiple of `grain`. With
/// grain a SIMD width, a kernel called on a piece splits its vector loop and
/// scalar tail where one call over the whole row would, so the results are
/// the same bits. Inline, f(row, 0, width) for each row, without a pool or
/// when there is not enough for two pieces.
template <class F>
inline void parallel_pieces(thread_pool* pool, std::size_t rows, std::size_t width, std::size_t grain, std::size_t min_piece,
                            F&& f) {
  if (rows == 0 || width == 0) return;
  const std::size_t threads = pool ? pool->size() : 1;
  grain = std::max<std::size_t>(grain, 1);
  const std::size_t per_row = (2 * threads + rows - 1) / rows;
  std::size_t piece = std::max(min_piece, (width + per_row - 1) / per_row);
  piece = (piece + grain - 1) / grain * grain;
  const std::size_t pieces = (width + piece - 1) / piece;
  if (threads <= 1 || rows * pieces <= 1) {
    for (std::size_t r = 0; r < rows; ++r) f(r, std::size_t{0}, width);
    return;
  }
  pool->run(rows * pieces, [&](std::size_t t) {
    const std::size_t r = t / pieces, j = t % pieces;
    f(r, j * piece, std::min(width, (j + 1) * piece));
  });
}

}  // namespace griffin
