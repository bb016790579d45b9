//! Configuration of the backend: the JSON config, the environment variables
//! that fill its gaps, and the checked [`ResolvedConfig`].

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::OpenAiError;

/// Environment variable with the base URL (`http://host:port/v1`).
pub const ENV_BASE_URL: &str = "FLOWRL_OPENAI_BASE_URL";
/// Fallback environment variable with the base URL, as the OpenAI SDKs read it.
pub const ENV_OPENAI_BASE_URL: &str = "OPENAI_BASE_URL";
/// Environment variable with the model name.
pub const ENV_MODEL: &str = "FLOWRL_OPENAI_MODEL";
/// Environment variable with the API key (takes precedence over [`ENV_OPENAI_API_KEY`]).
pub const ENV_API_KEY: &str = "FLOWRL_OPENAI_API_KEY";
/// Fallback environment variable with the API key, as the OpenAI SDKs read it.
pub const ENV_OPENAI_API_KEY: &str = "OPENAI_API_KEY";
/// Base URL used when neither the config nor the environment names one:
/// a vLLM server on its default port.
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8000/v1";

/// Which OpenAI endpoint requests go to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `POST {base_url}/chat/completions`: messages in, assistant message
    /// out; log-probs from `choices[0].logprobs.content[].logprob`.
    #[default]
    Chat,
    /// `POST {base_url}/completions`: the messages rendered into one prompt
    /// (see [`crate::render_prompt`]); log-probs from
    /// `choices[0].logprobs.token_logprobs`.
    Completions,
}

impl Endpoint {
    /// The path under the base URL: `/chat/completions` or `/completions`.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/chat/completions",
            Endpoint::Completions => "/completions",
        }
    }
}

/// The JSON configuration of the `openai` backend.
///
/// Every field is optional in JSON (`{}` is a valid config when the model
/// comes from the environment). Unset `base_url`, `model` and `api_key`
/// are read from the environment: [`ENV_BASE_URL`] (then
/// [`ENV_OPENAI_BASE_URL`], then [`DEFAULT_BASE_URL`]), [`ENV_MODEL`],
/// [`ENV_API_KEY`] (then [`ENV_OPENAI_API_KEY`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiConfig {
    /// Base URL of the OpenAI-compatible API, including the `/v1` prefix,
    /// e.g. `http://127.0.0.1:8000/v1`. `https://` needs the crate's `tls`
    /// feature.
    pub base_url: Option<String>,
    /// Model name sent in every request (as the server lists it in
    /// `/v1/models`).
    pub model: Option<String>,
    /// Bearer token sent as `Authorization: Bearer …`; no header when unset
    /// everywhere.
    pub api_key: Option<String>,
    /// Limit on one whole HTTP attempt (connect, send, wait, read the body),
    /// in seconds. A timed-out attempt is not retried.
    pub timeout_s: f64,
    /// Limit on establishing the TCP connection, in seconds.
    pub connect_timeout_s: f64,
    /// Retries after the first attempt on 429, 5xx and dropped or refused
    /// connections (so at most `max_retries + 1` attempts).
    pub max_retries: u32,
    /// Base of the exponential backoff, in milliseconds: before retry `k`
    /// (from 0) the client waits a uniformly random time in
    /// `[d/2, d]` with `d = min(backoff_base_ms · 2^k, max_backoff_ms)`,
    /// or the server's `Retry-After` seconds on a 429 that carries it.
    pub backoff_base_ms: u64,
    /// Upper bound of one backoff wait, in milliseconds (also caps
    /// `Retry-After`).
    pub max_backoff_ms: u64,
    /// Most requests of one batch in flight at once (≥ 1).
    pub max_concurrency: usize,
    /// Which endpoint to call.
    pub endpoint: Endpoint,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            model: None,
            api_key: None,
            timeout_s: 120.0,
            connect_timeout_s: 10.0,
            max_retries: 4,
            backoff_base_ms: 500,
            max_backoff_ms: 30_000,
            max_concurrency: 8,
            endpoint: Endpoint::Chat,
        }
    }
}

impl OpenAiConfig {
    /// Parses a JSON config text; an empty or blank text means `{}`.
    ///
    /// # Errors
    /// [`OpenAiError::InvalidConfig`] for malformed JSON or unknown fields.
    pub fn from_json(text: &str) -> Result<Self, OpenAiError> {
        let text = if text.trim().is_empty() { "{}" } else { text };
        serde_json::from_str(text)
            .map_err(|e| OpenAiError::InvalidConfig(format!("openai backend config: {e}")))
    }

