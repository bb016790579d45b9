// An emulated CUDA driver, NVRTC and cuBLAS for running flowrl's CUDA backend
// on a machine without a GPU (see README.md in this folder).
//
// Built as one shared library and installed under the names the backend
// loads (libcuda.so, libnvrtc.so, libcublas.so). "Device" memory is host
// memory; every call is synchronous. The NVRTC part does not compile: its
// "PTX" is the CUDA source itself behind a marker line. The driver compiles
// that source for the host with the system C++ compiler and cuda_emu.h
// (fibers for threads, one block at a time) when the module is loaded, and
// runs kernels through it. The cuBLAS part implements cublasGemmEx for f32,
// f16 and bf16 operands with f32 accumulation.

#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "emu_half.h"

#ifndef FLOWRL_CUDA_EMU_DIR
#define FLOWRL_CUDA_EMU_DIR "."
#endif

#define API extern "C" __attribute__((visibility("default")))

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef void* CUcontext;
typedef void* CUstream;

enum {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_INVALID_VALUE = 1,
    CUDA_ERROR_OUT_OF_MEMORY = 2,
    CUDA_ERROR_NOT_INITIALIZED = 3,
    CUDA_ERROR_INVALID_DEVICE = 101,
    CUDA_ERROR_INVALID_IMAGE = 200,
    CUDA_ERROR_INVALID_PTX = 218,
    CUDA_ERROR_NOT_FOUND = 500,
    CUDA_ERROR_LAUNCH_FAILED = 719,
    CUDA_ERROR_NOT_SUPPORTED = 801,
};

static const char* const MARKER = "// flowrl-cuda-emu source\n";

