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

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
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

struct QView {  // an input quantized per block of 32: qx (M, K), dx and sx (M, K / 32), rows of K
  const int8_t* qx;
  const float *dx, *sx;
  int64_t M, K, nb;
};

struct Input {  // x quantized, owning its buffers
  std::vector<int8_t> qx;
  std::vector<float> dx, sx;
  int64_t M, K, nb;
  QView view() const { return {qx.data(), dx.data(), sx.data(), M, K, nb}; }
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
void rows(const QView& in, int64_t m0, const uint8_t* qs, const uint16_t* d, const uint16_t* mn, int64_t n0,
          int64_t n1, float* y, int64_t N) {
  const int64_t nb = in.nb, row_bytes = Q4 ? in.K / 2 : in.K;
  const int8_t* qx = in.qx + m0 * in.K;
  const float* dx = in.dx + m0 * nb;
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
      if constexpr (Q4) v += dot_h(mn + n * nb, in.sx + (m0 + r) * nb, nb);
      y[(m0 + r) * N + n] = v;
    }
  }
}

template <bool Q4>
void tile(const QView& in, int64_t m0, const uint8_t* qs, const uint16_t* d, const uint16_t* mn, int64_t n0,
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
  const Input held = quantize(x);
  const QView in = held.view();
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

// All M rows of x (row stride K) by output channels n0 .. n1 - 1, in tiles of up to TILE rows.
void f32_tiles(const float* x, int64_t M, int64_t K, const uint8_t* qs, const uint16_t* d, const uint16_t* mn,
               int64_t n0, int64_t n1, float* y, int64_t N) {
  for (int64_t m0 = 0; m0 < M; m0 += TILE) {
    switch (std::min<int64_t>(TILE, M - m0)) {
      case 1: rows_f32<1>(x, K, m0, qs, d, mn, n0, n1, y, N); break;
      case 2: rows_f32<2>(x, K, m0, qs, d, mn, n0, n1, y, N); break;
      case 3: rows_f32<3>(x, K, m0, qs, d, mn, n0, n1, y, N); break;
      default: rows_f32<4>(x, K, m0, qs, d, mn, n0, n1, y, N);
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
  at::parallel_for(0, N, 16, [&](int64_t n0, int64_t n1) { f32_tiles(xp, M, K, w, dp, mp, n0, n1, yp, N); });
  return y;
}

// RMSNorm of one row: x / sqrt(mean(x^2) + eps) * w, float32.
inline void rms_row(const float* r, const float* w, float* y, int64_t H, float eps) {
  float ss = 0.0f;
  for (int64_t i = 0; i < H; ++i) ss += r[i] * r[i];
  const float inv = 1.0f / std::sqrt(ss / static_cast<float>(H) + eps);
  for (int64_t i = 0; i < H; ++i) y[i] = r[i] * inv * w[i];
}

// RMSNorm of each row of x (M, H).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.is_contiguous() && w.is_contiguous() &&
                  w.scalar_type() == at::kFloat && w.numel() == x.size(1),
              "npc_quant.rms_norm: x (rows, H) and w (H,) contiguous float32, got ", x.sizes(), " ", w.sizes());
  const int64_t M = x.size(0), H = x.size(1);
  at::Tensor y = at::empty_like(x);
  const float *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for (int64_t m = 0; m < M; ++m) rms_row(xp + m * H, wp, yp + m * H, H, static_cast<float>(eps));
  return y;
}

// TEAM: the whole step's own threads (Step.team), instead of at::parallel_for's OpenMP regions. A job's chunks
// are claimed one at a time from one atomic ticket (generation | chunks | next), by the caller and by
// at::get_num_threads() - 1 helper threads, and the caller returns when every chunk is done: a helper that
// the scheduler has not run (two busy cores) costs the step nothing unless it holds a claimed chunk, where an
// OpenMP region's end waits for every thread of its team. Helpers spin a little between jobs, then sleep on
// a futex (std::atomic::wait). A chunk must not throw (the checks come before).
class Team {
 public:
  using Chunk = std::function<void(int64_t, int64_t)>;  // (n0, n1)

  // fn over 0 .. N - 1 in chunks of `grain`, on `threads` threads (this one included).
  void run(int64_t N, int64_t grain, int64_t threads, const Chunk& fn) {
    const int64_t chunks = (N + grain - 1) / grain;
    if (threads <= 1 || chunks <= 1) {
      if (N > 0) fn(0, N);
      return;
    }
    TORCH_CHECK(chunks < (1 << 20), "npc_quant: ", chunks, " chunks in one job");
    hire(threads - 1);
    fn_ = &fn;
    n_ = N, grain_ = grain;
    done_.store(0, std::memory_order_relaxed);
    gen_ = (gen_ + 1) & 0xFFFFFF;
    if (gen_ == 0) gen_ = 1;
    ticket_.store((uint64_t(gen_) << 40) | (uint64_t(chunks) << 20), std::memory_order_release);
    signal_.fetch_add(1, std::memory_order_release);
    signal_.notify_all();
    work(gen_);
    for (int spins = 0; done_.load(std::memory_order_acquire) < chunks; ++spins) {
      if (spins < 4000)
        _mm_pause();
      else
        std::this_thread::yield();  // a helper holding a chunk may be waiting for this core
    }
  }

 private:
  std::atomic<uint64_t> ticket_{0};  // generation (24 bits) | chunks (20) | next chunk (20)
  std::atomic<int64_t> done_{0};  // chunks done in this job
  std::atomic<uint32_t> signal_{0};  // bumped at every job: what the helpers sleep on
  const Chunk* fn_ = nullptr;
  int64_t n_ = 0, grain_ = 1;
  uint32_t gen_ = 0;  // the caller's side only
  std::mutex hiring_;
  size_t helpers_ = 0;

  void hire(int64_t want) {
    if (static_cast<int64_t>(helpers_) >= want) return;
    std::lock_guard<std::mutex> lock(hiring_);
    while (static_cast<int64_t>(helpers_) < want) {
      std::thread([this] { help(); }).detach();  // for the process's life, like torch's own pools
      ++helpers_;
    }
  }

  // Claim and run chunks of job `gen` until none is left; fn_, n_, grain_ are read after a claim, which the
  // job's release store made visible and which the caller keeps as they are until the claimed chunk is done.
  void work(uint32_t gen) {
    uint64_t t = ticket_.load(std::memory_order_acquire);
    for (;;) {
      const uint64_t next = t & 0xFFFFF, chunks = (t >> 20) & 0xFFFFF;
      if ((t >> 40) != gen || next >= chunks) return;
      if (!ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      const int64_t n0 = static_cast<int64_t>(next) * grain_;
      (*fn_)(n0, std::min(n_, n0 + grain_));
      done_.fetch_add(1, std::memory_order_release);
      t = ticket_.load(std::memory_order_acquire);
    }
  }

  void help() {
    uint32_t seen = signal_.load(std::memory_order_acquire);
    for (;;) {
      uint32_t now = signal_.load(std::memory_order_acquire);
      for (int spins = 0; now == seen && spins < 4000; ++spins) {  // some tens of us, then sleep
        _mm_pause();
        now = signal_.load(std::memory_order_acquire);
      }
      if (now == seen) {
        signal_.wait(seen, std::memory_order_acquire);
        continue;
      }
      seen = now;
      work(static_cast<uint32_t>(ticket_.load(std::memory_order_acquire) >> 40));
    }
  }
};

Team& team() {
  static Team* t = new Team();  // never destroyed: its helpers live as long as the process
  return *t;
}

// One query head qg (D) over n columns of its kv head: keys (D, C), values (C, D); s: C floats of room; out og (D).
// Each score is its sum over d in order, each output its sum over columns in order, one FMA a term (as g++
// compiled the plain loops before STEP: it contracts a * b + c at -O3 -mfma): the same arithmetic for any
// blocking, so DV (D / 8, in registers: 8 columns of scores, the whole output at once) changes the speed,
// not the numbers. DV = 0: any D, plain loops.
template <int DV>
void attend_head(const float* qg, const float* keys, const float* values, int64_t C, int64_t n, float* sg, float* og,
                 int64_t D = DV * 8) {
  if constexpr (DV > 0) {
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
      __m256 acc = _mm256_setzero_ps();
      for (int64_t d = 0; d < D; ++d)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(qg[d]), _mm256_loadu_ps(keys + d * C + j), acc);
      _mm256_storeu_ps(sg + j, acc);
    }
    for (; j < n; ++j) {
      float acc = 0.0f;
      for (int64_t d = 0; d < D; ++d) acc = std::fma(qg[d], keys[d * C + j], acc);
      sg[j] = acc;
    }
  } else {
    for (int64_t j = 0; j < n; ++j) sg[j] = 0.0f;
    for (int64_t d = 0; d < D; ++d) {
      const float qd = qg[d];
      const float* kd = keys + d * C;
      for (int64_t j = 0; j < n; ++j) sg[j] = std::fma(qd, kd[j], sg[j]);
    }
  }
  float mx = sg[0];
  for (int64_t j = 1; j < n; ++j) mx = std::max(mx, sg[j]);
  float sum = 0.0f;
  for (int64_t j = 0; j < n; ++j) sg[j] = std::exp(sg[j] - mx), sum += sg[j];
  if constexpr (DV > 0) {
    __m256 acc[DV];
    for (int v = 0; v < DV; ++v) acc[v] = _mm256_setzero_ps();
    for (int64_t j = 0; j < n; ++j) {
      const __m256 w = _mm256_set1_ps(sg[j] / sum);
      const float* vj = values + j * D;
      for (int v = 0; v < DV; ++v) acc[v] = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 8 * v), acc[v]);
    }
    for (int v = 0; v < DV; ++v) _mm256_storeu_ps(og + 8 * v, acc[v]);
  } else {
    for (int64_t d = 0; d < D; ++d) og[d] = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      const float w = sg[j] / sum;
      const float* vj = values + j * D;
      for (int64_t d = 0; d < D; ++d) og[d] = std::fma(w, vj[d], og[d]);
    }
  }
}

