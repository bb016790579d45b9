//! Typed, shaped buffers on the CPU or on a CUDA device.

use std::fmt;

use half::{bf16, f16};

use crate::device::Device;
use crate::error::{KernelError, Result};

/// Element type of a [`Tensor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    BF16,
    /// 32-bit signed integer (target ids, sub-sequence ids, trajectories).
    I32,
    /// Byte (the 0/1 policy mask).
    U8,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::U8 => 1,
        }
    }

    /// True for the three floating-point types.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16)
    }

    /// The code of a logits type in the kernels (`DT_F32`, `DT_F16`, `DT_BF16`).
    #[cfg(feature = "cuda")]
    pub(crate) fn kernel_code(self) -> i32 {
        match self {
            DType::F16 => 1,
            DType::BF16 => 2,
            _ => 0,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I32 => "i32",
            DType::U8 => "u8",
        })
    }
}

/// Host storage of a tensor.
#[derive(Debug, Clone)]
pub enum CpuStorage {
    /// f32 elements.
    F32(Vec<f32>),
    /// f16 elements.
    F16(Vec<f16>),
    /// bf16 elements.
    BF16(Vec<bf16>),
    /// i32 elements.
    I32(Vec<i32>),
    /// u8 elements.
    U8(Vec<u8>),
}

mod sealed {
    pub trait Sealed {}
}

/// A type that can be the element of a [`Tensor`]: `f32`, `f16`, `bf16`,
/// `i32` or `u8`. Sealed.
pub trait Element: sealed::Sealed + Copy + Send + Sync + 'static + fmt::Debug {
    /// Its [`DType`].
    const DTYPE: DType;
    /// A value used to poison outputs before a test run (NaN for floats,
    /// an out-of-range marker for integers).
    const POISON: Self;
    /// Wraps a vector as host storage.
    fn wrap(v: Vec<Self>) -> CpuStorage;
    /// The host slice, when the storage holds this type.
    fn unwrap(s: &CpuStorage) -> Option<&[Self]>;
    /// The mutable host slice, when the storage holds this type.
    fn unwrap_mut(s: &mut CpuStorage) -> Option<&mut [Self]>;
    /// Widens to f64 (for the CPU reference).
    fn to_f64(self) -> f64;
    /// Rounds from f64.
    fn from_f64(v: f64) -> Self;
    /// Device storage of this type.
    #[cfg(feature = "cuda")]
    #[doc(hidden)]
    fn wrap_cuda(s: cudarc::driver::CudaSlice<Self>) -> crate::cuda::CudaStorage;
    /// The device slice, when the storage holds this type.
    #[cfg(feature = "cuda")]
    #[doc(hidden)]
    fn unwrap_cuda(s: &crate::cuda::CudaStorage) -> Option<&cudarc::driver::CudaSlice<Self>>;
    /// The mutable device slice, when the storage holds this type.
    #[cfg(feature = "cuda")]
    #[doc(hidden)]
    fn unwrap_cuda_mut(
        s: &mut crate::cuda::CudaStorage,
    ) -> Option<&mut cudarc::driver::CudaSlice<Self>>;
}

