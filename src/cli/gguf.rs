//! `flowrl gguf info|tensor` and `flowrl tokenize encode|decode`

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use flowrl_gguf::{ArchInfo, GgufFile, MetaValue, gguf_to_hf_name, hf_to_gguf_name};
use flowrl_tokenizer::{ByteTokenizer, ChatMessage, HfTokenizer, Tokenizer, encode_chatml};

#[derive(Debug, Subcommand)]
pub enum GgufCmd {
    /// Summarise a GGUF file: version, architecture, metadata, tensor types.
    Info {
        /// The GGUF file.
        file: PathBuf,
        /// Also list every tensor (GGUF name, Hugging Face name, type, shape).
        #[arg(long)]
        tensors: bool,
        /// Print the architecture info as JSON only.
        #[arg(long)]
        json: bool,
    },
    /// Dequantise one tensor and print its statistics and first values.
    Tensor {
        /// The GGUF file.
        file: PathBuf,
        /// Tensor name, GGUF (`blk.0.attn_q.weight`) or Hugging Face
        /// (`model.layers.0.self_attn.q_proj.weight`).
        name: String,
        /// Number of leading values to print.
        #[arg(long, default_value_t = 8)]
        head: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenizeCmd {
    /// Print the token ids of TEXT as a JSON array.
    Encode {
        #[command(flatten)]
        tokenizer: TokenizerArgs,
        /// Wrap TEXT as a ChatML user message followed by the assistant prompt.
        #[arg(long)]
        chat: bool,
        /// The text.
        text: String,
    },
    /// Print the text of token ids.
    Decode {
        #[command(flatten)]
        tokenizer: TokenizerArgs,
        /// The ids.
        #[arg(required = true)]
        ids: Vec<u32>,
    },
}

#[derive(Debug, Args)]
pub struct TokenizerArgs {
    /// Hugging Face tokenizer.json (default: the built-in byte tokenizer).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
}

fn load_tokenizer(args: &TokenizerArgs) -> anyhow::Result<Box<dyn Tokenizer>> {
    Ok(match &args.tokenizer {
        Some(path) => Box::new(
            HfTokenizer::from_file(path).with_context(|| format!("loading {}", path.display()))?,
        ),
        None => Box::new(ByteTokenizer::new()),
    })
}

fn describe(value: &MetaValue) -> String {
    match value {
        MetaValue::String(s) if s.chars().count() > 80 => {
            format!(
                "{:?}… ({} chars)",
                s.chars().take(60).collect::<String>(),
                s.chars().count()
            )
        }
        MetaValue::String(s) => format!("{s:?}"),
        MetaValue::Array(a) => format!("[{}; {}]", a.element_type(), a.len()),
        MetaValue::F32(v) => v.to_string(),
        MetaValue::F64(v) => v.to_string(),
        MetaValue::Bool(v) => v.to_string(),
        other => other
            .as_i64()
            .map(|v| v.to_string())
            .or_else(|| other.as_u64().map(|v| v.to_string()))
            .unwrap_or_else(|| format!("{other:?}")),
    }
}

pub fn run(cmd: GgufCmd) -> anyhow::Result<ExitCode> {
    let mut out = String::new();
    match cmd {
        GgufCmd::Info {
            file,
            tensors,
            json,
        } => {
            let gguf =
                GgufFile::open(&file).with_context(|| format!("reading {}", file.display()))?;
            let arch = ArchInfo::from_gguf(&gguf);
            if json {
                let arch = arch.context("architecture info")?;
                writeln!(out, "{}", serde_json::to_string_pretty(&arch)?)?;
                return emit(&out);
            }
            writeln!(
                out,
                "{}: GGUF v{}, {} bytes, alignment {}, data at byte {}",
                file.display(),
                gguf.version(),
                gguf.len(),
                gguf.alignment(),
                gguf.data_offset()
            )?;
            match arch {
                Ok(a) => writeln!(out, "architecture: {a:?}"),
                Err(e) => writeln!(out, "architecture: unavailable ({e})"),
            }?;
            writeln!(out, "metadata ({} keys):", gguf.metadata().len())?;
            for (key, value) in gguf.metadata() {
                writeln!(out, "  {key} = {}", describe(value))?;
            }
            let mut by_type: BTreeMap<String, (usize, usize)> = BTreeMap::new();
            for t in gguf.tensors() {
                let e = by_type.entry(t.ggml_type.to_string()).or_default();
                e.0 += 1;
                e.1 += t.n_bytes;
            }
            writeln!(out, "tensors ({}):", gguf.tensors().len())?;
            for (ty, (count, bytes)) in &by_type {
                writeln!(out, "  {ty}: {count} tensors, {bytes} bytes")?;
            }
            if tensors {
                for t in gguf.tensors() {
                    writeln!(
                        out,
                        "  {}\t{}\t{}\t{:?}",
                        t.name,
                        gguf_to_hf_name(&t.name).unwrap_or_else(|| "-".into()),
                        t.ggml_type,
                        t.shape()
                    )?;
                }
            }
            emit(&out)
        }
        GgufCmd::Tensor { file, name, head } => {
            let gguf =
                GgufFile::open(&file).with_context(|| format!("reading {}", file.display()))?;
            let gguf_name = if gguf.tensor_info(&name).is_some() {
                name.clone()
            } else {
                hf_to_gguf_name(&name).unwrap_or_else(|| name.clone())
            };
            let t = gguf
                .dequantize(&gguf_name)
                .with_context(|| format!("tensor {name}"))?;
            let ty = gguf
                .tensor_info(&gguf_name)
                .map(|i| i.ggml_type.to_string())
                .unwrap_or_default();
            let n = t.data.len().max(1) as f64;
            let mean = t.data.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let rms = (t.data.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / n).sqrt();
            let min = t.data.iter().copied().fold(f32::INFINITY, f32::min);
            let max = t.data.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            writeln!(out, "{} ({ty}) shape {:?}", t.name, t.shape)?;
            writeln!(out, "mean {mean:.6} rms {rms:.6} min {min} max {max}")?;
            writeln!(out, "{:?}", &t.data[..head.min(t.data.len())])?;
            emit(&out)
        }
    }
}

pub fn run_tokenize(cmd: TokenizeCmd) -> anyhow::Result<ExitCode> {
    let mut out = String::new();
    match cmd {
        TokenizeCmd::Encode {
            tokenizer,
            chat,
            text,
        } => {
            let tok = load_tokenizer(&tokenizer)?;
            let ids = if chat {
                encode_chatml(tok.as_ref(), &[ChatMessage::user(text)], true)?
            } else {
                tok.encode(&text)?
            };
            writeln!(out, "{}", serde_json::to_string(&ids)?)?;
        }
        TokenizeCmd::Decode { tokenizer, ids } => {
            let tok = load_tokenizer(&tokenizer)?;
            writeln!(out, "{}", tok.decode(&ids)?)?;
        }
    }
    emit(&out)
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error.
fn emit(text: &str) -> anyhow::Result<ExitCode> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}