// One layer's attention for a decode step, rows of one token each (lean.py's slab layout):
//   q (B rows of stride `stride`: q heads (scaled already), then k, then v of the row's new token); RoPE
//   applied here to q and k in place (x * cos + roll(x, D / 2) * sin, sin signed as lean.py makes it),
//   k and v written to the slab at column pos[b]; then each query head attends columns 0 .. pos[b] of
//   its kv head. slab: one layer's (2, rows, KV, C D), keys seen (D, C) a head, values (C, D); rows
//   first .. first + B - 1. cos, sin (C, D). out (B, H D). The query heads are split over the threads.
template <typename Split>  // split(N, grain, fn(n0, n1)): the parallel loop (at::parallel_for or TEAM)
void attention(float* q, int64_t stride, float* slab, int64_t rows, int64_t first, const int64_t* pos, int64_t B,
               const float* cp, const float* sp, int64_t C, int64_t D, int64_t H, int64_t KV, float* o,
               const Split& split) {
  const int64_t G = H / KV, half = D / 2, head = C * D;
  for (int64_t b = 0; b < B; ++b)
    TORCH_CHECK(0 <= pos[b] && pos[b] < C, "npc_quant.attend: position ", pos[b], " past the slab's columns");
  std::vector<float> t(D);
  for (int64_t b = 0; b < B; ++b) {  // RoPE on q and k, k and v into the slab
    const int64_t at = pos[b];
    float* row = q + b * stride;
    const float *c = cp + at * D, *sn = sp + at * D;
    for (int64_t h = 0; h < H + KV; ++h) {
      float* x = row + h * D;
      for (int64_t d = 0; d < D; ++d) t[d] = x[d] * c[d] + x[(d + half) % D] * sn[d];
      for (int64_t d = 0; d < D; ++d) x[d] = t[d];
    }
    for (int64_t k = 0; k < KV; ++k) {
      const float *kk = row + (H + k) * D, *vv = row + (H + KV + k) * D;
      float* keys = slab + ((first + b) * KV + k) * head;  // (D, C)
      float* values = slab + ((rows + first + b) * KV + k) * head;  // (C, D)
      for (int64_t d = 0; d < D; ++d) keys[d * C + at] = kk[d], values[at * D + d] = vv[d];
    }
  }
  split(B * H, 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> s(C);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / H, h = i % H, k = h / G;
      const float* keys = slab + ((first + b) * KV + k) * head;
      const float* values = slab + ((rows + first + b) * KV + k) * head;
      float* og = o + b * H * D + h * D;
      switch (D) {
        case 64: attend_head<8>(q + b * stride + h * D, keys, values, C, pos[b] + 1, s.data(), og); break;
        case 128: attend_head<16>(q + b * stride + h * D, keys, values, C, pos[b] + 1, s.data(), og); break;
        case 32: attend_head<4>(q + b * stride + h * D, keys, values, C, pos[b] + 1, s.data(), og); break;
        case 16: attend_head<2>(q + b * stride + h * D, keys, values, C, pos[b] + 1, s.data(), og); break;
        default: attend_head<0>(q + b * stride + h * D, keys, values, C, pos[b] + 1, s.data(), og, D);
      }
    }
  });
}

