// The XLM-RoBERTa encoder forward pass (fp32) over padding-free packed batches.
//
// Per forward pass, T tokens of all sequences end to end, hidden H, FFN width I:
//   x   [T, H]            the hidden states (the caller's output vector)
//   big [T, max(3H, I)]   Q | K | V rows, later the FFN activations
//   ctx [T, H]            attention output (all heads side by side)
//   tmp [T, H]            output projections before the residual LayerNorm
// so memory is O(T * (H + I)); attention never holds a T x T matrix (see kernels::attention).
//
// Threading: the matmuls are threaded inside oneDNN; attention runs one task per (sequence,
// head, block of kQueryBlock queries), longest sequences first, dynamically scheduled;
// row-wise kernels (embeddings, LayerNorm) run in chunks of rows. All with OpenMP, using
// m3::num_threads() threads.
#include "core/encoder.h"


#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/kernels.h"
#include "quant/linear.h"

namespace m3 {
namespace {

// Queries per attention task (the kernel walks them in sub-blocks of 2 SIMD vectors).
constexpr int64_t kQueryBlock = 64;
// Rows per parallel chunk of the row-wise kernels.
constexpr int64_t kRowChunk = 8;

struct LayerNormWeights {
  const float* gamma = nullptr;
  const float* beta = nullptr;
};

struct EncoderLayer {
  Linear qkv;       // attention.self.{query,key,value} stacked: one [3H, H] matmul
  Linear attn_out;  // attention.output.dense
  LayerNormWeights attn_ln;
  Linear ffn_in;   // intermediate.dense, GELU fused
  Linear ffn_out;  // output.dense
  LayerNormWeights ffn_ln;
};

// One attention task: queries [q0, q0 + nq) of a sequence against all its keys, one head.
struct AttentionTask {
  int64_t first = 0;  // first token of the sequence in the batch
  int64_t n_keys = 0;
  int64_t q0 = 0, nq = 0;
  int64_t head = 0;
};

std::vector<AttentionTask> plan_attention(const std::vector<int64_t>& offsets, int64_t heads) {
  std::vector<AttentionTask> tasks;
  for (size_t s = 0; s + 1 < offsets.size(); ++s) {
    const int64_t first = offsets[s], n = offsets[s + 1] - offsets[s];
    for (int64_t q0 = 0; q0 < n; q0 += kQueryBlock) {
      for (int64_t h = 0; h < heads; ++h) tasks.push_back({first, n, q0, std::min(kQueryBlock, n - q0), h});
    }
  }
  // Longest sequences (the most expensive tasks) first, so dynamic scheduling balances.
  std::stable_sort(tasks.begin(), tasks.end(),
                   [](const AttentionTask& a, const AttentionTask& b) { return a.n_keys > b.n_keys; });
  return tasks;
}

std::string layer_tensor(int64_t layer, const char* suffix) {
  return "encoder.layer." + std::to_string(layer) + "." + suffix;
}

}  // namespace

void PackedBatch::add(const std::vector<int32_t>& seq_ids, int32_t first_position) {
  ids.insert(ids.end(), seq_ids.begin(), seq_ids.end());
  for (size_t i = 0; i < seq_ids.size(); ++i) positions.push_back(first_position + static_cast<int32_t>(i));
  offsets.push_back(static_cast<int64_t>(ids.size()));
}

struct Encoder::Impl {
  ModelConfig c;
  int64_t head_dim = 0;
  float eps = 0.0f;
  const float* word = nullptr;        // [vocab, H]
  const float* position = nullptr;    // [max_position_embeddings, H]
  const float* token_type = nullptr;  // [type_vocab_size, H]; every token has type 0
  LayerNormWeights embed_ln;
  std::vector<EncoderLayer> layers;

  // Per-call scratch.
  struct Activations {
    std::vector<float> big, ctx, tmp;
  };