macro_rules! element {
    ($t:ty, $var:ident, $poison:expr, $to:expr, $from:expr) => {
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DType = DType::$var;
            const POISON: Self = $poison;
            fn wrap(v: Vec<Self>) -> CpuStorage {
                CpuStorage::$var(v)
            }
            fn unwrap(s: &CpuStorage) -> Option<&[Self]> {
                match s {
                    CpuStorage::$var(v) => Some(v),
                    _ => None,
                }
            }
            fn unwrap_mut(s: &mut CpuStorage) -> Option<&mut [Self]> {
                match s {
                    CpuStorage::$var(v) => Some(v),
                    _ => None,
                }
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                let f: fn($t) -> f64 = $to;
                f(self)
            }
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                let f: fn(f64) -> $t = $from;
                f(v)
            }
            #[cfg(feature = "cuda")]
            fn wrap_cuda(s: cudarc::driver::CudaSlice<Self>) -> crate::cuda::CudaStorage {
                crate::cuda::CudaStorage::$var(s)
            }
            #[cfg(feature = "cuda")]
            fn unwrap_cuda(
                s: &crate::cuda::CudaStorage,
            ) -> Option<&cudarc::driver::CudaSlice<Self>> {
                match s {
                    crate::cuda::CudaStorage::$var(v) => Some(v),
                    _ => None,
                }
            }
            #[cfg(feature = "cuda")]
            fn unwrap_cuda_mut(
                s: &mut crate::cuda::CudaStorage,
            ) -> Option<&mut cudarc::driver::CudaSlice<Self>> {
                match s {
                    crate::cuda::CudaStorage::$var(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}

element!(f32, F32, f32::NAN, f64::from, |v| v as f32);
element!(f16, F16, f16::NAN, f64::from, f16::from_f64);
element!(bf16, BF16, bf16::NAN, f64::from, bf16::from_f64);
element!(i32, I32, i32::MIN, f64::from, |v| v as i32);
element!(u8, U8, 0xAB, f64::from, |v| v as u8);

/// Where a tensor's elements live.
#[derive(Debug, Clone)]
pub(crate) enum Storage {
    Cpu(CpuStorage),
    #[cfg(feature = "cuda")]
    Cuda(crate::cuda::CudaStorage),
}

/// A dense, row-major buffer with a shape and an element type, on the CPU
/// or on one CUDA device. Ops of [`Device`] take and return tensors of their
/// own device.
#[derive(Debug, Clone)]
pub struct Tensor {
    pub(crate) shape: Vec<usize>,
    pub(crate) dtype: DType,
    pub(crate) storage: Storage,
}

impl Tensor {
    pub(crate) fn from_cpu(storage: CpuStorage, shape: Vec<usize>) -> Tensor {
        let dtype = match &storage {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::I32(_) => DType::I32,
            CpuStorage::U8(_) => DType::U8,
        };
        Tensor {
            shape,
            dtype,
            storage: Storage::Cpu(storage),
        }
    }

    /// The shape (row-major).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the tensor has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Size of the elements in bytes.
    pub fn num_bytes(&self) -> usize {
        self.len() * self.dtype.size()
    }

    /// The device holding the elements.
    pub fn device(&self) -> Device {
        match &self.storage {
            Storage::Cpu(_) => Device::Cpu,
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => Device::Cuda(s.device()),
        }
    }

    /// A host copy of the elements.
    ///
    /// # Errors
    /// [`KernelError::DType`] when `T` is not the tensor's type;
    /// [`KernelError::Driver`] when the device copy fails.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        let wrong = || KernelError::DType {
            name: "tensor",
            expected: "the element type asked for",
            got: self.dtype,
        };
        match &self.storage {
            Storage::Cpu(s) => T::unwrap(s).map(<[T]>::to_vec).ok_or_else(wrong),
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => crate::cuda::to_vec::<T>(s).and_then(|v| v.ok_or_else(wrong)),
        }
    }

    /// The host elements, when the tensor is on the CPU and of type `T`.
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        match &self.storage {
            Storage::Cpu(s) => T::unwrap(s),
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) => None,
        }
    }

    /// Overwrites every element with [`Element::POISON`] (NaN for floats),
    /// so that a test notices outputs an op failed to write.
    ///
    /// # Errors
    /// [`KernelError::Driver`] when the device write fails.
    pub fn poison(&mut self) -> Result<()> {
        fn fill<T: Element>(s: &mut CpuStorage) {
            if let Some(v) = T::unwrap_mut(s) {
                v.fill(T::POISON);
            }
        }
        match &mut self.storage {
            Storage::Cpu(s) => {
                fill::<f32>(s);
                fill::<f16>(s);
                fill::<bf16>(s);
                fill::<i32>(s);
                fill::<u8>(s);
                Ok(())
            }
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => s.poison(),
        }
    }
}