// attention() as an op: qkv (B, (H + 2 KV) D) float32 (RoPE'd in place), kv one layer's slab (2, rows, KV, C D),
// cos and sin (C, D); out (B, H D).
at::Tensor attend(const at::Tensor& qkv, const at::Tensor& kv, int64_t first, const at::Tensor& pos,
                  const at::Tensor& cos, const at::Tensor& sin, int64_t H, int64_t KV) {
  const int64_t B = qkv.size(0), C = cos.size(0), D = cos.size(1);
  TORCH_CHECK(qkv.dim() == 2 && qkv.size(1) == (H + 2 * KV) * D && qkv.scalar_type() == at::kFloat &&
                  qkv.is_contiguous() && kv.dim() == 4 && kv.size(0) == 2 && kv.size(2) == KV &&
                  kv.size(3) == C * D && kv.is_contiguous() && kv.scalar_type() == at::kFloat &&
                  first + B <= kv.size(1) && pos.numel() == B && pos.scalar_type() == at::kLong &&
                  cos.is_contiguous() && sin.is_contiguous() && H % KV == 0,
              "npc_quant.attend: shapes do not fit: qkv ", qkv.sizes(), " kv ", kv.sizes(), " cos ", cos.sizes());
  at::Tensor out = at::empty({B, H * D}, qkv.options());
  at::Tensor p = pos.contiguous();
  attention(qkv.data_ptr<float>(), (H + 2 * KV) * D, kv.data_ptr<float>(), kv.size(1), first, p.data_ptr<int64_t>(),
            B, cos.data_ptr<float>(), sin.data_ptr<float>(), C, D, H, KV, out.data_ptr<float>(),
            [](int64_t N, int64_t grain, const Team::Chunk& fn) { at::parallel_for(0, N, grain, fn); });
  return out;
}