  void check_batch(const PackedBatch& b) const;
  void embed(const PackedBatch& b, float* x, int threads) const;
  void layer(const EncoderLayer& L, const std::vector<AttentionTask>& plan, float* x, int64_t T,
             Activations& a, int threads) const;
  void self_attention(const float* qkv, const std::vector<AttentionTask>& plan, float* ctx, int threads) const;
  void residual_layer_norm(const float* y, const LayerNormWeights& ln, float* x, int64_t T, int threads) const;
};

// One post-LN transformer layer, as in the paper's figure.
void Encoder::Impl::layer(const EncoderLayer& L, const std::vector<AttentionTask>& plan, float* x,
                          int64_t T, Activations& a, int threads) const {
  L.qkv.forward(x, T, a.big.data());                   // Q | K | V = x Wqkv^T + b
  self_attention(a.big.data(), plan, a.ctx.data(), threads);  // softmax(Q K^T / sqrt(d)) V per head
  L.attn_out.forward(a.ctx.data(), T, a.tmp.data());   // O(attn)
  residual_layer_norm(a.tmp.data(), L.attn_ln, x, T, threads);  // x = LN(x + O(attn))
  L.ffn_in.forward(x, T, a.big.data());                // gelu(W1 x + b1)
  L.ffn_out.forward(a.big.data(), T, a.tmp.data());    // W2 gelu(...) + b2
  residual_layer_norm(a.tmp.data(), L.ffn_ln, x, T, threads);   // x = LN(x + FFN(x))
}

void Encoder::forward(const PackedBatch& batch, std::vector<float>* hidden) const {
  const Impl& m = *impl_;
  m.check_batch(batch);
  const int64_t T = static_cast<int64_t>(batch.num_tokens()), H = config_.hidden_size;
  hidden->resize(static_cast<size_t>(T * H));
  if (T == 0) return;
  const int threads = num_threads();
  Impl::Activations a;
  a.big.resize(static_cast<size_t>(T * std::max(3 * H, config_.intermediate_size)));
  a.ctx.resize(static_cast<size_t>(T * H));
  a.tmp.resize(static_cast<size_t>(T * H));
  const std::vector<AttentionTask> plan = plan_attention(batch.offsets, config_.num_attention_heads);

  float* x = hidden->data();
  m.embed(batch, x, threads);  // x = LN(word[id] + position[pos] + token_type[0])
  for (const EncoderLayer& L : m.layers) m.layer(L, plan, x, T, a, threads);
}

void Encoder::Impl::embed(const PackedBatch& b, float* x, int threads) const {
  const int64_t T = static_cast<int64_t>(b.num_tokens()), H = c.hidden_size;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t t0 = 0; t0 < T; t0 += kRowChunk) {
    for (int64_t t = t0; t < std::min(T, t0 + kRowChunk); ++t) {
      float* row = x + t * H;
      kernels::add(word + static_cast<int64_t>(b.ids[t]) * H, position + static_cast<int64_t>(b.positions[t]) * H,
                   row, static_cast<size_t>(H));
      kernels::add_layer_norm(row, token_type, embed_ln.gamma, embed_ln.beta, eps, row, 1, static_cast<size_t>(H));
    }
  }
}

void Encoder::Impl::self_attention(const float* qkv, const std::vector<AttentionTask>& plan, float* ctx,
                                   int threads) const {
  const int64_t H = c.hidden_size, stride = 3 * H;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  const int64_t n = static_cast<int64_t>(plan.size());
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) {
    const AttentionTask& t = plan[i];
    const int64_t col = t.head * head_dim;
    kernels::AttentionArgs args;
    args.q = qkv + (t.first + t.q0) * stride + col;
    args.k = qkv + t.first * stride + H + col;
    args.v = qkv + t.first * stride + 2 * H + col;
    args.q_stride = args.k_stride = args.v_stride = static_cast<size_t>(stride);
    args.out = ctx + (t.first + t.q0) * H + col;
    args.out_stride = static_cast<size_t>(H);
    args.n_queries = static_cast<size_t>(t.nq);
    args.n_keys = static_cast<size_t>(t.n_keys);
    args.head_dim = static_cast<size_t>(head_dim);
    args.scale = scale;
    kernels::attention(args);
  }
}

void Encoder::Impl::residual_layer_norm(const float* y, const LayerNormWeights& ln, float* x, int64_t T,
                                        int threads) const {
  const int64_t H = c.hidden_size;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t t0 = 0; t0 < T; t0 += kRowChunk) {
    const int64_t rows = std::min(kRowChunk, T - t0);
    kernels::add_layer_norm(y + t0 * H, x + t0 * H, ln.gamma, ln.beta, eps, x + t0 * H, static_cast<size_t>(rows),
                            static_cast<size_t>(H));
  }
}

