// Host emulation of the CUDA execution model, for running the kernel sources
// of crates/kernels/kernels/ on a CPU (see emu/README.md).
//
// The emulated driver (fake_cuda.cpp) compiles a kernel source with this
// header force-included and FLOWRL_CUDA_EMU defined, then calls
// `flowrl_emu_launch`. Semantics kept from CUDA:
//   * a launch runs gridDim blocks of blockDim threads; every thread of a
//     block is a fiber with its own stack, scheduled cooperatively on the
//     calling OS thread, so blocks run one after another;
//   * `__shared__` variables are shared by the threads of a block (one copy
//     per OS thread, so concurrent launches from different threads are
//     independent);
//   * `__syncthreads()` waits for every thread of the block that has not
//     exited; `__shfl_xor_sync` exchanges values within a warp of 32 lanes
//     and waits for all of them;
//   * atomics are exact (fibers never run at the same time).
// Misuse that is undefined on a GPU is reported as a launch error instead of
// being ignored: threads of one block waiting at different barriers
// (divergent `__syncthreads`), a shuffle in a warp one of whose lanes has
// exited, a shuffle in a partial warp.
//
// What it does not model: misaligned accesses (and out-of-range ones unless
// the module is built with AddressSanitizer, FLOWRL_CUDA_EMU_SANITIZE), the
// last ulp of the GPU's fast-math intrinsics (their main error is modelled:
// see `__expf`), the timing and the memory model of concurrent blocks.

#pragma once

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmath>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

// Under -fsanitize=address, fiber switches are announced to the sanitizer
// and reused fiber stacks are unpoisoned, so only real faults are reported.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define FLOWRL_EMU_ASAN 1
#else
#define FLOWRL_EMU_ASAN 0
#endif

// ---- language extensions ----
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __shared__ static thread_local
#define __restrict__ __restrict

struct dim3 {
    unsigned x, y, z;
};

struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) {
    return uint4{x, y, z, w};
}

// ---- bit casts and arithmetic intrinsics ----
template <typename To, typename From>
inline To flowrl_emu_bits(From f) {
    static_assert(sizeof(To) == sizeof(From), "bit cast of different sizes");
    To t;
    memcpy(&t, &f, sizeof t);
    return t;
}
inline float __int_as_float(int x) { return flowrl_emu_bits<float>(x); }
inline float __uint_as_float(unsigned x) { return flowrl_emu_bits<float>(x); }
inline unsigned __float_as_uint(float x) { return flowrl_emu_bits<unsigned>(x); }
inline int __float_as_int(float x) { return flowrl_emu_bits<int>(x); }
inline double __longlong_as_double(long long x) { return flowrl_emu_bits<double>(x); }
inline long long __double_as_longlong(double x) { return flowrl_emu_bits<long long>(x); }
// The fast intrinsics as NVRTC compiles them (without fast-math):
// `__expf(x)` is `ex2.approx.f32(x · log2 e)` with the product rounded to
// f32 — that rounding is its main error, growing with |x| (CUDA documents
// 2 + 1.173·|x| ulp) — and `__logf(x)` is `lg2.approx.f32(x) · ln 2`, with
// the constants of the PTX. The base-2 functions here are the C library's,
// so the emulation carries the GPU's dominant error, not its last ulp.
inline float __expf(float x) { return exp2f(x * 0x1.715476p+0f); }
inline float __logf(float x) { return log2f(x) * 0x1.62e430p-1f; }
// Round-to-nearest single operations; the emulated sources are compiled with
// -ffp-contract=off, so none is fused with another.
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }

// Half-precision conversions (flowrl_emu_f16_to_f32, flowrl_emu_f32_to_f16),
// called by common.cuh under FLOWRL_CUDA_EMU instead of its PTX.
#include "emu_half.h"

// ---- atomics (exact: fibers never interleave inside one) ----
template <typename T>
inline T atomicAdd(T* p, T v) {
    T old = *p;
    *p = old + v;
    return old;
}
template <typename T>
inline T atomicMin(T* p, T v) {
    T old = *p;
    if (v < old) *p = v;
    return old;
}
template <typename T>
inline T atomicMax(T* p, T v) {
    T old = *p;
    if (v > old) *p = v;
    return old;
}
template <typename T>
inline T atomicCAS(T* p, T cmp, T v) {
    T old = *p;
    if (old == cmp) *p = v;
    return old;
}
template <typename T>
inline T atomicExch(T* p, T v) {
    T old = *p;
    *p = v;
    return old;
}

