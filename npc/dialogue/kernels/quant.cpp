// Weight-only quantized matmuls for the lean decode path (npc/dialogue/kernels/__init__.py says why
// and how it is built): y = x @ w.T with w in llama.cpp's block formats, x float32 quantized on the
// fly to int8 per block of 32 (llama.cpp's q8_0 / q8_1), integer dot products with AVX2's
// maddubs / madd, float32 out. Rows of y (output channels) are split over torch's intra-op threads.
//
// Formats, for w (N, K), K a multiple of 32, block b of row n holding w[n, 32 b .. 32 b + 31]:
//   q4_1: qs (N, K / 2) uint8, byte j of a block = q[j] | q[j + 16] << 4 (q in 0..15);
//         d, m (N, K / 32) float16: w = d * q + m (the default model's layers: its GGUF file's own)
//   q8_0: qs (N, K) int8; d (N, K / 32) float16: w = d * q (its embedding / head)
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace {

constexpr int64_t QK = 32;  // inputs per block
constexpr int64_t TILE = 4;  // input rows that share one load (and unpacking) of a weight block

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float h16(uint16_t h) { return _cvtsh_ss(h); }

// x (M, K) -> qx (M, K) int8, dx (M, K / 32): x ~= dx * qx (round to nearest, |qx| <= 127),
// sx (M, K / 32) = dx * sum(qx) of the block (q4_1's m term needs it): llama.cpp's quantize_row_q8_1.
void quantize_rows(const float* x, int64_t blocks, int8_t* qx, float* dx, float* sx) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t i = 0; i < blocks; ++i) {
    const float* p = x + i * QK;
    __m256 v0 = _mm256_loadu_ps(p), v1 = _mm256_loadu_ps(p + 8);
    __m256 v2 = _mm256_loadu_ps(p + 16), v3 = _mm256_loadu_ps(p + 24);
    __m256 a = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                             _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(a, 1), _mm256_castps256_ps128(a));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float d = amax / 127.0f;
    const __m256 mul = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    const int r = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, mul), r));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, mul), r));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, mul), r));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, mul), r));
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_hadd_epi32(s4, s4);
    s4 = _mm_hadd_epi32(s4, s4);
    __m256i q = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qx + i * QK), _mm256_permutevar8x32_epi32(q, order));
    dx[i] = d;
    sx[i] = d * static_cast<float>(_mm_cvtsi128_si32(s4));
  }
}

// The 32 weights of a q4_1 block as bytes 0..15, in order.
inline __m256i nibbles(const uint8_t* p) {
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
  return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

// Integer dot of 32 unsigned (w, 0..15 or |w|) by 32 signed bytes, as 8 float partial sums.
inline __m256 dot_u8(__m256i u, __m256i s) {
  const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
  return _mm256_cvtepi32_ps(p);
}

struct Input {  // x quantized: qx (M, K), dx and sx (M, K / 32)
  std::vector<int8_t> qx;
  std::vector<float> dx, sx;
  int64_t M, K, nb;
};

Input quantize(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.is_contiguous() && x.device().is_cpu(),
              "npc_quant: x must be a contiguous (rows, K) float32 CPU tensor, got ", x.sizes(), " ",
              x.scalar_type());
  Input in{{}, {}, {}, x.size(0), x.size(1), x.size(1) / QK};
  TORCH_CHECK(in.K % QK == 0, "npc_quant: K = ", in.K, " is not a multiple of 32");
  in.qx.resize(in.M * in.K);
  in.dx.resize(in.M * in.nb);
  in.sx.resize(in.M * in.nb);
  quantize_rows(x.data_ptr<float>(), in.M * in.nb, in.qx.data(), in.dx.data(), in.sx.data());
  return in;
}