inline float silu_times(float a, float u) { return a / (1.0f + std::exp(-a)) * u; }

// silu(gate) * up of gu (M, 2 I) = [gate | up] -> (M, I).
at::Tensor silu_mul(const at::Tensor& gu) {
  TORCH_CHECK(gu.dim() == 2 && gu.size(1) % 2 == 0 && gu.scalar_type() == at::kFloat && gu.is_contiguous(),
              "npc_quant.silu_mul: gu (rows, 2 I) contiguous float32, got ", gu.sizes());
  const int64_t M = gu.size(0), I = gu.size(1) / 2;
  at::Tensor y = at::empty({M, I}, gu.options());
  const float* g = gu.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for (int64_t m = 0; m < M; ++m)
    for (int64_t i = 0; i < I; ++i) yp[m * I + i] = silu_times(g[m * 2 * I + i], g[m * 2 * I + I + i]);
  return y;
}

// STEP: a whole decode step's layers in one call. The packed weights are taken once (Step's constructor,
// from lean.py), so that a step does no per-layer Python and no per-op dispatch: per layer RMSNorm, qkv,
// attention(), o and the residual add, RMSNorm, gate / up with silu * up, down and the residual add; then
// the final RMSNorm. The numbers are the per-op path's (the same kernels, the same order of arithmetic).
// Each matmul is one at::parallel_for over its output channels (torch's intra-op threads).
enum Kind : int64_t { F32 = 0, Q8 = 1, Q80 = 2 };  // q4_1 by float32 inputs, q4_1 by int8 inputs, q8_0

struct Packed {  // one projection's weights (N, K) in a block format
  const uint8_t* qs;
  const uint16_t *d, *m;  // m: q4_1 only
  int64_t N, K;
};

struct Step : torch::CustomClassHolder {
  struct Layer {
    const float *ln1, *ln2;
    Packed qkv, o, gu, down;
  };
  Kind kind;
  int64_t H, KV, D, hidden, inter;
  double eps;
  std::vector<at::Tensor> held;  // keeps every weight alive
  std::vector<Layer> layers;
  int64_t grain = 16;  // output channels a chunk at least (at::parallel_for's grain, TEAM's chunk)
  bool use_team = false;  // TEAM instead of at::parallel_for

  void split(int64_t N, int64_t g, const Team::Chunk& fn) const {
    if (use_team)
      team().run(N, g, at::get_num_threads(), fn);
    else
      at::parallel_for(0, N, g, fn);
  }