    /// JSON Schema text of this config.
    pub fn schema() -> String {
        serde_json::to_string_pretty(&schemars::schema_for!(OpenAiConfig)).unwrap_or_default()
    }

    /// Fills unset fields from the process environment and checks the result.
    ///
    /// # Errors
    /// See [`OpenAiConfig::resolve_with`].
    pub fn resolve(&self) -> Result<ResolvedConfig, OpenAiError> {
        self.resolve_with(|name| std::env::var(name).ok())
    }

    /// Fills unset fields from `env` (a lookup of environment variables)
    /// and checks the result.
    ///
    /// # Errors
    /// [`OpenAiError::InvalidConfig`] when no model is set, the base URL is
    /// not `http://` or `https://` (or is `https://` without the `tls`
    /// feature), a timeout is not a positive finite number of seconds, or
    /// `max_concurrency` is 0.
    pub fn resolve_with(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ResolvedConfig, OpenAiError> {
        let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let base_url = non_empty(self.base_url.clone())
            .or_else(|| non_empty(env(ENV_BASE_URL)))
            .or_else(|| non_empty(env(ENV_OPENAI_BASE_URL)))
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        let base_url = base_url.trim().trim_end_matches('/').to_string();
        let lower = base_url.to_ascii_lowercase();
        let rest = if let Some(rest) = lower.strip_prefix("http://") {
            rest
        } else if let Some(rest) = lower.strip_prefix("https://") {
            if !cfg!(feature = "tls") {
                return Err(OpenAiError::InvalidConfig(format!(
                    "base_url `{base_url}` needs HTTPS, but flowrl-llm-openai was built without its `tls` feature"
                )));
            }
            rest
        } else {
            return Err(OpenAiError::InvalidConfig(format!(
                "base_url `{base_url}` must start with http:// or https://"
            )));
        };
        if rest.is_empty() || rest.starts_with('/') {
            return Err(OpenAiError::InvalidConfig(format!(
                "base_url `{base_url}` has no host"
            )));
        }
        let model = non_empty(self.model.clone())
            .or_else(|| non_empty(env(ENV_MODEL)))
            .ok_or_else(|| {
                OpenAiError::InvalidConfig(format!(
                    "no model: set `model` in the openai backend config or the {ENV_MODEL} environment variable"
                ))
            })?;
        let api_key = non_empty(self.api_key.clone())
            .or_else(|| non_empty(env(ENV_API_KEY)))
            .or_else(|| non_empty(env(ENV_OPENAI_API_KEY)));
        let seconds = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 && v < 1.0e9 {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(OpenAiError::InvalidConfig(format!(
                    "{name} must be a positive number of seconds, got {v}"
                )))
            }
        };
        let timeout = seconds("timeout_s", self.timeout_s)?;
        let connect_timeout = seconds("connect_timeout_s", self.connect_timeout_s)?;
        if self.max_concurrency == 0 {
            return Err(OpenAiError::InvalidConfig(
                "max_concurrency must be at least 1".into(),
            ));
        }
        Ok(ResolvedConfig {
            base_url,
            model,
            api_key,
            timeout,
            connect_timeout,
            max_retries: self.max_retries,
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            max_backoff: Duration::from_millis(self.max_backoff_ms.max(self.backoff_base_ms)),
            max_concurrency: self.max_concurrency,
            endpoint: self.endpoint,
        })
    }
}

/// A checked configuration with every value decided.
#[derive(Clone, PartialEq)]
pub struct ResolvedConfig {
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// Bearer token, if any.
    pub api_key: Option<String>,
    /// Limit on one whole attempt.
    pub timeout: Duration,
    /// Limit on connecting.
    pub connect_timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Base of the exponential backoff.
    pub backoff_base: Duration,
    /// Cap of one backoff wait (≥ `backoff_base`).
    pub max_backoff: Duration,
    /// Most requests of a batch in flight at once (≥ 1).
    pub max_concurrency: usize,
    /// Endpoint called.
    pub endpoint: Endpoint,
}