// ---- fibers ----
namespace flowrl_emu {


#if defined(__x86_64__)
// Saves the callee-saved registers, MXCSR and the x87 control word on the
// current stack, stores the stack pointer in *save, and resumes `next`.
extern "C" void flowrl_emu_switch(void** save, void* next);
asm(R"(
    .pushsection .text
    .globl flowrl_emu_switch
    .hidden flowrl_emu_switch
    .type flowrl_emu_switch,@function
flowrl_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size flowrl_emu_switch, .-flowrl_emu_switch

    .globl flowrl_emu_trampoline
    .hidden flowrl_emu_trampoline
    .type flowrl_emu_trampoline,@function
flowrl_emu_trampoline:
    movq %rbx, %rdi
    call flowrl_emu_fiber_entry
    ud2
    .size flowrl_emu_trampoline, .-flowrl_emu_trampoline
    .popsection
)");
extern "C" void flowrl_emu_trampoline();
#endif

enum State { RUNNING, AT_BLOCK_BARRIER, AT_WARP_BARRIER, EXITED };

struct Thread {
    dim3 idx;
    unsigned linear, warp, lane;
    State state;
    unsigned warp_phase;  // warp barriers passed
#if defined(__x86_64__)
    void* sp;
#else
    ucontext_t ctx;
#endif
    char* stack;
    void* asan_fake;  // the sanitizer's fake-stack handle while switched out
};

struct Warp {
    unsigned lanes;     // lanes that exist (blockDim may not fill the last warp)
    unsigned arrived;   // lanes waiting at the current warp barrier
    unsigned exited;
    uint64_t slot[2][32];
};

struct Launch {
    void (*body)(void*);
    void* arg;
    std::vector<Thread> threads;
    std::vector<Warp> warps;
    unsigned live;             // threads not exited
    unsigned at_block;         // threads waiting at __syncthreads
    std::string error;         // first misuse found
    const void* main_bottom;   // the launching thread's stack, for the sanitizer
    size_t main_size;
#if defined(__x86_64__)
    void* main_sp;
#else
    ucontext_t main_ctx;
#endif
};

inline thread_local Launch* g_launch = nullptr;
inline thread_local Thread* g_cur = nullptr;
inline thread_local dim3 g_block_idx, g_block_dim, g_grid_dim;

constexpr size_t STACK_BYTES = 256 * 1024;

// Stacks are kept per OS thread and reused across launches.
inline std::vector<char*>& stacks() {
    static thread_local std::vector<char*> s;
    return s;
}

// Switches from the current fiber back to the scheduler; `exiting` when the
// fiber will never be resumed.
inline void yield_to_main(bool exiting = false) {
    Launch* l = g_launch;
    Thread* t = g_cur;
#if FLOWRL_EMU_ASAN
    __sanitizer_start_switch_fiber(exiting ? nullptr : &t->asan_fake, l->main_bottom,
                                   l->main_size);
#else
    (void)exiting;
#endif
#if defined(__x86_64__)
    flowrl_emu_switch(&t->sp, l->main_sp);
#else
    swapcontext(&t->ctx, &l->main_ctx);
#endif
#if FLOWRL_EMU_ASAN
    __sanitizer_finish_switch_fiber(t->asan_fake, nullptr, nullptr);
#endif
}

inline void fail(const std::string& msg) {
    if (g_launch->error.empty()) g_launch->error = msg;
}

// Wakes the threads of a completed block barrier.
inline void release_block_if_done() {
    Launch* l = g_launch;
    if (l->at_block > 0 && l->at_block == l->live) {
        for (auto& t : l->threads)
            if (t.state == AT_BLOCK_BARRIER) t.state = RUNNING;
        l->at_block = 0;
    }
}

inline void release_warp_if_done(Warp& w, unsigned warp) {
    Launch* l = g_launch;
    if (w.arrived > 0 && w.arrived == w.lanes) {
        for (unsigned i = warp * 32; i < warp * 32 + w.lanes; i++)
            if (l->threads[i].state == AT_WARP_BARRIER) l->threads[i].state = RUNNING;
        w.arrived = 0;
    }
}

inline void syncthreads() {
    Launch* l = g_launch;
    Thread* t = g_cur;
    t->state = AT_BLOCK_BARRIER;
    l->at_block++;
    release_block_if_done();
    if (t->state != RUNNING) yield_to_main();
}

// One full-warp exchange: every lane publishes `v`; returns the value of
// lane `src` once all lanes have published theirs.
inline uint64_t warp_exchange(uint64_t v, unsigned src, unsigned mask) {
    Launch* l = g_launch;
    Thread* t = g_cur;
    Warp& w = l->warps[t->warp];
    if (mask != 0xffffffffu) fail("a shuffle with a partial lane mask (not emulated)");
    if (w.lanes != 32) fail("a full-mask shuffle in a partial warp (blockDim.x not a multiple of 32)");
    if (w.exited > 0) fail("a full-mask shuffle in a warp with exited lanes");
    unsigned ph = t->warp_phase & 1u;
    w.slot[ph][t->lane] = v;
    t->state = AT_WARP_BARRIER;
    w.arrived++;
    release_warp_if_done(w, t->warp);
    if (t->state != RUNNING) yield_to_main();
    t->warp_phase++;
    return w.slot[ph][src & 31u];
}

// Where every fiber starts (called from the trampoline, hence C linkage; the
// header is included by exactly one translation unit per emulated module).
extern "C" __attribute__((used, visibility("hidden"))) void flowrl_emu_fiber_entry(Thread* t) {
    Launch* l = g_launch;
#if FLOWRL_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &l->main_bottom, &l->main_size);
#endif
    l->body(l->arg);
    t->state = EXITED;
    l->live--;
    Warp& w = l->warps[t->warp];
    w.exited++;
    if (w.arrived > 0) fail("a lane exited while its warp waits at a shuffle");
    release_block_if_done();
    yield_to_main(true);
    abort();  // never resumed
}

#if !defined(__x86_64__)
inline void ucontext_entry(unsigned hi, unsigned lo) {
    Thread* t = (Thread*)(((uintptr_t)hi << 32) | (uintptr_t)lo);
    flowrl_emu_fiber_entry(t);
}
#endif

// Runs one block: every thread from the start of the kernel body until all
// have exited. Returns false (with l->error set) on a deadlock or misuse.
inline bool run_block(Launch* l) {
    unsigned n = g_block_dim.x * g_block_dim.y * g_block_dim.z;
    l->threads.assign(n, Thread{});
    unsigned nw = (n + 31) / 32;
    l->warps.assign(nw, Warp{});
    auto& st = stacks();
    while (st.size() < n) st.push_back(static_cast<char*>(aligned_alloc(64, STACK_BYTES)));
    for (unsigned i = 0; i < n; i++) {
        Thread& t = l->threads[i];
        t.idx = dim3{i % g_block_dim.x, (i / g_block_dim.x) % g_block_dim.y,
                     i / (g_block_dim.x * g_block_dim.y)};
        t.linear = i;
        t.warp = i / 32;
        t.lane = i % 32;
        t.state = RUNNING;
        t.warp_phase = 0;
        t.stack = st[i];
#if FLOWRL_EMU_ASAN
        __asan_unpoison_memory_region(t.stack, STACK_BYTES);
#endif
        l->warps[t.warp].lanes++;
#if defined(__x86_64__)
        // Initial frame popped by flowrl_emu_switch: control words, r15..r12,
        // rbx (= the thread), rbp, then the return into the trampoline with
        // the stack 16-byte aligned at its call.
        uintptr_t top = ((uintptr_t)(t.stack + STACK_BYTES)) & ~(uintptr_t)15;
        uint64_t* sp = (uint64_t*)(top - 16);
        *--sp = (uint64_t)(uintptr_t)&flowrl_emu_trampoline;
        *--sp = 0;                      // rbp
        *--sp = (uint64_t)(uintptr_t)&t;  // rbx
        *--sp = 0;                      // r12
        *--sp = 0;                      // r13
        *--sp = 0;                      // r14
        *--sp = 0;                      // r15
        *--sp = (uint64_t)0x037f << 32 | 0x1f80;  // fcw (high), mxcsr (low)
        t.sp = sp;
#else
        getcontext(&t.ctx);
        t.ctx.uc_stack.ss_sp = t.stack;
        t.ctx.uc_stack.ss_size = STACK_BYTES;
        t.ctx.uc_link = nullptr;
        uintptr_t p = (uintptr_t)&t;
        makecontext(&t.ctx, (void (*)())ucontext_entry, 2, (unsigned)(p >> 32),
                    (unsigned)(p & 0xffffffffu));
#endif
    }
    l->live = n;
    l->at_block = 0;
    for (;;) {
        bool ran = false;
        for (auto& t : l->threads) {
            if (t.state != RUNNING) continue;
            ran = true;
            g_cur = &t;
#if FLOWRL_EMU_ASAN
            void* fake = nullptr;
            __sanitizer_start_switch_fiber(&fake, t.stack, STACK_BYTES);
#endif
#if defined(__x86_64__)
            flowrl_emu_switch(&l->main_sp, t.sp);
#else
            swapcontext(&l->main_ctx, &t.ctx);
#endif
#if FLOWRL_EMU_ASAN
            __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
            g_cur = nullptr;
            if (!l->error.empty()) return false;
        }
        if (l->live == 0) return true;
        if (!ran) {
            unsigned wb = 0, ww = 0;
            for (auto& t : l->threads) {
                wb += t.state == AT_BLOCK_BARRIER;
                ww += t.state == AT_WARP_BARRIER;
            }
            char buf[200];
            snprintf(buf, sizeof buf,
                     "deadlock: %u threads wait at __syncthreads and %u at a warp shuffle "
                     "(divergent barrier)",
                     wb, ww);
            l->error = buf;
            return false;
        }
    }
}

template <typename... A, size_t... I>
inline void invoke_impl(void (*f)(A...), void** args, std::index_sequence<I...>) {
    f(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
}

template <typename... A>
inline void invoke(void (*f)(A...), void** args) {
    invoke_impl(f, args, std::index_sequence_for<A...>{});
}

// Launches `body(arg)` over the grid; returns 0, or 1 with `err` filled.
inline int launch(void (*body)(void*), void* arg, dim3 grid, dim3 block, char* err,
                  size_t errlen) {
    Launch l;
    l.body = body;
    l.arg = arg;
    Launch* prev = g_launch;
    g_launch = &l;
    g_grid_dim = grid;
    g_block_dim = block;
    int rc = 0;
    for (unsigned z = 0; z < grid.z && rc == 0; z++)
        for (unsigned y = 0; y < grid.y && rc == 0; y++)
            for (unsigned x = 0; x < grid.x && rc == 0; x++) {
                g_block_idx = dim3{x, y, z};
                if (!run_block(&l)) {
                    snprintf(err, errlen, "block (%u, %u, %u): %s", x, y, z, l.error.c_str());
                    rc = 1;
                }
            }
    g_launch = prev;
    return rc;
}

struct Entry {
    const char* name;
    void (*call)(void** args);
};

}  // namespace flowrl_emu

#define threadIdx (flowrl_emu::g_cur->idx)
#define blockIdx (flowrl_emu::g_block_idx)
#define blockDim (flowrl_emu::g_block_dim)
#define gridDim (flowrl_emu::g_grid_dim)

inline void __syncthreads() { flowrl_emu::syncthreads(); }

template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask) {
    static_assert(sizeof(T) <= 8, "shuffle of a value wider than 8 bytes");
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof v);
    unsigned src = flowrl_emu::g_cur->lane ^ (unsigned)lane_mask;
    uint64_t got = flowrl_emu::warp_exchange(bits, src, mask);
    T r;
    memcpy(&r, &got, sizeof r);
    return r;
}

