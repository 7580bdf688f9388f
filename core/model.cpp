#include "core/model.h"

#include <algorithm>
#include <numeric>

#include "core/encoder.h"
#include "core/error.h"
#include "quant/linear.h"

namespace m3 {
namespace {

const char* kTokenizerTensor = "tokenizer.sentencepiece";

bool head_flag(const nlohmann::json& meta, const char* head) {
  auto heads = meta.find("heads");
  if (heads == meta.end() || !heads->is_object()) return false;
  auto it = heads->find(head);
  return it != heads->end() && it->is_boolean() && it->get<bool>();
}

// Groups sequences (by index) into forward passes: longest first, each pass under the
// token budget (a sequence longer than the budget runs alone).
std::vector<std::vector<size_t>> plan_batches(const std::vector<std::vector<int32_t>>& ids,
                                              int64_t max_batch_tokens, int64_t max_batch_size) {
  std::vector<size_t> order(ids.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return ids[a].size() > ids[b].size(); });
  std::vector<std::vector<size_t>> batches;
  int64_t tokens = 0;
  for (size_t i : order) {
    const auto n = static_cast<int64_t>(ids[i].size());
    if (batches.empty() || tokens + n > max_batch_tokens ||
        static_cast<int64_t>(batches.back().size()) >= max_batch_size) {
      batches.emplace_back();
      tokens = 0;
    }
    batches.back().push_back(i);
    tokens += n;
  }
  return batches;
}

}  // namespace

Model::~Model() = default;

std::shared_ptr<const Model> Model::load(const std::string& path) { return from_file(ModelFile::open(path)); }

std::shared_ptr<const Model> Model::from_file(std::shared_ptr<const ModelFile> file) {
  std::shared_ptr<Model> m(new Model());
  m->file_ = file;
  const nlohmann::json& meta = file->metadata();
  auto config = meta.find("config");
  if (config == meta.end()) fail_bad_model(file->name() + ": metadata has no \"config\"");
  m->config_ = ModelConfig::from_json(*config, file->name() + " (config)");
  const ModelConfig& c = m->config_;

  const TensorView* tok = file->find(kTokenizerTensor);
  if (!tok || tok->dtype != DType::kU8) {
    fail_bad_model(file->name() + ": tensor " + kTokenizerTensor + " (u8 SentencePiece model) is missing");
  }
  m->tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::from_bytes(tok->data, tok->nbytes, file->name()));
  if (m->tokenizer_->vocab_size() > c.vocab_size) {
    fail_bad_model(file->name() + ": tokenizer has " + std::to_string(m->tokenizer_->vocab_size()) +
                   " ids but the embedding table only " + std::to_string(c.vocab_size));
  }

  m->encoder_ = std::make_unique<Encoder>(file, c);
  if (head_flag(meta, "sparse")) {
    m->sparse_weight_ = file->get("sparse_linear.weight", DType::kF32, {1, c.hidden_size}).as<float>();
    m->sparse_bias_ = *file->get("sparse_linear.bias", DType::kF32, {1}).as<float>();
  }
  if (head_flag(meta, "colbert")) {
    const TensorView* w = file->find("colbert_linear.weight");
    if (!w || w->shape.size() != 2) fail_bad_model(file->name() + ": colbert_linear.weight is missing or not 2-D");
    const int64_t dim = w->shape[0];
    const float* weight = file->get("colbert_linear.weight", DType::kF32, {dim, c.hidden_size}).as<float>();
    const float* bias = file->get("colbert_linear.bias", DType::kF32, {dim}).as<float>();
    m->colbert_ = std::make_unique<Linear>(weight, bias, dim, c.hidden_size);
  }
  return m;
}

int64_t Model::colbert_dim() const { return colbert_ ? colbert_->out_features() : 0; }

std::string Model::weights_dtype() const {
  auto it = file_->metadata().find("weights_dtype");
  return it != file_->metadata().end() && it->is_string() ? it->get<std::string>() : "f32";
}