  // quant: "q4_1", "q4_1q8" or "q8_0"; weights: per layer ln1, qkv, o, ln2, gate|up, down, each
  // projection as its pack (q4_1: qs, d, m; q8_0: qs, d), then the final norm's weight.
  Step(const std::string& quant, std::vector<at::Tensor> weights, int64_t H_, int64_t KV_, int64_t D_, double eps_)
      : H(H_), KV(KV_), D(D_), eps(eps_), held(std::move(weights)) {
    TORCH_CHECK(quant == "q4_1" || quant == "q4_1q8" || quant == "q8_0",
                "npc_quant.Step: quant must be q4_1, q4_1q8 or q8_0, got ", quant);
    kind = quant == "q4_1" ? F32 : quant == "q4_1q8" ? Q8 : Q80;
    const int64_t per = kind == Q80 ? 2 : 3, size = 2 + 4 * per;
    TORCH_CHECK(H > 0 && KV > 0 && H % KV == 0 && D % 2 == 0, "npc_quant.Step: heads ", H, " and kv heads ", KV,
                " (a divisor of heads), head_dim ", D, " even");
    TORCH_CHECK(held.size() > static_cast<size_t>(size) && held.size() % size == 1, "npc_quant.Step: ", held.size(),
                " weights: expected ", size, " a layer (", quant, ") and the final norm's");
    hidden = held.back().numel();
    TORCH_CHECK(hidden % QK == 0 && (H * D) % QK == 0, "npc_quant.Step: hidden ", hidden, " and heads x head_dim ",
                H * D, " must be multiples of 32");
    for (const auto& t : held)
      TORCH_CHECK(t.device().is_cpu() && t.is_contiguous(), "npc_quant.Step: weights must be contiguous CPU tensors");
    auto norm = [&](const at::Tensor& w, const char* what) {
      TORCH_CHECK(w.scalar_type() == at::kFloat && w.numel() == hidden, "npc_quant.Step: ", what, " ", w.sizes(),
                  " ", w.scalar_type(), ": expected (", hidden, ",) float32");
      return w.data_ptr<float>();
    };
    auto pack = [&](size_t i, int64_t N, int64_t K, const char* what) {
      const at::Tensor &qs = held[i], &d = held[i + 1];
      TORCH_CHECK(qs.dim() == 2 && qs.size(0) == N && qs.size(1) == (kind == Q80 ? K : K / 2) &&
                      qs.scalar_type() == (kind == Q80 ? at::kChar : at::kByte),
                  "npc_quant.Step: ", what, " weights ", qs.sizes(), " ", qs.scalar_type(), " do not fit (", N, ", ",
                  K, ") in ", quant);
      TORCH_CHECK(d.dim() == 2 && d.size(0) == N && d.size(1) == K / QK && d.scalar_type() == at::kHalf,
                  "npc_quant.Step: ", what, " scales ", d.sizes(), " ", d.scalar_type(), " do not fit (", N, ", ",
                  K / QK, ") float16");
      const uint16_t* m = nullptr;
      if (kind != Q80) {
        const at::Tensor& mn = held[i + 2];
        TORCH_CHECK(mn.sizes() == d.sizes() && mn.scalar_type() == at::kHalf, "npc_quant.Step: ", what, " mins ",
                    mn.sizes(), " do not fit its scales ", d.sizes());
        m = reinterpret_cast<const uint16_t*>(mn.data_ptr());
      }
      return Packed{reinterpret_cast<const uint8_t*>(qs.data_ptr()), reinterpret_cast<const uint16_t*>(d.data_ptr()),
                    m, N, K};
    };
    const size_t n = held.size() / size;
    inter = held[2 + 2 * per].size(0) / 2;  // gate | up's rows / 2
    TORCH_CHECK(inter % QK == 0, "npc_quant.Step: intermediate size ", inter, " must be a multiple of 32");
    for (size_t l = 0; l < n; ++l) {
      const size_t i = l * size;
      Layer L;
      L.ln1 = norm(held[i], "input norm");
      L.qkv = pack(i + 1, (H + 2 * KV) * D, hidden, "qkv");
      L.o = pack(i + 1 + per, hidden, H * D, "o");
      L.ln2 = norm(held[i + 1 + 2 * per], "post-attention norm");
      L.gu = pack(i + 2 + 2 * per, 2 * inter, hidden, "gate|up");
      L.down = pack(i + 2 + 3 * per, hidden, inter, "down");
      layers.push_back(L);
    }
    norm(held.back(), "final norm");
  }

