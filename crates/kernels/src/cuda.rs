//! The CUDA backend: NVRTC-compiled kernels over cudarc device buffers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg,
    ValidAsZeroBits,
};
use cudarc::nvrtc::{CompileError, CompileOptions, Ptx};
use flowrl_objectives::{
    Aggregation, Algorithm, KlEstimator, LossStats, ObjectiveConfig, ObjectiveError,
};
use half::{bf16, f16};

use crate::device::{AdamScalars, EntropyGrad, LossInputs, PolicyLoss, TokenLogprobs};
use crate::error::{KernelError, Result};
use crate::sources::{SOURCES, full_source};
use crate::tensor::{DType, Element, Storage, Tensor};

fn drv(context: &'static str) -> impl Fn(cudarc::driver::DriverError) -> KernelError {
    move |e| KernelError::Driver {
        context,
        message: e.to_string(),
    }
}

/// True when the CUDA driver library can be loaded (no context is created).
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the library by its usual names.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// True when the NVRTC library can be loaded.
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to dlopen the library by its usual names.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Extra NVRTC options of every kernel source.
const COMPILE_OPTIONS: &[&str] = &["--std=c++17"];

/// Compiles one kernel source to PTX (no driver needed). `arch` is an NVRTC
/// virtual architecture such as `"compute_90"`, or `None` for NVRTC's default.
///
/// # Errors
/// [`KernelError::NoNvrtc`] when NVRTC cannot be loaded,
/// [`KernelError::Compile`] with the compiler's log.
pub fn compile_source(name: &'static str, src: &str, arch: Option<&'static str>) -> Result<Ptx> {
    if !nvrtc_present() {
        return Err(KernelError::NoNvrtc(
            "libnvrtc could not be loaded (set LD_LIBRARY_PATH to the CUDA lib folder)".into(),
        ));
    }
    let opts = CompileOptions {
        arch,
        name: Some(name.to_string()),
        options: COMPILE_OPTIONS.iter().map(|o| o.to_string()).collect(),
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(full_source(src), opts).map_err(|e| {
        let log = match &e {
            CompileError::CompileError { log, .. } => log.to_string_lossy().into_owned(),
            other => other.to_string(),
        };
        KernelError::Compile {
            source_name: name,
            log,
        }
    })
}

/// Compiles every source under `kernels/` to PTX; returns `(name, PTX text)`.
///
/// # Errors
/// As [`compile_source`].
pub fn compile_all(arch: Option<&'static str>) -> Result<Vec<(&'static str, String)>> {
    SOURCES
        .iter()
        .map(|&(name, src)| compile_source(name, src, arch).map(|p| (name, p.to_src())))
        .collect()
}

/// The folder of the on-disk PTX cache: `$FLOWRL_KERNEL_CACHE`, else
/// `$XDG_CACHE_HOME/flowrl/kernels`, else `~/.cache/flowrl/kernels`; `None`
/// when `FLOWRL_KERNEL_CACHE` is `off` or no home folder is known.
pub fn ptx_cache_dir() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    match std::env::var_os("FLOWRL_KERNEL_CACHE") {
        Some(v) if v == "off" => return None,
        Some(v) if !v.is_empty() => return Some(PathBuf::from(v)),
        _ => {}
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("flowrl").join("kernels"))
}

/// The cache file of one source: its name and a hash of the full source,
/// the architecture and the compile options.
fn cache_file(
    dir: &std::path::Path,
    name: &str,
    src: &str,
    arch: Option<&str>,
) -> std::path::PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    full_source(src).hash(&mut h);
    arch.hash(&mut h);
    COMPILE_OPTIONS.hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    dir.join(format!("{name}-{:016x}.ptx", h.finish()))
}

/// As [`compile_source`], through an on-disk cache in `dir` (see
/// [`ptx_cache_dir`]): a cached PTX file is used as is; otherwise the source
/// is compiled and the PTX written there (atomically; I/O errors only skip
/// the cache). Returns the PTX and whether it came from the cache.
///
/// # Errors
/// As [`compile_source`] when the PTX is not cached.
pub fn compile_cached(
    name: &'static str,
    src: &str,
    arch: Option<&'static str>,
    dir: Option<&std::path::Path>,
) -> Result<(Ptx, bool)> {
    let file = dir.map(|d| cache_file(d, name, src, arch));
    if let Some(f) = &file
        && let Ok(text) = std::fs::read_to_string(f)
        && text.contains(".entry")
        && !text.contains('\0')
    {
        return Ok((Ptx::from_src(text), true));
    }
    let ptx = compile_source(name, src, arch)?;
    if let (Some(f), Some(d)) = (&file, dir)
        && std::fs::create_dir_all(d).is_ok()
    {
        let tmp = f.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, ptx.to_src()).is_ok() && std::fs::rename(&tmp, f).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok((ptx, false))
}

fn arch_for(cc: (i32, i32)) -> Option<&'static str> {
    Some(match cc {
        (7, 0) => "compute_70",
        (7, 5) => "compute_75",
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 9) => "compute_89",
        (9, 0) => "compute_90",
        (10, 0) => "compute_100",
        (12, 0) => "compute_120",
        _ => return None,
    })
}

/// The loaded kernels of one device.
#[derive(Debug)]
struct Kernels {
    f: HashMap<&'static str, CudaFunction>,
}

impl Kernels {
    fn get(&self, name: &'static str) -> Result<&CudaFunction> {
        self.f.get(name).ok_or(KernelError::Driver {
            context: "kernel lookup",
            message: format!("no function `{name}` in the compiled modules"),
        })
    }
}

/// The kernels of each source that the backend loads: `(file, names)`.
pub const FUNCTIONS: &[(&str, &[&str])] = &[
    (
        "logprob.cu",
        &[
            "logprob_fwd",
            "logprob_bwd",
            "check_targets",
            "copy16",
            "mask_scale",
        ],
    ),
    (
        "loss.cu",
        &[
            "loss_scan",
            "loss_subseq_sums",
            "loss_traj_sums",
            "loss_plan",
            "loss_gspo_traj",
            "loss_gspo_subseq",
            "loss_token",
            "loss_count_clipped",
        ],
    ),
    ("adamw.cu", &["adamw_step"]),
];

