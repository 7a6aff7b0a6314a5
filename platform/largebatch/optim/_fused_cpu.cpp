// Fused CPU kernels of LAMB (You et al. 2019, Algorithm 2) and LARS (You et al. 2017, Algorithm 1) for lists of
// float32 contiguous tensors, one call per parameter bucket.
//
// Work is split over the concatenation of the tensors in windows of kWindow elements, so small tensors share a
// work item instead of paying one per tensor. One OpenMP parallel region per call runs them on torch's intra-op
// thread count (torch.set_num_threads), each thread taking a contiguous share of windows; a list too small to be
// worth waking threads for (kGrain windows or fewer) runs on the calling thread. Norms are summed per
// (tensor, window) segment in float over runs of kRun elements, then in double, and combined per tensor in
// segment order: results do not depend on the number of threads.
//
// LAMB (lamb_step) does the whole step in one call, cache block by cache block: a block is a run of consecutive
// tensors of at most kBlockBytes of x, m and v together (a larger tensor is a block of its own). Per block, pass
// 1 updates m and v and sums ‖x‖², ‖u‖², ‖g‖² per segment; the block's trust ratios follow (TrustRule: the rule
// of largebatch/optim/trust_ratio.py, ported); pass 2 applies the step while the block is still in cache. Each
// thread runs pass 2 over its own share of pass 1, backwards (it starts on what it touched last, what is most
// likely still in its caches), and pass 1 keeps u' of the last windows of each share in a per-thread scratch, so
// pass 2 reads x and u' there instead of recomputing u' from x, m and v (the square root and the division make
// that recomputation slow even from cache). From memory this streams about 7 floats per parameter where the
// blocks fit in cache (reads x, g, m, v; writes x, m, v: what Adam needs) and 10 where they do not.
//
// LARS keeps two passes over the whole list: lars_norms returns per-layer norms, Python turns them into trust
// ratios (largebatch/optim/lars.py), lars_apply applies the step (7 floats per parameter).

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <omp.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

namespace {

constexpr int64_t kWindow = 1 << 15;  // elements per work item (128 KiB per stream)
constexpr int64_t kGrain = 8;         // one thread per kGrain work items at most: lists up to 256k elements stay serial
constexpr int64_t kRun = 1 << 10;     // elements summed in float before joining the double sum
// LAMB: x, m and v bytes of a cache block (consecutive small tensors; a larger tensor is a block of its own).
// Measured 2–16 MiB alike on BERT-base and ResNet-18 shapes (2-core AMD EPYC, 1 MiB L2 per core, 32 MiB L3).
constexpr int64_t kBlockBytes = 8 << 20;
// LAMB: windows whose u' pass 1 keeps for pass 2, in all threads together (8 MiB, one buffer per calling thread
// that lives as long as it); a thread keeps the last ceil(kKeptWindows / threads) windows of its share. Covers
// every block of at most kBlockBytes entirely.
constexpr int64_t kKeptWindows = 64;
static_assert(kKeptWindows * kWindow >= kBlockBytes / (3 * sizeof(float)) + kWindow,
              "blocks within the budget must be kept entirely");

using TensorList = std::vector<at::Tensor>;

struct Segment {
  int64_t tensor;
  int64_t begin;
  int64_t end;
};

// Tensors [first_tensor, end_tensor), whose segments make up items [first_item, end_item).
struct Block {
  int64_t first_tensor;
  int64_t end_tensor;
  int64_t first_item;
  int64_t end_item;
};

// Segments cut at multiples of kWindow elements from the start of their block; item i spans segments
// [starts[i], starts[i + 1]). A block gathers consecutive tensors up to block_elements in all; a larger tensor is
// a block of its own.
struct Plan {
  std::vector<Segment> segments;
  std::vector<int64_t> starts;
  std::vector<Block> blocks;
};

Plan make_plan(const TensorList& tensors, int64_t block_elements) {
  Plan plan;
  int64_t offset = 0;  // elements of the current block so far
  for (int64_t t = 0; t < static_cast<int64_t>(tensors.size()); ++t) {
    const int64_t n = tensors[t].numel();
    if (plan.blocks.empty() || (offset > 0 && offset + n > block_elements)) {
      const int64_t items = static_cast<int64_t>(plan.starts.size());
      if (!plan.blocks.empty()) {
        plan.blocks.back().end_item = items;
      }
      plan.blocks.push_back({t, t, items, items});
      offset = 0;
    }
    plan.blocks.back().end_tensor = t + 1;
    for (int64_t pos = 0; pos < n;) {
      if (offset % kWindow == 0) {
        plan.starts.push_back(static_cast<int64_t>(plan.segments.size()));
      }
      const int64_t take = std::min(n - pos, kWindow - offset % kWindow);
      plan.segments.push_back({t, pos, pos + take});
      pos += take;
      offset += take;
    }
  }
  if (!plan.blocks.empty()) {
    plan.blocks.back().end_item = static_cast<int64_t>(plan.starts.size());
  }
  plan.starts.push_back(static_cast<int64_t>(plan.segments.size()));
  return plan;
}

int64_t items(const Plan& plan) {
  return static_cast<int64_t>(plan.starts.size()) - 1;
}

// Threads for a plan: torch's intra-op count, but no more than one per kGrain items (1: serial).
int threads_for(const Plan& plan) {
  const int64_t most = (items(plan) + kGrain - 1) / kGrain;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), most)));
}

