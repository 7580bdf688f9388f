// Highway kernels of the quantized paths and their scalar twins (see quant/qkernels.h).
#include "quant/qkernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "quant/qkernels.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include "core/dtype.h"
#include "core/kernels.h"

HWY_BEFORE_NAMESPACE();
namespace m3 {
namespace qkernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(float);

// t = x * m, or x when m is null (scalar, for tails).
HWY_INLINE float Smoothed(const float* x, const float* m, size_t j) { return m ? x[j] * m[j] : x[j]; }

void QuantizeRowsS8(const float* HWY_RESTRICT x, const float* HWY_RESTRICT m, size_t rows, size_t k,
                    int8_t* HWY_RESTRICT q, float* HWY_RESTRICT row_scale) {
  const DF d;
  const hn::Rebind<int8_t, DF> d8;
  const size_t N = hn::Lanes(d);
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * k;
    int8_t* qr = q + r * k;
    VF vmax = hn::Zero(d);
    size_t j = 0;
    if (m) {
      for (; j + N <= k; j += N) vmax = hn::Max(vmax, hn::Abs(hn::Mul(hn::LoadU(d, xr + j), hn::LoadU(d, m + j))));
    } else {
      for (; j + N <= k; j += N) vmax = hn::Max(vmax, hn::Abs(hn::LoadU(d, xr + j)));
    }
    float amax = hn::GetLane(hn::MaxOfLanes(d, vmax));
    for (; j < k; ++j) amax = std::max(amax, std::fabs(Smoothed(xr, m, j)));
    if (!(amax > 0.0f)) {  // zeros (or NaN: never produced by the encoder) quantize to 0
      std::memset(qr, 0, k);
      row_scale[r] = 0.0f;
      continue;
    }
    const float inv = 127.0f / amax;
    row_scale[r] = amax / 127.0f;
    const VF vinv = hn::Set(d, inv), lo = hn::Set(d, -127.0f), hi = hn::Set(d, 127.0f);
    j = 0;
    for (; j + N <= k; j += N) {
      VF t = hn::LoadU(d, xr + j);
      if (m) t = hn::Mul(t, hn::LoadU(d, m + j));
      const VF s = hn::Min(hi, hn::Max(lo, hn::Mul(t, vinv)));
      hn::StoreU(hn::DemoteTo(d8, hn::NearestInt(s)), d8, qr + j);
    }
    for (; j < k; ++j) {
      const float s = std::min(127.0f, std::max(-127.0f, Smoothed(xr, m, j) * inv));
      qr[j] = static_cast<int8_t>(std::nearbyint(s));
    }
  }
}

void DequantizeRows(float* HWY_RESTRICT y, const float* HWY_RESTRICT row_scale, const float* HWY_RESTRICT bias,
                    size_t rows, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  HWY_ALIGN float ybuf[kMaxLanes] = {}, bbuf[kMaxLanes] = {};
  for (size_t r = 0; r < rows; ++r) {
    float* yr = y + r * n;
    const VF vs = hn::Set(d, row_scale[r]);
    size_t j = 0;
    for (; j + N <= n; j += N) {
      const VF v = hn::Mul(hn::LoadU(d, yr + j), vs);
      hn::StoreU(bias ? hn::Add(v, hn::LoadU(d, bias + j)) : v, d, yr + j);
    }
    if (j < n) {  // the tail through a padded vector: the same two roundings (no fused multiply-add)
      std::memcpy(ybuf, yr + j, (n - j) * sizeof(float));
      if (bias) std::memcpy(bbuf, bias + j, (n - j) * sizeof(float));
      const VF v = hn::Mul(hn::Load(d, ybuf), vs);
      hn::Store(bias ? hn::Add(v, hn::Load(d, bbuf)) : v, d, ybuf);
      std::memcpy(yr + j, ybuf, (n - j) * sizeof(float));
    }
  }
}

void F32ToBF16(const float* HWY_RESTRICT x, uint16_t* HWY_RESTRICT y, size_t n) {
  const DF d;
  const hn::RebindToUnsigned<DF> du;
  const hn::RebindToSigned<DF> di;
  const hn::Rebind<uint16_t, DF> d16;
  const size_t N = hn::Lanes(d);
  const auto one = hn::Set(du, 1u), bias = hn::Set(du, 0x7fffu), quiet = hn::Set(du, 0x00400000u);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const VF v = hn::LoadU(d, x + i);
    const auto u = hn::BitCast(du, v);
    const auto rounded = hn::Add(u, hn::Add(bias, hn::And(hn::ShiftRight<16>(u), one)));
    const auto r = hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(v)), hn::Or(u, quiet), rounded);
    hn::StoreU(hn::DemoteTo(d16, hn::BitCast(di, hn::ShiftRight<16>(r))), d16, y + i);
  }
  for (; i < n; ++i) y[i] = m3::f32_to_bf16(x[i]);
}

