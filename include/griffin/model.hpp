// griffin/model.hpp: a whole model (embedder, residual blocks, final norm)
// over a schedule, and its decode state. Matches recurrentgemma
// torch/griffin.py Griffin.forward.
//
//   auto m = griffin::model<griffin::griffin<6>>::load("tests/golden/griffin_tiny");
//   auto logits = m.forward(tokens, segment_pos);          // [B, T, V], no state
//   auto st = m.make_state(B);
//   auto last = m.prefill(st, prompt);                     // [B, V], state written
//   auto next = m.decode(st, std::vector<int32_t>{42, 7}); // [B, V], one token per row
//
// One code path serves all three: a block processes a chunk of T tokens per
// row, reading and advancing the state when there is one (decode is T = 1).
//
// segment_pos semantics, in the full pass and with a state alike: 0 starts a
// document, which resets the RG-LRU, hides earlier inputs from conv1d and
// earlier keys from attention; the values are RoPE positions. A decode step
// uses the row's next position (the last + 1), or 0 after state.reset(row).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "griffin/bind.hpp"
#include "griffin/checkpoint.hpp"
#include "griffin/block_io.hpp"
#include "griffin/concepts.hpp"
#include "griffin/config.hpp"
#include "griffin/detail/scratch.hpp"
#include "griffin/embedder.hpp"
#include "griffin/random_init.hpp"
#include "griffin/residual_block.hpp"
#include "griffin/rms_norm.hpp"
#include "griffin/parallel.hpp"
#include "griffin/schedule.hpp"
#include "griffin/session.hpp"
#include "griffin/tensor.hpp"
#include "griffin/weights.hpp"

namespace griffin {

/// Bad input to a forward pass: a token id out of range, a negative segment
/// position, shapes that do not agree, a state for another batch size.
class input_error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// A document longer than a bounded global attention block may see.
class context_length_error : public std::length_error {
 public:
  using std::length_error::length_error;
};

/// Which positions a prefill returns logits for.
enum class logits_for {
  last_position,  ///< [B, V]: what decoding needs (and all it computes)
  all_positions,  ///< [B, T, V]
};

/// Called after each residual block with its index and the residual stream [B, T, D].
using block_observer = std::function<void(std::size_t layer, std::span<const float> residual)>;

namespace detail {

// How the layers of a schedule are stored and walked: a tuple for a compiled
// schedule (each block's type known statically), a vector of variants for the
// dynamic one. Either way each layer is visited with its weights and state,
// and all layers of one kind share one instantiation of the block's code.
template <class S>
struct layer_stack;

template <class... Bs>
struct layer_stack<schedule<Bs...>> {
  using weights_type = std::tuple<typename Bs::weights...>;
  using states_type = std::tuple<typename Bs::state...>;

  static weights_type load(weight_reader& r, const config& c) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return weights_type{Bs::load(r, I, c)...};  // braced: evaluated in order
    }(std::index_sequence_for<Bs...>{});
  }
  static states_type make_states(const config& c, std::size_t batch) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return states_type{Bs::make_state(c, I, batch)...};
    }(std::index_sequence_for<Bs...>{});
  }
  template <class F>
  static void for_each(const weights_type& w, states_type* s, F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f(I, std::get<I>(w), s ? &std::get<I>(*s) : nullptr), ...);
    }(std::index_sequence_for<Bs...>{});
  }
  template <class States, class F>
  static void for_each_element(States& s, F&& f) {
    std::apply([&](auto&... each) { (f(each), ...); }, s);
  }
};

template <>
struct layer_stack<dynamic_schedule> {
  using any_weights = std::variant<R::weights, A::weights, G::weights>;
  using any_state = std::variant<R::state, A::state, G::state>;
  using weights_type = std::vector<any_weights>;
  using states_type = std::vector<any_state>;