// Part `part` of `parts` contiguous shares of items [first, end), of sizes differing by at most one.
std::pair<int64_t, int64_t> share(int64_t first, int64_t end, int part, int parts) {
  const int64_t size = (end - first) / parts, extra = (end - first) % parts;
  const int64_t begin = first + part * size + std::min<int64_t>(part, extra);
  return {begin, begin + size + (part < extra ? 1 : 0)};
}

// Runs body(segment_index, segment) over every segment, each thread over its share of the windows.
template <typename Body>
void run(const Plan& plan, const Body& body) {
  const int threads = threads_for(plan);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const auto [lo, hi] = share(0, items(plan), omp_get_thread_num(), omp_get_num_threads());
    for (int64_t item = lo; item < hi; ++item) {
      for (int64_t s = plan.starts[item]; s < plan.starts[item + 1]; ++s) {
        body(s, plan.segments[s]);
      }
    }
  }
}

// Per-tensor sums of the per-segment partial sums (K per segment), in segment order.
std::vector<double> per_tensor(const Plan& plan, const std::vector<double>& partial, int64_t tensors, int K) {
  std::vector<double> sums(tensors * K, 0.0);
  for (size_t s = 0; s < plan.segments.size(); ++s) {
    for (int k = 0; k < K; ++k) {
      sums[k * tensors + plan.segments[s].tensor] += partial[s * K + k];
    }
  }
  return sums;
}

// The first `rows` rows of per-tensor sums of squares as a [rows, n] float32 tensor of norms.
at::Tensor norms(const std::vector<double>& sums, int64_t n, int64_t rows) {
  at::Tensor out = at::empty({rows, n}, at::TensorOptions().dtype(at::kFloat));
  float* o = out.data_ptr<float>();
  for (int64_t i = 0; i < rows * n; ++i) {
    o[i] = static_cast<float>(std::sqrt(sums[i]));
  }
  return out;
}

bool fusable(const TensorList& tensors, const TensorList& like) {
  if (tensors.size() != like.size()) {
    return false;
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& t = tensors[i];
    if (!t.defined() || !t.device().is_cpu() || t.scalar_type() != at::kFloat || !t.is_contiguous() ||
        t.numel() != like[i].numel()) {
      return false;
    }
  }
  return true;
}

void check(bool ok, const char* what) {
  TORCH_CHECK(ok, "largebatch fused CPU kernel: ", what);
}

