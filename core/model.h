// A loaded BGE-M3 model: the mapped .m3 file, its tokenizer, the encoder and the heads.
// Immutable after load: one Model may be shared by any number of threads, each calling
// encode_batch / compute_score concurrently (all per-request memory is per call).
//
//   auto model = m3::Model::load("bge-m3.m3");
//   m3::EncodeOptions opt;  opt.sparse = opt.colbert = true;
//   auto out = model->encode_batch({"What is BGE M3?"}, opt);   // out[0].dense, .sparse, .colbert
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/model_file.h"
#include "heads/heads.h"
#include "tokenizer/tokenizer.h"

namespace m3 {

class Encoder;
class Linear;

struct EncodeOptions {
  bool dense = true;
  bool sparse = false;
  bool colbert = false;
  // Tokens per text including <s> and </s>; 0 = the model's maximum (8192 for BGE-M3).
  // Larger values are clamped to the model's maximum.
  int64_t max_length = 0;
  // Upper bound on tokens in one forward pass (texts are sorted by length and grouped under
  // it; a single longer text still runs alone).
  int64_t max_batch_tokens = 16384;
  // Upper bound on texts in one forward pass.
  int64_t max_batch_size = 64;
};

struct EncodedText {
  std::vector<int32_t> ids;    // the tokens that were encoded (after truncation)
  std::vector<float> dense;    // hidden_size floats when requested
  SparseVector sparse;         // when requested
  std::vector<float> colbert;  // colbert_rows x colbert_dim floats when requested
  int64_t colbert_rows = 0;
};

struct ScoreOptions {
  ScoreWeights weights;             // [dense, sparse, colbert]
  int64_t max_query_length = 512;   // FlagEmbedding's defaults
  int64_t max_passage_length = 8192;
  int64_t max_batch_tokens = 16384;
  int64_t max_batch_size = 64;
};

class Model {
 public:
  // Maps and validates the .m3 file, loads the tokenizer and prepares the encoder.
  // Throws Error(kIo) / Error(kBadModel) / Error(kUnsupported) naming the file and the problem.
  static std::shared_ptr<const Model> load(const std::string& path);
  static std::shared_ptr<const Model> from_file(std::shared_ptr<const ModelFile> file);
  ~Model();

  const ModelFile& file() const { return *file_; }
  const ModelConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  bool has_sparse() const { return sparse_weight_ != nullptr; }
  bool has_colbert() const { return colbert_ != nullptr; }
  int64_t colbert_dim() const;
  // Longest input in tokens (including <s> and </s>).
  int64_t max_length() const { return config_.max_tokens(); }
  std::string weights_dtype() const;
  // The encoder itself (for calibration: Encoder::forward with a matmul-input observer).
  const Encoder& encoder() const { return *encoder_; }

  // Encodes texts; results in input order. Throws Error(kInvalidArgument) when a head is
  // requested that the model does not have.
  std::vector<EncodedText> encode_batch(const std::vector<std::string>& texts, const EncodeOptions& options) const;
  // Same from token id sequences (each already `<s> ... </s>`).
  std::vector<EncodedText> encode_ids(const std::vector<std::vector<int32_t>>& ids, const EncodeOptions& options) const;

  // FlagEmbedding's compute_score over (query, passage) pairs: queries truncated at
  // max_query_length, passages at max_passage_length. Needs the sparse and colbert heads.
  // Throws Error(kInvalidArgument) for negative weights or weights that sum to zero.
  std::vector<PairScores> compute_score(const std::vector<std::pair<std::string, std::string>>& pairs,
                                        const ScoreOptions& options) const;

 private:
  Model() = default;
  std::shared_ptr<const ModelFile> file_;
  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Encoder> encoder_;
  const float* sparse_weight_ = nullptr;
  float sparse_bias_ = 0.0f;
  std::unique_ptr<Linear> colbert_;
};

// Scores of two already-encoded texts (each needs dense, sparse and colbert).
PairScores score_pair(const EncodedText& query, const EncodedText& passage, int64_t colbert_dim,
                      const ScoreWeights& weights);

}  // namespace m3
