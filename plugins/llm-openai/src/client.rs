//! The HTTP client: attempts, retries with backoff, and batches with a
//! concurrency limit.

use std::io::ErrorKind;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flowrl_plugin_abi::{ChatRequest, ChatResponse};
use rand::Rng;
use serde_json::{Value, json};

use crate::wire::{error_message, parse_response, request_body};
use crate::{OpenAiConfig, OpenAiError, ResolvedConfig};

/// Largest response body read, in bytes.
const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// A blocking client of one OpenAI-compatible server.
///
/// Cheap to share between threads (`&self` methods); connections are
/// pooled and reused (keep-alive).
pub struct OpenAiClient {
    config: ResolvedConfig,
    agent: ureq::Agent,
}

impl std::fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How one attempt ended, when it did not succeed.
enum Failure {
    /// Worth another attempt.
    Retry {
        status: Option<u16>,
        detail: String,
        retry_after: Option<Duration>,
        /// No connection was established (refused, unknown host, connect timeout).
        connect: bool,
    },
    /// Final.
    Fatal(OpenAiError),
}

/// Parses a `Retry-After` value given in seconds (fractions accepted);
/// HTTP dates and negative or non-finite values give `None`.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    (0.0..1.0e9)
        .contains(&secs)
        .then(|| Duration::from_secs_f64(secs))
}

/// The wait before retry number `retry` (from 0): uniform in `[d/2, d]`
/// with `d = min(base · 2^retry, max)`, using the random number `unit`
/// in `[0, 1)`.
pub fn backoff_delay(base: Duration, max: Duration, retry: u32, unit: f64) -> Duration {
    let factor = 2u32.saturating_pow(retry.min(30));
    let full = base.saturating_mul(factor).min(max);
    let half = full / 2;
    half + (full - half).mul_f64(unit.clamp(0.0, 1.0))
}

impl OpenAiClient {
    /// A client for `config`, with unset fields read from the process
    /// environment.
    ///
    /// # Errors
    /// [`OpenAiError::InvalidConfig`], see [`OpenAiConfig::resolve_with`].
    pub fn new(config: &OpenAiConfig) -> Result<Self, OpenAiError> {
        Ok(Self::from_resolved(config.resolve()?))
    }

    /// A client for an already resolved configuration.
    pub fn from_resolved(config: ResolvedConfig) -> Self {
        let mut builder = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .timeout_connect(Some(config.connect_timeout))
            .http_status_as_error(false)
            .max_idle_connections_per_host(config.max_concurrency.max(1))
            .user_agent(concat!("flowrl-llm-openai/", env!("CARGO_PKG_VERSION")));
        if config.is_loopback() {
            // A proxy from the environment never serves loopback addresses.
            builder = builder.proxy(None);
        }
        let agent = builder.build().into();
        Self { config, agent }
    }

    /// The resolved configuration.
    pub fn config(&self) -> &ResolvedConfig {
        &self.config
    }

    /// A JSON description of the backend (no API key).
    pub fn describe(&self) -> Value {
        json!({
            "backend": "openai",
            "base_url": self.config.base_url,
            "model": self.config.model,
            "endpoint": self.config.endpoint,
            "timeout_s": self.config.timeout.as_secs_f64(),
            "max_retries": self.config.max_retries,
            "max_concurrency": self.config.max_concurrency,
            "api_key_set": self.config.api_key.is_some(),
        })
    }

    /// Completes one request, retrying as configured.
    ///
    /// # Errors
    /// [`OpenAiError::InvalidRequest`] without messages; otherwise the
    /// failure of the call (see [`OpenAiError`]).
    pub fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, OpenAiError> {
        if request.messages.is_empty() {
            return Err(OpenAiError::InvalidRequest(
                "the chat request has no messages".into(),
            ));
        }
        let url = self.config.endpoint_url();
        let body = request_body(self.config.endpoint, &self.config.model, request).to_string();
        let text = self.call_with_retries(&url, Some(&body))?;
        parse_response(self.config.endpoint, &text, request.logprobs)
            .map_err(|detail| OpenAiError::MalformedResponse { url, detail })
    }