impl std::fmt::Debug for ResolvedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the API key.
        f.debug_struct("ResolvedConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_retries", &self.max_retries)
            .field("backoff_base", &self.backoff_base)
            .field("max_backoff", &self.max_backoff)
            .field("max_concurrency", &self.max_concurrency)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl ResolvedConfig {
    /// Full URL of the configured endpoint.
    pub fn endpoint_url(&self) -> String {
        format!("{}{}", self.base_url, self.endpoint.path())
    }

    /// Whether the base URL's host is a loopback name or address (such
    /// requests never go through an environment proxy).
    pub fn is_loopback(&self) -> bool {
        let after_scheme = self.base_url.split_once("://").map_or("", |(_, r)| r);
        let authority = after_scheme.split('/').next().unwrap_or("");
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = if let Some(v6) = host.strip_prefix('[') {
            v6.split(']').next().unwrap_or("")
        } else {
            host.split(':').next().unwrap_or("")
        };
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn config_wins_over_environment_and_environment_over_defaults() {
        let vars = [
            (ENV_BASE_URL, "http://10.0.0.1:9000/v1/"),
            (ENV_OPENAI_BASE_URL, "http://ignored/v1"),
            (ENV_MODEL, "env-model"),
            (ENV_OPENAI_API_KEY, "sk-openai"),
        ];
        let r = OpenAiConfig::default().resolve_with(env(&vars)).unwrap();
        assert_eq!(r.base_url, "http://10.0.0.1:9000/v1");
        assert_eq!(r.model, "env-model");
        assert_eq!(r.api_key.as_deref(), Some("sk-openai"));
        assert!(!format!("{r:?}").contains("sk-openai"));

        let config = OpenAiConfig {
            base_url: Some("http://localhost:8080/v1".into()),
            model: Some("cfg".into()),
            api_key: Some("sk-cfg".into()),
            ..OpenAiConfig::default()
        };
        let r = config.resolve_with(env(&vars)).unwrap();
        assert_eq!(
            (r.base_url.as_str(), r.model.as_str()),
            ("http://localhost:8080/v1", "cfg")
        );
        assert_eq!(r.api_key.as_deref(), Some("sk-cfg"));
        assert!(r.is_loopback());

        let r = OpenAiConfig::default()
            .resolve_with(env(&[
                (ENV_MODEL, "m"),
                (ENV_API_KEY, "a"),
                (ENV_OPENAI_API_KEY, "b"),
            ]))
            .unwrap();
        assert_eq!(r.base_url, DEFAULT_BASE_URL);
        assert_eq!(r.api_key.as_deref(), Some("a"));
        assert_eq!(
            r.endpoint_url(),
            "http://127.0.0.1:8000/v1/chat/completions"
        );
    }

    #[test]
    fn bad_configs_are_refused_with_reasons() {
        let none = |_: &str| None;
        let err = OpenAiConfig::default().resolve_with(none).unwrap_err();
        assert!(err.to_string().contains(ENV_MODEL), "{err}");
        let with = |f: fn(&mut OpenAiConfig)| {
            let mut c = OpenAiConfig {
                model: Some("m".into()),
                ..OpenAiConfig::default()
            };
            f(&mut c);
            c.resolve_with(none).unwrap_err().to_string()
        };
        assert!(with(|c| c.base_url = Some("ftp://x".into())).contains("http://"));
        assert!(with(|c| c.base_url = Some("http:///v1".into())).contains("no host"));
        assert!(with(|c| c.timeout_s = 0.0).contains("timeout_s"));
        assert!(with(|c| c.connect_timeout_s = f64::NAN).contains("connect_timeout_s"));
        assert!(with(|c| c.max_concurrency = 0).contains("max_concurrency"));
        if !cfg!(feature = "tls") {
            assert!(with(|c| c.base_url = Some("https://api.example/v1".into())).contains("tls"));
        }
        assert!(OpenAiConfig::from_json(r#"{"modle": "x"}"#).is_err());
        assert_eq!(
            OpenAiConfig::from_json("  ").unwrap(),
            OpenAiConfig::default()
        );
    }

    #[test]
    fn loopback_detection() {
        let mut r = OpenAiConfig {
            model: Some("m".into()),
            ..OpenAiConfig::default()
        }
        .resolve_with(|_| None)
        .unwrap();
        for (url, expected) in [
            ("http://127.0.0.1:8000/v1", true),
            ("http://[::1]:8000/v1", true),
            ("http://LOCALHOST/v1", true),
            ("http://user@127.0.0.2:1/v1", true),
            ("http://10.1.2.3:8000/v1", false),
            ("http://gpu-box:8000/v1", false),
        ] {
            r.base_url = url.into();
            assert_eq!(r.is_loopback(), expected, "{url}");
        }
    }

    #[test]
    fn schema_lists_fields() {
        let schema = OpenAiConfig::schema();
        for field in ["base_url", "max_concurrency", "backoff_base_ms", "endpoint"] {
            assert!(schema.contains(field), "{field}");
        }
    }
}
