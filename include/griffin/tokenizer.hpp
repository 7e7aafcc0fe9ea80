// griffin/tokenizer.hpp: text <-> token ids with SentencePiece (Debian
// libsentencepiece-dev), and the Gemma chat turn format. Optional: include it
// and link the CMake target griffin::tokenizer (which exists when CMake found
// SentencePiece); the rest of griffin does not need it.
//
//   auto tok = griffin::tokenizer::from_model_dir("recurrentgemma-2b-it");  // DIR/tokenizer.model
//   std::vector<std::int32_t> ids = tok.encode("Hello");
//   std::string text = tok.decode(ids);
//   auto prompt = griffin::gemma_chat::user_turn(tok, "Hi!", /*first=*/true);
#pragma once

#if !__has_include(<sentencepiece_processor.h>)
#error "griffin/tokenizer.hpp needs SentencePiece: install libsentencepiece-dev and link griffin::tokenizer"
#endif

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <sentencepiece_processor.h>

namespace griffin {

/// A tokenizer that cannot be loaded, or a piece it does not have.
class tokenizer_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A SentencePiece model. Copies share it; const methods may be called from
/// several threads.
class tokenizer {
 public:
  /// Loads a SentencePiece model file (tokenizer.model).
  static tokenizer load(const std::filesystem::path& file) {
    if (!std::filesystem::is_regular_file(file)) throw tokenizer_error("tokenizer: no file " + file.string());
    auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
    if (const auto status = sp->Load(file.string()); !status.ok())
      throw tokenizer_error("tokenizer: cannot load " + file.string() + ": " + status.ToString());
    return tokenizer(std::move(sp));
  }
  /// Loads DIR/tokenizer.model, where Hugging Face and Kaggle downloads keep it.
  static tokenizer from_model_dir(const std::filesystem::path& dir) {
    if (!std::filesystem::is_directory(dir)) throw tokenizer_error("tokenizer: no directory " + dir.string());
    const auto file = dir / "tokenizer.model";
    if (!std::filesystem::exists(file))
      throw tokenizer_error("tokenizer: " + dir.string() + " has no tokenizer.model (SentencePiece model)");
    return load(file);
  }

  /// Token ids of text (no BOS; see bos_id()).
  [[nodiscard]] std::vector<std::int32_t> encode(std::string_view text) const {
    std::vector<int> ids;
    if (const auto status = sp_->Encode(text, &ids); !status.ok())
      throw tokenizer_error("tokenizer: cannot encode: " + status.ToString());
    return {ids.begin(), ids.end()};
  }
  /// Text of token ids; throws for an id outside the vocabulary.
  [[nodiscard]] std::string decode(std::span<const std::int32_t> ids) const {
    std::vector<int> v;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] < 0 || static_cast<std::size_t>(ids[i]) >= vocab_size())
        throw tokenizer_error("tokenizer: id " + std::to_string(ids[i]) + " at " + std::to_string(i) +
                              " is outside the vocabulary of " + std::to_string(vocab_size()));
      v.push_back(ids[i]);
    }
    std::string text;
    if (const auto status = sp_->Decode(v, &text); !status.ok())
      throw tokenizer_error("tokenizer: cannot decode: " + status.ToString());
    return text;
  }
  [[nodiscard]] std::size_t vocab_size() const { return static_cast<std::size_t>(sp_->GetPieceSize()); }
  /// -1 where the model has none.
  [[nodiscard]] std::int32_t bos_id() const { return sp_->bos_id(); }
  [[nodiscard]] std::int32_t eos_id() const { return sp_->eos_id(); }
  /// The id of a piece such as "<end_of_turn>"; throws if the model lacks it.
  [[nodiscard]] std::int32_t piece_id(std::string_view piece) const {
    const int id = sp_->PieceToId(piece);
    if (id == sp_->unk_id() && piece != sp_->IdToPiece(id))
      throw tokenizer_error("tokenizer: no piece " + std::string(piece));
    return id;
  }
  [[nodiscard]] bool has_piece(std::string_view piece) const {
    const int id = sp_->PieceToId(piece);
    return !(id == sp_->unk_id() && piece != sp_->IdToPiece(id));
  }

 private:
  explicit tokenizer(std::shared_ptr<sentencepiece::SentencePieceProcessor> sp) : sp_(std::move(sp)) {}
  std::shared_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