namespace {

std::mutex g_mu;
std::atomic<bool> g_init{false};
int g_ctx_token = 0;                      // the one (primary) context
thread_local CUcontext g_current = nullptr;
std::map<uintptr_t, size_t> g_allocs;     // live allocations: base -> bytes
size_t g_allocated = 0;

const size_t TOTAL_MEM = size_t(16) << 30;  // reported, not enforced

double now_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

struct Module {
    void* lib;
    int (*launch)(const char*, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void**,
                  char*, size_t);
    int (*has)(const char*);
};

struct Function {
    Module* module;
    std::string name;
};

struct Event {
    double t_ms;
};

// Checks that [p, p + bytes) lies inside one live allocation of this driver
// (host memory, pinned or not, is not device memory here either); reports
// the nearest allocation below p otherwise.
CUresult check_dev(CUdeviceptr p, size_t bytes, const char* what) {
    if (bytes == 0) return CUDA_SUCCESS;
    std::lock_guard<std::mutex> g(g_mu);
    auto it = g_allocs.upper_bound((uintptr_t)p);
    if (it == g_allocs.begin()) {
        fprintf(stderr, "flowrl-cuda-emu: %s: %zu bytes at 0x%llx are outside every allocation\n",
                what, bytes, p);
        return CUDA_ERROR_INVALID_VALUE;
    }
    --it;
    if ((uintptr_t)p + bytes <= it->first + it->second) return CUDA_SUCCESS;
    fprintf(stderr,
            "flowrl-cuda-emu: %s: %zu bytes at 0x%llx overrun the allocation of %zu bytes "
            "at 0x%llx (offset %lld)\n",
            what, bytes, p, it->second, (unsigned long long)it->first,
            (long long)((uintptr_t)p - it->first));
    return CUDA_ERROR_INVALID_VALUE;
}

uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ull) {
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

std::string read_file(const std::string& path, bool* ok) {
    std::ifstream f(path, std::ios::binary);
    *ok = bool(f);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::string emu_dir() {
    const char* d = getenv("FLOWRL_CUDA_EMU_DIR");
    return d && *d ? d : FLOWRL_CUDA_EMU_DIR;
}

// Where compiled modules are kept (content-addressed, so shared safely):
// $FLOWRL_CUDA_EMU_CACHE, else $TMPDIR/flowrl-cuda-emu-<uid>.
std::string cache_dir() {
    const char* c = getenv("FLOWRL_CUDA_EMU_CACHE");
    if (c && *c) {
        mkdir(c, 0700);
        return c;
    }
    const char* t = getenv("TMPDIR");
    std::string base = t && *t ? t : "/tmp";
    std::string dir = base + "/flowrl-cuda-emu-" + std::to_string(getuid());
    mkdir(dir.c_str(), 0700);
    return dir;
}

// Compiles `src` (a CUDA source) for the host; returns the library path.
bool compile_module(const std::string& src, std::string* so, std::string* log) {
    bool ok = false;
    // Both headers the module includes are part of its cache key.
    const std::string emu = emu_dir();
    std::string header_path = emu + "/cuda_emu.h";
    std::string header;
    for (const char* h : {"/cuda_emu.h", "/emu_half.h"}) {
        std::string path = emu + h;
        header += read_file(path, &ok);
        if (!ok) {
            *log = "cannot read " + path + " (set FLOWRL_CUDA_EMU_DIR)";
            return false;
        }
    }
    const char* cxx_env = getenv("CXX");
    std::string cxx = cxx_env && *cxx_env ? cxx_env : "c++";
    std::string flags =
        "-std=c++17 -O2 -g0 -fPIC -shared -ffp-contract=off -fno-fast-math -w -DFLOWRL_CUDA_EMU";
    // FLOWRL_CUDA_EMU_SANITIZE=address: out-of-range reads and writes of the
    // kernels are reported (the process must preload the sanitizer runtime).
    const char* san = getenv("FLOWRL_CUDA_EMU_SANITIZE");
    if (san && *san) flags += std::string(" -g -fno-omit-frame-pointer -fsanitize=") + san;
    std::string table = "\nFLOWRL_EMU_TABLE_BEGIN\n";
    std::regex kernel(R"(extern\s+"C"\s+__global__\s+void\s+([A-Za-z_][A-Za-z_0-9]*)\s*\()");
    for (std::sregex_iterator it(src.begin(), src.end(), kernel), end; it != end; ++it)
        table += "FLOWRL_EMU_KERNEL(" + (*it)[1].str() + ")\n";
    table += "FLOWRL_EMU_TABLE_END\n";
    std::string text = src + table;
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx",
             (unsigned long long)fnv1a(cxx + flags + header, fnv1a(text)));
    std::string dir = cache_dir();
    *so = dir + "/" + hex + ".so";
    struct stat st;
    if (stat(so->c_str(), &st) == 0) return true;
    // The source stays beside the library (sanitizer reports and debuggers
    // point into it); both are written under temporary names and renamed,
    // so concurrent processes never see a partial file.
    std::string tag = std::to_string(getpid()) + "-" + std::to_string((uintptr_t)&text);
    std::string cpp = dir + "/" + hex + ".cpp";
    std::string tmp_cpp = dir + "/" + hex + "-" + tag + ".cpp.tmp";
    std::string tmp_so = dir + "/" + hex + "-" + tag + ".so.tmp";
    std::string log_path = dir + "/" + hex + "-" + tag + ".log";
    {
        std::ofstream f(tmp_cpp, std::ios::binary);
        f << text;
        f.close();
        if (!f || rename(tmp_cpp.c_str(), cpp.c_str()) != 0) {
            unlink(tmp_cpp.c_str());
            *log = "cannot write " + cpp;
            return false;
        }
    }
    std::string cmd = cxx + " " + flags + " -include '" + header_path + "' -x c++ '" + cpp +
                      "' -o '" + tmp_so + "' > '" + log_path + "' 2>&1";
    int rc = system(cmd.c_str());
    bool lok = false;
    *log = read_file(log_path, &lok);
    unlink(log_path.c_str());
    if (rc != 0) {
        unlink(tmp_so.c_str());
        *log = "host compile failed (" + cmd + "):\n" + *log;
        return false;
    }
    if (rename(tmp_so.c_str(), so->c_str()) != 0) {
        *log = "cannot rename " + tmp_so;
        return false;
    }
    return true;
}

}  // namespace

// ---------------------------------------------------------------- driver --

