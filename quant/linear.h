// Fully connected layers on oneDNN matmuls: y[M,N] = x[M,K] · W^T + b (+ optional GELU),
// with W in PyTorch layout [N,K] (out_features x in_features), fp32.
//
// At construction the weights are reordered once into the blocked layout oneDNN's matmul
// prefers on this CPU (on AVX-512: BA16a64b for the brgemm kernel; measured 350-380 GOPS at
// M = 16..2048 on 2 Zen 5 cores versus 30-290 GOPS for the transposed original with a run-time
// M), so a Linear owns a packed copy of its weights. The packed layout does not depend on M;
// one primitive per distinct (rows, threads) is created on first use and cached (creation
// costs ~0.2-1 ms, repeats are free). GELU is the exact erf form, fused as a oneDNN post-op.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace m3 {

enum class Activation { kNone, kGelu };

// One weight matrix of a stacked Linear (see Linear::stacked).
struct LinearPart {
  const float* weight = nullptr;  // [out_features, in_features] row-major
  const float* bias = nullptr;    // [out_features] or nullptr (zeros)
  int64_t out_features = 0;
};

class Linear {
 public:
  // weight: [out_features, in_features] row-major f32, bias: [out_features] f32 or nullptr.
  // The pointers must outlive the Linear (they usually point into the mapped model file).
  // Throws Error(kInvalidArgument) for a null weight or sizes < 1, Error(kUnsupported) if
  // oneDNN cannot build the matmul.
  Linear(const float* weight, const float* bias, int64_t out_features, int64_t in_features,
         Activation activation = Activation::kNone);
  ~Linear();
  Linear(Linear&&) noexcept;
  Linear& operator=(Linear&&) noexcept;

  // Several weight matrices with the same input stacked along out_features into one matmul
  // (e.g. Q, K and V: one [3*hidden, hidden] product whose output rows read Q | K | V).
  // The weights are copied, so the pointers need only live during the call.
  static Linear stacked(const std::vector<LinearPart>& parts, int64_t in_features,
                        Activation activation = Activation::kNone);

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

  // y[rows, out] = act(x[rows, in] · W^T + b). x and y row-major with row strides
  // in_features and out_features. rows == 0 does nothing. Thread-safe (const).
  void forward(const float* x, int64_t rows, float* y) const;

  // The oneDNN kernel that runs it (e.g. "brg:avx512_core"), for reports and benchmarks.
  std::string implementation() const;

 private:
  struct Impl;
  Linear(std::unique_ptr<Impl> impl, int64_t out_features, int64_t in_features);
  int64_t in_ = 0, out_ = 0;
  std::unique_ptr<Impl> impl_;
};

// Sets the number of threads used by matmuls and kernels (OpenMP); n <= 0 means all cores.
void set_num_threads(int n);
int num_threads();

}  // namespace m3
