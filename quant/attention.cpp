// Batched-matmul attention for short sequences (see quant/attention.h).
#include "quant/attention.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "core/error.h"
#include "core/kernels.h"
#include "core/thread_scratch.h"
#include "quant/linear.h"
#include "quant/onednn.h"

namespace m3 {
namespace {

using dnnl::memory;
using DataType = memory::data_type;

struct Primitives {
  dnnl::matmul scores, context;
  memory::desc q_md, kt_md, s_md, v_md, ctx_md, pad1_md, pad2_md;
};

// Primitives per (n, heads, head_dim, threads, scale); emptied when it grows past kMaxCached.
constexpr size_t kMaxCached = 1024;
std::mutex g_mu;
std::map<std::tuple<int64_t, int64_t, int64_t, int, float>, Primitives> g_cache;

struct ScoresTag {};

Primitives make(int64_t n, int64_t heads, int64_t dh, float scale) {
  Primitives p;
  // Q, K, V and ctx are gathered into / scattered from head-major copies [heads, n, dh]:
  // oneDNN 2.6 only has its fast (brgemm) kernels for dense layouts.
  p.q_md = memory::desc({heads, n, dh}, DataType::f32, memory::dims{n * dh, dh, 1});
  p.kt_md = memory::desc({heads, dh, n}, DataType::f32, memory::dims{n * dh, 1, dh});
  p.s_md = memory::desc({heads, n, n}, DataType::f32, memory::dims{n * n, n, 1});
  p.v_md = memory::desc({heads, n, dh}, DataType::f32, memory::dims{n * dh, dh, 1});
  p.ctx_md = memory::desc({heads, n, dh}, DataType::f32, memory::dims{n * dh, dh, 1});
  dnnl::primitive_attr a1, a2;
  a1.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  a2.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  a1.set_output_scales(0, {scale});
  const dnnl::matmul::primitive_desc pd1(dnnl::matmul::desc(p.q_md, p.kt_md, p.s_md), a1, cpu_engine());
  const dnnl::matmul::primitive_desc pd2(dnnl::matmul::desc(p.s_md, p.v_md, p.ctx_md), a2, cpu_engine());
  p.scores = dnnl::matmul(pd1);
  p.context = dnnl::matmul(pd2);
  p.pad1_md = pd1.scratchpad_desc();
  p.pad2_md = pd2.scratchpad_desc();
  return p;
}

}  // namespace

void AttentionMatmul::run(const float* qkv, int64_t n, int64_t heads, int64_t dh, float scale, float* ctx) {
  // Lengths are rounded up to a bucket so that a stream of texts of every length needs at most
  // kMaxLength / kBucket primitive pairs (creating one costs milliseconds of JIT): the padded
  // query rows are discarded and the padded keys get probability 0.
  const int64_t np = (n + kBucket - 1) / kBucket * kBucket;
  const int threads = num_threads();
  const auto key = std::make_tuple(np, heads, dh, threads, scale);
  Primitives p;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_cache.find(key);
    if (it != g_cache.end()) p = it->second;
  }
  if (!p.scores) {
    try {
      p = make(np, heads, dh, scale);
    } catch (const dnnl::error& e) {
      fail(Error::Kind::kUnsupported, "attention matmul for " + std::to_string(np) + " tokens, " +
                                          std::to_string(heads) + " heads: oneDNN cannot build it: " + e.what());
    }
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_cache.size() >= kMaxCached) g_cache.clear();
    g_cache.emplace(key, p);
  }
  const int64_t H = heads * dh;
  dnnl::engine& eng = cpu_engine();
  const int64_t hsz = heads * np * dh;  // one head-major copy
  float* s = thread_scratch<float, ScoresTag>(static_cast<size_t>(heads * np * np + 4 * hsz));
  float *qc = s + heads * np * np, *kc = qc + hsz, *vc = kc + hsz, *cc = vc + hsz;
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t t = 0; t < n; ++t) {
      const float* r = qkv + t * 3 * H + h * dh;
      std::memcpy(qc + (h * np + t) * dh, r, sizeof(float) * dh);
      std::memcpy(kc + (h * np + t) * dh, r + H, sizeof(float) * dh);
      std::memcpy(vc + (h * np + t) * dh, r + 2 * H, sizeof(float) * dh);
    }
    const size_t pad = sizeof(float) * static_cast<size_t>((np - n) * dh);
    std::memset(qc + (h * np + n) * dh, 0, pad);
    std::memset(kc + (h * np + n) * dh, 0, pad);
    std::memset(vc + (h * np + n) * dh, 0, pad);
  }
  const size_t pad = std::max(p.pad1_md.get_size(), p.pad2_md.get_size());
  uint8_t* pad_ptr = thread_scratch<uint8_t>(pad);
  dnnl::stream& st = thread_stream();
  try {
    memory q(p.q_md, eng, qc), kt(p.kt_md, eng, kc);
    memory sm(p.s_md, eng, s), v(p.v_md, eng, vc), c(p.ctx_md, eng, cc);
    p.scores.execute(st, {{DNNL_ARG_SRC, q}, {DNNL_ARG_WEIGHTS, kt}, {DNNL_ARG_DST, sm},
                          {DNNL_ARG_SCRATCHPAD, memory(p.pad1_md, eng, pad_ptr)}});
    st.wait();
    // Softmax over the n real keys of the n real queries; padded keys get probability 0
    // (padded query rows are left as they are: their outputs are never read).
    const int64_t rows = heads * n;
#pragma omp parallel for num_threads(threads) schedule(static) if (rows * n >= 16384)
    for (int64_t r = 0; r < rows; ++r) {
      float* row = s + ((r / n) * np + r % n) * np;
      kernels::softmax(row, static_cast<size_t>(n));
      std::fill(row + n, row + np, 0.0f);
    }
    p.context.execute(st, {{DNNL_ARG_SRC, sm}, {DNNL_ARG_WEIGHTS, v}, {DNNL_ARG_DST, c},
                           {DNNL_ARG_SCRATCHPAD, memory(p.pad2_md, eng, pad_ptr)}});
    st.wait();
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t h = 0; h < heads; ++h) std::memcpy(ctx + t * H + h * dh, cc + (h * np + t) * dh, sizeof(float) * dh);
    }
  } catch (const dnnl::error& e) {
    fail(Error::Kind::kUnsupported, "attention matmul for " + std::to_string(n) + " tokens: oneDNN failed: " + e.what());
  }
}

}  // namespace m3