void check_weights(const at::Tensor& qs, const at::Tensor& d, int64_t K, int64_t per_row, at::ScalarType t) {
  TORCH_CHECK(qs.dim() == 2 && qs.size(1) == per_row && qs.scalar_type() == t && qs.is_contiguous(),
              "npc_quant: weights ", qs.sizes(), " ", qs.scalar_type(), " do not fit inputs of K = ", K);
  TORCH_CHECK(d.dim() == 2 && d.size(0) == qs.size(0) && d.size(1) == K / QK && d.scalar_type() == at::kHalf &&
                  d.is_contiguous(),
              "npc_quant: scales ", d.sizes(), " ", d.scalar_type(), " do not fit weights ", qs.sizes());
}

// sum over blocks of a[b] * b[b], a float16 (a q4_1 row's mins), b float32 (an input row's sx).
inline float dot_h(const uint16_t* a, const float* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    acc = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i))),
                          _mm256_loadu_ps(b + i), acc);
  float s = hsum(acc);
  for (; i < n; ++i) s += h16(a[i]) * b[i];
  return s;
}

// y[m, n] for the R input rows m0 .. m0 + R - 1 and the output channels n0 .. n1 - 1. R is a
// template argument and the blocks go two at a time (even and odd accumulators, so that one row's
// chain of FMAs does not wait on their latency) so that the accumulators stay in registers.
template <bool Q4, int R>
void rows(const Input& in, int64_t m0, const uint8_t* qs, const uint16_t* d, const uint16_t* mn, int64_t n0,
          int64_t n1, float* y, int64_t N) {
  const int64_t nb = in.nb, row_bytes = Q4 ? in.K / 2 : in.K;
  const int8_t* qx = in.qx.data() + m0 * in.K;
  const float* dx = in.dx.data() + m0 * nb;
  for (int64_t n = n0; n < n1; ++n) {
    __m256 even[R], odd[R];
    for (int r = 0; r < R; ++r) even[r] = odd[r] = _mm256_setzero_ps();
    const uint8_t* w = qs + n * row_bytes;
    const uint16_t* dn = d + n * nb;
    auto block = [&](int64_t b, __m256* acc) {
      const float dw = h16(dn[b]);
      __m256i u, wb = _mm256_setzero_si256();
      if constexpr (Q4) {
        u = nibbles(w + b * (QK / 2));
      } else {
        wb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + b * QK));
        u = _mm256_sign_epi8(wb, wb);  // |w|; x takes w's sign instead
      }
      for (int r = 0; r < R; ++r) {
        __m256i s = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qx + r * in.K + b * QK));
        if constexpr (!Q4) s = _mm256_sign_epi8(s, wb);
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dx[r * nb + b]), dot_u8(u, s), acc[r]);
      }
    };
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) block(b, even), block(b + 1, odd);
    if (b < nb) block(b, even);
    for (int r = 0; r < R; ++r) {
      float v = hsum(_mm256_add_ps(even[r], odd[r]));
      if constexpr (Q4) v += dot_h(mn + n * nb, in.sx.data() + (m0 + r) * nb, nb);
      y[(m0 + r) * N + n] = v;
    }
  }
}

template <bool Q4>
void tile(const Input& in, int64_t m0, const uint8_t* qs, const uint16_t* d, const uint16_t* mn, int64_t n0,
          int64_t n1, float* y, int64_t N) {
  switch (std::min<int64_t>(TILE, in.M - m0)) {
    case 1: return rows<Q4, 1>(in, m0, qs, d, mn, n0, n1, y, N);
    case 2: return rows<Q4, 2>(in, m0, qs, d, mn, n0, n1, y, N);
    case 3: return rows<Q4, 3>(in, m0, qs, d, mn, n0, n1, y, N);
    default: return rows<Q4, 4>(in, m0, qs, d, mn, n0, n1, y, N);
  }
}

