// AdamW on device buffers, element-wise, with the exact f32 arithmetic of
// flowrl-optim (no fused multiply-add contraction: the intrinsics below round
// every product and sum, as the CPU code does), so results are bit-identical.

extern "C" __global__ void adamw_step(float* p, const float* g, float* m, float* v,
                                      long long n, float decay, float beta1,
                                      float one_minus_beta1, float beta2,
                                      float one_minus_beta2, float step_size,
                                      float inv_sqrt_bc2, float eps) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float gi = g[i];
        float m1 = __fadd_rn(__fmul_rn(beta1, m[i]), __fmul_rn(one_minus_beta1, gi));
        float v1 = __fadd_rn(__fmul_rn(beta2, v[i]), __fmul_rn(one_minus_beta2, __fmul_rn(gi, gi)));
        float denom = __fadd_rn(__fmul_rn(__fsqrt_rn(v1), inv_sqrt_bc2), eps);
        m[i] = m1;
        v[i] = v1;
        p[i] = __fsub_rn(__fmul_rn(p[i], decay), __fmul_rn(step_size, __fdiv_rn(m1, denom)));
    }
}