  // y (M, ldy) columns n0 .. n1 - 1 = x @ w.T for those channels; q: x quantized (Q8, Q80).
  void product(const Packed& w, const float* x, const QView& q, int64_t M, int64_t n0, int64_t n1, float* y,
               int64_t ldy) const {
    if (kind == F32) return f32_tiles(x, M, w.K, w.qs, w.d, w.m, n0, n1, y, ldy);
    for (int64_t m0 = 0; m0 < M; m0 += TILE) {
      if (kind == Q8)
        tile<true>(q, m0, w.qs, w.d, w.m, n0, n1, y, ldy);
      else
        tile<false>(q, m0, w.qs, w.d, w.m, n0, n1, y, ldy);
    }
  }

  // q4_1_mm (x by a q4_1 pack, x quantized to int8 per block: the same numbers) on the step's threads: the
  // head's quick pass (lean.Head), so that a TEAM step's threads do all of its parallel work.
  at::Tensor quick(at::Tensor x, at::Tensor qs, at::Tensor d, at::Tensor m) const {
    const Input held_x = quantize(x);
    const QView in = held_x.view();
    check_weights(qs, d, in.K, in.K / 2, at::kByte);
    TORCH_CHECK(m.sizes() == d.sizes() && m.scalar_type() == at::kHalf && m.is_contiguous(),
                "npc_quant: q4_1 mins ", m.sizes(), " do not fit scales ", d.sizes());
    const int64_t N = qs.size(0);
    at::Tensor y = at::empty({in.M, N}, x.options());
    const auto* w = reinterpret_cast<const uint8_t*>(qs.data_ptr());
    const auto* dp = reinterpret_cast<const uint16_t*>(d.data_ptr());
    const auto* mp = reinterpret_cast<const uint16_t*>(m.data_ptr());
    float* yp = y.data_ptr<float>();
    split(N, 256, [&](int64_t n0, int64_t n1) {
      for (int64_t m0 = 0; m0 < in.M; m0 += TILE) tile<true>(in, m0, w, dp, mp, n0, n1, yp, N);
    });
    return y;
  }