template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src_lane) {
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof v);
    uint64_t got = flowrl_emu::warp_exchange(bits, (unsigned)src_lane, mask);
    T r;
    memcpy(&r, &got, sizeof r);
    return r;
}

// The driver appends one FLOWRL_EMU_KERNEL(name) line per `__global__`
// function of the source, between FLOWRL_EMU_TABLE_BEGIN and _END.
#define FLOWRL_EMU_TABLE_BEGIN static const flowrl_emu::Entry flowrl_emu_table[] = {
#define FLOWRL_EMU_KERNEL(name) {#name, [](void** a) { flowrl_emu::invoke(name, a); }},
#define FLOWRL_EMU_TABLE_END                                                                 \
    {nullptr, nullptr}                                                                         \
    }                                                                                          \
    ;                                                                                          \
    extern "C" int flowrl_emu_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, \
                                     unsigned bx, unsigned by, unsigned bz, void** args,     \
                                     char* err, size_t errlen) {                               \
        for (const flowrl_emu::Entry* e = flowrl_emu_table; e->name; e++) {                    \
            if (strcmp(e->name, name) != 0) continue;                                          \
            struct Ctx {                                                                       \
                void (*call)(void**);                                                          \
                void** args;                                                                   \
            } c{e->call, args};                                                                \
            return flowrl_emu::launch(                                                         \
                [](void* p) {                                                                  \
                    Ctx* c = static_cast<Ctx*>(p);                                             \
                    c->call(c->args);                                                          \
                },                                                                             \
                &c, dim3{gx, gy, gz}, dim3{bx, by, bz}, err, errlen);                          \
        }                                                                                      \
        snprintf(err, errlen, "no kernel named %s", name);                                     \
        return 2;                                                                              \
    }                                                                                          \
    extern "C" int flowrl_emu_has_kernel(const char* name) {                                   \
        for (const flowrl_emu::Entry* e = flowrl_emu_table; e->name; e++)                      \
            if (strcmp(e->name, name) == 0) return 1;                                          \
        return 0;                                                                              \
    }