std::vector<float*> pointers(const TensorList& tensors) {
  std::vector<float*> out;
  out.reserve(tensors.size());
  for (const at::Tensor& t : tensors) {
    out.push_back(t.data_ptr<float>());
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Element loops. Each takes the pointers of one segment as restrict parameters (so the compiler knows the streams
// do not alias anything, which it cannot prove for pointers loaded inside the parallel region) and vectorizes
// with `omp simd`; norms are summed in float over kRun elements, then in double.

// a·b + c, fused where the target has FMA. LAMB computes u' and the step in two loops each (kept and
// recomputed); spelling the fusion out gives both loops the same bits whatever the compiler contracts.
inline float madd(float a, float b, float c) {
#ifdef __FMA__
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

struct LambConstants {
  float grad_scale;  // s: NVLAMB's 1 / max(1, ‖g‖_global / bound), else 1
  float one_minus_beta1;
  float beta2;
  float one_minus_beta2;
  float eps_hat;        // ε·sqrt(1 − β2^t)
  float wd_in_update;   // λ / c inside the ratio (paper), 0 when decoupled
};

// LAMB's Adam direction with bias correction folded out: u' = m / (sqrt(v) + eps_hat) + wd_u·x.
inline float lamb_direction(float m, float v, float x, const LambConstants& k) {
  return madd(k.wd_in_update, x, m / (std::sqrt(v) + k.eps_hat));
}

// x ← decay·x + step·u'.
inline float lamb_update(float x, float u, float decay, float step) {
  return madd(step, u, decay * x);
}

// Pass 1: m ← m + (1−β1)(s·g − m), v ← β2·v + (1−β2)(s·g)²; sums[0..2] = Σx², Σu'², Σg² (raw g); with Keep
// also u' into `kept`.
template <bool Keep>
void lamb_moments_segment(const float* __restrict__ x, const float* __restrict__ g, float* __restrict__ m,
                          float* __restrict__ v, float* __restrict__ kept, int64_t n, LambConstants k,
                          double* sums) {
  double sx = 0.0, su = 0.0, sg = 0.0;
  for (int64_t lo = 0; lo < n; lo += kRun) {
    const int64_t hi = std::min(n, lo + kRun);
    float bx = 0.f, bu = 0.f, bg = 0.f;
#pragma omp simd reduction(+ : bx, bu, bg)
    for (int64_t i = lo; i < hi; ++i) {
      const float scaled = k.grad_scale * g[i];
      const float mi = m[i] + k.one_minus_beta1 * (scaled - m[i]);
      const float vi = k.beta2 * v[i] + k.one_minus_beta2 * scaled * scaled;
      m[i] = mi;
      v[i] = vi;
      const float u = lamb_direction(mi, vi, x[i], k);
      if constexpr (Keep) {
        kept[i] = u;
      }
      bx += x[i] * x[i];
      bu += u * u;
      bg += g[i] * g[i];
    }
    sx += bx;
    su += bu;
    sg += bg;
  }
  sums[0] = sx;
  sums[1] = su;
  sums[2] = sg;
}

// Pass 2 with u' recomputed from the new m, v and the old x.
void lamb_apply_segment(float* __restrict__ x, const float* __restrict__ m, const float* __restrict__ v, int64_t n,
                        LambConstants k, float decay, float step) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    x[i] = lamb_update(x[i], lamb_direction(m[i], v[i], x[i], k), decay, step);
  }
}

// Pass 2 with the u' that pass 1 kept.
void lamb_apply_kept_segment(float* __restrict__ x, const float* __restrict__ kept, int64_t n, float decay,
                             float step) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    x[i] = lamb_update(x[i], kept[i], decay, step);
  }
}

// sums[0..2] = Σw², Σg², Σ(g + β·w)² (the last only when asked).
void lars_norms_segment(const float* __restrict__ w, const float* __restrict__ g, int64_t n, float wd,
                        bool direction_norm, double* sums) {
  double sw = 0.0, sg = 0.0, sd = 0.0;
  for (int64_t lo = 0; lo < n; lo += kRun) {
    const int64_t hi = std::min(n, lo + kRun);
    float bw = 0.f, bg = 0.f, bd = 0.f;
    if (direction_norm) {
#pragma omp simd reduction(+ : bw, bg, bd)
      for (int64_t i = lo; i < hi; ++i) {
        const float d = g[i] + wd * w[i];
        bw += w[i] * w[i];
        bg += g[i] * g[i];
        bd += d * d;
      }
    } else {
#pragma omp simd reduction(+ : bw, bg)
      for (int64_t i = lo; i < hi; ++i) {
        bw += w[i] * w[i];
        bg += g[i] * g[i];
      }
    }
    sw += bw;
    sg += bg;
    sd += bd;
  }
  sums[0] = sw;
  sums[1] = sg;
  sums[2] = sd;
}

