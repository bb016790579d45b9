// Token log-probabilities from logits, and their backward to the logits.
//
// One block per token row. The forward reads the row once with an online
// log-sum-exp (and, optionally, the entropy in the same pass); the backward
// reads it once more and writes the gradient once (possibly in place).

// Per-thread online log-sum-exp over the row `x` of length v.
__device__ Lse row_lse(const void* row, long long v, int dt, bool ent) {
    Lse a;
    a.m = -FLOWRL_INF;
    a.s = 0.0f;
    a.t = 0.0f;
    if (dt == DT_F32) {
        const float* x = (const float*)row;
        if ((v & 3) == 0) {
            const float4* x4 = (const float4*)x;
            long long n4 = v >> 2;
            long long i = threadIdx.x;
            // Two 16-byte loads in flight per thread.
            for (; i + blockDim.x < n4; i += 2 * blockDim.x) {
                float4 q0 = x4[i], q1 = x4[i + blockDim.x];
                float f[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
                lse_push_k<8>(a, f, ent);
            }
            if (i < n4) {
                float4 q = x4[i];
                float f[4] = {q.x, q.y, q.z, q.w};
                lse_push_k<4>(a, f, ent);
            }
        } else {
            for (long long i = threadIdx.x; i < v; i += blockDim.x) lse_push(a, x[i], ent);
        }
    } else {
        if ((v & 7) == 0) {
            const uint4* x8 = (const uint4*)row;
            long long n8 = v >> 3;
            long long i = threadIdx.x;
            // Two 16-byte loads in flight per thread.
            for (; i + blockDim.x < n8; i += 2 * blockDim.x) {
                uint4 q0 = x8[i], q1 = x8[i + blockDim.x];
                float f[16];
                unpack2(q0.x, dt, &f[0], &f[1]);
                unpack2(q0.y, dt, &f[2], &f[3]);
                unpack2(q0.z, dt, &f[4], &f[5]);
                unpack2(q0.w, dt, &f[6], &f[7]);
                unpack2(q1.x, dt, &f[8], &f[9]);
                unpack2(q1.y, dt, &f[10], &f[11]);
                unpack2(q1.z, dt, &f[12], &f[13]);
                unpack2(q1.w, dt, &f[14], &f[15]);
                lse_push_k<16>(a, f, ent);
            }
            if (i < n8) {
                uint4 q = x8[i];
                float f[8];
                unpack2(q.x, dt, &f[0], &f[1]);
                unpack2(q.y, dt, &f[2], &f[3]);
                unpack2(q.z, dt, &f[4], &f[5]);
                unpack2(q.w, dt, &f[6], &f[7]);
                lse_push_k<8>(a, f, ent);
            }
        } else {
            for (long long i = threadIdx.x; i < v; i += blockDim.x)
                lse_push(a, load_elem(row, i, dt), ent);
        }
    }
    return a;
}

// lp[r] = logits[r, targets[r]] − logsumexp(logits[r, :]); lse[r] the
// log-sum-exp; ent[r] = −Σ p·log p when want_ent. A target outside [0, v)
// gives lp = NaN and records the smallest such row in err[0].
extern "C" __global__ void logprob_fwd(const void* logits, const int* targets, float* lp,
                                       float* lse_out, float* ent_out, int want_ent,
                                       u64* err, int n, long long v, int dt) {
    int r = blockIdx.x;
    if (r >= n) return;
    long long esize = dt == DT_F32 ? 4 : 2;
    const char* row = (const char*)logits + (long long)r * v * esize;
    Lse a = row_lse(row, v, dt, want_ent != 0);
    a = block_lse(a);
    if (threadIdx.x == 0) {
        float lse = a.m + __logf(a.s);
        int y = targets[r];
        float out;
        if (y < 0 || (long long)y >= v) {
            out = __int_as_float(0x7fc00000);
            atomicMin(err, (u64)r);
        } else {
            out = load_elem(row, y, dt) - lse;
        }
        lp[r] = out;
        lse_out[r] = lse;
        if (want_ent) ent_out[r] = lse - a.t / a.s;
    }
}

__device__ __forceinline__ float grad_elem(float x, long long j, float l, float gt, float ht,
                                          float h, int y) {
    float lpj = x - l;
    float p = __expf(lpj);
    float d = -gt * p - ht * p * (lpj + h);
    if (j == (long long)y) d += gt;
    return d;
}

// dlogits[r, j] = g[r]·(1[j = y_r] − p_j) − hg[r]·p_j·(log p_j + H_r) with
// p_j = exp(logits[r, j] − lse[r]). Rows whose g and hg are both 0 are written
// as zeros without reading the logits. dlogits may alias logits.
extern "C" __global__ void logprob_bwd(const void* logits, void* dlogits, const int* targets,
                                       const float* lse, const float* g, const float* ent,
                                       const float* hg, int has_ent, int n, long long v,
                                       int dt) {
    int r = blockIdx.x;
    if (r >= n) return;
    long long esize = dt == DT_F32 ? 4 : 2;
    const char* row = (const char*)logits + (long long)r * v * esize;
    char* out = (char*)dlogits + (long long)r * v * esize;
    float gt = g[r];
    float ht = has_ent ? hg[r] : 0.0f;
    float h = has_ent ? ent[r] : 0.0f;
    float l = lse[r];
    int y = targets[r];
#define GRAD(x, j) grad_elem((x), (j), l, gt, ht, h, y)
    if (gt == 0.0f && ht == 0.0f) {
        if (dt == DT_F32 && (v & 3) == 0) {
            float4 z = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            for (long long i = threadIdx.x; i < (v >> 2); i += blockDim.x) ((float4*)out)[i] = z;
        } else if (dt != DT_F32 && (v & 7) == 0) {
            uint4 z = make_uint4(0u, 0u, 0u, 0u);
            for (long long i = threadIdx.x; i < (v >> 3); i += blockDim.x) ((uint4*)out)[i] = z;
        } else {
            for (long long i = threadIdx.x; i < v; i += blockDim.x) store_elem(out, i, dt, 0.0f);
        }
        return;
    }
    if (dt == DT_F32 && (v & 3) == 0) {
        for (long long i = threadIdx.x; i < (v >> 2); i += blockDim.x) {
            float4 q = ((const float4*)row)[i];
            long long j = i << 2;
            float4 o;
            o.x = GRAD(q.x, j);
            o.y = GRAD(q.y, j + 1);
            o.z = GRAD(q.z, j + 2);
            o.w = GRAD(q.w, j + 3);
            ((float4*)out)[i] = o;
        }
    } else if (dt != DT_F32 && (v & 7) == 0) {
        for (long long i = threadIdx.x; i < (v >> 3); i += blockDim.x) {
            uint4 q = ((const uint4*)row)[i];
            long long j = i << 3;
            float a0, a1;
            uint4 o;
            unpack2(q.x, dt, &a0, &a1);
            o.x = pack2(GRAD(a0, j), GRAD(a1, j + 1), dt);
            unpack2(q.y, dt, &a0, &a1);
            o.y = pack2(GRAD(a0, j + 2), GRAD(a1, j + 3), dt);
            unpack2(q.z, dt, &a0, &a1);
            o.z = pack2(GRAD(a0, j + 4), GRAD(a1, j + 5), dt);
            unpack2(q.w, dt, &a0, &a1);
            o.w = pack2(GRAD(a0, j + 6), GRAD(a1, j + 7), dt);
            ((uint4*)out)[i] = o;
        }
    } else {
        for (long long i = threadIdx.x; i < v; i += blockDim.x) {
            float x = load_elem(row, i, dt);
            store_elem(out, i, dt, GRAD(x, i));
        }
    }
#undef GRAD
}

// err[0] = min(err[0], the smallest row r < n whose target lies outside
// [0, v)): the check run before a backward, so that a bad target is reported
// before anything is written (the in-place backward overwrites its input).
extern "C" __global__ void check_targets(const int* targets, u64* err, int n, long long v) {
    for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < n; r += gridDim.x * blockDim.x) {
        int y = targets[r];
        if (y < 0 || (long long)y >= v) atomicMin(err, (u64)r);
    }
}

// Device-to-device copy of `n` 16-byte words, the bandwidth reference of the
// benchmarks (read + write, like the backward).
extern "C" __global__ void copy16(const uint4* src, uint4* dst, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        dst[i] = src[i];
}

// out[t] = c where mask[t] ≠ 0, else 0 (∂J/∂H_t of the entropy bonus).
extern "C" __global__ void mask_scale(int n, const unsigned char* mask, float c, float* out) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t < n) out[t] = mask[t] ? c : 0.0f;
}