/// Turns token ids into text as they come: each call returns the text the
/// new tokens add (decoding everything so far, so pieces that join or bytes
/// that complete a character come out right). Trailing text that a later
/// token may still change -- an incomplete UTF-8 sequence, or the U+FFFD
/// SentencePiece decodes byte-fallback pieces of an unfinished character to
/// -- is held back until it is settled.
class text_stream {
 public:
  explicit text_stream(const tokenizer& t) : tok_(&t) {}
  std::string push(std::int32_t id) {
    ids_.push_back(id);
    const std::string text = tok_->decode(ids_);
    std::size_t end = text.size();
    // An incomplete UTF-8 sequence at the end.
    std::size_t back = 0;
    while (back < 4 && back < end && (static_cast<unsigned char>(text[end - 1 - back]) & 0xC0) == 0x80) ++back;
    if (back < end) {
      const auto lead = static_cast<unsigned char>(text[end - 1 - back]);
      const std::size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
      if (need > back + 1) end -= back + 1;
    }
    // Replacement characters at the end: bytes of a character still coming.
    constexpr std::string_view replacement = "\xEF\xBF\xBD";
    while (end >= replacement.size() && std::string_view(text).substr(end - replacement.size(), replacement.size()) == replacement)
      end -= replacement.size();
    if (end <= emitted_ || text.compare(0, emitted_, emitted_text_) != 0) return {};
    std::string out = text.substr(emitted_, end - emitted_);
    emitted_text_ += out;
    emitted_ = end;
    return out;
  }
  /// The text still held back, at the end of a stream.
  std::string finish() {
    const std::string text = tok_->decode(ids_);
    std::string out = text.size() > emitted_ && text.compare(0, emitted_, emitted_text_) == 0 ? text.substr(emitted_) : "";
    emitted_text_ += out;
    emitted_ = emitted_text_.size();
    return out;
  }
  void reset() {
    ids_.clear();
    emitted_ = 0;
    emitted_text_.clear();
  }

 private:
  const tokenizer* tok_;
  std::vector<std::int32_t> ids_;
  std::size_t emitted_ = 0;
  std::string emitted_text_;
};

/// The Gemma instruction-tuned turn format:
///   [<bos>]<start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n
/// The model's answer ends with <end_of_turn>, a stop token; the next user
/// turn begins by closing the model's turn (<end_of_turn>\n), since the state
/// keeps everything but that stop token (see generate.hpp).
struct gemma_chat {
  static constexpr std::string_view start_of_turn = "<start_of_turn>", end_of_turn = "<end_of_turn>";

  /// Tokens of one user turn; `first` for the first turn of a conversation.
  static std::vector<std::int32_t> user_turn(const tokenizer& tok, std::string_view text, bool first) {
    const std::int32_t start = tok.piece_id(start_of_turn), end = tok.piece_id(end_of_turn);
    std::vector<std::int32_t> ids;
    auto append = [&](std::string_view s) {
      const auto e = tok.encode(s);
      ids.insert(ids.end(), e.begin(), e.end());
    };
    if (first) {
      if (tok.bos_id() >= 0) ids.push_back(tok.bos_id());
    } else {
      ids.push_back(end);
      append("\n");
    }
    ids.push_back(start);
    append("user\n" + std::string(text));
    ids.push_back(end);
    append("\n");
    ids.push_back(start);
    append("model\n");
    return ids;
  }
  /// The tokens that end a model turn: <end_of_turn> and the tokenizer's <eos>.
  static std::vector<std::int32_t> stop_tokens(const tokenizer& tok) {
    std::vector<std::int32_t> stops{tok.piece_id(end_of_turn)};
    if (tok.eos_id() >= 0) stops.push_back(tok.eos_id());
    return stops;
  }
};

}  // namespace griffin