// d = g + β·w; with a momentum buffer b: b ← μ·b + a·d, w ← w − direct·d − buffer_step·b; without: w ← w − direct·d.
void lars_apply_segment(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ b, int64_t n,
                        float wd, float mu, float a, float direct, float buffer_step) {
  if (b != nullptr) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float d = g[i] + wd * w[i];
      const float bi = mu * b[i] + a * d;
      b[i] = bi;
      w[i] = w[i] - direct * d - buffer_step * bi;
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      w[i] = w[i] - direct * (g[i] + wd * w[i]);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Entry points: one call per parameter bucket.

using Bounds = std::optional<std::tuple<std::optional<double>, std::optional<double>>>;

// torch.clamp(value, low, high) in float: NaN stays NaN, and high wins where low > high.
float clamp(float value, const Bounds& bounds) {
  if (bounds.has_value()) {
    const auto& [low, high] = *bounds;
    if (low.has_value() && value < static_cast<float>(*low)) {
      value = static_cast<float>(*low);
    }
    if (high.has_value() && value > static_cast<float>(*high)) {
      value = static_cast<float>(*high);
    }
  }
  return value;
}

// LAMB's trust ratio φ(‖x‖)/‖u‖ (Algorithm 2) as largebatch.optim.trust_ratio.trust_ratio computes it in float32
// for LAMB (coefficient 1, eps 0): φ = clamp(‖x‖, weight_norm_bounds); 1 where ‖x‖ or ‖u‖ is not > 0 (a
// zero-initialised layer, a NaN norm); then clamp(ratio, ratio_bounds) (trust_clip is ratio_bounds' upper 1).
// 1 in groups with adapt=False.
struct TrustRule {
  bool adapt;
  Bounds weight_norm_bounds;
  Bounds ratio_bounds;

  float operator()(float weight_norm, float update_norm) const {
    if (!adapt) {
      return 1.0f;
    }
    const float ratio =
        weight_norm > 0 && update_norm > 0 ? clamp(weight_norm, weight_norm_bounds) / update_norm : 1.0f;
    return clamp(ratio, ratio_bounds);
  }
};

// Room for `elements` floats where pass 1 keeps u' for pass 2, one buffer per calling thread, reused by every
// call (fresh memory would cost page faults each step); allocated before the parallel region, so running out
// of memory raises MemoryError instead of ending the process.
float* kept_scratch(int64_t elements) {
  static thread_local std::unique_ptr<float[]> buffer;
  static thread_local int64_t size = 0;
  if (size < elements) {
    buffer.reset(new float[elements]);  // not zero-filled: pages are touched only as pass 1 writes them
    size = elements;
  }
  return buffer.get();
}

// One LAMB step (Algorithm 2) on a bucket, block by block (see the top of this file). Bias correction is folded
// out as in LAMB._update: u' = m / (sqrt(v) + eps_hat) + wd_u·x = u / c, so ‖u‖ = c·‖u'‖ and the step is
// x ← decay·x − η·c·ratio·u'. Returns [‖x‖, ‖u‖, ratio, η·ratio, ‖g‖] per tensor as a [5, n] float32 tensor
// (the fields of LayerStats in order), or None, touching nothing, when some tensor is not float32 contiguous CPU.
std::optional<at::Tensor> lamb_step(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                                    const TensorList& exp_avg_sqs, const std::optional<at::Tensor>& grad_scale,
                                    double beta1, double beta2, double eps_hat, double wd_u, double c, double lr,
                                    double decay, bool adapt, const Bounds& weight_norm_bounds,
                                    const Bounds& ratio_bounds) {
  if (!fusable(params, params) || !fusable(grads, params) || !fusable(exp_avgs, params) ||
      !fusable(exp_avg_sqs, params)) {
    return std::nullopt;
  }
  if (grad_scale.has_value()) {
    check(grad_scale->device().is_cpu() && grad_scale->scalar_type() == at::kFloat && grad_scale->numel() == 1,
          "grad_scale must be one float32 CPU value");
  }
  const LambConstants k{grad_scale.has_value() ? *grad_scale->data_ptr<float>() : 1.0f,
                        static_cast<float>(1.0 - beta1), static_cast<float>(beta2),
                        static_cast<float>(1.0 - beta2), static_cast<float>(eps_hat), static_cast<float>(wd_u)};
  const TrustRule rule{adapt, weight_norm_bounds, ratio_bounds};
  const float lr_f = static_cast<float>(lr), step_scale = static_cast<float>(-lr * c);
  const float keep = static_cast<float>(decay);
  const int64_t n = static_cast<int64_t>(params.size());
  const auto x = pointers(params), g = pointers(grads), m = pointers(exp_avgs), v = pointers(exp_avg_sqs);
  const Plan plan = make_plan(params, kBlockBytes / (3 * sizeof(float)));
  const int threads = threads_for(plan);
  std::vector<double> partial(plan.segments.size() * 3), sums(n * 3, 0.0);
  std::vector<float> steps(n);
  at::Tensor stats = at::empty({5, n}, at::TensorOptions().dtype(at::kFloat));
  float* out = stats.data_ptr<float>();
  // parts·ceil(kKeptWindows / parts) windows for any team size parts ≤ threads
  float* const scratch = kept_scratch((kKeptWindows + threads) * kWindow);

  pybind11::gil_scoped_release no_gil;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int part = omp_get_thread_num(), parts = omp_get_num_threads();
    const int64_t kept = (kKeptWindows + parts - 1) / parts;  // windows this thread keeps u' of
    float* const mine = scratch + part * kept * kWindow;
    for (const Block& block : plan.blocks) {
      const auto [lo, hi] = share(block.first_item, block.end_item, part, parts);
      // u' of item i, one of the last `kept` of the share, lives at mine[(hi − 1 − i)·kWindow ...].
      auto kept_at = [&](int64_t item) { return hi - 1 - item < kept ? mine + (hi - 1 - item) * kWindow : nullptr; };
      for (int64_t item = lo; item < hi; ++item) {  // pass 1
        float* u = kept_at(item);
        for (int64_t s = plan.starts[item]; s < plan.starts[item + 1]; ++s) {
          const Segment& seg = plan.segments[s];
          const int64_t t = seg.tensor, o = seg.begin, len = seg.end - o;
          if (u != nullptr) {
            lamb_moments_segment<true>(x[t] + o, g[t] + o, m[t] + o, v[t] + o, u, len, k, &partial[s * 3]);
            u += len;
          } else {
            lamb_moments_segment<false>(x[t] + o, g[t] + o, m[t] + o, v[t] + o, nullptr, len, k, &partial[s * 3]);
          }
        }
      }
#pragma omp barrier
#pragma omp single
      {  // the block's norms, trust ratios and steps (the implied barrier publishes them)
        for (int64_t s = plan.starts[block.first_item]; s < plan.starts[block.end_item]; ++s) {
          for (int j = 0; j < 3; ++j) {
            sums[j * n + plan.segments[s].tensor] += partial[s * 3 + j];
          }
        }
        for (int64_t t = block.first_tensor; t < block.end_tensor; ++t) {
          const float weight_norm = static_cast<float>(std::sqrt(sums[t]));
          const float update_norm = static_cast<float>(c * std::sqrt(sums[n + t]));
          const float ratio = rule(weight_norm, update_norm);
          out[t] = weight_norm;
          out[n + t] = update_norm;
          out[2 * n + t] = ratio;
          out[3 * n + t] = lr_f * ratio;
          out[4 * n + t] = static_cast<float>(std::sqrt(sums[2 * n + t]));
          steps[t] = step_scale * ratio;
        }
      }
      for (int64_t item = hi - 1; item >= lo; --item) {  // pass 2, backwards; no barrier before the next block
        const float* u = kept_at(item);
        for (int64_t s = plan.starts[item]; s < plan.starts[item + 1]; ++s) {
          const Segment& seg = plan.segments[s];
          const int64_t t = seg.tensor, o = seg.begin, len = seg.end - o;
          if (u != nullptr) {
            lamb_apply_kept_segment(x[t] + o, u, len, keep, steps[t]);
            u += len;
          } else {
            lamb_apply_segment(x[t] + o, m[t] + o, v[t] + o, len, k, keep, steps[t]);
          }
        }
      }
    }
  }
  return stats;
}