template <bool Q4>
at::Tensor mm(const at::Tensor& x, const at::Tensor& qs, const at::Tensor& d, const at::Tensor* mn) {
  const Input in = quantize(x);
  check_weights(qs, d, in.K, Q4 ? in.K / 2 : in.K, Q4 ? at::kByte : at::kChar);
  if (mn) TORCH_CHECK(mn->sizes() == d.sizes() && mn->scalar_type() == at::kHalf && mn->is_contiguous(),
                      "npc_quant: q4_1 mins ", mn->sizes(), " do not fit scales ", d.sizes());
  const int64_t N = qs.size(0);
  at::Tensor y = at::empty({in.M, N}, x.options());
  const auto* w = reinterpret_cast<const uint8_t*>(qs.data_ptr());
  const auto* dp = reinterpret_cast<const uint16_t*>(d.data_ptr());
  const auto* mp = mn ? reinterpret_cast<const uint16_t*>(mn->data_ptr()) : nullptr;
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, N, 16, [&](int64_t n0, int64_t n1) {
    for (int64_t m0 = 0; m0 < in.M; m0 += TILE) tile<Q4>(in, m0, w, dp, mp, n0, n1, yp, N);
  });
  return y;
}

at::Tensor q4_1_mm(const at::Tensor& x, const at::Tensor& qs, const at::Tensor& d, const at::Tensor& m) {
  return mm<true>(x, qs, d, &m);
}

at::Tensor q8_0_mm(const at::Tensor& x, const at::Tensor& qs, const at::Tensor& d) {
  return mm<false>(x, qs, d, nullptr);
}

// x as the kernels see it (dequantized from its int8 blocks): what a test compares against.
at::Tensor q8_input(const at::Tensor& x) {
  const Input in = quantize(x);
  at::Tensor out = at::empty({in.M, in.K}, x.options());
  float* o = out.data_ptr<float>();
  for (int64_t i = 0; i < in.M * in.K; ++i) o[i] = in.dx[i / QK] * static_cast<float>(in.qx[i]);
  return out;
}

// q4_1 weights by float32 inputs, no input quantization: each block dequantized to float32 once
// (d * q + m, shared by the R rows) and multiplied by x with FMAs, so y is x @ w.T for the weights the
// pack holds, up to float32 summation order (as transformers' float32 forward on the GGUF's weights).
// A = 4 accumulators a row for one row (the FMA chains' latency), 2 for more (registers).
template <int R>
void rows_f32(const float* x, int64_t K, int64_t m0, const uint8_t* qs, const uint16_t* d, const uint16_t* mn,
              int64_t n0, int64_t n1, float* y, int64_t N) {
  constexpr int A = R == 1 ? 4 : 2;
  const int64_t nb = K / QK;
  const __m128i low = _mm_set1_epi8(0x0F);
  for (int64_t n = n0; n < n1; ++n) {
    __m256 acc[R][A];
    for (int r = 0; r < R; ++r)
      for (int a = 0; a < A; ++a) acc[r][a] = _mm256_setzero_ps();
    const uint8_t* w = qs + n * (K / 2);
    for (int64_t b = 0; b < nb; ++b) {
      const __m256 dv = _mm256_set1_ps(h16(d[n * nb + b])), mv = _mm256_set1_ps(h16(mn[n * nb + b]));
      const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + b * (QK / 2)));
      const __m128i lo = _mm_and_si128(t, low), hi = _mm_and_si128(_mm_srli_epi16(t, 4), low);
      __m256 wf[4];
      wf[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo)), dv, mv);
      wf[1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8))), dv, mv);
      wf[2] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)), dv, mv);
      wf[3] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8))), dv, mv);
      for (int r = 0; r < R; ++r) {
        const float* xb = x + (m0 + r) * K + b * QK;
        for (int k = 0; k < 4; ++k) acc[r][k % A] = _mm256_fmadd_ps(wf[k], _mm256_loadu_ps(xb + 8 * k), acc[r][k % A]);
      }
    }
    for (int r = 0; r < R; ++r) {
      __m256 s = acc[r][0];
      for (int a = 1; a < A; ++a) s = _mm256_add_ps(s, acc[r][a]);
      y[(m0 + r) * N + n] = hsum(s);
    }
  }
}

