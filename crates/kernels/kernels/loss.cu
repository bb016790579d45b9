// The policy objectives of flowrl-objectives (GRPO, GSPO, GSsPO, CWRPO,
// REINFORCE with the KL term) over per-token log-probs, as a chain of small
// launches: token scan → per-sub-sequence and per-trajectory sums → unit plan
// (ratios, clips, weights) → token pass (loss terms and g_t = ∂J/∂lp_t).
// Everything is accumulated in f64, as the CPU reference does.

// Slots of the f64 accumulator array.
#define G_SUM_DELTA 0
#define G_KL 1
#define G_ENT 2
#define G_PG 3
#define G_RATIO 4
// Slots of the u64 counter array.
#define C_TOKENS 0
#define C_SUBSEQS 1
#define C_TRAJS 2
#define C_HORIZON 3
#define C_CLIP_TOK 4
#define C_CLIP_SUB 5
#define C_DUAL_TOK 6
#define C_RMIN 7
#define C_RMAX 8
#define C_ERR 9
#define C_ERR_ADV 10

// Error codes (low 8 bits of the error key; the index is above them).
#define E_SUBSEQ_ON_MASKED 1
#define E_MISSING_SUBSEQ 2
#define E_SUBSEQ_RANGE 3
#define E_MISSING_ADV 4
#define E_NONFINITE_LP 5
#define E_NONFINITE_OLD 6
#define E_NONFINITE_REF 7
#define E_NONFINITE_ENT 8
#define E_NONFINITE_ADV 9
#define E_TWO_TRAJ 10

#define ALG_GRPO 0
#define ALG_GSPO 1
#define ALG_GSSPO 2
#define ALG_CWRPO 3
#define ALG_REINFORCE 4

#define AGG_TOKEN_MEAN 0
#define AGG_SEQ_MEAN_TOKEN_MEAN 1
#define AGG_SEQ_MEAN_TOKEN_SUM 2
#define AGG_SEQ_MEAN_TOKEN_SUM_NORM 3
#define AGG_TRAJ_MEAN_SUBSEQ_MEAN 4
#define AGG_SUBSEQ_MEAN 5

#define TOKEN_LOG_RATIO_CLAMP 20.0
#define UNIT_LOG_RATIO_MAX 10.0
#define K3_ARG_CLAMP 20.0
#define K3_VALUE_CLAMP 10.0

__device__ __forceinline__ void report(u64* c, int slot, long long index, int code) {
    atomicMin(&c[slot], ((u64)index << 8) | (u64)code);
}

// Ratios are ≥ 0, so their IEEE bit patterns order like the values.
__device__ __forceinline__ void ratio_minmax(u64* c, double lo, double hi, bool any) {
    double mn = block_min(any ? lo : __longlong_as_double(0x7ff0000000000000ll));
    double mx = block_max(any ? hi : 0.0);
    if (threadIdx.x == 0) {
        atomicMin(&c[C_RMIN], (u64)__double_as_longlong(mn));
        atomicMax(&c[C_RMAX], (u64)__double_as_longlong(mx));
    }
}

