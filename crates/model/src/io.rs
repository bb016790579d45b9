//! safetensors loading (memory-mapped; F32, F16 and BF16 converted to
//! `f32`) and saving of model weights and LoRA adapters.
//!
//! Tensor names are the Hugging Face Qwen2 ones
//! (`model.embed_tokens.weight`, `model.layers.{i}.self_attn.q_proj.weight`
//! / `.bias`, `model.layers.{i}.mlp.gate_proj.weight`, `model.norm.weight`,
//! `lm_head.weight`, …); adapters use PEFT's
//! `base_model.model.<module>.lora_A.weight` / `lora_B.weight`.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::float::Float;
use crate::lora::LoraConfig;
use crate::weights::{LoraAdapter, Model, Param, TensorData};

struct Entry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    len: usize,
}

/// A set of memory-mapped safetensors files (one model may be sharded
/// over several) indexed by tensor name.
pub struct SafetensorsSource {
    maps: Vec<Mmap>,
    index: HashMap<String, Entry>,
}

impl std::fmt::Debug for SafetensorsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsSource")
            .field("files", &self.maps.len())
            .field("tensors", &self.index.len())
            .finish()
    }
}

fn st_err(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Safetensors(format!("{}: {e}", path.display()))
}

impl SafetensorsSource {
    /// Maps and indexes `paths`.
    ///
    /// # Errors
    /// [`ModelError::Io`] when a file cannot be opened or mapped;
    /// [`ModelError::Safetensors`] for a malformed header or a tensor name
    /// present in two files.
    pub fn open(paths: &[PathBuf]) -> Result<Self, ModelError> {
        let mut maps = Vec::with_capacity(paths.len());
        let mut index = HashMap::new();
        for (fi, path) in paths.iter().enumerate() {
            let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
            // SAFETY: the file is only read; a concurrent writer truncating
            // it is outside what this loader supports (as for every mmap).
            let map = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
            let st = SafeTensors::deserialize(&map).map_err(|e| st_err(path, e))?;
            let base = map.as_ptr() as usize;
            for (name, view) in st.tensors() {
                let start = view.data().as_ptr() as usize - base;
                let entry = Entry {
                    file: fi,
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    start,
                    len: view.data().len(),
                };
                if index.insert(name.clone(), entry).is_some() {
                    return Err(st_err(path, format!("tensor `{name}` appears twice")));
                }
            }
            maps.push(map);
        }
        Ok(SafetensorsSource { maps, index })
    }