at::Tensor q4_1_f32(const at::Tensor& x, const at::Tensor& qs, const at::Tensor& d, const at::Tensor& m) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.is_contiguous() && x.size(1) % QK == 0,
              "npc_quant: x must be a contiguous (rows, K) float32 tensor, K a multiple of 32, got ", x.sizes());
  const int64_t M = x.size(0), K = x.size(1), N = qs.size(0);
  check_weights(qs, d, K, K / 2, at::kByte);
  TORCH_CHECK(m.sizes() == d.sizes() && m.scalar_type() == at::kHalf && m.is_contiguous(),
              "npc_quant: q4_1 mins ", m.sizes(), " do not fit scales ", d.sizes());
  at::Tensor y = at::empty({M, N}, x.options());
  const float* xp = x.data_ptr<float>();
  const auto* w = reinterpret_cast<const uint8_t*>(qs.data_ptr());
  const auto* dp = reinterpret_cast<const uint16_t*>(d.data_ptr());
  const auto* mp = reinterpret_cast<const uint16_t*>(m.data_ptr());
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, N, 16, [&](int64_t n0, int64_t n1) {
    for (int64_t m0 = 0; m0 < M; m0 += TILE) {
      switch (std::min<int64_t>(TILE, M - m0)) {
        case 1: rows_f32<1>(xp, K, m0, w, dp, mp, n0, n1, yp, N); break;
        case 2: rows_f32<2>(xp, K, m0, w, dp, mp, n0, n1, yp, N); break;
        case 3: rows_f32<3>(xp, K, m0, w, dp, mp, n0, n1, yp, N); break;
        default: rows_f32<4>(xp, K, m0, w, dp, mp, n0, n1, yp, N);
      }
    }
  });
  return y;
}

// RMSNorm of each row of x (M, H): x / sqrt(mean(x^2) + eps) * w, float32.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.is_contiguous() && w.is_contiguous() &&
                  w.scalar_type() == at::kFloat && w.numel() == x.size(1),
              "npc_quant.rms_norm: x (rows, H) and w (H,) contiguous float32, got ", x.sizes(), " ", w.sizes());
  const int64_t M = x.size(0), H = x.size(1);
  at::Tensor y = at::empty_like(x);
  const float *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for (int64_t m = 0; m < M; ++m) {
    const float* r = xp + m * H;
    float ss = 0.0f;
    for (int64_t i = 0; i < H; ++i) ss += r[i] * r[i];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(H) + static_cast<float>(eps));
    for (int64_t i = 0; i < H; ++i) yp[m * H + i] = r[i] * inv * wp[i];
  }
  return y;
}