// Name and message of every error code this driver returns.
struct ErrorText {
    CUresult code;
    const char* name;
    const char* message;
};
const ErrorText ERRORS[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {CUDA_ERROR_INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {CUDA_ERROR_INVALID_PTX, "CUDA_ERROR_INVALID_PTX",
     "the emulated module failed to compile for the host"},
    {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {CUDA_ERROR_LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED",
     "unspecified launch failure (emulated; see stderr)"},
    {CUDA_ERROR_NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED",
     "operation not supported by the emulated driver"},
};

static const ErrorText* error_text(CUresult e) {
    for (const ErrorText& t : ERRORS)
        if (t.code == e) return &t;
    return nullptr;
}

API CUresult cuGetErrorString(CUresult e, const char** s) {
    const ErrorText* t = error_text(e);
    *s = t ? t->message : "unknown error";
    return t ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

API CUresult cuGetErrorName(CUresult e, const char** s) {
    const ErrorText* t = error_text(e);
    *s = t ? t->name : "CUDA_ERROR_UNKNOWN";
    return t ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

API CUresult cuInit(unsigned) {
    g_init = true;
    return CUDA_SUCCESS;
}

API CUresult cuDriverGetVersion(int* v) {
    *v = 13000;
    return CUDA_SUCCESS;
}

API CUresult cuDeviceGetCount(int* n) {
    if (!g_init) return CUDA_ERROR_NOT_INITIALIZED;
    *n = 1;
    return CUDA_SUCCESS;
}

API CUresult cuDeviceGet(CUdevice* d, int ordinal) {
    if (!g_init) return CUDA_ERROR_NOT_INITIALIZED;
    if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
    *d = 0;
    return CUDA_SUCCESS;
}

API CUresult cuDeviceGetName(char* name, int len, CUdevice d) {
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    snprintf(name, (size_t)len, "flowrl CUDA emulator (host CPU)");
    return CUDA_SUCCESS;
}

API CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice d) {
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    *bytes = TOTAL_MEM;
    return CUDA_SUCCESS;
}

API CUresult cuDeviceGetUuid(unsigned char* uuid, CUdevice d) {
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    memset(uuid, 0, 16);
    memcpy(uuid, "flowrl-cuda-emu", 15);
    return CUDA_SUCCESS;
}

API CUresult cuDeviceGetUuid_v2(unsigned char* uuid, CUdevice d) { return cuDeviceGetUuid(uuid, d); }

// Attribute codes of cuda.h that the backend or cudarc may ask for; the
// compute capability is reported as 0.0, so no real architecture is implied.
API CUresult cuDeviceGetAttribute(int* v, int attr, CUdevice d) {
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    switch (attr) {
        case 1: *v = 1024; break;        // max threads per block
        case 2: *v = 1024; break;        // max block dim x
        case 3: *v = 1024; break;        // max block dim y
        case 4: *v = 64; break;          // max block dim z
        case 5: *v = 0x7fffffff; break;  // max grid dim x
        case 6: *v = 65535; break;       // max grid dim y
        case 7: *v = 65535; break;       // max grid dim z
        case 8: *v = 48 * 1024; break;   // shared memory per block
        case 10: *v = 32; break;         // warp size
        case 16: *v = 1; break;          // multiprocessors
        case 75: *v = 0; break;          // compute capability major
        case 76: *v = 0; break;          // compute capability minor
        case 115: *v = 1; break;         // memory pools supported
        default: *v = 0; break;
    }
    return CUDA_SUCCESS;
}

API CUresult cuDevicePrimaryCtxRetain(CUcontext* c, CUdevice d) {
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    *c = &g_ctx_token;
    return CUDA_SUCCESS;
}

API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice) { return CUDA_SUCCESS; }
API CUresult cuDevicePrimaryCtxRelease(CUdevice) { return CUDA_SUCCESS; }

API CUresult cuCtxSetCurrent(CUcontext c) {
    g_current = c;
    return CUDA_SUCCESS;
}

API CUresult cuCtxGetCurrent(CUcontext* c) {
    *c = g_current;
    return CUDA_SUCCESS;
}

API CUresult cuCtxPushCurrent_v2(CUcontext c) { return cuCtxSetCurrent(c); }
API CUresult cuCtxPopCurrent_v2(CUcontext* c) {
    if (c) *c = g_current;
    return CUDA_SUCCESS;
}
API CUresult cuCtxGetDevice(CUdevice* d) {
    *d = 0;
    return CUDA_SUCCESS;
}
API CUresult cuCtxSynchronize() { return CUDA_SUCCESS; }
API CUresult cuCtxSetFlags(unsigned) { return CUDA_SUCCESS; }
API CUresult cuCtxGetApiVersion(CUcontext, unsigned* v) {
    *v = 13000;
    return CUDA_SUCCESS;
}

API CUresult cuStreamCreate(CUstream* s, unsigned) {
    *s = new int(0);
    return CUDA_SUCCESS;
}
API CUresult cuStreamCreateWithPriority(CUstream* s, unsigned f, int) { return cuStreamCreate(s, f); }
API CUresult cuStreamDestroy_v2(CUstream s) {
    delete static_cast<int*>(s);
    return CUDA_SUCCESS;
}
API CUresult cuStreamSynchronize(CUstream) { return CUDA_SUCCESS; }
API CUresult cuStreamQuery(CUstream) { return CUDA_SUCCESS; }
API CUresult cuStreamWaitEvent(CUstream, void*, unsigned) { return CUDA_SUCCESS; }
API CUresult cuStreamIsCapturing(CUstream, int* status) {
    *status = 0;
    return CUDA_SUCCESS;
}
API CUresult cuCtxGetStreamPriorityRange(int* lo, int* hi) {
    *lo = 0;
    *hi = 0;
    return CUDA_SUCCESS;
}

API CUresult cuEventCreate(void** e, unsigned) {
    *e = new Event{now_ms()};
    return CUDA_SUCCESS;
}
API CUresult cuEventRecord(void* e, CUstream) {
    static_cast<Event*>(e)->t_ms = now_ms();
    return CUDA_SUCCESS;
}
API CUresult cuEventRecordWithFlags(void* e, CUstream s, unsigned) { return cuEventRecord(e, s); }
API CUresult cuEventSynchronize(void*) { return CUDA_SUCCESS; }
API CUresult cuEventQuery(void*) { return CUDA_SUCCESS; }
API CUresult cuEventDestroy_v2(void* e) {
    delete static_cast<Event*>(e);
    return CUDA_SUCCESS;
}
API CUresult cuEventElapsedTime(float* ms, void* a, void* b) {
    *ms = (float)(static_cast<Event*>(b)->t_ms - static_cast<Event*>(a)->t_ms);
    return CUDA_SUCCESS;
}
API CUresult cuEventElapsedTime_v2(float* ms, void* a, void* b) { return cuEventElapsedTime(ms, a, b); }

// Fresh allocations are filled with 0xff bytes (NaN in f32, f16 and bf16;
// -1 in integers), so a kernel that leaves part of its output unwritten is
// seen by the comparisons.
API CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t bytes) {
    if (bytes == 0) return CUDA_ERROR_INVALID_VALUE;
    // Exactly `bytes` (no rounding up), so that a sanitizer run of the
    // kernels sees any access past the end.
    void* m = nullptr;
    if (posix_memalign(&m, 256, bytes) != 0) return CUDA_ERROR_OUT_OF_MEMORY;
    memset(m, 0xff, bytes);
    std::lock_guard<std::mutex> g(g_mu);
    g_allocs[(uintptr_t)m] = bytes;
    g_allocated += bytes;
    *p = (CUdeviceptr)(uintptr_t)m;
    return CUDA_SUCCESS;
}
API CUresult cuMemAllocAsync(CUdeviceptr* p, size_t bytes, CUstream) { return cuMemAlloc_v2(p, bytes); }

API CUresult cuMemFree_v2(CUdeviceptr p) {
    if (p == 0) return CUDA_SUCCESS;
    {
        std::lock_guard<std::mutex> g(g_mu);
        auto it = g_allocs.find((uintptr_t)p);
        if (it == g_allocs.end()) {
            fprintf(stderr, "flowrl-cuda-emu: free of 0x%llx, which is not an allocation\n", p);
            return CUDA_ERROR_INVALID_VALUE;
        }
        g_allocated -= it->second;
        g_allocs.erase(it);
    }
    free((void*)(uintptr_t)p);
    return CUDA_SUCCESS;
}
API CUresult cuMemFreeAsync(CUdeviceptr p, CUstream) { return cuMemFree_v2(p); }

API CUresult cuMemGetInfo_v2(size_t* free_bytes, size_t* total) {
    std::lock_guard<std::mutex> g(g_mu);
    *total = TOTAL_MEM;
    *free_bytes = g_allocated < TOTAL_MEM ? TOTAL_MEM - g_allocated : 0;
    return CUDA_SUCCESS;
}

API CUresult cuMemHostAlloc(void** p, size_t bytes, unsigned) {
    *p = malloc(bytes ? bytes : 1);
    return *p ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}
API CUresult cuMemAllocHost_v2(void** p, size_t bytes) { return cuMemHostAlloc(p, bytes, 0); }
API CUresult cuMemFreeHost(void* p) {
    free(p);
    return CUDA_SUCCESS;
}

API CUresult cuMemsetD8_v2(CUdeviceptr p, unsigned char v, size_t n) {
    CUresult r = check_dev(p, n, "cuMemsetD8");
    if (r) return r;
    memset((void*)(uintptr_t)p, v, n);
    return CUDA_SUCCESS;
}
API CUresult cuMemsetD8Async(CUdeviceptr p, unsigned char v, size_t n, CUstream) {
    return cuMemsetD8_v2(p, v, n);
}

API CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t n) {
    CUresult r = check_dev(dst, n, "cuMemcpyHtoD");
    if (r) return r;
    memcpy((void*)(uintptr_t)dst, src, n);
    return CUDA_SUCCESS;
}
API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t n, CUstream) {
    return cuMemcpyHtoD_v2(dst, src, n);
}
API CUresult cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t n) {
    CUresult r = check_dev(src, n, "cuMemcpyDtoH");
    if (r) return r;
    memcpy(dst, (const void*)(uintptr_t)src, n);
    return CUDA_SUCCESS;
}
API CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t n, CUstream) {
    return cuMemcpyDtoH_v2(dst, src, n);
}
API CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n) {
    CUresult r = check_dev(src, n, "cuMemcpyDtoD (source)");
    if (r) return r;
    r = check_dev(dst, n, "cuMemcpyDtoD (destination)");
    if (r) return r;
    memmove((void*)(uintptr_t)dst, (const void*)(uintptr_t)src, n);
    return CUDA_SUCCESS;
}
API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream) {
    return cuMemcpyDtoD_v2(dst, src, n);
}

