// Shared helpers of the flowrl kernels. Prepended to every kernel source
// before NVRTC compiles it, so no header search path is needed: bf16 and f16
// are read and written as raw 16-bit words and converted here.

typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#define FLOWRL_INF __int_as_float(0x7f800000)

// Element types of the logits (the `DType` codes of the Rust side).
#define DT_F32 0
#define DT_F16 1
#define DT_BF16 2

__device__ __forceinline__ float bf16_to_f32(u16 h) {
    return __uint_as_float(((u32)h) << 16);
}

// Round to nearest even; NaN stays a (quiet) NaN.
__device__ __forceinline__ u16 f32_to_bf16(float f) {
    u32 x = __float_as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (u16)((x >> 16) | 0x40u);
    }
    x += 0x7fffu + ((x >> 16) & 1u);
    return (u16)(x >> 16);
}

// FLOWRL_CUDA_EMU: compiled for the host by the emulated driver
// (crates/kernels/emu), which has no PTX; its conversions round the same way.
__device__ __forceinline__ float f16_to_f32(u16 h) {
#ifdef FLOWRL_CUDA_EMU
    return flowrl_emu_f16_to_f32(h);
#else
    float f;
    asm("{ cvt.f32.f16 %0, %1; }" : "=f"(f) : "h"(h));
    return f;
#endif
}

__device__ __forceinline__ u16 f32_to_f16(float f) {
#ifdef FLOWRL_CUDA_EMU
    return flowrl_emu_f32_to_f16(f);
#else
    u16 h;
    asm("{ cvt.rn.f16.f32 %0, %1; }" : "=h"(h) : "f"(f));
    return h;
#endif
}

// Element `i` of a logits row of type `dt`, as f32.
__device__ __forceinline__ float load_elem(const void* p, long long i, int dt) {
    if (dt == DT_F32) return ((const float*)p)[i];
    u16 h = ((const u16*)p)[i];
    return dt == DT_BF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

__device__ __forceinline__ void store_elem(void* p, long long i, int dt, float v) {
    if (dt == DT_F32) {
        ((float*)p)[i] = v;
    } else {
        ((u16*)p)[i] = dt == DT_BF16 ? f32_to_bf16(v) : f32_to_f16(v);
    }
}

// Unpacks the two 16-bit values of a 32-bit word (low half first).
__device__ __forceinline__ void unpack2(u32 w, int dt, float* a, float* b) {
    u16 lo = (u16)(w & 0xffffu), hi = (u16)(w >> 16);
    if (dt == DT_BF16) {
        *a = bf16_to_f32(lo);
        *b = bf16_to_f32(hi);
    } else {
        *a = f16_to_f32(lo);
        *b = f16_to_f32(hi);
    }
}

__device__ __forceinline__ u32 pack2(float a, float b, int dt) {
    u16 lo = dt == DT_BF16 ? f32_to_bf16(a) : f32_to_f16(a);
    u16 hi = dt == DT_BF16 ? f32_to_bf16(b) : f32_to_f16(b);
    return ((u32)hi << 16) | (u32)lo;
}

// ---- block reductions (blockDim.x a multiple of 32, at most 1024) ----

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Sum over the block; the result is valid in every thread.
template <typename T>
__device__ T block_sum(T v) {
    __shared__ T buf[32];
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    int nw = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) buf[wid] = v;
    __syncthreads();
    T r = lane < nw ? buf[lane] : (T)0;
    r = warp_sum(r);
    return r;
}

__device__ __forceinline__ double warp_min(double v) {
    for (int o = 16; o > 0; o >>= 1) v = fmin(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ double warp_max(double v) {
    for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ double block_min(double v) {
    __shared__ double buf[32];
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    int nw = (blockDim.x + 31) >> 5;
    v = warp_min(v);
    __syncthreads();
    if (lane == 0) buf[wid] = v;
    __syncthreads();
    double r = lane < nw ? buf[lane] : __longlong_as_double(0x7ff0000000000000ll);
    return warp_min(r);
}

__device__ double block_max(double v) {
    __shared__ double buf[32];
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    int nw = (blockDim.x + 31) >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) buf[wid] = v;
    __syncthreads();
    double r = lane < nw ? buf[lane] : __longlong_as_double(0xfff0000000000000ll);
    return warp_max(r);
}

// Online log-sum-exp state of a set of values x: m = max x, s = Σ exp(x − m),
// t = Σ exp(x − m)·x (for the entropy). Empty set: m = −∞, s = t = 0.
struct Lse {
    float m, s, t;
};

__device__ __forceinline__ void lse_push(Lse& a, float x, bool ent) {
    if (x > a.m) {
        float c = a.m == -FLOWRL_INF ? 0.0f : __expf(a.m - x);
        a.s = a.s * c + 1.0f;
        if (ent) a.t = a.t * c + x;
        a.m = x;
    } else if (x != -FLOWRL_INF) {
        float e = __expf(x - a.m);
        a.s += e;
        if (ent) a.t += e * x;
    }
}

// Pushes K values at once: one max, at most one rescale, K exponentials
// (fewer branches than K single pushes).
template <int K>
__device__ __forceinline__ void lse_push_k(Lse& a, const float* x, bool ent) {
    float m = x[0];
#pragma unroll
    for (int i = 1; i < K; i++) m = fmaxf(m, x[i]);
    if (m == -FLOWRL_INF) return;
    if (m > a.m) {
        float c = a.m == -FLOWRL_INF ? 0.0f : __expf(a.m - m);
        a.s *= c;
        if (ent) a.t *= c;
        a.m = m;
    }
    float s = 0.0f, t = 0.0f;
#pragma unroll
    for (int i = 0; i < K; i++) {
        float e = __expf(x[i] - a.m);
        s += e;
        if (ent && x[i] != -FLOWRL_INF) t += e * x[i];
    }
    a.s += s;
    if (ent) a.t += t;
}

__device__ __forceinline__ Lse lse_merge(Lse a, Lse b) {
    if (a.m == -FLOWRL_INF) return b;
    if (b.m == -FLOWRL_INF) return a;
    float m = fmaxf(a.m, b.m);
    float ca = __expf(a.m - m), cb = __expf(b.m - m);
    Lse r;
    r.m = m;
    r.s = a.s * ca + b.s * cb;
    r.t = a.t * ca + b.t * cb;
    return r;
}

__device__ Lse block_lse(Lse v) {
    __shared__ float bm[32], bs[32], bt[32];
    for (int o = 16; o > 0; o >>= 1) {
        Lse w;
        w.m = __shfl_xor_sync(0xffffffffu, v.m, o);
        w.s = __shfl_xor_sync(0xffffffffu, v.s, o);
        w.t = __shfl_xor_sync(0xffffffffu, v.t, o);
        v = lse_merge(v, w);
    }
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    int nw = (blockDim.x + 31) >> 5;
    __syncthreads();
    if (lane == 0) {
        bm[wid] = v.m;
        bs[wid] = v.s;
        bt[wid] = v.t;
    }
    __syncthreads();
    Lse r;
    r.m = lane < nw ? bm[lane] : -FLOWRL_INF;
    r.s = lane < nw ? bs[lane] : 0.0f;
    r.t = lane < nw ? bt[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) {
        Lse w;
        w.m = __shfl_xor_sync(0xffffffffu, r.m, o);
        w.s = __shfl_xor_sync(0xffffffffu, r.s, o);
        w.t = __shfl_xor_sync(0xffffffffu, r.t, o);
        r = lse_merge(r, w);
    }
    return r;
}