    /// Completes `requests` with at most `max_concurrency` in flight at
    /// once; one result per request, in order.
    pub fn chat_batch(&self, requests: &[ChatRequest]) -> Vec<Result<ChatResponse, OpenAiError>> {
        let workers = self.config.max_concurrency.min(requests.len());
        if workers <= 1 {
            return requests.iter().map(|r| self.chat(r)).collect();
        }
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<ChatResponse, OpenAiError>>>> =
            Mutex::new((0..requests.len()).map(|_| None).collect());
        let work = || {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(request) = requests.get(i) else {
                    break;
                };
                let answer = self.chat(request);
                let mut slots = results.lock().unwrap_or_else(|p| p.into_inner());
                slots[i] = Some(answer);
            }
        };
        std::thread::scope(|scope| {
            for w in 1..workers {
                // A worker that cannot be spawned just leaves more to the others.
                let _ = std::thread::Builder::new()
                    .name(format!("openai-batch-{w}"))
                    .spawn_scoped(scope, work);
            }
            work();
        });
        let url = self.config.endpoint_url();
        results
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .map(|slot| {
                slot.unwrap_or_else(|| {
                    Err(OpenAiError::Transport {
                        url: url.clone(),
                        detail: "the batch worker handling this request stopped".into(),
                    })
                })
            })
            .collect()
    }

    /// The model ids the server lists at `GET {base_url}/models`.
    ///
    /// # Errors
    /// As [`Self::chat`]; [`OpenAiError::MalformedResponse`] when the body
    /// has no `data` array of objects with an `id`.
    pub fn list_models(&self) -> Result<Vec<String>, OpenAiError> {
        let url = format!("{}/models", self.config.base_url);
        let text = self.call_with_retries(&url, None)?;
        let malformed = |detail: String| OpenAiError::MalformedResponse {
            url: url.clone(),
            detail,
        };
        let value: Value =
            serde_json::from_str(&text).map_err(|e| malformed(format!("body is not JSON: {e}")))?;
        let data = value
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed("no `data` array".into()))?;
        data.iter()
            .map(|m| {
                m.get("id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| malformed("a model entry has no string `id`".into()))
            })
            .collect()
    }

    fn call_with_retries(&self, url: &str, body: Option<&str>) -> Result<String, OpenAiError> {
        let attempts = self.config.max_retries.saturating_add(1);
        let mut rng = rand::rng();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (status, detail, retry_after, connect) = match self.attempt(url, body) {
                Ok(text) => return Ok(text),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry {
                    status,
                    detail,
                    retry_after,
                    connect,
                }) => (status, detail, retry_after, connect),
            };
            if attempt >= attempts {
                return Err(if connect {
                    OpenAiError::Unreachable {
                        url: url.to_string(),
                        attempts: attempt,
                        detail,
                    }
                } else {
                    OpenAiError::RetriesExhausted {
                        url: url.to_string(),
                        attempts: attempt,
                        status,
                        last: detail,
                    }
                });
            }
            let wait = match retry_after {
                Some(d) => d.min(self.config.max_backoff),
                None => backoff_delay(
                    self.config.backoff_base,
                    self.config.max_backoff,
                    attempt - 1,
                    rng.random::<f64>(),
                ),
            };
            std::thread::sleep(wait);
        }
    }

    fn attempt(&self, url: &str, body: Option<&str>) -> Result<String, Failure> {
        let result = match body {
            Some(body) => {
                let mut request = self
                    .agent
                    .post(url)
                    .header("Content-Type", "application/json");
                if let Some(key) = &self.config.api_key {
                    request = request.header("Authorization", format!("Bearer {key}"));
                }
                request.send(body)
            }
            None => {
                let mut request = self.agent.get(url);
                if let Some(key) = &self.config.api_key {
                    request = request.header("Authorization", format!("Bearer {key}"));
                }
                request.call()
            }
        };
        let mut response = result.map_err(|e| self.classify(url, e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_string()
            .map_err(|e| self.classify(url, e))?;
        match status {
            200..=299 => Ok(text),
            429 => Err(Failure::Retry {
                status: Some(status),
                detail: format!("429 Too Many Requests: {}", error_message(&text)),
                retry_after,
                connect: false,
            }),
            500..=599 => Err(Failure::Retry {
                status: Some(status),
                detail: format!("{status}: {}", error_message(&text)),
                retry_after: None,
                connect: false,
            }),
            _ => Err(Failure::Fatal(OpenAiError::Rejected {
                url: url.to_string(),
                status,
                message: error_message(&text),
            })),
        }
    }

    fn classify(&self, url: &str, error: ureq::Error) -> Failure {
        let retry = |detail: String, connect: bool| Failure::Retry {
            status: None,
            detail,
            retry_after: None,
            connect,
        };
        match error {
            ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => retry(
                format!(
                    "connecting timed out after {:?}",
                    self.config.connect_timeout
                ),
                true,
            ),
            ureq::Error::Timeout(_) => Failure::Fatal(OpenAiError::Timeout {
                url: url.to_string(),
                timeout: self.config.timeout,
            }),
            ureq::Error::HostNotFound => retry("host not found".into(), true),
            ureq::Error::ConnectionFailed => retry("connection failed".into(), true),
            ureq::Error::Io(e) => match e.kind() {
                ErrorKind::ConnectionRefused
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::AddrNotAvailable => {
                    retry(format!("connection refused or unreachable: {e}"), true)
                }
                ErrorKind::TimedOut | ErrorKind::WouldBlock => {
                    Failure::Fatal(OpenAiError::Timeout {
                        url: url.to_string(),
                        timeout: self.config.timeout,
                    })
                }
                _ => retry(format!("connection dropped: {e}"), false),
            },
            ureq::Error::Protocol(e) => {
                retry(format!("connection dropped or broken answer: {e}"), false)
            }
            ureq::Error::BodyExceedsLimit(n) => Failure::Fatal(OpenAiError::MalformedResponse {
                url: url.to_string(),
                detail: format!("response body larger than {n} bytes"),
            }),
            other => Failure::Fatal(OpenAiError::Transport {
                url: url.to_string(),
                detail: other.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(" 0.25 "),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("inf"), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let base = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        assert_eq!(backoff_delay(base, max, 0, 0.0), Duration::from_millis(50));
        assert_eq!(backoff_delay(base, max, 0, 1.0), Duration::from_millis(100));
        assert_eq!(backoff_delay(base, max, 2, 0.0), Duration::from_millis(200));
        assert_eq!(backoff_delay(base, max, 2, 1.0), Duration::from_millis(400));
        assert_eq!(backoff_delay(base, max, 10, 1.0), max);
        assert_eq!(
            backoff_delay(base, max, u32::MAX, 0.5),
            Duration::from_millis(750)
        );
        let mid = backoff_delay(base, max, 1, 0.5);
        assert!(mid > Duration::from_millis(100) && mid < Duration::from_millis(200));
    }
}