  template <class F>
  static auto dispatch(block_kind k, F&& f) {
    switch (k) {
      case block_kind::recurrent: return f(std::type_identity<R>{});
      case block_kind::attention: return f(std::type_identity<A>{});
      case block_kind::global_attention: break;
    }
    return f(std::type_identity<G>{});
  }
  static weights_type load(weight_reader& r, const config& c) {
    weights_type out;
    for (std::size_t i = 0; i < c.block_types.size(); ++i)
      out.push_back(dispatch(c.block_types[i], [&]<class B>(std::type_identity<B>) { return any_weights(B::load(r, i, c)); }));
    return out;
  }
  static states_type make_states(const config& c, std::size_t batch) {
    states_type out;
    for (std::size_t i = 0; i < c.block_types.size(); ++i)
      out.push_back(dispatch(c.block_types[i],
                             [&]<class B>(std::type_identity<B>) { return any_state(B::make_state(c, i, batch)); }));
    return out;
  }
  template <class F>
  static void for_each(const weights_type& w, states_type* s, F&& f) {
    for (std::size_t i = 0; i < w.size(); ++i)
      std::visit(
          [&](const auto& lw) {
            using block = typename std::decay_t<decltype(lw)>::block_type;
            f(i, lw, s ? &std::get<typename block::state>((*s)[i]) : nullptr);
          },
          w[i]);
  }
  template <class States, class F>
  static void for_each_element(States& s, F&& f) {
    for (auto& each : s) std::visit(f, each);
  }
};

}  // namespace detail

/// A Griffin-family model whose blocks follow schedule S (or the config, for dynamic_schedule).
template <Schedule S = dynamic_schedule>
class model {
  using stack = detail::layer_stack<S>;

 public:
  using schedule_type = S;

  /// Everything a model remembers between calls for B batch rows: each
  /// block's state, and each row's next segment position.
  class state {
   public:
    /// Batch rows.
    [[nodiscard]] std::size_t batch() const noexcept { return next_position_.size(); }
    /// The segment position the next token of each row will get.
    [[nodiscard]] std::span<const std::int32_t> positions() const noexcept { return next_position_; }
    /// Bytes of recurrent state, conv1d history and KV caches (what a
    /// session would save). Constant for Hawk and Griffin; grows with the
    /// document for global attention.
    [[nodiscard]] std::size_t bytes() const noexcept {
      std::size_t n = next_position_.size() * sizeof(std::int32_t) + doc_tokens_.size() * sizeof(std::size_t);
      stack::for_each_element(layers_, [&](const auto& s) { n += s.bytes(); });
      return n;
    }
    /// Bytes of the activation buffers kept with the state for decode steps.
    [[nodiscard]] std::size_t scratch_bytes() const noexcept { return scratch_.bytes(); }
    /// Starts a new document in row b: its next token gets position 0.
    void reset(std::size_t b) {
      if (b >= batch()) throw input_error("state.reset: row " + std::to_string(b) + " of a batch of " + std::to_string(batch()));
      next_position_[b] = 0;
      doc_tokens_[b] = 0;
      stack::for_each_element(layers_, [&](auto& s) { s.reset_row(b, batch()); });
    }

    /// Every row as session bytes (format in session.hpp): what a server
    /// saves to resume all its conversations without re-reading their prompts.
    [[nodiscard]] std::vector<std::byte> save() const { return save_rows(0, batch()); }
    /// Row b alone, restorable into any row of a state of the same model.
    [[nodiscard]] std::vector<std::byte> save(std::size_t b) const {
      check_row(b, "state.save");
      return save_rows(b, 1);
    }
    /// Replaces every row with saved bytes of as many rows; throws
    /// session_error (leaving the state as it was) for bytes of another
    /// model or batch size, truncated or corrupted ones.
    void restore(std::span<const std::byte> bytes) { restore_rows(0, batch(), bytes); }
    /// Replaces row b with one saved row.
    void restore(std::size_t b, std::span<const std::byte> bytes) {
      check_row(b, "state.restore");
      restore_rows(b, 1, bytes);
    }