// LARS (Algorithm 1) pass 1: per tensor ‖w‖, ‖g‖ and, when asked, ‖g + β·w‖ as a [2 or 3, n] tensor.
// Returns None when some tensor is not float32 contiguous CPU.
std::optional<at::Tensor> lars_norms(const TensorList& params, const TensorList& grads, double weight_decay,
                                     bool direction_norm) {
  if (!fusable(params, params) || !fusable(grads, params)) {
    return std::nullopt;
  }
  const int64_t n = static_cast<int64_t>(params.size());
  const float wd = static_cast<float>(weight_decay);
  const auto w = pointers(params), g = pointers(grads);
  const Plan plan = make_plan(params, std::numeric_limits<int64_t>::max());
  std::vector<double> partial(plan.segments.size() * 3, 0.0);
  {
    pybind11::gil_scoped_release no_gil;
    run(plan, [&](int64_t index, const Segment& seg) {
      const int64_t t = seg.tensor, o = seg.begin;
      lars_norms_segment(w[t] + o, g[t] + o, seg.end - o, wd, direction_norm, &partial[index * 3]);
    });
  }
  const std::vector<double> sums = per_tensor(plan, partial, n, 3);
  return norms(sums, n, direction_norm ? 3 : 2);
}

// LARS pass 2 with per-layer coefficients a_l = coefficients[0][l] (into the buffer) and
// direct_l = coefficients[1][l] (straight onto w): see lars_apply_segment.
void lars_apply(const TensorList& params, const TensorList& grads, const TensorList& buffers,
                const at::Tensor& coefficients, double weight_decay, double momentum, double buffer_step) {
  const bool has_buffers = !buffers.empty();
  check(fusable(params, params) && fusable(grads, params) && (!has_buffers || fusable(buffers, params)),
        "params, grads and momentum buffers must be float32 contiguous CPU tensors of equal sizes");
  const int64_t n = static_cast<int64_t>(params.size());
  check(coefficients.device().is_cpu() && coefficients.scalar_type() == at::kFloat &&
            coefficients.is_contiguous() && coefficients.numel() == 2 * n,
        "coefficients must be a float32 contiguous CPU tensor of shape [2, n]");
  const float* coef = coefficients.data_ptr<float>();
  const float wd = static_cast<float>(weight_decay), mu = static_cast<float>(momentum);
  const float step = static_cast<float>(buffer_step);
  const auto w = pointers(params), g = pointers(grads);
  const auto b = has_buffers ? pointers(buffers) : std::vector<float*>{};
  const Plan plan = make_plan(params, std::numeric_limits<int64_t>::max());
  pybind11::gil_scoped_release no_gil;
  run(plan, [&](int64_t, const Segment& seg) {
    const int64_t t = seg.tensor, o = seg.begin;
    lars_apply_segment(w[t] + o, g[t] + o, has_buffers ? b[t] + o : nullptr, seg.end - o, wd, mu, coef[t],
                       coef[n + t], step);
  });
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.doc() = "largebatch: fused CPU kernels of LAMB and LARS";
  module.def("lamb_step", &lamb_step);
  module.def("lars_norms", &lars_norms);
  module.def("lars_apply", &lars_apply);
  module.attr("LAMB_BLOCK_BYTES") = kBlockBytes;
  module.attr("LAMB_KEPT_ELEMENTS") = kKeptWindows * kWindow;
}