type Cache = Mutex<HashMap<usize, Arc<Kernels>>>;

fn cache() -> &'static Cache {
    static C: OnceLock<Cache> = OnceLock::new();
    C.get_or_init(|| Mutex::new(HashMap::new()))
}

fn load_kernels(ctx: &Arc<CudaContext>) -> Result<Arc<Kernels>> {
    let ord = ctx.ordinal();
    if let Ok(map) = cache().lock()
        && let Some(k) = map.get(&ord)
    {
        return Ok(k.clone());
    }
    let arch = ctx.compute_capability().ok().and_then(arch_for);
    let dir = ptx_cache_dir();
    let mut f = HashMap::new();
    for &(file, names) in FUNCTIONS {
        let src = SOURCES
            .iter()
            .find(|s| s.0 == file)
            .map(|s| s.1)
            .unwrap_or_default();
        let name: &'static str = SOURCES
            .iter()
            .find(|s| s.0 == file)
            .map(|s| s.0)
            .unwrap_or("?");
        let (ptx, _cached) = compile_cached(name, src, arch, dir.as_deref())?;
        // Kernels are `extern "C"`: the PTX entry names are the plain names.
        let module = ctx.load_module(ptx).map_err(drv("load_module"))?;
        for &n in names {
            f.insert(n, module.load_function(n).map_err(drv("load_function"))?);
        }
    }
    let k = Arc::new(Kernels { f });
    if let Ok(mut map) = cache().lock() {
        map.insert(ord, k.clone());
    }
    Ok(k)
}

/// One CUDA device: its context, the stream every op is queued on, and the
/// compiled kernels (compiled by NVRTC at first use, once per process and
/// device).
#[derive(Debug, Clone)]
pub struct CudaDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    kernels: Arc<OnceLock<Arc<Kernels>>>,
    blas: Arc<OnceLock<Arc<cudarc::cublas::CudaBlas>>>,
    allocated: Arc<AtomicUsize>,
}

/// Device storage of a tensor.
#[derive(Debug, Clone)]
#[doc(hidden)]
pub enum CudaStorage {
    F32(CudaSlice<f32>),
    F16(CudaSlice<f16>),
    BF16(CudaSlice<bf16>),
    I32(CudaSlice<i32>),
    U8(CudaSlice<u8>),
}

macro_rules! each {
    ($s:expr, $v:ident => $e:expr) => {
        match $s {
            CudaStorage::F32($v) => $e,
            CudaStorage::F16($v) => $e,
            CudaStorage::BF16($v) => $e,
            CudaStorage::I32($v) => $e,
            CudaStorage::U8($v) => $e,
        }
    };
}

impl CudaStorage {
    pub(crate) fn ordinal(&self) -> usize {
        each!(self, s => s.ordinal())
    }