API CUresult cuModuleLoadData(void** module, const void* image) {
    const char* text = static_cast<const char*>(image);
    size_t ml = strlen(MARKER);
    if (strncmp(text, MARKER, ml) != 0) {
        fprintf(stderr,
                "flowrl-cuda-emu: cuModuleLoadData: the image is not a source from the emulated "
                "NVRTC (real PTX cannot run here; set FLOWRL_KERNEL_CACHE=off)\n");
        return CUDA_ERROR_INVALID_PTX;
    }
    std::string so, log;
    if (!compile_module(std::string(text + ml), &so, &log)) {
        fprintf(stderr, "flowrl-cuda-emu: %s\n", log.c_str());
        return CUDA_ERROR_INVALID_PTX;
    }
    void* lib = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "flowrl-cuda-emu: dlopen %s: %s\n", so.c_str(), dlerror());
        return CUDA_ERROR_INVALID_IMAGE;
    }
    Module* m = new Module{lib, nullptr, nullptr};
    *(void**)&m->launch = dlsym(lib, "flowrl_emu_launch");
    *(void**)&m->has = dlsym(lib, "flowrl_emu_has_kernel");
    if (!m->launch || !m->has) {
        dlclose(lib);
        delete m;
        return CUDA_ERROR_INVALID_IMAGE;
    }
    *module = m;
    return CUDA_SUCCESS;
}