// A decode step's attention for one layer, rows of one token each (lean.py's slab layout):
//   qkv (B, (H + 2 KV) D): q (scaled already), k, v of each row's new token; RoPE applied here to q
//   and k (x * cos + roll(x, D / 2) * sin, sin signed as lean.py makes it), k and v written to the
//   slab at column pos[b]; then each query head attends columns 0 .. pos[b] of its kv head.
//   kv (2, rows, KV, C D): one layer's slab, keys seen (D, C) a head, values (C, D); rows first ..
//   first + B - 1. cos, sin (C, D). Out: (B, H D), float32.
at::Tensor attend(const at::Tensor& qkv, const at::Tensor& kv, int64_t first, const at::Tensor& pos,
                  const at::Tensor& cos, const at::Tensor& sin, int64_t H, int64_t KV) {
  const int64_t B = qkv.size(0), C = cos.size(0), D = cos.size(1), G = H / KV, half = D / 2;
  TORCH_CHECK(qkv.dim() == 2 && qkv.size(1) == (H + 2 * KV) * D && qkv.scalar_type() == at::kFloat &&
                  qkv.is_contiguous() && kv.dim() == 4 && kv.size(0) == 2 && kv.size(2) == KV &&
                  kv.size(3) == C * D && kv.is_contiguous() && kv.scalar_type() == at::kFloat &&
                  first + B <= kv.size(1) && pos.numel() == B && pos.scalar_type() == at::kLong &&
                  cos.is_contiguous() && sin.is_contiguous() && H % KV == 0,
              "npc_quant.attend: shapes do not fit: qkv ", qkv.sizes(), " kv ", kv.sizes(), " cos ", cos.sizes());
  at::Tensor out = at::empty({B, H * D}, qkv.options());
  at::Tensor p = pos.contiguous();
  const int64_t* pp = p.data_ptr<int64_t>();
  float *q = qkv.data_ptr<float>(), *slab = kv.data_ptr<float>(), *o = out.data_ptr<float>();
  const float *cp = cos.data_ptr<float>(), *sp = sin.data_ptr<float>();
  const int64_t rows = kv.size(1), head = C * D;
  at::parallel_for(0, B * KV, 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> s(G * C), t(D);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / KV, k = i % KV, at = pp[b];
      TORCH_CHECK(0 <= at && at < C, "npc_quant.attend: position ", at, " past the slab's columns");
      float* row = q + b * (H + 2 * KV) * D;
      const float *c = cp + at * D, *sn = sp + at * D;
      auto rope = [&](float* x) {
        for (int64_t d = 0; d < D; ++d) t[d] = x[d] * c[d] + x[(d + half) % D] * sn[d];
        for (int64_t d = 0; d < D; ++d) x[d] = t[d];
      };
      for (int64_t g = 0; g < G; ++g) rope(row + (k * G + g) * D);
      float* kk = row + (H + k) * D;
      rope(kk);
      const float* vv = row + (H + KV + k) * D;
      float* keys = slab + ((first + b) * KV + k) * head;  // (D, C)
      float* values = slab + ((rows + first + b) * KV + k) * head;  // (C, D)
      for (int64_t d = 0; d < D; ++d) keys[d * C + at] = kk[d], values[at * D + d] = vv[d];
      const int64_t n = at + 1;  // columns attended
      for (int64_t g = 0; g < G; ++g) {
        const float* qg = row + (k * G + g) * D;
        float* sg = s.data() + g * C;
        for (int64_t j = 0; j < n; ++j) sg[j] = 0.0f;
        for (int64_t d = 0; d < D; ++d) {
          const float qd = qg[d];
          const float* kd = keys + d * C;
          for (int64_t j = 0; j < n; ++j) sg[j] += qd * kd[j];
        }
        float mx = sg[0];
        for (int64_t j = 1; j < n; ++j) mx = std::max(mx, sg[j]);
        float sum = 0.0f;
        for (int64_t j = 0; j < n; ++j) sg[j] = std::exp(sg[j] - mx), sum += sg[j];
        float* og = o + b * H * D + (k * G + g) * D;
        for (int64_t d = 0; d < D; ++d) og[d] = 0.0f;
        for (int64_t j = 0; j < n; ++j) {
          const float w = sg[j] / sum;
          const float* vj = values + j * D;
          for (int64_t d = 0; d < D; ++d) og[d] += w * vj[d];
        }
      }
    }
  });
  return out;
}

// silu(gate) * up of gu (M, 2 I) = [gate | up] -> (M, I).
at::Tensor silu_mul(const at::Tensor& gu) {
  TORCH_CHECK(gu.dim() == 2 && gu.size(1) % 2 == 0 && gu.scalar_type() == at::kFloat && gu.is_contiguous(),
              "npc_quant.silu_mul: gu (rows, 2 I) contiguous float32, got ", gu.sizes());
  const int64_t M = gu.size(0), I = gu.size(1) / 2;
  at::Tensor y = at::empty({M, I}, gu.options());
  const float* g = gu.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for (int64_t m = 0; m < M; ++m)
    for (int64_t i = 0; i < I; ++i) {
      const float a = g[m * 2 * I + i];
      yp[m * I + i] = a / (1.0f + std::exp(-a)) * g[m * 2 * I + I + i];
    }
  return y;
}

}  // namespace

TORCH_LIBRARY(npc_quant, lib) {
  lib.def("q4_1_mm", &q4_1_mm);
  lib.def("q8_0_mm", &q8_0_mm);
  lib.def("q8_input", &q8_input);
  lib.def("q4_1_f32", &q4_1_f32);
  lib.def("rms_norm", &rms_norm);
  lib.def("attend", &attend);
  lib.def("silu_mul", &silu_mul);
}
