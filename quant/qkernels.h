// SIMD kernels of the quantized paths: activation quantization (f32 -> s8, per row, with
// per-channel smoothing), dequantization of matmul outputs, f32 -> bf16 rounding and int8
// table rows. Highway, compiled for several instruction sets and dispatched at run time like
// core/kernels.h (M3_CPU_TARGET applies here too).
//
// Every kernel has a scalar twin `<name>_ref` with the same contract; tests/test_quant.cpp
// compares them on awkward sizes for every target this CPU supports.
//
// Numerics, shared by a kernel and its twin:
// - quantize_rows_s8: t_j = x_j * m_j (m = per-channel smoothing multipliers, or 1);
//   amax = max_j |t_j|; row_scale = amax / 127; q_j = round_half_even(t_j * (127 / amax))
//   clamped to [-127, 127]. A row of zeros gives q = 0 and row_scale = 0. So
//   x_j * m_j ~= q_j * row_scale with |error| <= row_scale / 2 (+ float rounding).
// - dequantize_rows: y[r, j] = y[r, j] * row_scale[r] + bias[j].
// - f32_to_bf16: round to nearest even; NaN stays NaN (quiet).
#pragma once
#include <cstddef>
#include <cstdint>

namespace m3 {
namespace qkernels {

// x: rows x k (row stride k), m: k multipliers or nullptr; q: rows x k, row_scale: rows.
void quantize_rows_s8(const float* x, const float* m, size_t rows, size_t k, int8_t* q, float* row_scale);
void quantize_rows_s8_ref(const float* x, const float* m, size_t rows, size_t k, int8_t* q, float* row_scale);

// y: rows x n (row stride n), in place; bias: n floats or nullptr.
void dequantize_rows(float* y, const float* row_scale, const float* bias, size_t rows, size_t n);
void dequantize_rows_ref(float* y, const float* row_scale, const float* bias, size_t rows, size_t n);

// y[i] = bf16(x[i]), n values.
void f32_to_bf16(const float* x, uint16_t* y, size_t n);
void f32_to_bf16_ref(const float* x, uint16_t* y, size_t n);

// y[i] = q[i] * scale (a row of an int8 table with its scale).
void dequantize_s8(const int8_t* q, float scale, float* y, size_t n);
void dequantize_s8_ref(const int8_t* q, float scale, float* y, size_t n);

// y[i] = float(b[i]) (bf16 -> f32, exact).
void bf16_to_f32(const uint16_t* b, float* y, size_t n);
void bf16_to_f32_ref(const uint16_t* b, float* y, size_t n);

}  // namespace qkernels
}  // namespace m3
