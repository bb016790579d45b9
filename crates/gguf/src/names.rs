//! GGUF tensor names ↔ Hugging Face (transformers) parameter names.
//!
//! | GGUF | Hugging Face |
//! |---|---|
//! | `token_embd.weight` | `model.embed_tokens.weight` |
//! | `output_norm.weight` | `model.norm.weight` |
//! | `output.weight` | `lm_head.weight` |
//! | `blk.{i}.attn_norm.weight` | `model.layers.{i}.input_layernorm.weight` |
//! | `blk.{i}.attn_q.{weight,bias}` | `model.layers.{i}.self_attn.q_proj.{weight,bias}` |
//! | `blk.{i}.attn_k.{weight,bias}` | `model.layers.{i}.self_attn.k_proj.{weight,bias}` |
//! | `blk.{i}.attn_v.{weight,bias}` | `model.layers.{i}.self_attn.v_proj.{weight,bias}` |
//! | `blk.{i}.attn_output.{weight,bias}` | `model.layers.{i}.self_attn.o_proj.{weight,bias}` |
//! | `blk.{i}.attn_q_norm.weight` | `model.layers.{i}.self_attn.q_norm.weight` (Qwen3) |
//! | `blk.{i}.attn_k_norm.weight` | `model.layers.{i}.self_attn.k_norm.weight` (Qwen3) |
//! | `blk.{i}.ffn_norm.weight` | `model.layers.{i}.post_attention_layernorm.weight` |
//! | `blk.{i}.ffn_gate.weight` | `model.layers.{i}.mlp.gate_proj.weight` |
//! | `blk.{i}.ffn_up.weight` | `model.layers.{i}.mlp.up_proj.weight` |
//! | `blk.{i}.ffn_down.weight` | `model.layers.{i}.mlp.down_proj.weight` |

const GLOBAL: [(&str, &str); 3] = [
    ("token_embd", "model.embed_tokens"),
    ("output_norm", "model.norm"),
    ("output", "lm_head"),
];

const PER_LAYER: [(&str, &str); 11] = [
    ("attn_norm", "input_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("attn_q_norm", "self_attn.q_norm"),
    ("attn_k_norm", "self_attn.k_norm"),
    ("ffn_norm", "post_attention_layernorm"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];

fn split_suffix(name: &str) -> Option<(&str, &str)> {
    name.strip_suffix(".weight")
        .map(|s| (s, "weight"))
        .or_else(|| name.strip_suffix(".bias").map(|s| (s, "bias")))
}

fn parse_layer(s: &str) -> Option<usize> {
    // Reject signs, empty strings and leading zeros so the mapping is a bijection.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// The Hugging Face name of a GGUF tensor name of a Qwen2/Qwen3/LLaMA-style
/// decoder (see the module table), or `None` for names outside it.
///
/// ```
/// use flowrl_gguf::gguf_to_hf_name;
/// assert_eq!(
///     gguf_to_hf_name("blk.3.attn_q.bias").as_deref(),
///     Some("model.layers.3.self_attn.q_proj.bias")
/// );
/// assert_eq!(gguf_to_hf_name("rope_freqs.weight"), None);
/// ```
pub fn gguf_to_hf_name(name: &str) -> Option<String> {
    let (stem, suffix) = split_suffix(name)?;
    if let Some(rest) = stem.strip_prefix("blk.") {
        let (layer, part) = rest.split_once('.')?;
        let layer = parse_layer(layer)?;
        let (_, hf) = PER_LAYER.iter().find(|(g, _)| *g == part)?;
        return Some(format!("model.layers.{layer}.{hf}.{suffix}"));
    }
    let (_, hf) = GLOBAL.iter().find(|(g, _)| *g == stem)?;
    Some(format!("{hf}.{suffix}"))
}

/// The GGUF name of a Hugging Face parameter name; the inverse of
/// [`gguf_to_hf_name`].
pub fn hf_to_gguf_name(name: &str) -> Option<String> {
    let (stem, suffix) = split_suffix(name)?;
    if let Some(rest) = stem.strip_prefix("model.layers.") {
        let (layer, part) = rest.split_once('.')?;
        let layer = parse_layer(layer)?;
        let (g, _) = PER_LAYER.iter().find(|(_, h)| *h == part)?;
        return Some(format!("blk.{layer}.{g}.{suffix}"));
    }
    let (g, _) = GLOBAL.iter().find(|(_, h)| *h == stem)?;
    Some(format!("{g}.{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_qwen_name_both_ways() {
        let cases = [
            ("token_embd.weight", "model.embed_tokens.weight"),
            ("output_norm.weight", "model.norm.weight"),
            ("output.weight", "lm_head.weight"),
            (
                "blk.0.attn_norm.weight",
                "model.layers.0.input_layernorm.weight",
            ),
            (
                "blk.23.attn_q.weight",
                "model.layers.23.self_attn.q_proj.weight",
            ),
            (
                "blk.23.attn_q.bias",
                "model.layers.23.self_attn.q_proj.bias",
            ),
            ("blk.1.attn_k.bias", "model.layers.1.self_attn.k_proj.bias"),
            (
                "blk.1.attn_v.weight",
                "model.layers.1.self_attn.v_proj.weight",
            ),
            (
                "blk.1.attn_output.weight",
                "model.layers.1.self_attn.o_proj.weight",
            ),
            (
                "blk.2.attn_q_norm.weight",
                "model.layers.2.self_attn.q_norm.weight",
            ),
            (
                "blk.2.attn_k_norm.weight",
                "model.layers.2.self_attn.k_norm.weight",
            ),
            (
                "blk.4.ffn_norm.weight",
                "model.layers.4.post_attention_layernorm.weight",
            ),
            (
                "blk.4.ffn_gate.weight",
                "model.layers.4.mlp.gate_proj.weight",
            ),
            ("blk.4.ffn_up.weight", "model.layers.4.mlp.up_proj.weight"),
            (
                "blk.10.ffn_down.weight",
                "model.layers.10.mlp.down_proj.weight",
            ),
        ];
        for (g, h) in cases {
            assert_eq!(gguf_to_hf_name(g).as_deref(), Some(h), "{g}");
            assert_eq!(hf_to_gguf_name(h).as_deref(), Some(g), "{h}");
        }
    }

    #[test]
    fn rejects_unknown_and_malformed_names() {
        for bad in [
            "",
            "token_embd",
            "token_embd.scale",
            "blk.x.attn_q.weight",
            "blk.-1.attn_q.weight",
            "blk.01.attn_q.weight",
            "blk..attn_q.weight",
            "blk.0.attn_qq.weight",
            "rope_freqs.weight",
        ] {
            assert_eq!(gguf_to_hf_name(bad), None, "{bad}");
        }
        assert_eq!(hf_to_gguf_name("model.layers.0.mlp.fc1.weight"), None);
        assert_eq!(
            hf_to_gguf_name("lm_head.bias").as_deref(),
            Some("output.bias")
        );
    }
}
