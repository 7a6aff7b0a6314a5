// Fused CPU streaming passes of LAMB (You et al. 2019, Algorithm 2) and LARS (You et al. 2017, Algorithm 1).
//
// Each optimizer step is two passes over a list of float32 contiguous tensors; the trust ratio between them
// is computed in Python (largebatch/optim/trust_ratio.py) on the small per-layer norm vectors that pass 1
// returns, and pass 2 reads the resulting per-layer coefficients from a float32 CPU tensor.
//
// Work is split over the concatenation of all tensors of the list in windows of kWindow elements, so small
// tensors share a work item instead of paying one per tensor, and at::parallel_for (torch's intra-op pool,
// sized by torch.set_num_threads) runs the windows; a list too small to be worth waking threads for (a few
// hundred kB) runs on the calling thread. Norms are summed per (tensor, window) segment in float
// over short blocks, then in double, and combined per tensor in a fixed order: results do not depend on the
// number of threads.

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

namespace {

constexpr int64_t kWindow = 1 << 15;  // elements per work item (128 KiB per stream)
constexpr int64_t kGrain = 8;         // work items a thread gets at least: lists under 256k elements stay serial
constexpr int64_t kBlock = 1 << 10;   // elements summed in float before joining the double sum

using TensorList = std::vector<at::Tensor>;

struct Segment {
  int64_t tensor;
  int64_t begin;
  int64_t end;
};

// Segments of the concatenated tensors cut at multiples of kWindow; item i spans segments
// [starts[i], starts[i + 1]).
struct Plan {
  std::vector<Segment> segments;
  std::vector<int64_t> starts;
};

Plan make_plan(const TensorList& tensors) {
  Plan plan;
  int64_t offset = 0;
  for (int64_t t = 0; t < static_cast<int64_t>(tensors.size()); ++t) {
    const int64_t n = tensors[t].numel();
    int64_t pos = 0;
    while (pos < n) {
      if (offset % kWindow == 0) {
        plan.starts.push_back(static_cast<int64_t>(plan.segments.size()));
      }
      const int64_t take = std::min(n - pos, kWindow - offset % kWindow);
      plan.segments.push_back({t, pos, pos + take});
      pos += take;
      offset += take;
    }
  }
  plan.starts.push_back(static_cast<int64_t>(plan.segments.size()));
  return plan;
}

// Runs body(segment_index, segment) over every segment, windows in parallel.
template <typename Body>
void run(const Plan& plan, const Body& body) {
  const int64_t items = static_cast<int64_t>(plan.starts.size()) - 1;
  at::parallel_for(0, items, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t item = lo; item < hi; ++item) {
      for (int64_t s = plan.starts[item]; s < plan.starts[item + 1]; ++s) {
        body(s, plan.segments[s]);
      }
    }
  });
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

// A [rows, n] float32 tensor of scale_r·sqrt(sum).
at::Tensor norms(const std::vector<double>& sums, int64_t n, const std::vector<double>& scales) {
  const int64_t rows = static_cast<int64_t>(scales.size());
  at::Tensor out = at::empty({rows, n}, at::TensorOptions().dtype(at::kFloat));
  float* o = out.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < n; ++i) {
      o[r * n + i] = static_cast<float>(scales[r] * std::sqrt(sums[r * n + i]));
    }
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
// do not alias anything, which it cannot prove for pointers loaded inside the parallel lambda) and vectorizes
// with `omp simd`; norms are summed in float over kBlock elements, then in double.

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
  return m / (std::sqrt(v) + k.eps_hat) + k.wd_in_update * x;
}