std::vector<EncodedText> Model::encode_batch(const std::vector<std::string>& texts,
                                             const EncodeOptions& options) const {
  const int64_t max_len = options.max_length <= 0 ? max_length() : std::min(options.max_length, max_length());
  if (max_len < 2) fail_argument("max_length must be at least 2, got " + std::to_string(options.max_length));
  std::vector<std::vector<int32_t>> ids;
  ids.reserve(texts.size());
  for (const std::string& t : texts) ids.push_back(tokenizer_->encode(t, static_cast<size_t>(max_len)));
  return encode_ids(ids, options);
}

std::vector<EncodedText> Model::encode_ids(const std::vector<std::vector<int32_t>>& ids,
                                           const EncodeOptions& options) const {
  if (options.sparse && !has_sparse()) {
    fail_argument(file_->name() + " has no sparse head (dense-only model): cannot compute sparse weights");
  }
  if (options.colbert && !has_colbert()) {
    fail_argument(file_->name() + " has no colbert head (dense-only model): cannot compute colbert vectors");
  }
  const int64_t hidden = config_.hidden_size;
  std::vector<EncodedText> out(ids.size());
  std::vector<float> states;
  for (const std::vector<size_t>& batch : plan_batches(ids, options.max_batch_tokens, options.max_batch_size)) {
    PackedBatch packed;
    for (size_t i : batch) {
      if (ids[i].empty() || static_cast<int64_t>(ids[i].size()) > max_length()) {
        fail_argument("sequence " + std::to_string(i) + " has " + std::to_string(ids[i].size()) +
                      " tokens; allowed 1.." + std::to_string(max_length()));
      }
      packed.add(ids[i], static_cast<int32_t>(config_.pad_token_id + 1));
    }
    encoder_->forward(packed, &states);
    for (size_t k = 0; k < batch.size(); ++k) {
      EncodedText& r = out[batch[k]];
      const int64_t n = packed.offsets[k + 1] - packed.offsets[k];
      const float* h = states.data() + packed.offsets[k] * hidden;
      r.ids = ids[batch[k]];
      if (options.dense) r.dense = dense_head(h, hidden);
      if (options.sparse) r.sparse = sparse_head(h, r.ids.data(), n, hidden, sparse_weight_, sparse_bias_);
      if (options.colbert) {
        r.colbert = colbert_head(*colbert_, h, n);
        r.colbert_rows = n - 1;
      }
    }
  }
  return out;
}

PairScores score_pair(const EncodedText& q, const EncodedText& p, int64_t colbert_dim, const ScoreWeights& w) {
  return combine_scores(dense_score(q.dense, p.dense), lexical_matching_score(q.sparse, p.sparse),
                        colbert_score(q.colbert.data(), q.colbert_rows, p.colbert.data(), p.colbert_rows, colbert_dim),
                        w);
}

std::vector<PairScores> Model::compute_score(const std::vector<std::pair<std::string, std::string>>& pairs,
                                             const ScoreOptions& options) const {
  const ScoreWeights& w = options.weights;
  if (!(w.dense >= 0 && w.sparse >= 0 && w.colbert >= 0) || !(w.dense + w.sparse > 0)) {
    fail_argument("score weights must be >= 0 with dense + sparse > 0, got [" + std::to_string(w.dense) + ", " +
                  std::to_string(w.sparse) + ", " + std::to_string(w.colbert) + "]");
  }
  EncodeOptions eo;
  eo.dense = eo.sparse = eo.colbert = true;
  eo.max_batch_tokens = options.max_batch_tokens;
  eo.max_batch_size = options.max_batch_size;
  std::vector<std::string> queries, passages;
  for (const auto& [q, p] : pairs) {
    queries.push_back(q);
    passages.push_back(p);
  }
  eo.max_length = options.max_query_length;
  const std::vector<EncodedText> qs = encode_batch(queries, eo);
  eo.max_length = options.max_passage_length;
  const std::vector<EncodedText> ps = encode_batch(passages, eo);
  std::vector<PairScores> out;
  out.reserve(pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i) out.push_back(score_pair(qs[i], ps[i], colbert_dim(), options.weights));
  return out;
}

}  // namespace m3
