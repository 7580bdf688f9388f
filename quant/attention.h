// Multi-head self-attention of one sequence as two batched oneDNN matmuls (batch = heads):
//   S = scale * Q K^T   [heads, n, n]     (row-wise softmax by core/kernels, in place)
//   ctx = S V           [heads, n, head_dim]
// reading Q, K and V straight out of the stacked QKV matmul's output through strides. It holds
// the full score matrix (heads * n * n floats, per calling thread), so the encoder uses it for
// sequences up to kMaxLength tokens and the streaming kernel (kernels::attention, O(n) memory)
// beyond. Measured 2026-11-25 on 2 Emerald Rapids cores, 16 x 128 tokens, 24 layers: 220 ms per
// forward pass against 400 ms for the streaming kernel.
#pragma once
#include <cstdint>

namespace m3 {

class AttentionMatmul {
 public:
  // Longest sequence it is used for (16 heads x 512^2 floats = 16 MB of scores).
  static constexpr int64_t kMaxLength = 512;
  // Lengths are padded to a multiple of this (at most kMaxLength / kBucket primitive pairs).
  static constexpr int64_t kBucket = 32;

  // qkv: n rows of [Q | K | V], each heads * head_dim wide (row stride 3 * heads * head_dim);
  // ctx: n rows of heads * head_dim (row stride heads * head_dim). Threads: m3::num_threads().
  // Thread-safe. Throws Error(kUnsupported) if oneDNN cannot build the matmuls.
  static void run(const float* qkv, int64_t n, int64_t heads, int64_t head_dim, float scale, float* ctx);
};

}  // namespace m3