    pub(crate) fn device(&self) -> CudaDevice {
        let stream = each!(self, s => s.stream().clone());
        CudaDevice {
            ctx: stream.context().clone(),
            stream,
            kernels: Arc::new(OnceLock::new()),
            blas: Arc::new(OnceLock::new()),
            allocated: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub(crate) fn poison(&mut self) -> Result<()> {
        fn fill<T: Element + DeviceRepr>(s: &mut CudaSlice<T>) -> Result<()> {
            let host = vec![T::POISON; s.len()];
            let stream = s.stream().clone();
            stream.memcpy_htod(&host, s).map_err(drv("poison"))
        }
        each!(self, s => fill(s))
    }
}

pub(crate) fn to_vec<T: Element>(s: &CudaStorage) -> Result<Option<Vec<T>>> {
    let host: crate::tensor::CpuStorage = each!(s, x => {
        let stream = x.stream().clone();
        Element::wrap(stream.clone_dtoh(x).map_err(drv("download"))?)
    });
    Ok(T::unwrap(&host).map(<[T]>::to_vec))
}

fn cuda_of(t: &Tensor) -> Result<&CudaStorage> {
    match &t.storage {
        Storage::Cuda(s) => Ok(s),
        Storage::Cpu(_) => Err(KernelError::DeviceMismatch {
            name: "tensor",
            expected: "cuda".into(),
            got: "cpu".into(),
        }),
    }
}

fn cuda_of_mut(t: &mut Tensor) -> Result<&mut CudaStorage> {
    match &mut t.storage {
        Storage::Cuda(s) => Ok(s),
        Storage::Cpu(_) => Err(KernelError::DeviceMismatch {
            name: "tensor",
            expected: "cuda".into(),
            got: "cpu".into(),
        }),
    }
}

fn typed<T: Element>(t: &Tensor) -> Result<&CudaSlice<T>> {
    T::unwrap_cuda(cuda_of(t)?).ok_or(KernelError::DType {
        name: "tensor",
        expected: "the op's element type",
        got: t.dtype,
    })
}

const BLOCK: u32 = 256;

fn grid_for(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((n as u32).div_ceil(BLOCK).max(1), 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Threads per block of the row kernels (one block per token row).
const ROW_BLOCK: u32 = 512;

/// The most threads per block any launch of this backend uses: every kernel
/// must fit its registers and shared memory into one SM at this block size
/// (`tests/nvrtc.rs` checks it with ptxas when one is at hand).
pub const MAX_BLOCK_THREADS: u32 = if BLOCK > ROW_BLOCK { BLOCK } else { ROW_BLOCK };

fn rows_cfg(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n as u32, 1, 1),
        block_dim: (ROW_BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl CudaDevice {
    /// CUDA device `ordinal`, after checking that the driver loads and the
    /// device exists (so context creation cannot panic).
    ///
    /// # Errors
    /// [`KernelError::NoCuda`].
    pub fn new(ordinal: usize) -> Result<CudaDevice> {
        if !driver_present() {
            return Err(KernelError::NoCuda(
                "the CUDA driver library is not installed".into(),
            ));
        }
        let count = CudaContext::device_count()
            .map_err(|e| KernelError::NoCuda(format!("cuInit failed: {e}")))?;
        if ordinal >= count.max(0) as usize {
            return Err(KernelError::NoCuda(format!(
                "device {ordinal} asked for, {count} present"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| KernelError::NoCuda(e.to_string()))?;
        let stream = ctx.default_stream();
        Ok(CudaDevice {
            ctx,
            stream,
            kernels: Arc::new(OnceLock::new()),
            blas: Arc::new(OnceLock::new()),
            allocated: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.ctx.ordinal()
    }

    /// The stream every op of this device is queued on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The device name, as the driver reports it.
    pub fn name(&self) -> String {
        self.ctx.name().unwrap_or_else(|_| "unknown".into())
    }

    /// Bytes allocated on the device by ops of this handle (outputs and
    /// scratch) since its creation or the last [`Self::reset_allocated`].
    pub fn allocated_bytes(&self) -> usize {
        self.allocated.load(Ordering::Relaxed)
    }

    /// Resets [`Self::allocated_bytes`] to 0.
    pub fn reset_allocated(&self) {
        self.allocated.store(0, Ordering::Relaxed);
    }

    /// Compiles (first call) and returns the kernels.
    fn kernels(&self) -> Result<&Arc<Kernels>> {
        if let Some(k) = self.kernels.get() {
            return Ok(k);
        }
        let k = load_kernels(&self.ctx)?;
        Ok(self.kernels.get_or_init(|| k))
    }

    /// Compiles and loads every kernel now (otherwise done at first use).
    ///
    /// # Errors
    /// [`KernelError::NoNvrtc`], [`KernelError::Compile`], [`KernelError::Driver`].
    pub fn warm_up(&self) -> Result<()> {
        self.kernels().map(|_| ())
    }

    /// Waits for every queued op.
    ///
    /// # Errors
    /// [`KernelError::Driver`].
    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(drv("synchronize"))
    }

    pub(crate) fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, n: usize) -> Result<CudaSlice<T>> {
        self.allocated
            .fetch_add(n.max(1) * std::mem::size_of::<T>(), Ordering::Relaxed);
        self.stream.alloc_zeros::<T>(n.max(1)).map_err(drv("alloc"))
    }

    /// Uninitialised device memory (outputs every element of which a kernel writes).
    pub(crate) fn alloc<T: DeviceRepr>(&self, n: usize) -> Result<CudaSlice<T>> {
        self.allocated
            .fetch_add(n.max(1) * std::mem::size_of::<T>(), Ordering::Relaxed);
        // SAFETY: every caller launches a kernel that writes all n elements
        // before the buffer is read.
        unsafe { self.stream.alloc::<T>(n.max(1)) }.map_err(drv("alloc"))
    }

    pub(crate) fn upload<T: Element>(&self, data: &[T], shape: &[usize]) -> Result<Tensor> {
        fn up<T: Element + DeviceRepr + ValidAsZeroBits>(
            d: &CudaDevice,
            data: &[T],
        ) -> Result<CudaSlice<T>> {
            if data.is_empty() {
                return d.stream.alloc_zeros::<T>(1).map_err(drv("alloc"));
            }
            d.stream.clone_htod(data).map_err(drv("upload"))
        }
        // Dispatch on the dtype to reach the DeviceRepr bound.
        let storage = match T::DTYPE {
            DType::F32 => CudaStorage::F32(up(self, cast::<T, f32>(data))?),
            DType::F16 => CudaStorage::F16(up(self, cast::<T, f16>(data))?),
            DType::BF16 => CudaStorage::BF16(up(self, cast::<T, bf16>(data))?),
            DType::I32 => CudaStorage::I32(up(self, cast::<T, i32>(data))?),
            DType::U8 => CudaStorage::U8(up(self, cast::<T, u8>(data))?),
        };
        Ok(Tensor {
            shape: shape.to_vec(),
            dtype: T::DTYPE,
            storage: Storage::Cuda(storage),
        })
    }

    fn f32_tensor(&self, s: CudaSlice<f32>, n: usize) -> Tensor {
        Tensor {
            shape: vec![n],
            dtype: DType::F32,
            storage: Storage::Cuda(CudaStorage::F32(s)),
        }
    }

    fn func(&self, name: &'static str) -> Result<&CudaFunction> {
        self.kernels()?.get(name)
    }

    pub(crate) fn token_logprobs(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        n: usize,
        v: usize,
        with_entropy: bool,
    ) -> Result<TokenLogprobs> {
        let y = typed::<i32>(targets)?;
        let mut lp = self.alloc::<f32>(n)?;
        let mut lse = self.alloc::<f32>(n)?;
        let mut ent = if with_entropy {
            self.alloc::<f32>(n)?
        } else {
            self.zeros::<f32>(1)?
        };
        let mut err = self.stream.clone_htod(&[u64::MAX]).map_err(drv("upload"))?;
        let (ni, vi, dt, we) = (
            n as i32,
            v as i64,
            logits.dtype.kernel_code(),
            i32::from(with_entropy),
        );
        let ls = cuda_of(logits)?;
        let f = self.func("logprob_fwd")?;
        each!(ls, x => {
            let mut b = self.stream.launch_builder(f);
            b.arg(x).arg(y).arg(&mut lp).arg(&mut lse).arg(&mut ent).arg(&we).arg(&mut err)
                .arg(&ni).arg(&vi).arg(&dt);
            // SAFETY: the arguments match `logprob_fwd` in logprob.cu.
            unsafe { b.launch(rows_cfg(n)) }.map_err(drv("logprob_fwd"))?;
        });
        self.target_error(&err, y, v)?;
        Ok(TokenLogprobs {
            logprobs: self.f32_tensor(lp, n),
            lse: self.f32_tensor(lse, n),
            entropy: with_entropy.then(|| self.f32_tensor(ent, n)),
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn logits_backward(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        lse: &Tensor,
        grad_lp: &Tensor,
        eg: Option<EntropyGrad<'_>>,
        n: usize,
        v: usize,
    ) -> Result<Tensor> {
        let ls = cuda_of(logits)?;
        let mut out = match ls {
            CudaStorage::F32(_) => CudaStorage::F32(self.alloc::<f32>(n * v)?),
            CudaStorage::F16(_) => CudaStorage::F16(self.alloc::<f16>(n * v)?),
            CudaStorage::BF16(_) => CudaStorage::BF16(self.alloc::<bf16>(n * v)?),
            _ => {
                return Err(KernelError::DType {
                    name: "logits",
                    expected: "f32, f16 or bf16",
                    got: logits.dtype,
                });
            }
        };
        self.backward_launch(
            Some(ls),
            &mut out,
            targets,
            lse,
            grad_lp,
            eg,
            n,
            v,
            logits.dtype,
        )?;
        Ok(Tensor {
            shape: vec![n, v],
            dtype: logits.dtype,
            storage: Storage::Cuda(out),
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn logits_backward_in_place(
        &self,
        logits: &mut Tensor,
        targets: &Tensor,
        lse: &Tensor,
        grad_lp: &Tensor,
        eg: Option<EntropyGrad<'_>>,
        n: usize,
        v: usize,
    ) -> Result<()> {
        let dt = logits.dtype;
        let out = cuda_of_mut(logits)?;
        self.backward_launch(None, out, targets, lse, grad_lp, eg, n, v, dt)
    }

    /// Checks every target id on the device (`check_targets`), reading back
    /// one word: [`KernelError::TargetOutOfRange`] for the first row outside
    /// `[0, v)`, before any backward writes.
    pub(crate) fn check_targets(&self, targets: &Tensor, v: usize) -> Result<()> {
        let y = typed::<i32>(targets)?;
        let n = targets.len();
        let mut err = self.stream.clone_htod(&[u64::MAX]).map_err(drv("upload"))?;
        let (ni, vi) = (n as i32, v as i64);
        let f = self.func("check_targets")?;
        let mut b = self.stream.launch_builder(f);
        b.arg(y).arg(&mut err).arg(&ni).arg(&vi);
        // SAFETY: the arguments match `check_targets` in logprob.cu.
        unsafe { b.launch(grid_for(n)) }.map_err(drv("check_targets"))?;
        self.target_error(&err, y, v)
    }

    /// Reads the error word of `logprob_fwd` / `check_targets` (the first bad
    /// row, or `u64::MAX`) and turns a bad row into
    /// [`KernelError::TargetOutOfRange`] with its target id.
    fn target_error(&self, err: &CudaSlice<u64>, y: &CudaSlice<i32>, v: usize) -> Result<()> {
        let row = self.one(err, 0)?;
        if row == u64::MAX {
            return Ok(());
        }
        let row = row as usize;
        let target = if row < y.len() { self.one(y, row)? } else { -1 };
        Err(KernelError::TargetOutOfRange {
            row,
            target: i64::from(target),
            vocab: v,
        })
    }

    /// Launches `logprob_bwd`; with `src = None` it reads and writes `out`.
    #[allow(clippy::too_many_arguments)]
    fn backward_launch(
        &self,
        src: Option<&CudaStorage>,
        out: &mut CudaStorage,
        targets: &Tensor,
        lse: &Tensor,
        grad_lp: &Tensor,
        eg: Option<EntropyGrad<'_>>,
        n: usize,
        v: usize,
        dtype: DType,
    ) -> Result<()> {
        let y = typed::<i32>(targets)?;
        let l = typed::<f32>(lse)?;
        let g = typed::<f32>(grad_lp)?;
        let (e, h, has) = match eg {
            Some(eg) => (typed::<f32>(eg.entropy)?, typed::<f32>(eg.grad)?, 1i32),
            None => (g, g, 0i32),
        };
        let (ni, vi, dt) = (n as i32, v as i64, dtype.kernel_code());
        let f = self.func("logprob_bwd")?;
        // In place, the read pointer is the output buffer's own address.
        let src_ptr = match src {
            Some(s) => each!(s, x => raw_ptr(x, &self.stream)),
            None => each!(&*out, o => raw_ptr(o, &self.stream)),
        };
        each!(out, o => {
            let mut b = self.stream.launch_builder(f);
            b.arg(&src_ptr).arg(&mut *o).arg(y).arg(l).arg(g).arg(e).arg(h).arg(&has)
                .arg(&ni).arg(&vi).arg(&dt);
            // SAFETY: the arguments match `logprob_bwd` in logprob.cu; the
            // source buffer (when distinct) outlives the launch, as the
            // stream is synchronised before the caller can drop it.
            unsafe { b.launch(rows_cfg(n)) }.map_err(drv("logprob_bwd"))?;
        });
        if src.is_some() {
            self.synchronize()?;
        }
        Ok(())
    }
}

/// The raw device address of a buffer (passed as the read pointer of an
/// in-place launch, whose write pointer is the tracked buffer itself).
fn raw_ptr<T>(s: &CudaSlice<T>, stream: &CudaStream) -> u64 {
    use cudarc::driver::DevicePtr;
    let (p, _sync) = s.device_ptr(stream);
    p
}

/// Reinterprets `&[T]` as `&[U]` when both are the same element type.
fn cast<T: Element, U: Element>(data: &[T]) -> &[U] {
    if T::DTYPE == U::DTYPE {
        // SAFETY: same DType means same Rust type (the Element impls are
        // one per DType), so layout and validity are identical.
        unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<U>(), data.len()) }
    } else {
        &[]
    }
}

const C_LEN: usize = 11;
const G_LEN: usize = 5;

fn alg_code(a: Algorithm) -> i32 {
    match a {
        Algorithm::Grpo => 0,
        Algorithm::Gspo => 1,
        Algorithm::Gsspo => 2,
        Algorithm::Cwrpo => 3,
        Algorithm::Reinforce => 4,
    }
}

fn agg_code(a: Aggregation) -> i32 {
    match a {
        Aggregation::TokenMean => 0,
        Aggregation::SeqMeanTokenMean => 1,
        Aggregation::SeqMeanTokenSum => 2,
        Aggregation::SeqMeanTokenSumNorm => 3,
        Aggregation::TrajMeanSubseqMean => 4,
        Aggregation::SubseqMean => 5,
    }
}

fn kl_code(k: KlEstimator) -> i32 {
    match k {
        KlEstimator::K1 => 0,
        KlEstimator::K2 => 1,
        KlEstimator::K3 => 2,
    }
}

impl CudaDevice {
    fn one<T: DeviceRepr + Default + Clone>(&self, s: &CudaSlice<T>, i: usize) -> Result<T> {
        let v = self
            .stream
            .clone_dtoh(&s.slice(i..i + 1))
            .map_err(drv("download"))?;
        Ok(v.first().cloned().unwrap_or_default())
    }

    pub(crate) fn policy_loss(
        &self,
        inp: &LossInputs<'_>,
        c: &ObjectiveConfig,
    ) -> Result<PolicyLoss> {
        let n = inp.logprobs.len();
        if n == 0 {
            return Err(ObjectiveError::EmptyBatch("no token positions").into());
        }
        if n > i32::MAX as usize {
            return Err(KernelError::TooLarge {
                name: "N",
                value: n,
                limit: i32::MAX as usize,
            });
        }
        let mut lens = vec![
            ("old_logprobs", inp.old_logprobs.len()),
            ("mask", inp.mask.len()),
            ("subseq", inp.subseq.len()),
            ("traj", inp.traj.len()),
        ];
        if let Some(r) = inp.ref_logprobs {
            lens.push(("ref_logprobs", r.len()));
        }
        if let Some(e) = inp.entropy {
            lens.push(("entropy", e.len()));
        }
        flowrl_objectives::check_lengths(n, &lens)?;
        flowrl_objectives::check_optional_inputs(
            c,
            inp.ref_logprobs.is_some(),
            inp.entropy.is_some(),
        )?;
        let nb = inp.advantages.len();
        let lp = typed::<f32>(inp.logprobs)?;
        let old = typed::<f32>(inp.old_logprobs)?;
        let (rf, has_ref) = match inp.ref_logprobs {
            Some(t) => (typed::<f32>(t)?, 1i32),
            None => (lp, 0),
        };
        let (ent, has_ent) = match inp.entropy {
            Some(t) => (typed::<f32>(t)?, 1i32),
            None => (lp, 0),
        };
        let mask = typed::<u8>(inp.mask)?;
        let subseq = typed::<i32>(inp.subseq)?;
        let traj = typed::<i32>(inp.traj)?;
        let adv = typed::<f32>(inp.advantages)?;

        let mut sub_count = self.zeros::<u32>(n)?;
        let mut sub_traj1 = self.zeros::<u32>(n)?;
        let mut sub_delta = self.zeros::<f64>(n)?;
        let mut sub_lp = self.zeros::<f64>(n)?;
        let mut coef_w = self.zeros::<f64>(n)?;
        let mut coef_a = self.zeros::<f64>(n)?;
        let mut sub_clipped = self.zeros::<u32>(n)?;
        let mut traj_count = self.zeros::<u32>(nb)?;
        let mut traj_k = self.zeros::<u32>(nb)?;
        let mut traj_delta = self.zeros::<f64>(nb)?;
        let mut traj_w = self.zeros::<f64>(nb)?;
        let mut traj_g = self.zeros::<f64>(nb)?;
        let mut traj_clipped = self.zeros::<u32>(nb)?;
        let mut grad = self.alloc::<f32>(n)?;
        let mut g = self.zeros::<f64>(G_LEN)?;
        let mut c0 = [0u64; C_LEN];
        c0[7] = f64::INFINITY.to_bits();
        c0[9] = u64::MAX;
        c0[10] = u64::MAX;
        let mut cc = self.stream.clone_htod(&c0).map_err(drv("upload"))?;

        let (ni, nbi) = (n as i32, nb as i32);
        let alg = alg_code(c.algorithm);
        let agg = agg_code(c.aggregation);
        let kl = kl_code(c.kl_estimator);
        let horizon = c.loss_agg_horizon.map_or(0.0, f64::from);
        let (lo, hi) = (1.0 - c.clip_low, 1.0 + c.clip_high);
        let (has_dual, dual_c) = match c.dual_clip {
            Some(d) => (1i32, d),
            None => (0, 0.0),
        };
        let kl_coef = c.kl_coef;
        let s = &self.stream;
        macro_rules! launch {
            ($name:literal, $count:expr, [$($a:expr),* $(,)?]) => {{
                let f = self.func($name)?;
                let mut b = s.launch_builder(f);
                $( b.arg($a); )*
                // SAFETY: the arguments match the kernel of that name in loss.cu.
                unsafe { b.launch(grid_for($count)) }.map_err(drv($name))?;
            }};
        }
        launch!(
            "loss_scan",
            n,
            [
                &ni,
                &nbi,
                lp,
                old,
                rf,
                &has_ref,
                ent,
                &has_ent,
                mask,
                subseq,
                traj,
                &mut sub_count,
                &mut sub_traj1,
                &mut sub_delta,
                &mut sub_lp,
                &kl,
                &mut g,
                &mut cc,
            ]
        );
        launch!(
            "loss_subseq_sums",
            n,
            [
                &ni,
                &sub_count,
                &sub_traj1,
                &sub_delta,
                &mut traj_count,
                &mut traj_k,
                &mut traj_delta,
                &mut cc,
            ]
        );
        launch!("loss_traj_sums", nb, [&nbi, adv, &traj_count, &mut cc]);
        launch!(
            "loss_plan",
            n,
            [
                &ni,
                adv,
                &sub_count,
                &sub_traj1,
                &sub_delta,
                &sub_lp,
                &traj_count,
                &traj_k,
                &alg,
                &agg,
                &horizon,
                &lo,
                &hi,
                &has_dual,
                &dual_c,
                &mut coef_w,
                &mut coef_a,
                &mut traj_w,
                &mut g,
                &mut cc,
            ]
        );
        if c.algorithm == Algorithm::Gspo {
            launch!(
                "loss_gspo_traj",
                nb,
                [
                    &nbi,
                    adv,
                    &traj_count,
                    &traj_delta,
                    &traj_w,
                    &lo,
                    &hi,
                    &has_dual,
                    &dual_c,
                    &mut traj_g,
                    &mut traj_clipped,
                    &mut g,
                    &mut cc,
                ]
            );
            launch!(
                "loss_gspo_subseq",
                n,
                [
                    &ni,
                    &sub_count,
                    &sub_traj1,
                    &traj_g,
                    &traj_clipped,
                    &mut coef_w,
                    &mut cc,
                ]
            );
        }
        launch!(
            "loss_token",
            n,
            [
                &ni,
                &alg,
                lp,
                old,
                rf,
                &has_ref,
                mask,
                subseq,
                &coef_w,
                &coef_a,
                &lo,
                &hi,
                &has_dual,
                &dual_c,
                &kl,
                &kl_coef,
                &mut sub_clipped,
                &mut grad,
                &mut g,
                &mut cc,
            ]
        );
        let token_unit = matches!(c.algorithm, Algorithm::Grpo | Algorithm::Cwrpo);
        if token_unit {
            launch!("loss_count_clipped", n, [&ni, &sub_clipped, &mut cc]);
        }
        let gh = s.clone_dtoh(&g).map_err(drv("download"))?;
        let ch = s.clone_dtoh(&cc).map_err(drv("download"))?;
        if gh.len() < G_LEN || ch.len() < C_LEN {
            return Err(KernelError::Driver {
                context: "download",
                message: "short read of the accumulators".into(),
            });
        }
        if ch[10] != u64::MAX {
            let i = (ch[10] >> 8) as usize;
            return Err(ObjectiveError::NonFinite {
                field: "advantages",
                index: i,
                value: f64::from(self.one(adv, i)?),
            }
            .into());
        }
        if ch[9] != u64::MAX {
            return Err(self.decode_error(ch[9], inp, &sub_traj1)?);
        }
        let t_tokens = ch[0] as usize;
        if t_tokens == 0 {
            return Err(ObjectiveError::EmptyBatch("no policy token (mask is all 0)").into());
        }
        let t = t_tokens as f64;
        let ratio_unit = c.algorithm.ratio_unit();
        let num_subseqs = ch[1] as usize;
        let num_traj = ch[2] as usize;
        let units = match c.algorithm {
            Algorithm::Gsspo => num_subseqs as f64,
            Algorithm::Gspo => num_traj as f64,
            _ => t,
        };
        let mut stats = LossStats {
            pg_loss: gh[3],
            kl: None,
            kl_loss: 0.0,
            entropy: None,
            entropy_loss: 0.0,
            approx_kl: -gh[0] / t,
            ratio_unit,
            ratio_mean: gh[4] / units,
            ratio_min: f64::from_bits(ch[7]),
            ratio_max: f64::from_bits(ch[8]),
            clip_frac_token: ch[4] as f64 / t,
            clip_frac_subseq: ch[5] as f64 / num_subseqs as f64,
            dual_clip_frac_token: ch[6] as f64 / t,
            num_tokens: n,
            num_policy_tokens: t_tokens,
            num_subseqs,
            num_trajectories: num_traj,
            num_clipped_tokens: ch[4] as usize,
            num_clipped_subseqs: ch[5] as usize,
        };
        if inp.ref_logprobs.is_some() {
            let kl = gh[1] / t;
            stats.kl = Some(kl);
            stats.kl_loss = c.kl_coef * kl;
        }
        if inp.entropy.is_some() {
            let e = gh[2] / t;
            stats.entropy = Some(e);
            stats.entropy_loss = -c.entropy_coef * e;
        }
        let loss = stats.pg_loss + stats.kl_loss + stats.entropy_loss;
        Ok(PolicyLoss {
            loss,
            grad: self.f32_tensor(grad, n),
            stats,
        })
    }

    /// Maps an error key of `loss_scan` to the reference's error variant.
    fn decode_error(
        &self,
        key: u64,
        inp: &LossInputs<'_>,
        sub_traj1: &CudaSlice<u32>,
    ) -> Result<KernelError> {
        let index = (key >> 8) as usize;
        let code = key & 0xff;
        let subseq = self.one(typed::<i32>(inp.subseq)?, index)?;
        let traj = self.one(typed::<i32>(inp.traj)?, index)?;
        let val = |t: &Tensor| -> Result<f64> { Ok(f64::from(self.one(typed::<f32>(t)?, index)?)) };
        let e = match code {
            1 => ObjectiveError::SubseqOnMaskedToken { index, subseq },
            2 => ObjectiveError::MissingSubseq { index, subseq },
            3 => ObjectiveError::SubseqOutOfRange {
                index,
                subseq,
                len: inp.logprobs.len(),
            },
            4 => ObjectiveError::MissingAdvantage {
                index,
                traj: i64::from(traj),
                available: inp.advantages.len(),
            },
            5 => ObjectiveError::NonFinite {
                field: "logprobs",
                index,
                value: val(inp.logprobs)?,
            },
            6 => ObjectiveError::NonFinite {
                field: "old_logprobs",
                index,
                value: val(inp.old_logprobs)?,
            },
            7 => ObjectiveError::NonFinite {
                field: "ref_logprobs",
                index,
                value: inp.ref_logprobs.map(val).transpose()?.unwrap_or(f64::NAN),
            },
            8 => ObjectiveError::NonFinite {
                field: "entropy",
                index,
                value: inp.entropy.map(val).transpose()?.unwrap_or(f64::NAN),
            },
            _ => {
                let first = self.one(sub_traj1, subseq.max(0) as usize)?;
                ObjectiveError::SubseqInTwoTrajectories {
                    subseq: subseq.max(0) as usize,
                    first: first.saturating_sub(1) as usize,
                    second: traj.max(0) as usize,
                }
            }
        };
        Ok(e.into())
    }

    pub(crate) fn mask_scale(&self, mask: &Tensor, c: f64) -> Result<Tensor> {
        let n = mask.len();
        let m = typed::<u8>(mask)?;
        let mut out = self.alloc::<f32>(n)?;
        let (ni, cf) = (n as i32, c as f32);
        let f = self.func("mask_scale")?;
        let mut b = self.stream.launch_builder(f);
        b.arg(&ni).arg(m).arg(&cf).arg(&mut out);
        // SAFETY: the arguments match `mask_scale` in logprob.cu.
        unsafe { b.launch(grid_for(n)) }.map_err(drv("mask_scale"))?;
        Ok(self.f32_tensor(out, n))
    }

    pub(crate) fn adamw_step(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        s: &AdamScalars,
    ) -> Result<()> {
        let n = param.len() as i64;
        let f = self.func("adamw_step")?;
        let g = typed::<f32>(grad)?;
        let p = f32::unwrap_cuda_mut(cuda_of_mut(param)?).ok_or(KernelError::DType {
            name: "param",
            expected: "f32",
            got: DType::F32,
        })?;
        let mut b = self.stream.launch_builder(f);
        b.arg(p);
        b.arg(g);
        let mm = f32::unwrap_cuda_mut(cuda_of_mut(m)?).ok_or(KernelError::DType {
            name: "m",
            expected: "f32",
            got: DType::F32,
        })?;
        b.arg(mm);
        let vv = f32::unwrap_cuda_mut(cuda_of_mut(v)?).ok_or(KernelError::DType {
            name: "v",
            expected: "f32",
            got: DType::F32,
        })?;
        b.arg(vv);
        b.arg(&n)
            .arg(&s.decay)
            .arg(&s.beta1)
            .arg(&s.one_minus_beta1)
            .arg(&s.beta2)
            .arg(&s.one_minus_beta2)
            .arg(&s.step_size)
            .arg(&s.inv_sqrt_bc2)
            .arg(&s.eps);
        let blocks = (n as u64).div_ceil(u64::from(BLOCK)).clamp(1, 65_535) as u32;
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the arguments match `adamw_step` in adamw.cu.
        unsafe { b.launch(cfg) }.map_err(drv("adamw_step"))?;
        Ok(())
    }

    /// Copies `src` into `dst` (both of `bytes` bytes, a multiple of 16)
    /// with a plain kernel: the bandwidth reference of the benchmarks.
    ///
    /// # Errors
    /// [`KernelError::Shape`] for a size that is not a multiple of 16 bytes;
    /// driver errors.
    pub fn copy_kernel(&self, src: &CudaSlice<u8>, dst: &mut CudaSlice<u8>) -> Result<()> {
        let bytes = src.len().min(dst.len());
        if !bytes.is_multiple_of(16) {
            return Err(KernelError::Shape {
                name: "copy",
                expected: "a multiple of 16 bytes".into(),
                got: vec![bytes],
            });
        }
        let words = (bytes / 16) as i64;
        let f = self.func("copy16")?;
        let mut b = self.stream.launch_builder(f);
        b.arg(src).arg(dst).arg(&words);
        let cfg = LaunchConfig {
            grid_dim: (132 * 16, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the arguments match `copy16` in logprob.cu.
        unsafe { b.launch(cfg) }.map_err(drv("copy16"))?;
        Ok(())
    }

    /// Raw device bytes (uninitialised), for benchmarks.
    ///
    /// # Errors
    /// Driver errors.
    pub fn alloc_bytes(&self, n: usize) -> Result<CudaSlice<u8>> {
        self.alloc::<u8>(n)
    }

    /// The underlying cudarc context.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }
}

impl Tensor {
    /// A tensor over an existing cudarc buffer (no copy). `shape`'s product
    /// must equal the buffer's length.
    ///
    /// # Errors
    /// [`KernelError::DataLength`] when the shape does not match.
    pub fn from_cuda_slice<T: Element>(slice: CudaSlice<T>, shape: &[usize]) -> Result<Tensor> {
        let expected: usize = shape.iter().product();
        if expected != slice.len() {
            return Err(KernelError::DataLength {
                shape: shape.to_vec(),
                expected,
                got: slice.len(),
            });
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            dtype: T::DTYPE,
            storage: Storage::Cuda(T::wrap_cuda(slice)),
        })
    }

    /// The cudarc buffer, when the tensor is on a CUDA device and of type `T`.
    pub fn cuda_slice<T: Element>(&self) -> Option<&CudaSlice<T>> {
        match &self.storage {
            Storage::Cuda(s) => T::unwrap_cuda(s),
            Storage::Cpu(_) => None,
        }
    }
}

fn blas_err(context: &'static str) -> impl Fn(cudarc::cublas::result::CublasError) -> KernelError {
    move |e| KernelError::Driver {
        context,
        message: format!("cuBLAS: {e:?}"),
    }
}

fn cuda_type(d: DType) -> cudarc::cublas::sys::cudaDataType {
    use cudarc::cublas::sys::cudaDataType_t as T;
    match d {
        DType::F16 => T::CUDA_R_16F,
        DType::BF16 => T::CUDA_R_16BF,
        _ => T::CUDA_R_32F,
    }
}

impl CudaDevice {
    fn blas(&self) -> Result<&Arc<cudarc::cublas::CudaBlas>> {
        if let Some(b) = self.blas.get() {
            return Ok(b);
        }
        // SAFETY: only tries to dlopen the library by its usual names.
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err(KernelError::NoCuda("libcublas could not be loaded".into()));
        }
        let b = cudarc::cublas::CudaBlas::new(self.stream.clone()).map_err(blas_err("create"))?;
        Ok(self.blas.get_or_init(|| Arc::new(b)))
    }

    /// Rows `r0..r1` of a row-major tensor, copied into a new tensor.
    pub(crate) fn slice_rows(&self, t: &Tensor, r0: usize, r1: usize) -> Result<Tensor> {
        let row: usize = t.shape[1..].iter().product();
        let mut shape = t.shape.clone();
        shape[0] = r1 - r0;
        let s = cuda_of(t)?;
        let (a, b) = (r0 * row, r1 * row);
        self.allocated
            .fetch_add((b - a).max(1) * t.dtype.size(), Ordering::Relaxed);
        let out = each!(s, x => Element::wrap_cuda(
            self.stream.clone_dtod(&x.slice(a..b.max(a + 1).min(x.len()))).map_err(drv("copy"))?
        ));
        Ok(Tensor {
            shape,
            dtype: t.dtype,
            storage: Storage::Cuda(out),
        })
    }

    /// The tensors of `parts` (same dtype, same trailing shape) stacked
    /// along the first dimension.
    pub(crate) fn concat_rows(&self, parts: &[Tensor]) -> Result<Tensor> {
        let first = parts.first().ok_or(KernelError::Shape {
            name: "concat",
            expected: "at least one part".into(),
            got: vec![],
        })?;
        let rows: usize = parts.iter().map(|p| p.shape[0]).sum();
        let mut shape = first.shape.clone();
        shape[0] = rows;
        let total: usize = shape.iter().product();
        fn cat<T: Element + DeviceRepr>(
            d: &CudaDevice,
            parts: &[Tensor],
            total: usize,
        ) -> Result<CudaStorage> {
            let mut out = d.alloc::<T>(total)?;
            let mut off = 0;
            for p in parts {
                let n = p.len();
                let src = typed::<T>(p)?;
                let mut dst = out.slice_mut(off..off + n);
                d.stream
                    .memcpy_dtod(&src.slice(0..n), &mut dst)
                    .map_err(drv("copy"))?;
                off += n;
            }
            Ok(T::wrap_cuda(out))
        }
        let storage = match first.dtype {
            DType::F32 => cat::<f32>(self, parts, total)?,
            DType::F16 => cat::<f16>(self, parts, total)?,
            DType::BF16 => cat::<bf16>(self, parts, total)?,
            DType::I32 => cat::<i32>(self, parts, total)?,
            DType::U8 => cat::<u8>(self, parts, total)?,
        };
        Ok(Tensor {
            shape,
            dtype: first.dtype,
            storage: Storage::Cuda(storage),
        })
    }

    /// An uninitialised tensor of `dtype` (every element is written by the
    /// caller's next GEMM).
    pub(crate) fn empty(&self, dtype: DType, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let storage = match dtype {
            DType::F32 => CudaStorage::F32(self.alloc::<f32>(n)?),
            DType::F16 => CudaStorage::F16(self.alloc::<f16>(n)?),
            DType::BF16 => CudaStorage::BF16(self.alloc::<bf16>(n)?),
            DType::I32 => CudaStorage::I32(self.alloc::<i32>(n)?),
            DType::U8 => CudaStorage::U8(self.alloc::<u8>(n)?),
        };
        Ok(Tensor {
            shape: shape.to_vec(),
            dtype,
            storage: Storage::Cuda(storage),
        })
    }

    /// One cublasGemmEx in column-major terms, f32 compute.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self,
        ta: bool,
        tb: bool,
        (m, n, k): (usize, usize, usize),
        a: &Tensor,
        lda: usize,
        b: &Tensor,
        ldb: usize,
        beta: f32,
        c: &mut Tensor,
        ldc: usize,
    ) -> Result<()> {
        use cudarc::cublas::sys::cublasOperation_t as Op;
        use cudarc::driver::{DevicePtr, DevicePtrMut};
        let blas = self.blas()?.clone();
        let big = |v: usize| {
            i32::try_from(v).map_err(|_| KernelError::TooLarge {
                name: "GEMM dimension",
                value: v,
                limit: i32::MAX as usize,
            })
        };
        let (mi, ni, ki) = (big(m)?, big(n)?, big(k)?);
        let (la, lb, lc) = (big(lda)?, big(ldb)?, big(ldc)?);
        let (at, bt, ct) = (cuda_type(a.dtype), cuda_type(b.dtype), cuda_type(c.dtype));
        let stream = &self.stream;
        let (pa, _ga) = each!(cuda_of(a)?, x => { let (p, g) = x.device_ptr(stream); (p, g) });
        let (pb, _gb) = each!(cuda_of(b)?, x => { let (p, g) = x.device_ptr(stream); (p, g) });
        let cs = cuda_of_mut(c)?;
        let (pc, _gc) = each!(cs, x => { let (p, g) = x.device_ptr_mut(stream); (p, g) });
        let alpha = 1.0f32;
        let op = |t: bool| if t { Op::CUBLAS_OP_T } else { Op::CUBLAS_OP_N };
        // SAFETY: the pointers are live device buffers of the sizes implied
        // by (m, n, k) and the leading dimensions, checked by the callers.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                *blas.handle(),
                op(ta),
                op(tb),
                mi,
                ni,
                ki,
                (&alpha) as *const f32 as *const _,
                pa as *const _,
                at,
                la,
                pb as *const _,
                bt,
                lb,
                (&beta) as *const f32 as *const _,
                pc as *mut _,
                ct,
                lc,
                cudarc::cublas::sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cudarc::cublas::sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(blas_err("gemm"))
    }

    /// `logits [C, V] = hidden [C, d] · weightᵀ` (weight `[V, d]`), in the
    /// hidden dtype with f32 accumulation.
    pub(crate) fn linear_logits(&self, h: &Tensor, w: &Tensor) -> Result<Tensor> {
        let (c, d, v) = (h.shape[0], h.shape[1], w.shape[0]);
        let mut out = self.empty(h.dtype, &[c, v])?;
        // Column-major: Lᵀ [V, C] = W [V, d] · Hᵀ [d, C].
        self.gemm(true, false, (v, c, d), w, d, h, d, 0.0, &mut out, v)?;
        Ok(out)
    }

    /// `dhidden [C, d] = dlogits [C, V] · weight`, and
    /// `dweight [V, d] (f32) (+)= dlogitsᵀ · hidden` (`accumulate` adds).
    pub(crate) fn linear_backward(
        &self,
        dl: &Tensor,
        h: &Tensor,
        w: &Tensor,
        dw: &mut Tensor,
        accumulate: bool,
    ) -> Result<Tensor> {
        let (c, d, v) = (h.shape[0], h.shape[1], w.shape[0]);
        let mut dh = self.empty(h.dtype, &[c, d])?;
        // dHᵀ [d, C] = Wᵀ [d, V] · dLᵀ [V, C].
        self.gemm(false, false, (d, c, v), w, d, dl, v, 0.0, &mut dh, d)?;
        // dWᵀ [d, V] = Hᵀ [d, C] · dL [C, V].
        let beta = if accumulate { 1.0 } else { 0.0 };
        self.gemm(false, true, (d, v, c), h, d, dl, v, beta, dw, d)?;
        Ok(dh)
    }
}