API CUresult cuModuleUnload(void* module) {
    Module* m = static_cast<Module*>(module);
    // The library stays loaded: its thread-local state may still be
    // referenced by other threads' exit handlers.
    delete m;
    return CUDA_SUCCESS;
}

API CUresult cuModuleGetFunction(void** f, void* module, const char* name) {
    Module* m = static_cast<Module*>(module);
    if (!m->has(name)) return CUDA_ERROR_NOT_FOUND;
    *f = new Function{m, name};
    return CUDA_SUCCESS;
}

API CUresult cuFuncGetAttribute(int* v, int, void*) {
    *v = 0;
    return CUDA_SUCCESS;
}
API CUresult cuFuncSetAttribute(void*, int, int) { return CUDA_SUCCESS; }

API CUresult cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                            unsigned by, unsigned bz, unsigned shared_bytes, CUstream,
                            void** params, void** extra) {
    Function* fn = static_cast<Function*>(f);
    if (shared_bytes != 0 || extra != nullptr) {
        fprintf(stderr, "flowrl-cuda-emu: %s: dynamic shared memory and `extra` are not emulated\n",
                fn->name.c_str());
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    if (gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0 ||
        (unsigned long long)bx * by * bz > 1024 || by > 1024 || bz > 64 || gy > 65535 ||
        gz > 65535) {
        fprintf(stderr, "flowrl-cuda-emu: %s: invalid launch configuration (%u,%u,%u)x(%u,%u,%u)\n",
                fn->name.c_str(), gx, gy, gz, bx, by, bz);
        return CUDA_ERROR_INVALID_VALUE;
    }
    char err[512] = {0};
    int rc = fn->module->launch(fn->name.c_str(), gx, gy, gz, bx, by, bz, params, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "flowrl-cuda-emu: %s: %s\n", fn->name.c_str(), err);
        return CUDA_ERROR_LAUNCH_FAILED;
    }
    return CUDA_SUCCESS;
}

