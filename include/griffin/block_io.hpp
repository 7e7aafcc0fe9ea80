// griffin/block_io.hpp: what a block's forward call sees. A call processes a
// chunk of T tokens in each of B batch rows: a full pass (T = sequence, no
// state), a prefill (T = prompt, state written), or a decode step (T = 1,
// state read and written). The same forward serves all three.
#pragma once

#include <cstddef>
#include <cstdint>

#include "griffin/detail/scratch.hpp"
#include "griffin/parallel.hpp"

namespace griffin {

/// Last index s <= t with segment_pos[s] == 0 (a document start), or -1.
inline std::ptrdiff_t last_document_start(const std::int32_t* segment_pos, std::ptrdiff_t t) noexcept {
  for (; t >= 0; --t)
    if (segment_pos[t] == 0) return t;
  return -1;
}

struct block_io {
  float* x = nullptr;                         ///< [B, T, D] residual stream; a block adds its output to it
  std::size_t batch = 0;                      ///< B
  std::size_t length = 0;                     ///< T
  const std::int32_t* segment_pos = nullptr;  ///< [B, T]; 0 starts a document
  std::size_t layer = 0;                      ///< index of the residual block, for messages
  detail::scratch* scratch = nullptr;         ///< activation buffers
  thread_pool* pool = nullptr;                ///< threads for the matrix products (null: the calling thread)

  [[nodiscard]] std::size_t rows() const noexcept { return batch * length; }
  [[nodiscard]] const std::int32_t* positions(std::size_t b) const noexcept { return segment_pos + b * length; }
};

}  // namespace griffin