  // x (B, hidden), float32, updated in place (the residual stream); kv (layers, 2, rows, KV, C D) the slab; rows
  // first .. first + B - 1 at positions pos (B,); cos, sin (C, D). Returns the final RMSNorm of x (B, hidden).
  at::Tensor forward(at::Tensor x, at::Tensor kv, int64_t first, at::Tensor pos, at::Tensor cos, at::Tensor sin) {
    const int64_t B = x.size(0), C = cos.size(0), NL = static_cast<int64_t>(layers.size());
    TORCH_CHECK(x.dim() == 2 && x.size(1) == hidden && x.scalar_type() == at::kFloat && x.is_contiguous(),
                "npc_quant.Step: x ", x.sizes(), " ", x.scalar_type(), ": expected (rows, ", hidden,
                ") contiguous float32");
    TORCH_CHECK(kv.dim() == 5 && kv.size(0) == NL && kv.size(1) == 2 && kv.size(3) == KV && kv.size(4) == C * D &&
                    kv.scalar_type() == at::kFloat && kv.is_contiguous() && 0 <= first && first + B <= kv.size(2),
                "npc_quant.Step: slab ", kv.sizes(), " does not fit ", NL, " layers, ", KV, " kv heads, ", C,
                " columns of ", D, " (rows ", first, " .. ", first + B - 1, ")");
    TORCH_CHECK(cos.sizes() == sin.sizes() && cos.dim() == 2 && cos.size(1) == D && cos.scalar_type() == at::kFloat &&
                    sin.scalar_type() == at::kFloat && cos.is_contiguous() && sin.is_contiguous(),
                "npc_quant.Step: cos ", cos.sizes(), " and sin ", sin.sizes(), ": expected (columns, ", D, ") float32");
    TORCH_CHECK(pos.numel() == B && pos.scalar_type() == at::kLong, "npc_quant.Step: pos ", pos.sizes(), " ",
                pos.scalar_type(), ": expected (", B, ",) int64");
    at::Tensor p = pos.contiguous();
    const int64_t* pp = p.data_ptr<int64_t>();
    const int64_t Q = (H + 2 * KV) * D, A = H * D, rows = kv.size(2), slab = 2 * rows * KV * C * D;
    const int64_t widest = std::max({hidden, A, inter});
    std::vector<float> h(B * widest), qkv(B * Q), a(B * A), gu(B * 2 * inter), act(B * inter), y(B * hidden);
    const int64_t room = kind == F32 ? 0 : B * widest;  // float32 inputs are not quantized
    Input in{std::vector<int8_t>(room), std::vector<float>(room / QK), std::vector<float>(room / QK), B, 0, 0};
    auto quantized = [&](const float* src, int64_t K) {  // src (B, K) as the int8 kernels take it
      if (kind == F32) return QView{nullptr, nullptr, nullptr, B, K, K / QK};
      quantize_rows(src, B * K / QK, in.qx.data(), in.dx.data(), in.sx.data());
      return QView{in.qx.data(), in.dx.data(), in.sx.data(), B, K, K / QK};
    };
    float* xp = x.data_ptr<float>();
    const float f_eps = static_cast<float>(eps);
    // y = src @ w.T, then x += y (the residual add), split over the output channels as the product is.
    auto add_product = [&](const Packed& w, const float* src) {
      const QView q = quantized(src, w.K);
      split(hidden, grain, [&](int64_t n0, int64_t n1) {
        product(w, src, q, B, n0, n1, y.data(), hidden);
        for (int64_t b = 0; b < B; ++b)
          for (int64_t n = n0; n < n1; ++n) xp[b * hidden + n] += y[b * hidden + n];
      });
    };
    for (int64_t l = 0; l < NL; ++l) {
      const Layer& L = layers[l];
      float* kvl = kv.data_ptr<float>() + l * slab;
      for (int64_t b = 0; b < B; ++b) rms_row(xp + b * hidden, L.ln1, h.data() + b * hidden, hidden, f_eps);
      const QView qh = quantized(h.data(), hidden);
      split(Q, grain, [&](int64_t n0, int64_t n1) { product(L.qkv, h.data(), qh, B, n0, n1, qkv.data(), Q); });
      attention(qkv.data(), Q, kvl, rows, first, pp, B, cos.data_ptr<float>(), sin.data_ptr<float>(), C, D, H, KV,
                a.data(), [this](int64_t N, int64_t g, const Team::Chunk& fn) { split(N, g, fn); });
      add_product(L.o, a.data());
      for (int64_t b = 0; b < B; ++b) rms_row(xp + b * hidden, L.ln2, h.data() + b * hidden, hidden, f_eps);
      const QView qg = quantized(h.data(), hidden);
      // gate and up of the same channels on one thread, so that silu * up follows in the same chunk.
      split(inter, grain, [&](int64_t n0, int64_t n1) {
        const int64_t I2 = 2 * inter;
        product(L.gu, h.data(), qg, B, n0, n1, gu.data(), I2);
        product(L.gu, h.data(), qg, B, inter + n0, inter + n1, gu.data(), I2);
        for (int64_t b = 0; b < B; ++b)
          for (int64_t i = n0; i < n1; ++i) act[b * inter + i] = silu_times(gu[b * I2 + i], gu[b * I2 + inter + i]);
      });
      add_product(L.down, act.data());
    }
    at::Tensor out = at::empty_like(x);
    const float* fin = held.back().data_ptr<float>();
    for (int64_t b = 0; b < B; ++b) rms_row(xp + b * hidden, fin, out.data_ptr<float>() + b * hidden, hidden, f_eps);
    return out;
  }
};

}  // namespace

TORCH_LIBRARY(npc_quant, lib) {
  lib.def("q4_1_mm", &q4_1_mm);
  lib.def("q8_0_mm", &q8_0_mm);
  lib.def("q8_input", &q8_input);
  lib.def("q4_1_f32", &q4_1_f32);
  lib.def("rms_norm", &rms_norm);
  lib.def("attend", &attend);
  lib.def("silu_mul", &silu_mul);
  lib.class_<Step>("Step")
      .def(torch::init<std::string, std::vector<at::Tensor>, int64_t, int64_t, int64_t, double>())
      .def("forward", &Step::forward)
      .def("quick", &Step::quick)
      .def("set_grain", [](const c10::intrusive_ptr<Step>& self, int64_t g) { self->grain = std::max<int64_t>(1, g); })
      .def("set_team", [](const c10::intrusive_ptr<Step>& self, bool on) { self->use_team = on; });
}