// ----------------------------------------------------------------- NVRTC --

typedef int nvrtcResult;
struct Program {
    std::string src, name;
};

API const char* nvrtcGetErrorString(nvrtcResult r) {
    return r == 0 ? "NVRTC_SUCCESS" : "NVRTC_ERROR (emulated)";
}
API nvrtcResult nvrtcVersion(int* major, int* minor) {
    *major = 13;
    *minor = 0;
    return 0;
}
API nvrtcResult nvrtcCreateProgram(void** prog, const char* src, const char* name, int nheaders,
                                   const char* const*, const char* const*) {
    if (nheaders != 0) return 3;  // NVRTC_ERROR_INVALID_INPUT: headers are not emulated
    *prog = new Program{src ? src : "", name ? name : ""};
    return 0;
}
API nvrtcResult nvrtcDestroyProgram(void** prog) {
    delete static_cast<Program*>(*prog);
    *prog = nullptr;
    return 0;
}
// The options (architecture, language standard) do not apply to the host
// compile; the source is passed through unchanged.
API nvrtcResult nvrtcCompileProgram(void*, int, const char* const*) { return 0; }
API nvrtcResult nvrtcGetPTXSize(void* prog, size_t* n) {
    *n = strlen(MARKER) + static_cast<Program*>(prog)->src.size() + 1;
    return 0;
}
API nvrtcResult nvrtcGetPTX(void* prog, char* out) {
    const std::string& s = static_cast<Program*>(prog)->src;
    size_t ml = strlen(MARKER);
    memcpy(out, MARKER, ml);
    memcpy(out + ml, s.data(), s.size());
    out[ml + s.size()] = 0;
    return 0;
}
API nvrtcResult nvrtcGetProgramLogSize(void*, size_t* n) {
    *n = 1;
    return 0;
}
API nvrtcResult nvrtcGetProgramLog(void*, char* log) {
    log[0] = 0;
    return 0;
}

// ---------------------------------------------------------------- cuBLAS --

enum { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 };
enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_INVALID_VALUE = 7, CUBLAS_STATUS_NOT_SUPPORTED = 15 };
enum { CUBLAS_COMPUTE_32F = 68 };

namespace {

// Element i of a buffer of a known_type() type, as f32.
void load(const void* p, int t, size_t i, float* out) {
    switch (t) {
        case CUDA_R_32F: *out = static_cast<const float*>(p)[i]; break;
        case CUDA_R_16F: *out = flowrl_emu_f16_to_f32(static_cast<const uint16_t*>(p)[i]); break;
        default: *out = flowrl_emu_bf16_to_f32(static_cast<const uint16_t*>(p)[i]); break;
    }
}

void store(void* p, int t, size_t i, float v) {
    switch (t) {
        case CUDA_R_32F: static_cast<float*>(p)[i] = v; break;
        case CUDA_R_16F: static_cast<uint16_t*>(p)[i] = flowrl_emu_f32_to_f16(v); break;
        default: static_cast<uint16_t*>(p)[i] = flowrl_emu_f32_to_bf16(v); break;
    }
}

bool known_type(int t) { return t == CUDA_R_32F || t == CUDA_R_16F || t == CUDA_R_16BF; }

size_t type_size(int t) { return t == CUDA_R_32F ? 4 : 2; }

}  // namespace

API int cublasCreate_v2(void** h) {
    *h = new int(0);
    return CUBLAS_STATUS_SUCCESS;
}
API int cublasDestroy_v2(void* h) {
    delete static_cast<int*>(h);
    return CUBLAS_STATUS_SUCCESS;
}
API int cublasSetStream_v2(void*, CUstream) { return CUBLAS_STATUS_SUCCESS; }
API int cublasSetWorkspace_v2(void*, void*, size_t) { return CUBLAS_STATUS_SUCCESS; }
API int cublasSetMathMode(void*, int) { return CUBLAS_STATUS_SUCCESS; }

