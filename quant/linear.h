// Fully connected layers on oneDNN matmuls: y[M,N] = x[M,K] · W^T + b (+ optional GELU),
// with W in PyTorch layout [N,K] (out_features x in_features), fp32.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace m3 {

enum class Activation { kNone, kGelu };

class Linear {
 public:
  // weight: [out_features, in_features] row-major f32, bias: [out_features] f32 or nullptr.
  // The pointers must outlive the Linear (they usually point into the mapped model file).
  Linear(const float* weight, const float* bias, int64_t out_features, int64_t in_features,
         Activation activation = Activation::kNone);
  ~Linear();
  Linear(Linear&&) noexcept;
  Linear& operator=(Linear&&) noexcept;

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

  // y[rows, out] = act(x[rows, in] · W^T + b). x and y row-major with row strides
  // in_features and out_features. Thread-safe (const).
  void forward(const float* x, int64_t rows, float* y) const;

 private:
  struct Impl;
  int64_t in_ = 0, out_ = 0;
  std::unique_ptr<Impl> impl_;
};

// Sets the number of threads used by matmuls and kernels (OpenMP); n <= 0 means all cores.
void set_num_threads(int n);
int num_threads();

}  // namespace m3