// Pass 1 (one thread per token): validity checks, per-sub-sequence sums,
// batch sums of δ, KL and entropy.
extern "C" __global__ void loss_scan(int n, int nb, const float* lp, const float* old,
                                     const float* ref, int has_ref, const float* ent,
                                     int has_ent, const unsigned char* mask, const int* subseq,
                                     const int* traj, u32* sub_count, u32* sub_traj1,
                                     double* sub_delta, double* sub_lp, int kl_est, double* g,
                                     u64* c) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    double d_sum = 0.0, kl_sum = 0.0, ent_sum = 0.0;
    u64 cnt = 0;
    if (t < n) {
        int s = subseq[t];
        if (mask[t] == 0) {
            if (s >= 0) report(c, C_ERR, t, E_SUBSEQ_ON_MASKED);
        } else if (s < 0) {
            report(c, C_ERR, t, E_MISSING_SUBSEQ);
        } else if (s >= n) {
            report(c, C_ERR, t, E_SUBSEQ_RANGE);
        } else {
            int tr = traj[t];
            double l = lp[t], o = old[t];
            if (tr < 0 || tr >= nb) {
                report(c, C_ERR, t, E_MISSING_ADV);
            } else if (!isfinite(l)) {
                report(c, C_ERR, t, E_NONFINITE_LP);
            } else if (!isfinite(o)) {
                report(c, C_ERR, t, E_NONFINITE_OLD);
            } else if (has_ref && !isfinite((double)ref[t])) {
                report(c, C_ERR, t, E_NONFINITE_REF);
            } else if (has_ent && !isfinite((double)ent[t])) {
                report(c, C_ERR, t, E_NONFINITE_ENT);
            } else {
                u32 prev = atomicCAS(&sub_traj1[s], 0u, (u32)tr + 1u);
                if (prev != 0u && prev != (u32)tr + 1u) report(c, C_ERR, t, E_TWO_TRAJ);
                atomicAdd(&sub_count[s], 1u);
                atomicAdd(&sub_delta[s], l - o);
                atomicAdd(&sub_lp[s], l);
                d_sum = l - o;
                cnt = 1;
                if (has_ref) {
                    double x = (double)ref[t] - l;
                    double v;
                    if (kl_est == 0) {
                        v = -x;
                    } else if (kl_est == 1) {
                        v = 0.5 * x * x;
                    } else {
                        double xc = fmin(fmax(x, -K3_ARG_CLAMP), K3_ARG_CLAMP);
                        v = exp(xc) - xc - 1.0;
                        v = fmin(fmax(v, -K3_VALUE_CLAMP), K3_VALUE_CLAMP);
                    }
                    kl_sum = v;
                }
                if (has_ent) ent_sum = ent[t];
            }
        }
    }
    d_sum = block_sum(d_sum);
    kl_sum = block_sum(kl_sum);
    ent_sum = block_sum(ent_sum);
    cnt = block_sum(cnt);
    if (threadIdx.x == 0 && cnt > 0) {
        atomicAdd(&g[G_SUM_DELTA], d_sum);
        atomicAdd(&g[G_KL], kl_sum);
        atomicAdd(&g[G_ENT], ent_sum);
        atomicAdd(&c[C_TOKENS], cnt);
    }
}

// Pass 2 (one thread per sub-sequence id): per-trajectory sums.
extern "C" __global__ void loss_subseq_sums(int n, const u32* sub_count, const u32* sub_traj1,
                                            const double* sub_delta, u32* traj_count,
                                            u32* traj_k, double* traj_delta, u64* c) {
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    u64 live = 0;
    if (k < n && sub_count[k] > 0) {
        int i = (int)sub_traj1[k] - 1;
        atomicAdd(&traj_count[i], sub_count[k]);
        atomicAdd(&traj_k[i], 1u);
        atomicAdd(&traj_delta[i], sub_delta[k]);
        live = 1;
    }
    live = block_sum(live);
    if (threadIdx.x == 0 && live > 0) atomicAdd(&c[C_SUBSEQS], live);
}

// Pass 3 (one thread per trajectory): advantage checks, trajectory count,
// the default horizon (largest number of policy tokens of one trajectory).
extern "C" __global__ void loss_traj_sums(int nb, const float* adv, const u32* traj_count,
                                          u64* c) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    u64 live = 0;
    if (i < nb) {
        if (!isfinite((double)adv[i])) report(c, C_ERR_ADV, i, E_NONFINITE_ADV);
        if (traj_count[i] > 0) {
            live = 1;
            atomicMax(&c[C_HORIZON], (u64)traj_count[i]);
        }
    }
    live = block_sum(live);
    if (threadIdx.x == 0 && live > 0) atomicAdd(&c[C_TRAJS], live);
}