   private:
    friend class model;
    void check_row(std::size_t b, const char* what) const {
      if (b >= batch()) throw input_error(std::string(what) + ": row " + std::to_string(b) + " of a batch of " + std::to_string(batch()));
    }
    [[nodiscard]] std::size_t layer_count() const {
      std::size_t n = 0;
      stack::for_each_element(layers_, [&](const auto&) { ++n; });
      return n;
    }
    std::vector<std::byte> save_rows(std::size_t first, std::size_t rows) const {
      std::vector<std::byte> bytes;
      detail::byte_writer out(bytes);
      for (char c : detail::session_magic) out.put(c);
      out.put(detail::session_version);
      out.put(static_cast<std::uint32_t>(layer_count()));
      out.put(std::uint64_t{rows});
      for (std::size_t b = first; b < first + rows; ++b) {
        out.put(next_position_[b]);
        out.put(std::uint64_t{doc_tokens_[b]});
        stack::for_each_element(layers_, [&](const auto& s) {
          out.put(s.symbol);
          s.save_row(b, batch(), out);
        });
      }
      return bytes;
    }
    // Two passes over the bytes: the first checks everything, the second writes.
    void restore_rows(std::size_t first, std::size_t rows, std::span<const std::byte> bytes) {
      for (bool apply : {false, true}) {
        detail::byte_reader in(bytes, apply);
        for (char c : detail::session_magic)
          if (in.get<char>("magic") != c) in.fail("not a griffin session (magic)", 0);
        if (const auto v = in.get<std::uint32_t>("version"); v != detail::session_version)
          in.fail("format version " + std::to_string(v) + ", this build reads " + std::to_string(detail::session_version), 8);
        if (const auto n = in.get<std::uint32_t>("layer count"); n != layer_count())
          in.fail("layer count is " + std::to_string(n) + ", the receiving model has " + std::to_string(layer_count()), 12);
        in.expect(rows, "row count");
        for (std::size_t b = first; b < first + rows; ++b) {
          const std::size_t at = in.offset();
          const auto position = in.get<std::int32_t>("position");
          if (position < 0) in.fail("negative position " + std::to_string(position), at);
          const auto doc = in.get<std::uint64_t>("document tokens");
          if (apply) {
            next_position_[b] = position;
            doc_tokens_[b] = static_cast<std::size_t>(doc);
          }
          std::size_t layer = 0;
          stack::for_each_element(layers_, [&](auto& s) {
            const std::size_t kind_at = in.offset();
            if (const char kind = in.get<char>("block kind"); kind != s.symbol)
              in.fail("layer " + std::to_string(layer) + " is '" + std::string(1, kind) + "', the receiving model's is '" +
                          std::string(1, s.symbol) + "'",
                      kind_at);
            s.load_row(b, batch(), in);
            ++layer;
          });
        }
        if (!in.at_end()) in.fail("trailing bytes after the last row", in.offset());
      }
    }

    state(typename stack::states_type layers, std::size_t batch)
        : layers_(std::move(layers)), next_position_(batch, 0), doc_tokens_(batch, 0) {}

    typename stack::states_type layers_;
    std::vector<std::int32_t> next_position_;  // [B]
    std::vector<std::size_t> doc_tokens_;      // [B] tokens of the current document seen so far
    detail::scratch scratch_;
  };

  /// Builds the model from stored weights, named as `naming` says (the
  /// official recurrentgemma names by default); throws config_error if the
  /// config does not fit S, weight_error for a missing, misshapen or
  /// unexpected tensor. Matrices stay in the source's memory map when it has
  /// one (the model keeps the mapping alive).
  model(config c, const weight_source& source, const checkpoint_naming& naming = weight_reader::default_naming())
      : cfg_(std::move(c)) {
    weight_reader r(source, naming);
    init(r);
  }

  /// Builds the model from a reader (a generator of random weights, say).
  model(config c, weight_reader& r) : cfg_(std::move(c)) { init(r); }

  /// A model of config `c` with random weights drawn from `seed` (see random_init.hpp).
  [[nodiscard]] static model random(config c, std::uint64_t seed) {
    weight_reader r(random_weight_generator(seed));
    return model(std::move(c), r);
  }

  /// Loads a model directory of either layout (see checkpoint.hpp): the
  /// official one (config.json with GriffinConfig fields, weights.safetensors)
  /// or a Hugging Face transformers one (model.safetensors or shards).
  [[nodiscard]] static model load(const std::filesystem::path& dir) {
    const checkpoint ck = open_checkpoint(dir);
    return model(ck.cfg, *ck.weights, ck.naming());
  }

  [[nodiscard]] const config& cfg() const noexcept { return cfg_; }
  /// The blocks in R/A/G notation.
  [[nodiscard]] std::string pattern() const { return cfg_.pattern(); }

  /// A fresh decode state for `batch` rows (every row at position 0).
  [[nodiscard]] state make_state(std::size_t batch) const {
    if (batch == 0) throw input_error("make_state: batch must be positive");
    return state(stack::make_states(cfg_, batch), batch);
  }

  /// A state holding saved session bytes (state::save), of the batch they hold.
  [[nodiscard]] state load_state(std::span<const std::byte> bytes) const {
    detail::byte_reader in(bytes, false);  // the header up to the row count; restore checks it all
    for (std::size_t i = 0; i < sizeof(detail::session_magic); ++i) (void)in.get<char>("magic");
    (void)in.get<std::uint32_t>("version");
    (void)in.get<std::uint32_t>("layer count");
    const std::size_t at = in.offset();
    const auto rows = in.get<std::uint64_t>("row count");
    if (rows == 0 || rows > bytes.size() / 12)  // a row holds at least its position and token count
      in.fail("row count " + std::to_string(rows) + " does not fit the bytes", at);
    auto st = make_state(static_cast<std::size_t>(rows));
    st.restore(bytes);
    return st;
  }

