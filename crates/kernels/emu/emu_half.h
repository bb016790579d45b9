// IEEE binary16 and bfloat16 <-> binary32 conversions on the host, rounding
// to nearest even as the GPU's cvt.rn instructions do. Shared by the kernel
// prelude (cuda_emu.h) and the emulated cuBLAS (fake_cuda.cpp).

#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

inline float flowrl_emu_u32_as_f32(uint32_t x) {
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

inline uint32_t flowrl_emu_f32_as_u32(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    return x;
}

// Exact (every binary16 value is a binary32 value).
inline float flowrl_emu_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1fu) return flowrl_emu_u32_as_f32(sign | 0x7f800000u | (man << 13));
    if (exp != 0) return flowrl_emu_u32_as_f32(sign | ((exp + 112u) << 23) | (man << 13));
    // Zero or subnormal: man · 2^-24, exact in binary32.
    float f = (float)man * 5.9604644775390625e-8f;
    return sign ? -f : f;
}

inline uint16_t flowrl_emu_f32_to_f16(float f) {
    uint32_t x = flowrl_emu_f32_as_u32(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));  // NaN
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // rounds to ±inf
    if (ax < 0x38800000u) {
        // Below the smallest normal: round |f| / 2^-24 to an integer
        // (nearbyintf rounds to nearest even in the default mode).
        return (uint16_t)(sign | (uint16_t)nearbyintf(flowrl_emu_u32_as_f32(ax) * 16777216.0f));
    }
    uint32_t e = (ax >> 23) - 112u, m = ax & 0x7fffffu;
    uint32_t h = (e << 10) | (m >> 13);
    uint32_t rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h += 1u;
    return (uint16_t)(sign | h);
}

inline float flowrl_emu_bf16_to_f32(uint16_t h) { return flowrl_emu_u32_as_f32((uint32_t)h << 16); }

// NaN stays a (quiet) NaN.
inline uint16_t flowrl_emu_f32_to_bf16(float f) {
    uint32_t x = flowrl_emu_f32_as_u32(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}