void Encoder::Impl::check_batch(const PackedBatch& b) const {
  const std::vector<int64_t>& off = b.offsets;
  if (off.empty() || off.front() != 0) fail_argument("PackedBatch: offsets must start with 0");
  if (b.positions.size() != b.ids.size()) {
    fail_argument("PackedBatch: " + std::to_string(b.positions.size()) + " positions for " +
                  std::to_string(b.ids.size()) + " token ids");
  }
  if (off.back() != static_cast<int64_t>(b.ids.size())) {
    fail_argument("PackedBatch: offsets end at " + std::to_string(off.back()) + " but there are " +
                  std::to_string(b.ids.size()) + " tokens");
  }
  for (size_t s = 0; s + 1 < off.size(); ++s) {
    if (off[s + 1] <= off[s]) {
      fail_argument("PackedBatch: sequence " + std::to_string(s) + " is empty or its offsets decrease (" +
                    std::to_string(off[s]) + " -> " + std::to_string(off[s + 1]) + ")");
    }
    for (int64_t t = off[s]; t < off[s + 1]; ++t) {
      const int32_t id = b.ids[static_cast<size_t>(t)];
      if (id < 0 || id >= c.vocab_size) {
        fail_argument("token id " + std::to_string(id) + " at index " + std::to_string(t) + " (sequence " +
                      std::to_string(s) + ") is outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
      }
      const int32_t pos = b.positions[static_cast<size_t>(t)];
      if (pos < 0 || pos >= c.max_position_embeddings) {
        fail_argument("position " + std::to_string(pos) + " at index " + std::to_string(t) + " (sequence " +
                      std::to_string(s) + ") is outside the position table [0, " +
                      std::to_string(c.max_position_embeddings) + ")");
      }
    }
  }
}

Encoder::Encoder(std::shared_ptr<const ModelFile> file, const ModelConfig& config)
    : file_(std::move(file)), config_(config), impl_(std::make_unique<Impl>()) {
  config_.validate(file_->name());
  Impl& m = *impl_;
  m.c = config_;
  const int64_t H = config_.hidden_size, I = config_.intermediate_size;
  m.head_dim = config_.head_dim();
  m.eps = static_cast<float>(config_.layer_norm_eps);
  const ModelFile& f = *file_;
  auto tensor = [&f](const std::string& name, const std::vector<int64_t>& shape) {
    return f.get(name, DType::kF32, shape).as<float>();
  };
  m.word = tensor("embeddings.word_embeddings.weight", {config_.vocab_size, H});
  m.position = tensor("embeddings.position_embeddings.weight", {config_.max_position_embeddings, H});
  m.token_type = tensor("embeddings.token_type_embeddings.weight", {config_.type_vocab_size, H});
  m.embed_ln = {tensor("embeddings.LayerNorm.weight", {H}), tensor("embeddings.LayerNorm.bias", {H})};

  m.layers.reserve(static_cast<size_t>(config_.num_hidden_layers));
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    auto w = [&](const char* suffix, const std::vector<int64_t>& shape) {
      return tensor(layer_tensor(l, suffix), shape);
    };
    std::vector<LinearPart> qkv;
    for (const char* part : {"query", "key", "value"}) {
      const std::string prefix = std::string("attention.self.") + part;
      qkv.push_back({w((prefix + ".weight").c_str(), {H, H}), w((prefix + ".bias").c_str(), {H}), H});
    }
    m.layers.push_back(EncoderLayer{
        Linear::stacked(qkv, H),
        Linear(w("attention.output.dense.weight", {H, H}), w("attention.output.dense.bias", {H}), H, H),
        {w("attention.output.LayerNorm.weight", {H}), w("attention.output.LayerNorm.bias", {H})},
        Linear(w("intermediate.dense.weight", {I, H}), w("intermediate.dense.bias", {I}), I, H, Activation::kGelu),
        Linear(w("output.dense.weight", {H, I}), w("output.dense.bias", {H}), H, I),
        {w("output.LayerNorm.weight", {H}), w("output.LayerNorm.bias", {H})},
    });
  }
}

Encoder::~Encoder() = default;

}  // namespace m3