// C = α·op(A)·op(B) + β·C, column-major, f32 accumulation; C is not read
// when β = 0 (as cuBLAS does).
API int cublasGemmEx(void*, int ta, int tb, int m, int n, int k, const void* alpha, const void* A,
                     int at, int lda, const void* B, int bt, int ldb, const void* beta, void* C,
                     int ct, int ldc, int compute, int) {
    if (compute != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (m < 0 || n < 0 || k < 0 || ta < 0 || ta > 1 || tb < 0 || tb > 1) return CUBLAS_STATUS_INVALID_VALUE;
    if ((ta ? lda < (k > 1 ? k : 1) : lda < (m > 1 ? m : 1)) ||
        (tb ? ldb < (n > 1 ? n : 1) : ldb < (k > 1 ? k : 1)) || ldc < (m > 1 ? m : 1))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (!known_type(at) || !known_type(bt) || !known_type(ct)) return CUBLAS_STATUS_NOT_SUPPORTED;
    // Extents of the operands as stored (columns × leading dimension).
    size_t a_cols = ta ? m : k, b_cols = tb ? k : n;
    auto span = [](size_t cols, int ld, int rows, int ts) -> size_t {
        return cols == 0 ? 0 : ((cols - 1) * (size_t)ld + (size_t)rows) * ts;
    };
    if (m > 0 && n > 0) {
        if ((k > 0 && (check_dev((CUdeviceptr)A, span(a_cols, lda, ta ? k : m, type_size(at)), "cublasGemmEx A") ||
                       check_dev((CUdeviceptr)B, span(b_cols, ldb, tb ? n : k, type_size(bt)), "cublasGemmEx B"))) ||
            check_dev((CUdeviceptr)C, span(n, ldc, m, type_size(ct)), "cublasGemmEx C"))
            return CUBLAS_STATUS_INVALID_VALUE;
    }
    float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    // op(A) as f32 rows [m][k] and op(B) as f32 columns [n][k], so every
    // entry of C is a contiguous dot product.
    std::vector<float> a((size_t)m * k), b((size_t)n * k);
    for (int i = 0; i < m; i++)
        for (int p = 0; p < k; p++)
            load(A, at, ta ? (size_t)i * lda + p : (size_t)p * lda + i, &a[(size_t)i * k + p]);
    for (int j = 0; j < n; j++)
        for (int p = 0; p < k; p++)
            load(B, bt, tb ? (size_t)p * ldb + j : (size_t)j * ldb + p, &b[(size_t)j * k + p]);
    auto rows = [&](int i0, int i1) {
        const int TILE = 16;
        for (int ib = i0; ib < i1; ib += TILE) {
            int ie = ib + TILE < i1 ? ib + TILE : i1;
            for (int j = 0; j < n; j++) {
                const float* bj = &b[(size_t)j * k];
                for (int i = ib; i < ie; i++) {
                    const float* ai = &a[(size_t)i * k];
                    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                    int p = 0;
                    for (; p + 8 <= k; p += 8)
                        for (int l = 0; l < 8; l++) acc[l] += ai[p + l] * bj[p + l];
                    for (; p < k; p++) acc[0] += ai[p] * bj[p];
                    float dot = ((acc[0] + acc[1]) + (acc[2] + acc[3])) +
                                ((acc[4] + acc[5]) + (acc[6] + acc[7]));
                    size_t ci = (size_t)j * ldc + i;
                    float out = al * dot;
                    if (be != 0.0f) {
                        float c;
                        load(C, ct, ci, &c);
                        out += be * c;
                    }
                    store(C, ct, ci, out);
                }
            }
        }
    };
    // Rows split over the host's cores when the product is large.
    unsigned nt = std::thread::hardware_concurrency();
    if (nt < 2 || (double)m * n * k < 1e7) {
        rows(0, m);
    } else {
        std::vector<std::thread> pool;
        int step = (m + (int)nt - 1) / (int)nt;
        for (unsigned t = 0; t < nt; t++) {
            int i0 = (int)t * step, i1 = i0 + step < m ? i0 + step : m;
            if (i0 < i1) pool.emplace_back(rows, i0, i1);
        }
        for (auto& th : pool) th.join();
    }
    return CUBLAS_STATUS_SUCCESS;
}
