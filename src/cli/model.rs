//! `flowrl generate` and `flowrl logprobs`: run a model from the command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use flowrl_model::{GenerateConfig, Model, Packed, generate};
use flowrl_tokenizer::{ByteTokenizer, ChatMessage, HfTokenizer, Tokenizer, encode_chatml};
use serde_json::json;

/// Where the model and its tokenizer come from.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// A GGUF file or a Hugging Face directory (config.json + *.safetensors).
    #[arg(long)]
    model: PathBuf,
    /// tokenizer.json (default: <model dir>/tokenizer.json); `bytes` for the
    /// built-in byte-level tokenizer.
    #[arg(long)]
    tokenizer: Option<String>,
    /// Alternatives reported per position (with --json).
    #[arg(long, default_value_t = 0)]
    top_logprobs: usize,
}

/// `flowrl generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Raw prompt text.
    #[arg(long, conflicts_with = "chat", required_unless_present = "chat")]
    prompt: Option<String>,
    /// A user message, wrapped in the ChatML template with the assistant prompt.
    #[arg(long)]
    chat: Option<String>,
    /// Most new tokens.
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// Temperature (0: greedy).
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print JSON: prompt ids and, per generated token, id, text, log-prob and alternatives.
    #[arg(long)]
    json: bool,
}

/// `flowrl logprobs`.
#[derive(Debug, Args)]
pub struct LogprobsArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Token ids, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    ids: Vec<u32>,
    /// Print JSON (the only output format).
    #[arg(long)]
    json: bool,
}

fn load(args: &ModelArgs) -> anyhow::Result<(Model<f32>, Arc<dyn Tokenizer>)> {
    let path = &args.model;
    if !path.exists() {
        bail!("no such model: {}", path.display());
    }
    let model = if path.is_dir() {
        Model::from_hf_dir(path).with_context(|| format!("loading {}", path.display()))?
    } else {
        Model::from_gguf(path).with_context(|| format!("loading {}", path.display()))?
    };
    let tok: Arc<dyn Tokenizer> = match args.tokenizer.as_deref() {
        Some("bytes") => Arc::new(ByteTokenizer::new()),
        Some(p) => Arc::new(
            HfTokenizer::from_file(Path::new(p))
                .with_context(|| format!("loading tokenizer {p}"))?,
        ),
        None => {
            let dir = if path.is_dir() {
                path.clone()
            } else {
                path.parent().unwrap_or(Path::new(".")).to_path_buf()
            };
            let p = dir.join("tokenizer.json");
            if !p.is_file() {
                bail!(
                    "no tokenizer: pass --tokenizer FILE (or `bytes`); {} does not exist",
                    p.display()
                );
            }
            Arc::new(
                HfTokenizer::from_file(&p)
                    .with_context(|| format!("loading tokenizer {}", p.display()))?,
            )
        }
    };
    Ok((model, tok))
}

/// Per position of `ids[1..]`: the log-prob of the given next token and the top-k alternatives.
fn score(
    model: &Model<f32>,
    tok: &dyn Tokenizer,
    ids: &[u32],
    from: usize,
    k: usize,
) -> anyhow::Result<Vec<serde_json::Value>> {
    if ids.len() < 2 {
        return Ok(Vec::new());
    }
    let inputs = &ids[..ids.len() - 1];
    let positions: Vec<u32> = (0..inputs.len() as u32).collect();
    let offsets = [0, inputs.len()];
    let logits = model.forward_logits(&Packed::new(inputs, &positions, &offsets))?;
    let v = model.config.vocab_size;
    let mut out = Vec::new();
    for (t, row) in logits.chunks(v).enumerate().skip(from) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f32>().ln();
        let next = ids[t + 1];
        let mut alts: Vec<(usize, f32)> = row.iter().map(|x| x - lse).enumerate().collect();
        alts.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top: Vec<serde_json::Value> = alts
            .iter()
            .take(k)
            .map(|&(id, lp)| json!({"id": id, "text": tok.decode(&[id as u32]).unwrap_or_default(), "logprob": lp}))
            .collect();
        out.push(json!({
            "position": t + 1,
            "id": next,
            "text": tok.decode(&[next]).unwrap_or_default(),
            "logprob": row[next as usize] - lse,
            "top": top,
        }));
    }
    Ok(out)
}

pub fn run_generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let (model, tok) = load(&args.model)?;
    let prompt = match (&args.prompt, &args.chat) {
        (Some(p), _) => tok.encode(p)?,
        (None, Some(c)) => encode_chatml(&*tok, &[ChatMessage::user(c.clone())], true)?,
        (None, None) => bail!("pass --prompt or --chat"),
    };
    let cfg = GenerateConfig {
        max_new_tokens: args.max_tokens,
        temperature: args.temperature,
        stop_tokens: tok.special_tokens().stop_ids(),
        seed: args.seed,
        ..GenerateConfig::default()
    };
    let g = generate(&model, std::slice::from_ref(&prompt), &cfg, None)?.remove(0);
    let visible: Vec<u32> = g
        .tokens
        .iter()
        .copied()
        .filter(|t| !cfg.stop_tokens.contains(t))
        .collect();
    let text = tok.decode(&visible)?;
    if !args.json {
        println!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut all = prompt.clone();
    all.extend_from_slice(&g.tokens);
    let mut tokens = score(
        &model,
        &*tok,
        &all,
        prompt.len() - 1,
        args.model.top_logprobs,
    )?;
    for (t, lp) in tokens.iter_mut().zip(&g.raw_logprobs) {
        t["sampler_logprob"] = json!(lp);
    }
    println!(
        "{}",
        serde_json::to_string_pretty(
            &json!({"prompt_ids": prompt, "text": text, "stop": g.stop, "tokens": tokens})
        )?
    );
    Ok(ExitCode::SUCCESS)
}

pub fn run_logprobs(args: LogprobsArgs) -> anyhow::Result<ExitCode> {
    let (model, tok) = load(&args.model)?;
    let _ = args.json;
    let tokens = score(&model, &*tok, &args.ids, 0, args.model.top_logprobs)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({"ids": args.ids, "tokens": tokens}))?
    );
    Ok(ExitCode::SUCCESS)
}