    /// Every *.safetensors file of `dir`, sorted by name.
    ///
    /// # Errors
    /// [`ModelError::Io`] when the directory cannot be read; otherwise as
    /// [`Self::open`].
    pub fn open_dir(dir: &Path) -> Result<Self, ModelError> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| ModelError::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(ModelError::Safetensors(format!(
                "{}: no .safetensors file",
                dir.display()
            )));
        }
        Self::open(&paths)
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.index.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// The shape and `f32` data of `name`, `Ok(None)` when absent.
    ///
    /// # Errors
    /// [`ModelError::UnsupportedDtype`] for a dtype other than F32, F16 or BF16.
    pub fn get(&self, name: &str) -> Result<Option<TensorData>, ModelError> {
        let Some(e) = self.index.get(name) else {
            return Ok(None);
        };
        let bytes = &self.maps[e.file][e.start..e.start + e.len];
        let data: Vec<f32> = match e.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(ModelError::UnsupportedDtype {
                    name: name.to_owned(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        Ok(Some((e.shape.clone(), data)))
    }
}

impl<T: Float> Model<T> {
    /// Loads the weights of `config` from safetensors files.
    ///
    /// # Errors
    /// As [`SafetensorsSource::open`] and [`Model::from_source`].
    pub fn from_safetensors(config: &ModelConfig, paths: &[PathBuf]) -> Result<Self, ModelError> {
        let src = SafetensorsSource::open(paths)?;
        Self::from_source(config, |name| src.get(name))
    }

    /// Loads a Hugging Face model directory: `config.json` plus every
    /// `*.safetensors` file in it.
    ///
    /// # Errors
    /// [`ModelError::Io`] when `config.json` is unreadable; as
    /// [`ModelConfig::from_hf_json`], [`SafetensorsSource::open_dir`] and
    /// [`Model::from_source`].
    pub fn from_hf_dir(dir: &Path) -> Result<Self, ModelError> {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| ModelError::io(&cfg_path, e))?;
        let config = ModelConfig::from_hf_json(&text)?;
        let src = SafetensorsSource::open_dir(dir)?;
        Self::from_source(&config, |name| src.get(name))
    }

    /// Writes every base tensor as F32 to `path` (no `lm_head.weight` when
    /// tied), with the config as JSON under the metadata key `flowrl_config`.
    ///
    /// # Errors
    /// [`ModelError::Safetensors`] / [`ModelError::Io`] when writing fails.
    pub fn save_safetensors(&self, path: &Path) -> Result<(), ModelError> {
        let params = self.base_params();
        let meta = HashMap::from([(
            "flowrl_config".to_owned(),
            serde_json::to_string(&self.config)?,
        )]);
        write_params(&params, Some(meta), path)
    }

    /// Writes the LoRA adapters (PEFT names, F32) to `path`.
    ///
    /// # Errors
    /// [`ModelError::NothingToTrain`] when no adapter is attached;
    /// as [`Self::save_safetensors`].
    pub fn save_lora(&self, path: &Path) -> Result<(), ModelError> {
        let params = self.lora_params();
        if params.is_empty() {
            return Err(ModelError::NothingToTrain("no adapter to save".into()));
        }
        write_params(&params, None, path)
    }

    /// Attaches adapters as `config` describes and fills them from a file
    /// written by [`Self::save_lora`] (or PEFT with the same names).
    ///
    /// # Errors
    /// As [`Self::attach_lora`]; [`ModelError::MissingTensor`] /
    /// [`ModelError::ShapeMismatch`] for adapters that do not fit.
    pub fn load_lora(&mut self, config: &LoraConfig, path: &Path) -> Result<(), ModelError> {
        let src = SafetensorsSource::open(&[path.to_path_buf()])?;
        let mut staged = self.clone();
        staged.attach_lora(config)?;
        for layer in &mut staged.layers {
            for (_, lin) in layer.linears_mut() {
                if let Some(LoraAdapter { a, b, .. }) = &mut lin.lora {
                    fill(a, &src)?;
                    fill(b, &src)?;
                }
            }
        }
        *self = staged;
        Ok(())
    }
}

fn fill<T: Float>(p: &mut Param<T>, src: &SafetensorsSource) -> Result<(), ModelError> {
    let (shape, data) = src
        .get(&p.name)?
        .ok_or_else(|| ModelError::MissingTensor(p.name.clone()))?;
    if shape != p.shape {
        return Err(ModelError::ShapeMismatch {
            name: p.name.clone(),
            expected: p.shape.clone(),
            got: shape,
        });
    }
    p.value = data.into_iter().map(T::from_f32).collect();
    Ok(())
}

fn write_params<T: Float>(
    params: &[&Param<T>],
    meta: Option<HashMap<String, String>>,
    path: &Path,
) -> Result<(), ModelError> {
    let buffers: Vec<Vec<u8>> = params
        .iter()
        .map(|p| {
            p.value
                .iter()
                .flat_map(|v| v.to_f32().to_le_bytes())
                .collect()
        })
        .collect();
    let views = params
        .iter()
        .zip(&buffers)
        .map(|(p, b)| {
            safetensors::tensor::TensorView::new(Dtype::F32, p.shape.clone(), b)
                .map(|v| (p.name.clone(), v))
                .map_err(|e| st_err(path, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize_to_file(views, meta, path).map_err(|e| st_err(path, e))
}
