// fp32 fully connected layers on oneDNN matmuls (see quant/linear.h for the design).
#include "quant/linear.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <utility>

#include <oneapi/dnnl/dnnl.hpp>

#include "core/error.h"
#include "core/kernels.h"
#include "core/thread_scratch.h"
#include "hwy/aligned_allocator.h"

namespace m3 {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using DataType = memory::data_type;

// Rows of the matmul used to ask oneDNN for its preferred weight layout (the answer does not
// depend on it; see the header).
constexpr memory::dim kProbeRows = 256;
// Distinct (rows, threads) primitives kept per Linear before the cache is emptied.
constexpr size_t kMaxCachedPrimitives = 64;

std::atomic<int> g_num_threads{0};  // 0: OpenMP's default

// M3_CPU_TARGET (core/kernels.h) also caps the ISA oneDNN may JIT for, so one variable
// selects the whole code path. Must run before the first primitive is created.
void cap_onednn_isa() {
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
  const std::string& t = kernels::cpu_target_request();
  if (t == "avx3_dl") {
    dnnl::set_max_cpu_isa(dnnl::cpu_isa::avx512_core_vnni);
  } else if (t == "avx3" || t == "avx512") {
    dnnl::set_max_cpu_isa(dnnl::cpu_isa::avx512_core);
  } else if (t == "avx2") {
    dnnl::set_max_cpu_isa(dnnl::cpu_isa::avx2);
  } else if (t == "sse4" || t == "ssse3" || t == "emu128" || t == "scalar") {
    dnnl::set_max_cpu_isa(dnnl::cpu_isa::sse41);
  }
#else
  (void)kernels::cpu_target_request();
#endif
}

dnnl::engine& cpu_engine() {
  static dnnl::engine engine = [] {
    cap_onednn_isa();
    return dnnl::engine(dnnl::engine::kind::cpu, 0);
  }();
  return engine;
}

// One stream per calling thread: executions from different threads never share one.
dnnl::stream& thread_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}


// Applies set_num_threads to the calling thread (OpenMP's thread count is per thread).
void apply_num_threads() {
  const int n = g_num_threads.load(std::memory_order_relaxed);
  if (n > 0 && omp_get_max_threads() != n) omp_set_num_threads(n);
}

std::string shape_text(int64_t rows, int64_t in, int64_t out) {
  return "[" + std::to_string(rows) + "x" + std::to_string(in) + "] x [" + std::to_string(in) + "x" +
         std::to_string(out) + "]";
}

}  // namespace

struct Linear::Impl {
  struct Cached {
    dnnl::matmul primitive;
    memory::desc scratchpad_md;
  };

  int64_t out = 0, in = 0;
  dnnl::primitive_attr attr;
  memory::desc weights_md;  // the layout `weights` is stored in
  memory::desc bias_md;     // {1, out}, or empty without bias
  hwy::AlignedFreeUniquePtr<float[]> owned_weights;
  const float* weights = nullptr;
  std::vector<float> owned_bias;
  const float* bias = nullptr;
  std::string implementation;
  std::mutex mu;
  std::unordered_map<int64_t, Cached> cache;  // key: rows * 4096 + threads

  dnnl::matmul::primitive_desc make_pd(memory::dim rows, const memory::desc& wmd) const {
    const memory::desc src({rows, in}, DataType::f32, Tag::ab);
    const memory::desc dst({rows, out}, DataType::f32, Tag::ab);
    const dnnl::matmul::desc desc = bias ? dnnl::matmul::desc(src, wmd, bias_md, dst)
                                         : dnnl::matmul::desc(src, wmd, dst);
    return dnnl::matmul::primitive_desc(desc, attr, cpu_engine());
  }

  // weight_rows: [out, in] row-major (PyTorch layout). Packs into oneDNN's preferred layout,
  // or keeps the pointer when that layout is the original one. `owned` (may be null) holds
  // weight_rows when the caller built them.
  void init(const float* weight_rows, hwy::AlignedFreeUniquePtr<float[]> owned, Activation activation) {
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (activation == Activation::kGelu) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
      attr.set_post_ops(ops);
    }
    if (bias) bias_md = memory::desc({1, out}, DataType::f32, Tag::ab);
    const memory::desc plain({in, out}, DataType::f32, Tag::ba);  // W^T viewed from [out, in]
    const dnnl::matmul::primitive_desc probe = make_pd(kProbeRows, memory::desc({in, out}, DataType::f32, Tag::any));
    implementation = probe.impl_info_str();
    weights_md = probe.weights_desc();
    if (weights_md == plain) {
      owned_weights = std::move(owned);
      weights = weight_rows;
      return;
    }
    const size_t bytes = weights_md.get_size();
    owned_weights = hwy::AllocateAligned<float>((bytes + sizeof(float) - 1) / sizeof(float));
    memory src(plain, cpu_engine(), const_cast<float*>(weight_rows));
    memory dst(weights_md, cpu_engine(), owned_weights.get());
    dnnl::stream& s = thread_stream();
    dnnl::reorder(src, dst).execute(s, src, dst);
    s.wait();
    weights = owned_weights.get();
  }

  Cached primitive_for(int64_t rows) {
    const int threads = omp_get_max_threads();
    const int64_t key = rows * 4096 + std::min(threads, 4095);
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = cache.find(key);
      if (it != cache.end()) return it->second;
    }
    // Created outside the lock (JIT takes a while); a concurrent duplicate is harmless.
    const dnnl::matmul::primitive_desc pd = make_pd(rows, weights_md);
    Cached c{dnnl::matmul(pd), pd.scratchpad_desc()};
    std::lock_guard<std::mutex> lock(mu);
    if (cache.size() >= kMaxCachedPrimitives) cache.clear();
    cache.emplace(key, c);
    return c;
  }
};