void DequantizeS8(const int8_t* HWY_RESTRICT q, float scale, float* HWY_RESTRICT y, size_t n) {
  const DF d;
  const hn::Rebind<int32_t, DF> di;
  const hn::Rebind<int8_t, DF> d8;
  const size_t N = hn::Lanes(d);
  const VF vs = hn::Set(d, scale);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    hn::StoreU(hn::Mul(hn::ConvertTo(d, hn::PromoteTo(di, hn::LoadU(d8, q + i))), vs), d, y + i);
  }
  for (; i < n; ++i) y[i] = static_cast<float>(q[i]) * scale;
}

void BF16ToF32(const uint16_t* HWY_RESTRICT b, float* HWY_RESTRICT y, size_t n) {
  const DF d;
  const hn::RebindToUnsigned<DF> du;
  const hn::Rebind<uint16_t, DF> d16;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    hn::StoreU(hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(du, hn::LoadU(d16, b + i)))), d, y + i);
  }
  for (; i < n; ++i) y[i] = m3::bf16_to_f32(b[i]);
}

}  // namespace HWY_NAMESPACE
}  // namespace qkernels
}  // namespace m3
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace m3 {
namespace qkernels {

HWY_EXPORT(QuantizeRowsS8);
HWY_EXPORT(DequantizeRows);
HWY_EXPORT(F32ToBF16);
HWY_EXPORT(DequantizeS8);
HWY_EXPORT(BF16ToF32);

// M3_CPU_TARGET is applied by core/kernels before the first dispatch.
#define M3_DISPATCH(fn) \
  (void)kernels::cpu_target_request(); \
  return HWY_DYNAMIC_DISPATCH(fn)

void quantize_rows_s8(const float* x, const float* m, size_t rows, size_t k, int8_t* q, float* row_scale) {
  M3_DISPATCH(QuantizeRowsS8)(x, m, rows, k, q, row_scale);
}
void dequantize_rows(float* y, const float* row_scale, const float* bias, size_t rows, size_t n) {
  M3_DISPATCH(DequantizeRows)(y, row_scale, bias, rows, n);
}
void f32_to_bf16(const float* x, uint16_t* y, size_t n) { M3_DISPATCH(F32ToBF16)(x, y, n); }
void dequantize_s8(const int8_t* q, float scale, float* y, size_t n) { M3_DISPATCH(DequantizeS8)(q, scale, y, n); }
void bf16_to_f32(const uint16_t* b, float* y, size_t n) { M3_DISPATCH(BF16ToF32)(b, y, n); }
#undef M3_DISPATCH

// ---- scalar twins ------------------------------------------------------------------------

void quantize_rows_s8_ref(const float* x, const float* m, size_t rows, size_t k, int8_t* q, float* row_scale) {
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * k;
    float amax = 0.0f;
    for (size_t j = 0; j < k; ++j) amax = std::max(amax, std::fabs(m ? xr[j] * m[j] : xr[j]));
    if (!(amax > 0.0f)) {
      for (size_t j = 0; j < k; ++j) q[r * k + j] = 0;
      row_scale[r] = 0.0f;
      continue;
    }
    const float inv = 127.0f / amax;
    row_scale[r] = amax / 127.0f;
    for (size_t j = 0; j < k; ++j) {
      const float t = m ? xr[j] * m[j] : xr[j];
      q[r * k + j] = static_cast<int8_t>(std::nearbyint(std::min(127.0f, std::max(-127.0f, t * inv))));
    }
  }
}

void dequantize_rows_ref(float* y, const float* row_scale, const float* bias, size_t rows, size_t n) {
  for (size_t r = 0; r < rows; ++r) {
    for (size_t j = 0; j < n; ++j) {
      const float v = y[r * n + j] * row_scale[r];
      y[r * n + j] = bias ? v + bias[j] : v;
    }
  }
}

void f32_to_bf16_ref(const float* x, uint16_t* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = m3::f32_to_bf16(x[i]);
}

void dequantize_s8_ref(const int8_t* q, float scale, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = static_cast<float>(q[i]) * scale;
}

void bf16_to_f32_ref(const uint16_t* b, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = m3::bf16_to_f32(b[i]);
}

}  // namespace qkernels
}  // namespace m3
#endif  // HWY_ONCE