// PPO(r, A) with optional dual clip: value, ∂/∂r, clipped branch, dual cap.
struct Ppo {
    double value, d_ratio;
    bool clipped, dual;
};

__device__ __forceinline__ Ppo ppo(double r, double a, double lo, double hi, int has_dual,
                                   double dual_c) {
    double unclipped = -a * r;
    double clipped = -a * fmin(fmax(r, lo), hi);
    Ppo p;
    if (clipped > unclipped) {
        p.value = clipped;
        p.d_ratio = 0.0;
        p.clipped = true;
    } else {
        p.value = unclipped;
        p.d_ratio = -a;
        p.clipped = false;
    }
    p.dual = false;
    if (has_dual && a < 0.0) {
        double cap = -a * dual_c;
        if (p.value > cap) {
            p.value = cap;
            p.d_ratio = 0.0;
            p.dual = true;
        }
    }
    return p;
}

// Weight of each token of sub-sequence k in the aggregated sum.
__device__ __forceinline__ double agg_weight(int agg, double t, double nf, double ns,
                                             double horizon, double traj_count, double traj_k,
                                             double len) {
    switch (agg) {
        case AGG_TOKEN_MEAN: return 1.0 / t;
        case AGG_SEQ_MEAN_TOKEN_MEAN: return 1.0 / (nf * traj_count);
        case AGG_SEQ_MEAN_TOKEN_SUM: return 1.0 / nf;
        case AGG_SEQ_MEAN_TOKEN_SUM_NORM: return 1.0 / horizon;
        case AGG_TRAJ_MEAN_SUBSEQ_MEAN: return 1.0 / (nf * traj_k * len);
        default: return 1.0 / (ns * len);
    }
}

// Pass 4 (one thread per sub-sequence id): weights, and the unit-level loss
// of GSsPO (one ratio per sub-sequence) and REINFORCE; GSPO's trajectory
// weights. coef_w / coef_a are what the token pass needs.
extern "C" __global__ void loss_plan(int n, const float* adv, const u32* sub_count,
                                     const u32* sub_traj1, const double* sub_delta,
                                     const double* sub_lp, const u32* traj_count,
                                     const u32* traj_k, int alg, int agg, double horizon_cfg,
                                     double lo, double hi, int has_dual, double dual_c,
                                     double* coef_w, double* coef_a, double* traj_w, double* g,
                                     u64* c) {
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    double pg = 0.0, rsum = 0.0, rmin = 0.0, rmax = 0.0;
    u64 clip_sub = 0, clip_tok = 0, dual_tok = 0;
    bool any = false;
    if (k < n && sub_count[k] > 0) {
        int i = (int)sub_traj1[k] - 1;
        double t = (double)c[C_TOKENS], nf = (double)c[C_TRAJS], ns = (double)c[C_SUBSEQS];
        double horizon = horizon_cfg > 0.0 ? horizon_cfg : (double)c[C_HORIZON];
        double len = (double)sub_count[k];
        double w = agg_weight(agg, t, nf, ns, horizon, (double)traj_count[i],
                              (double)traj_k[i], len);
        double a = (double)adv[i];
        if (alg == ALG_GRPO || alg == ALG_CWRPO) {
            coef_w[k] = w;
            coef_a[k] = a;
        } else if (alg == ALG_REINFORCE) {
            pg = -a * w * sub_lp[k];
            coef_w[k] = -a * w;
        } else if (alg == ALG_GSSPO) {
            double log_s = sub_delta[k] / len;
            bool active = !(log_s > UNIT_LOG_RATIO_MAX);
            double r = exp(active ? log_s : UNIT_LOG_RATIO_MAX);
            Ppo p = ppo(r, a, lo, hi, has_dual, dual_c);
            pg = w * len * p.value;
            coef_w[k] = active ? w * p.d_ratio * r : 0.0;
            rsum = r;
            rmin = r;
            rmax = r;
            any = true;
            if (p.clipped) {
                clip_sub = 1;
                clip_tok = sub_count[k];
            }
            if (p.dual) dual_tok = sub_count[k];
        } else {
            atomicAdd(&traj_w[i], w * len);
        }
    }
    pg = block_sum(pg);
    rsum = block_sum(rsum);
    clip_sub = block_sum(clip_sub);
    clip_tok = block_sum(clip_tok);
    dual_tok = block_sum(dual_tok);
    if (alg == ALG_GSSPO) ratio_minmax(c, rmin, rmax, any);
    if (threadIdx.x == 0) {
        if (pg != 0.0) atomicAdd(&g[G_PG], pg);
        if (rsum != 0.0) atomicAdd(&g[G_RATIO], rsum);
        if (clip_sub) atomicAdd(&c[C_CLIP_SUB], clip_sub);
        if (clip_tok) atomicAdd(&c[C_CLIP_TOK], clip_tok);
        if (dual_tok) atomicAdd(&c[C_DUAL_TOK], dual_tok);
    }
}

