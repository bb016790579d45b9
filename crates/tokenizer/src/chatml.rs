//! The ChatML chat template used by Qwen2/Qwen2.5/Qwen3.
//!
//! Each message renders as `<|im_start|>{role}\n{content}<|im_end|>\n`; with
//! `add_generation_prompt` the text ends with `<|im_start|>assistant\n`, the
//! point where the model continues. No default system message is inserted
//! (Qwen's own template adds one when the list has none; pass it explicitly
//! to reproduce that).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TokenizerError};
use crate::{IM_END, IM_START, Tokenizer};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, `tool`, … (free text).
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A message with this role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// The ChatML text of `messages`, followed by `<|im_start|>assistant\n` when
/// `add_generation_prompt` is set.
pub fn render_chatml(messages: &[ChatMessage], add_generation_prompt: bool) -> String {
    let mut out = String::new();
    for m in messages {
        out.push_str(IM_START);
        out.push_str(&m.role);
        out.push('\n');
        out.push_str(&m.content);
        out.push_str(IM_END);
        out.push('\n');
    }
    if add_generation_prompt {
        out.push_str(IM_START);
        out.push_str("assistant\n");
    }
    out
}

/// The token ids of [`render_chatml`]`(messages, add_generation_prompt)`.
///
/// Special-token text inside message contents is parsed as special tokens,
/// as with Hugging Face's `apply_chat_template(tokenize=True)`.
///
/// # Errors
/// [`TokenizerError::MissingSpecialToken`] when the tokenizer has no
/// `<|im_start|>` or `<|im_end|>` token, and any error of
/// [`Tokenizer::encode`].
pub fn encode_chatml(
    tokenizer: &dyn Tokenizer,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
) -> Result<Vec<u32>> {
    let specials = tokenizer.special_tokens();
    for (id, token) in [(specials.im_start, IM_START), (specials.im_end, IM_END)] {
        if id.is_none() {
            return Err(TokenizerError::MissingSpecialToken {
                token: token.into(),
            });
        }
    }
    tokenizer.encode(&render_chatml(messages, add_generation_prompt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_template() {
        let msgs = [ChatMessage::system("Be brief."), ChatMessage::user("Hi")];
        assert_eq!(
            render_chatml(&msgs, true),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(render_chatml(&[], false), "");
        assert_eq!(render_chatml(&[], true), "<|im_start|>assistant\n");
    }
}