Linear::Linear(std::unique_ptr<Impl> impl, int64_t out_features, int64_t in_features)
    : in_(in_features), out_(out_features), impl_(std::move(impl)) {}

Linear::Linear(const float* weight, const float* bias, int64_t out_features, int64_t in_features,
               Activation activation)
    : in_(in_features), out_(out_features), impl_(std::make_unique<Impl>()) {
  if (!weight || out_features < 1 || in_features < 1) {
    fail_argument("Linear: need a weight and sizes >= 1, got [" + std::to_string(out_features) + ", " +
                  std::to_string(in_features) + "]" + (weight ? "" : " and a null weight"));
  }
  impl_->out = out_features;
  impl_->in = in_features;
  impl_->bias = bias;
  try {
    impl_->init(weight, nullptr, activation);
  } catch (const dnnl::error& e) {
    fail(Error::Kind::kUnsupported, "Linear " + shape_text(kProbeRows, in_features, out_features) +
                                        ": oneDNN cannot build the matmul: " + e.what());
  }
}

Linear Linear::stacked(const std::vector<LinearPart>& parts, int64_t in_features, Activation activation) {
  int64_t out = 0;
  bool any_bias = false;
  for (const LinearPart& p : parts) {
    if (!p.weight || p.out_features < 1) fail_argument("Linear::stacked: a part has a null weight or no rows");
    out += p.out_features;
    any_bias = any_bias || p.bias != nullptr;
  }
  if (parts.empty() || in_features < 1) fail_argument("Linear::stacked: need at least one part and in_features >= 1");
  auto impl = std::make_unique<Impl>();
  impl->out = out;
  impl->in = in_features;
  hwy::AlignedFreeUniquePtr<float[]> rows = hwy::AllocateAligned<float>(static_cast<size_t>(out * in_features));
  if (any_bias) impl->owned_bias.assign(static_cast<size_t>(out), 0.0f);
  int64_t row = 0;
  for (const LinearPart& p : parts) {
    std::memcpy(rows.get() + row * in_features, p.weight, sizeof(float) * p.out_features * in_features);
    if (p.bias) std::memcpy(impl->owned_bias.data() + row, p.bias, sizeof(float) * p.out_features);
    row += p.out_features;
  }
  if (any_bias) impl->bias = impl->owned_bias.data();
  const float* w = rows.get();
  try {
    impl->init(w, std::move(rows), activation);
  } catch (const dnnl::error& e) {
    fail(Error::Kind::kUnsupported, "Linear::stacked " + shape_text(kProbeRows, in_features, out) +
                                        ": oneDNN cannot build the matmul: " + e.what());
  }
  return Linear(std::move(impl), out, in_features);
}

Linear::~Linear() = default;
Linear::Linear(Linear&&) noexcept = default;
Linear& Linear::operator=(Linear&&) noexcept = default;

std::string Linear::implementation() const { return impl_->implementation; }

void Linear::forward(const float* x, int64_t rows, float* y) const {
  if (rows == 0) return;
  if (rows < 0) fail_argument("Linear::forward: rows must be >= 0, got " + std::to_string(rows));
  apply_num_threads();
  try {
    const Impl::Cached c = impl_->primitive_for(rows);
    dnnl::engine& eng = cpu_engine();
    memory src(memory::desc({rows, in_}, DataType::f32, Tag::ab), eng, const_cast<float*>(x));
    memory dst(memory::desc({rows, out_}, DataType::f32, Tag::ab), eng, y);
    memory wei(impl_->weights_md, eng, const_cast<float*>(impl_->weights));
    memory pad(c.scratchpad_md, eng, thread_scratch<uint8_t>(c.scratchpad_md.get_size()));
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, pad}};
    if (impl_->bias) args.emplace(DNNL_ARG_BIAS, memory(impl_->bias_md, eng, const_cast<float*>(impl_->bias)));
    dnnl::stream& s = thread_stream();
    c.primitive.execute(s, args);
    s.wait();
  } catch (const dnnl::error& e) {
    fail(Error::Kind::kUnsupported, "Linear " + shape_text(rows, in_, out_) + ": oneDNN failed: " + e.what());
  }
}

void set_num_threads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  g_num_threads.store(n, std::memory_order_relaxed);
  omp_set_num_threads(n);
}

int num_threads() {
  const int n = g_num_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : omp_get_max_threads();
}

}  // namespace m3