// Pass 5, GSPO only (one thread per trajectory): the sequence ratio and its
// PPO term; traj_g is the per-token gradient of the trajectory.
extern "C" __global__ void loss_gspo_traj(int nb, const float* adv, const u32* traj_count,
                                          const double* traj_delta, const double* traj_w,
                                          double lo, double hi, int has_dual, double dual_c,
                                          double* traj_g, u32* traj_clipped, double* g,
                                          u64* c) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    double pg = 0.0, rsum = 0.0, rmin = 0.0, rmax = 0.0;
    u64 clip_tok = 0, dual_tok = 0;
    bool any = false;
    if (i < nb && traj_count[i] > 0) {
        double ni = (double)traj_count[i];
        double a = (double)adv[i];
        double log_s = traj_delta[i] / ni;
        bool active = !(log_s > UNIT_LOG_RATIO_MAX);
        double r = exp(active ? log_s : UNIT_LOG_RATIO_MAX);
        Ppo p = ppo(r, a, lo, hi, has_dual, dual_c);
        pg = traj_w[i] * p.value;
        traj_g[i] = active ? traj_w[i] * p.d_ratio * r / ni : 0.0;
        rsum = r;
        rmin = r;
        rmax = r;
        any = true;
        traj_clipped[i] = p.clipped ? 1u : 0u;
        if (p.clipped) clip_tok = traj_count[i];
        if (p.dual) dual_tok = traj_count[i];
    }
    pg = block_sum(pg);
    rsum = block_sum(rsum);
    clip_tok = block_sum(clip_tok);
    dual_tok = block_sum(dual_tok);
    ratio_minmax(c, rmin, rmax, any);
    if (threadIdx.x == 0) {
        if (pg != 0.0) atomicAdd(&g[G_PG], pg);
        if (rsum != 0.0) atomicAdd(&g[G_RATIO], rsum);
        if (clip_tok) atomicAdd(&c[C_CLIP_TOK], clip_tok);
        if (dual_tok) atomicAdd(&c[C_DUAL_TOK], dual_tok);
    }
}

// Pass 6, GSPO only (one thread per sub-sequence id): broadcast the
// trajectory gradient; count sub-sequences of clipped trajectories.
extern "C" __global__ void loss_gspo_subseq(int n, const u32* sub_count, const u32* sub_traj1,
                                            const double* traj_g, const u32* traj_clipped,
                                            double* coef_w, u64* c) {
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    u64 clip_sub = 0;
    if (k < n && sub_count[k] > 0) {
        int i = (int)sub_traj1[k] - 1;
        coef_w[k] = traj_g[i];
        clip_sub = traj_clipped[i];
    }
    clip_sub = block_sum(clip_sub);
    if (threadIdx.x == 0 && clip_sub) atomicAdd(&c[C_CLIP_SUB], clip_sub);
}