  /// Full-sequence pass without a state: tokens, segment_pos [B, T] ->
  /// logits [B, T, V]. `observer` sees the residual stream after each block.
  [[nodiscard]] tensor<float> forward(const tensor<std::int32_t>& tokens, const tensor<std::int32_t>& segment_pos,
                                      const block_observer& observer = {}) const {
    check_same_shape(tokens, segment_pos, "forward");
    return run(tokens, segment_pos.data(), nullptr, logits_for::all_positions, observer);
  }

  /// Full-sequence pass over one document per row (positions 0 .. T-1).
  [[nodiscard]] tensor<float> forward(const tensor<std::int32_t>& tokens) const {
    const auto [B, T] = batch_shape(tokens, "forward");
    tensor<std::int32_t> positions({B, T});
    for (std::size_t i = 0; i < B * T; ++i) positions.data()[i] = static_cast<std::int32_t>(i % T);
    return forward(tokens, positions);
  }

  /// Runs tokens [B, T] through the model from `st`, continuing each row's
  /// positions, and leaves `st` after them. Returns logits of the last
  /// position [B, V] or of all positions [B, T, V].
  tensor<float> prefill(state& st, const tensor<std::int32_t>& tokens,
                        logits_for which = logits_for::last_position) const {
    const auto [B, T] = batch_shape(tokens, "prefill");
    check_batch(st, B, "prefill");
    tensor<std::int32_t> positions({B, T});
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t t = 0; t < T; ++t)
        positions.data()[b * T + t] = st.next_position_[b] + static_cast<std::int32_t>(t);
    return run(tokens, positions.data(), &st, which);
  }

  /// As above with explicit segment positions [B, T] (0 starts a document).
  tensor<float> prefill(state& st, const tensor<std::int32_t>& tokens, const tensor<std::int32_t>& segment_pos,
                        logits_for which = logits_for::last_position) const {
    check_same_shape(tokens, segment_pos, "prefill");
    check_batch(st, tokens.extent(0), "prefill");
    return run(tokens, segment_pos.data(), &st, which);
  }

  /// One decode step: one token per row [B] -> logits [B, V]; advances `st`.
  tensor<float> decode(state& st, std::span<const std::int32_t> tokens) const {
    tensor<float> logits;
    decode(st, tokens, logits);
    return logits;
  }

  /// The same, writing the logits into `logits` (reshaped to [B, V]): a loop
  /// that passes the same tensor every step allocates nothing once warm (at
  /// batch 64 and RecurrentGemma's vocabulary a fresh tensor is 65 MB of
  /// page faults and zeroing a step).
  void decode(state& st, std::span<const std::int32_t> tokens, tensor<float>& logits) const {
    check_batch(st, tokens.size(), "decode");
    const tensor<std::int32_t> chunk({tokens.size(), 1}, tokens);
    run(chunk, st.next_position_.data(), &st, logits_for::last_position, {}, &logits);
  }

  /// Threads the matrix products use, the calling thread included.
  [[nodiscard]] std::size_t threads() const noexcept { return pool_ ? pool_->size() : 1; }
  /// Uses `n` threads (0: one per hardware thread, the default) from the next
  /// call on. Results do not depend on the thread count. Copies of a model
  /// share its threads; calls from several application threads at once are
  /// safe (one runs on the pool, the others on their own thread).
  void set_threads(std::size_t n) { pool_ = n == 1 ? nullptr : std::make_shared<thread_pool>(n); }
  /// The threads the model runs on (null when it runs on the calling thread
  /// alone), for an application's own parallel work between calls: a second
  /// pool would compete with this one's spinning workers for the cores.
  [[nodiscard]] thread_pool* pool() const noexcept { return pool_.get(); }

  /// Stores the matrices of every linear layer and the embedding table as
  /// `to`: F32, BF16, F16, or I8 (symmetric int8 with one scale per output
  /// channel; see weight_matrix::converted), and the RG-LRU's block-diagonal
  /// gates as `to` too, except under I8, where they become BF16: they set the
  /// recurrence's decay, whose error compounds over a sequence, and are under 1%
  /// of the parameters. Biases and norms keep their type; the recurrence and its
  /// state stay in f32. Converted matrices are owned by the model (the
  /// checkpoint's pages they came from are no longer used by them).
  void convert_weights(dtype to) {
    auto convert = [&](weight_matrix& m, dtype type, weight_layout layout) {
      if (m.type() == type && m.layout() == layout) return;
      (m.in_place() ? in_place_bytes_ : copied_bytes_) -= m.bytes();
      m = m.converted(type, layout);
      copied_bytes_ += m.bytes();
    };
    const dtype gates = to == dtype::i8 ? dtype::bf16 : to;
    convert(embedder_.input_embedding, to, weight_layout::out_in);
    stack::for_each_element(layers_, [&](auto& w) {
      for (linear* l : w.temporal_block.linears()) convert(l->weight, to, weight_layout::out_in);
      for (linear* l : w.mlp.linears()) convert(l->weight, to, weight_layout::out_in);
      // In x out, so that each diagonal block stays a run of stored rows.
      if constexpr (requires { w.temporal_block.block_diagonals(); })
        for (auto* g : w.temporal_block.block_diagonals())
          convert(g->weight, gates, weight_layout::in_out);
    });
  }

  /// Bytes of parameters, as computed with.
  [[nodiscard]] std::size_t weight_bytes() const noexcept { return in_place_bytes_ + copied_bytes_; }
  /// Bytes of parameters used in place from a checkpoint's memory map (shared, file-backed pages).
  [[nodiscard]] std::size_t mapped_weight_bytes() const noexcept { return in_place_bytes_; }
  /// Bytes of parameters copied or converted into the model's own memory.
  [[nodiscard]] std::size_t copied_weight_bytes() const noexcept { return copied_bytes_; }

 private:
  void init(weight_reader& r) {
    check_config<S>(cfg_);
    const std::size_t in_place = r.in_place_bytes(), copied = r.copied_bytes();
    embedder_ = embedder::load(r, cfg_);
    layers_ = stack::load(r, cfg_);
    final_norm_ = rms_norm::load(r, "final_norm", cfg_.width);
    r.check_all_used();
    set_threads(0);
    in_place_bytes_ = r.in_place_bytes() - in_place;
    copied_bytes_ = r.copied_bytes() - copied;
    stack::for_each(layers_, nullptr, [&](std::size_t, const auto& w, auto*) {
      if constexpr (requires { w.temporal_block.max_context; })
        global_context_ = std::min(global_context_, w.temporal_block.max_context);
    });
  }

  static std::pair<std::size_t, std::size_t> batch_shape(const tensor<std::int32_t>& tokens, const char* what) {
    if (tokens.rank() != 2 || tokens.extent(0) == 0 || tokens.extent(1) == 0)
      throw input_error(std::string(what) + ": tokens must have shape [batch, length] with both positive, got " +
                        shape_string(tokens.shape()));
    return {tokens.extent(0), tokens.extent(1)};
  }

  static void check_same_shape(const tensor<std::int32_t>& tokens, const tensor<std::int32_t>& segment_pos,
                               const char* what) {
    batch_shape(tokens, what);
    if (!std::ranges::equal(tokens.shape(), segment_pos.shape()))
      throw input_error(std::string(what) + ": segment_pos has shape " + shape_string(segment_pos.shape()) +
                        ", tokens " + shape_string(tokens.shape()));
  }

  static void check_batch(const state& st, std::size_t batch, const char* what) {
    if (st.batch() != batch)
      throw input_error(std::string(what) + ": " + std::to_string(batch) + " rows of tokens for a state of batch " +
                        std::to_string(st.batch()));
  }

  // Everything that could make the pass go wrong is checked before any state changes.
  void check_input(const std::int32_t* tokens, const std::int32_t* segment_pos, std::size_t B, std::size_t T,
                   const state* st) const {
    for (std::size_t b = 0; b < B; ++b) {
      const std::size_t held = st ? st->doc_tokens_[b] : 0;  // tokens of the current document before the chunk
      std::ptrdiff_t start = -1;                               // a document start inside the chunk
      for (std::size_t t = 0; t < T; ++t) {
        const std::int32_t id = tokens[b * T + t], pos = segment_pos[b * T + t];
        if (id < 0 || static_cast<std::size_t>(id) >= cfg_.vocab_size)
          throw input_error("token id " + std::to_string(id) + " at batch row " + std::to_string(b) + ", position " +
                            std::to_string(t) + " is out of range for vocab_size " + std::to_string(cfg_.vocab_size));
        if (pos < 0 || pos == std::numeric_limits<std::int32_t>::max())
          throw input_error("segment_pos " + std::to_string(pos) + " at batch row " + std::to_string(b) +
                            ", position " + std::to_string(t) + " is outside [0, 2^31 - 1)");
        if (pos == 0) start = static_cast<std::ptrdiff_t>(t);
        const std::size_t earlier = start >= 0 ? t - static_cast<std::size_t>(start) : held + t;
        if (earlier > global_context_)
          throw context_length_error("batch row " + std::to_string(b) + ", position " + std::to_string(t) +
                                     ": a global attention (G) block would attend to " + std::to_string(earlier) +
                                     " earlier tokens, more than the config's attention_window_size " +
                                     std::to_string(global_context_) +
                                     " (the reference's window slides there: compile that block as A, or raise the window)");
      }
    }
  }

  // Logits into *out when given (reshaped; nothing returned), else into a new tensor.
  tensor<float> run(const tensor<std::int32_t>& tokens, const std::int32_t* segment_pos, state* st, logits_for which,
                    const block_observer& observer = {}, tensor<float>* out = nullptr) const {
    const std::size_t B = tokens.extent(0), T = tokens.extent(1), D = cfg_.width, V = cfg_.vocab_size;
    check_input(tokens.data(), segment_pos, B, T, st);

    // Decode steps reuse the state's buffers (no allocation once warm); a
    // longer chunk's buffers are released when it returns.
    detail::scratch local;
    detail::scratch& s = st && T == 1 ? st->scratch_ : local;
    detail::scratch_frame frame(s);
    const std::size_t rows = B * T;
    float* x = s.take(rows * D);  // [B, T, D] the residual stream
    embedder::encode(embedder_, tokens.data(), rows, x);

    block_io io{x, B, T, segment_pos, 0, &s, pool_.get()};
    stack::for_each(layers_, st ? &st->layers_ : nullptr, [&](std::size_t i, const auto& w, auto* layer_state) {
      using block = typename std::decay_t<decltype(w)>::block_type;
      io.layer = i;
      block::forward(w, layer_state, io);
      if (observer) observer(i, std::span<const float>(x, rows * D));
    });

    const bool all = which == logits_for::all_positions;
    const std::size_t n = all ? rows : B;
    float* normed = s.take(n * D);  // [n, D]
    for (std::size_t r = 0; r < n; ++r) {
      const std::size_t src = all ? r : r * T + (T - 1);
      kernels::rms_norm<default_arch>(x + src * D, final_norm_.scale.data(), normed + r * D, D, rms_norm::eps);
    }
    tensor<float> fresh;
    tensor<float>& logits = out ? *out : fresh;
    logits.reshape(all ? std::vector<std::size_t>{B, T, V} : std::vector<std::size_t>{B, V});
    embedder::decode(embedder_, normed, D, n, logits.data(), pool_.get());

    if (st)
      for (std::size_t b = 0; b < B; ++b) {
        const std::int32_t* pos = segment_pos + b * T;
        const std::ptrdiff_t start = last_document_start(pos, static_cast<std::ptrdiff_t>(T) - 1);
        st->doc_tokens_[b] = start >= 0 ? T - static_cast<std::size_t>(start) : st->doc_tokens_[b] + T;
        st->next_position_[b] = pos[T - 1] + 1;
      }
    return fresh;
  }

  config cfg_;
  embedder::weights embedder_;
  typename stack::weights_type layers_;
  rms_norm::weights final_norm_;
  std::size_t in_place_bytes_ = 0;
  std::size_t copied_bytes_ = 0;
  std::size_t global_context_ = std::numeric_limits<std::size_t>::max();
  std::shared_ptr<thread_pool> pool_;
};

/// The official parameters of a model of config `c`, in loading order: what
/// a checkpoint in the official naming holds.
inline std::vector<weight_reader::parameter> parameters(const config& c) {
  weight_reader r = weight_reader::planner();
  (void)model<dynamic_schedule>(c, r);
  return r.parameters();
}

/// Random weights for config `c` from `seed`, as named tensors in the official
/// naming (e.g. to write a checkpoint with write_safetensors(path, source.records())).
inline memory_source random_weights(const config& c, std::uint64_t seed) {
  memory_source out("random weights (seed " + std::to_string(seed) + ")");
  const weight_generator draw = random_weight_generator(seed);
  for (const auto& p : parameters(c)) {
    aligned_vector<float> values(element_count(p.shape));
    draw(p.name, p.shape, values);
    out.add(p.name, p.shape, values);
  }
  return out;
}

}  // namespace griffin