// m ← m + (1−β1)(s·g − m), v ← β2·v + (1−β2)(s·g)²; sums[0..2] = Σx², Σu'², Σg² (raw g).
void lamb_moments_segment(const float* __restrict__ x, const float* __restrict__ g, float* __restrict__ m,
                          float* __restrict__ v, int64_t n, LambConstants k, double* sums) {
  double sx = 0.0, su = 0.0, sg = 0.0;
  for (int64_t lo = 0; lo < n; lo += kBlock) {
    const int64_t hi = std::min(n, lo + kBlock);
    float bx = 0.f, bu = 0.f, bg = 0.f;
#pragma omp simd reduction(+ : bx, bu, bg)
    for (int64_t i = lo; i < hi; ++i) {
      const float scaled = k.grad_scale * g[i];
      const float mi = m[i] + k.one_minus_beta1 * (scaled - m[i]);
      const float vi = k.beta2 * v[i] + k.one_minus_beta2 * scaled * scaled;
      m[i] = mi;
      v[i] = vi;
      const float u = lamb_direction(mi, vi, x[i], k);
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

// x ← decay·x + step·u'.
void lamb_apply_segment(float* __restrict__ x, const float* __restrict__ m, const float* __restrict__ v, int64_t n,
                        LambConstants k, float decay, float step) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    x[i] = decay * x[i] + step * lamb_direction(m[i], v[i], x[i], k);
  }
}

// sums[0..2] = Σw², Σg², Σ(g + β·w)² (the last only when asked).
void lars_norms_segment(const float* __restrict__ w, const float* __restrict__ g, int64_t n, float wd,
                        bool direction_norm, double* sums) {
  double sw = 0.0, sg = 0.0, sd = 0.0;
  for (int64_t lo = 0; lo < n; lo += kBlock) {
    const int64_t hi = std::min(n, lo + kBlock);
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

// LAMB (Algorithm 2) pass 1: the moments, then per tensor ‖x‖, ‖u‖ = c·‖u'‖ and ‖g‖ as a [3, n] tensor.
// Returns None (and touches nothing) when some tensor is not float32 contiguous CPU.
std::optional<at::Tensor> lamb_moments_and_norms(
    const TensorList& params, const TensorList& grads, const TensorList& exp_avgs, const TensorList& exp_avg_sqs,
    const std::optional<at::Tensor>& grad_scale, double beta1, double beta2, double eps_hat, double wd_u,
    double c) {
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
  const int64_t n = static_cast<int64_t>(params.size());
  const auto x = pointers(params), g = pointers(grads), m = pointers(exp_avgs), v = pointers(exp_avg_sqs);
  const Plan plan = make_plan(params);
  std::vector<double> partial(plan.segments.size() * 3, 0.0);
  {
    pybind11::gil_scoped_release no_gil;
    run(plan, [&](int64_t index, const Segment& seg) {
      const int64_t t = seg.tensor, o = seg.begin;
      lamb_moments_segment(x[t] + o, g[t] + o, m[t] + o, v[t] + o, seg.end - o, k, &partial[index * 3]);
    });
  }
  return norms(per_tensor(plan, partial, n, 3), n, {1.0, c, 1.0});
}

// LAMB pass 2: x ← decay·x + step_l·u', u' recomputed from the new m, v and the old x (step_l = −η·c·ratio_l).
void lamb_apply(const TensorList& params, const TensorList& exp_avgs, const TensorList& exp_avg_sqs,
                const at::Tensor& step, double eps_hat, double wd_u, double decay) {
  check(fusable(params, params) && fusable(exp_avgs, params) && fusable(exp_avg_sqs, params),
        "params and moments must be float32 contiguous CPU tensors of equal sizes");
  check(step.device().is_cpu() && step.scalar_type() == at::kFloat && step.is_contiguous() &&
            step.numel() == static_cast<int64_t>(params.size()),
        "step must be a float32 CPU tensor with one value per param");
  const float* steps = step.data_ptr<float>();
  const LambConstants k{1.0f, 0.0f, 0.0f, 0.0f, static_cast<float>(eps_hat), static_cast<float>(wd_u)};
  const float keep = static_cast<float>(decay);
  const auto x = pointers(params), m = pointers(exp_avgs), v = pointers(exp_avg_sqs);
  const Plan plan = make_plan(params);
  pybind11::gil_scoped_release no_gil;
  run(plan, [&](int64_t, const Segment& seg) {
    const int64_t t = seg.tensor, o = seg.begin;
    lamb_apply_segment(x[t] + o, m[t] + o, v[t] + o, seg.end - o, k, keep, steps[t]);
  });
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
  const Plan plan = make_plan(params);
  std::vector<double> partial(plan.segments.size() * 3, 0.0);
  {
    pybind11::gil_scoped_release no_gil;
    run(plan, [&](int64_t index, const Segment& seg) {
      const int64_t t = seg.tensor, o = seg.begin;
      lars_norms_segment(w[t] + o, g[t] + o, seg.end - o, wd, direction_norm, &partial[index * 3]);
    });
  }
  const std::vector<double> sums = per_tensor(plan, partial, n, 3);
  return norms(sums, n, direction_norm ? std::vector<double>{1.0, 1.0, 1.0} : std::vector<double>{1.0, 1.0});
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
  const Plan plan = make_plan(params);
  pybind11::gil_scoped_release no_gil;
  run(plan, [&](int64_t, const Segment& seg) {
    const int64_t t = seg.tensor, o = seg.begin;
    lars_apply_segment(w[t] + o, g[t] + o, has_buffers ? b[t] + o : nullptr, seg.end - o, wd, mu, coef[t],
                       coef[n + t], step);
  });
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.doc() = "largebatch: fused CPU streaming passes of LAMB and LARS";
  module.def("lamb_moments_and_norms", &lamb_moments_and_norms);
  module.def("lamb_apply", &lamb_apply);
  module.def("lars_norms", &lars_norms);
  module.def("lars_apply", &lars_apply);
}