// Pass 7 (one thread per token): token-level PPO terms (GRPO, CWRPO), token
// ratios (REINFORCE's statistics), the KL gradient, and grad[t] = ∂J/∂lp_t.
extern "C" __global__ void loss_token(int n, int alg, const float* lp, const float* old,
                                      const float* ref, int has_ref, const unsigned char* mask,
                                      const int* subseq, const double* coef_w,
                                      const double* coef_a, double lo, double hi, int has_dual,
                                      double dual_c, int kl_est, double kl_coef,
                                      u32* sub_clipped, float* grad, double* g, u64* c) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    bool token_unit = alg == ALG_GRPO || alg == ALG_CWRPO;
    bool want_ratio = token_unit || alg == ALG_REINFORCE;
    double pg = 0.0, rsum = 0.0, rmin = 0.0, rmax = 0.0;
    u64 clip_tok = 0, dual_tok = 0;
    bool any = false;
    if (t < n) {
        int k = subseq[t];
        // Masked-out tokens, and (when loss_scan has reported an error)
        // policy tokens without a valid id: no gradient, no out-of-range read.
        if (mask[t] == 0 || k < 0 || k >= n) {
            grad[t] = 0.0f;
        } else {
            double w = coef_w[k];
            double l = lp[t];
            double gt;
            double d = l - (double)old[t];
            double dc = fmin(fmax(d, -TOKEN_LOG_RATIO_CLAMP), TOKEN_LOG_RATIO_CLAMP);
            double r = exp(dc);
            if (token_unit) {
                Ppo p = ppo(r, coef_a[k], lo, hi, has_dual, dual_c);
                pg = w * p.value;
                if (p.clipped) {
                    clip_tok = 1;
                    sub_clipped[k] = 1u;
                }
                dual_tok = p.dual ? 1 : 0;
                gt = dc == d ? w * p.d_ratio * r : 0.0;
            } else {
                gt = w;
            }
            if (want_ratio) {
                rsum = r;
                rmin = r;
                rmax = r;
                any = true;
            }
            if (has_ref) {
                double x = (double)ref[t] - l;
                double dk;
                if (kl_est == 0) {
                    dk = 1.0;
                } else if (kl_est == 1) {
                    dk = -x;
                } else {
                    double xc = fmin(fmax(x, -K3_ARG_CLAMP), K3_ARG_CLAMP);
                    double e = exp(xc);
                    double v = e - xc - 1.0;
                    double vc = fmin(fmax(v, -K3_VALUE_CLAMP), K3_VALUE_CLAMP);
                    dk = (xc != x || vc != v) ? 0.0 : 1.0 - e;
                }
                gt += kl_coef / (double)c[C_TOKENS] * dk;
            }
            grad[t] = (float)gt;
        }
    }
    pg = block_sum(pg);
    rsum = block_sum(rsum);
    clip_tok = block_sum(clip_tok);
    dual_tok = block_sum(dual_tok);
    if (want_ratio) ratio_minmax(c, rmin, rmax, any);
    if (threadIdx.x == 0) {
        if (pg != 0.0) atomicAdd(&g[G_PG], pg);
        if (rsum != 0.0) atomicAdd(&g[G_RATIO], rsum);
        if (clip_tok) atomicAdd(&c[C_CLIP_TOK], clip_tok);
        if (dual_tok) atomicAdd(&c[C_DUAL_TOK], dual_tok);
    }
}

// Pass 8, token units (one thread per sub-sequence id): sub-sequences with
// at least one clipped token.
extern "C" __global__ void loss_count_clipped(int n, const u32* sub_clipped, u64* c) {
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    u64 v = (k < n && sub_clipped[k]) ? 1 : 0;
    v = block_sum(v);
    if (threadIdx.x == 0 && v) atomicAdd(&c[C_CLIP_SUB], v);
}
