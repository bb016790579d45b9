//! `flowrl-serve`: an OpenAI-compatible HTTP server over any flowrl LLM
//! backend.
//!
//! It lets a policy's executor run as a separate process — a local GGUF
//! model through `llm-local`, or the simulated executor — and be reached
//! with the `openai` backend exactly like vLLM or llama.cpp's server.
//!
//! # Endpoints
//! * `POST /v1/chat/completions` — `messages` (string content or text
//!   parts), `temperature`, `top_p`, `top_k`, `seed`, `max_tokens` /
//!   `max_completion_tokens`, `stop` (string or list), `logprobs`, and the
//!   extension `metadata` (an object passed to the backend, e.g. the
//!   simulated executor's side channel). `n` must be 1; `stream` is refused.
//!   Log-probs are returned as `choices[0].logprobs.content[i].logprob`
//!   (natural log, one per generated token; the `token` strings are empty).
//! * `GET /v1/models` — the one served model; `GET /health`.
//!
//! Errors use OpenAI's shape, `{"error": {"message", "type", "code"}}`, with
//! 400 for bad requests, 404 for unknown paths or models, 413 for bodies over
//! the limit, 500 for backend failures.
//!
//! # Batching
//! Requests that arrive while the backend is busy (or within
//! [`ServeConfig::batch_window`] of each other) are handed to the backend
//! together as one [`Completer::complete_batch`] call of at most
//! [`ServeConfig::max_batch`] requests, so a backend that generates in
//! batches serves concurrent clients in one pass.

mod api;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flowrl_plugin_abi::{ChatRequest, ChatResponse, PluginErrorKind};
use flowrl_plugin_host::{HostError, LlmBackend};

pub use api::{ApiError, parse_chat_request};

/// Errors of the server itself (requests get HTTP errors instead).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        reason: String,
    },
    /// An invalid setting.
    #[error("invalid setting `{field}`: {reason}")]
    Config {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A server thread could not be started.
    #[error("cannot start a server thread: {0}")]
    Thread(String),
}

/// How a completion failed, as the HTTP layer reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionError {
    /// The request itself is at fault (HTTP 400) rather than the backend (500).
    pub client_error: bool,
    /// What happened.
    pub message: String,
}

impl From<HostError> for CompletionError {
    fn from(e: HostError) -> Self {
        let client_error = matches!(&e, HostError::Plugin { error, .. } if error.kind == PluginErrorKind::INVALID_INPUT);
        Self {
            client_error,
            message: e.to_string(),
        }
    }
}

/// Something that completes chat requests in batches: the server's backend.
pub trait Completer: Send + 'static {
    /// Completes `requests`; one result per request, in order.
    fn complete_batch(
        &self,
        requests: &[ChatRequest],
    ) -> Vec<Result<ChatResponse, CompletionError>>;
}

impl Completer for LlmBackend {
    fn complete_batch(
        &self,
        requests: &[ChatRequest],
    ) -> Vec<Result<ChatResponse, CompletionError>> {
        if let [one] = requests {
            return vec![self.chat(one).map_err(Into::into)];
        }
        match self.chat_batch(requests) {
            Ok(all) => all.into_iter().map(|r| r.map_err(Into::into)).collect(),
            Err(e) => {
                let e = CompletionError::from(e);
                requests.iter().map(|_| Err(e.clone())).collect()
            }
        }
    }
}

/// Server settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// The model name clients must use (or omit).
    pub model: String,
    /// Most requests handed to the backend in one batch (≥ 1).
    pub max_batch: usize,
    /// How long the batcher waits for more requests after the first one of
    /// a batch (zero: take only what is already queued).
    pub batch_window: Duration,
    /// HTTP worker threads (≥ 1): the most requests parsed and waiting at once.
    pub http_threads: usize,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Upper limit on `max_tokens` (requests above it are refused with 400).
    pub max_tokens_limit: u32,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            model: "flowrl".into(),
            max_batch: 16,
            batch_window: Duration::from_millis(5),
            http_threads: 32,
            max_body_bytes: 4 << 20,
            max_tokens_limit: 8192,
        }
    }
}

impl ServeConfig {
    fn validate(&self) -> Result<(), ServeError> {
        let bad = |field, reason: &str| {
            Err(ServeError::Config {
                field,
                reason: reason.into(),
            })
        };
        if self.max_batch == 0 {
            return bad("max_batch", "must be at least 1");
        }
        if self.http_threads == 0 {
            return bad("http_threads", "must be at least 1");
        }
        if self.model.is_empty() {
            return bad("model", "must not be empty");
        }
        if self.max_tokens_limit == 0 {
            return bad("max_tokens_limit", "must be at least 1");
        }
        Ok(())
    }
}

/// Counters of a running server.
#[derive(Debug, Default)]
pub struct ServeStats {
    /// Completed chat requests (successful or not).
    pub requests: AtomicU64,
    /// Backend calls (batches).
    pub batches: AtomicU64,
    /// Largest batch handed to the backend so far.
    pub max_batch_seen: AtomicU64,
}

struct Job {
    request: ChatRequest,
    reply: mpsc::Sender<Result<ChatResponse, CompletionError>>,
}

/// A running server. Dropping it without [`Server::shutdown`] leaves its
/// threads serving until the process ends.
pub struct Server {
    http: Arc<tiny_http::Server>,
    addr: SocketAddr,
    workers: Vec<JoinHandle<()>>,
    batcher: Option<JoinHandle<()>>,
    jobs: Option<mpsc::Sender<Job>>,
    stats: Arc<ServeStats>,
}

impl Server {
    /// Binds `addr` (e.g. `127.0.0.1:8000`; port 0 picks a free one) and
    /// starts serving `backend`.
    ///
    /// # Errors
    /// [`ServeError::Config`] for invalid settings, [`ServeError::Bind`] when
    /// the address cannot be bound, [`ServeError::Thread`] when a thread
    /// cannot be spawned.
    pub fn start(
        addr: &str,
        backend: impl Completer,
        config: ServeConfig,
    ) -> Result<Self, ServeError> {
        config.validate()?;
        let http = tiny_http::Server::http(addr).map_err(|e| ServeError::Bind {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
        let local = http.server_addr().to_ip().ok_or_else(|| ServeError::Bind {
            addr: addr.to_string(),
            reason: "not an IP address".into(),
        })?;
        let http = Arc::new(http);
        let stats = Arc::new(ServeStats::default());
        let (tx, rx) = mpsc::channel::<Job>();
        let batcher = {
            let (stats, cfg) = (stats.clone(), config.clone());
            std::thread::Builder::new()
                .name("flowrl-serve-batcher".into())
                .spawn(move || batch_loop(backend, rx, &cfg, &stats))
                .map_err(|e| ServeError::Thread(e.to_string()))?
        };
        let ids = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::with_capacity(config.http_threads);
        for i in 0..config.http_threads {
            let (http, tx, cfg, ids) = (http.clone(), tx.clone(), config.clone(), ids.clone());
            let w = std::thread::Builder::new()
                .name(format!("flowrl-serve-http-{i}"))
                .spawn(move || {
                    while let Ok(request) = http.recv() {
                        api::handle(request, &tx, &cfg, &ids);
                    }
                })
                .map_err(|e| ServeError::Thread(e.to_string()))?;
            workers.push(w);
        }
        tracing::info!(%local, model = %config.model, "serving");
        Ok(Self {
            http,
            addr: local,
            workers,
            batcher: Some(batcher),
            jobs: Some(tx),
            stats,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>/v1`, the base URL for OpenAI clients.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Live counters.
    pub fn stats(&self) -> &ServeStats {
        &self.stats
    }

    /// Blocks until the server stops (it stops only through
    /// [`Server::shutdown`] from another handle, so in practice: forever).
    pub fn wait(mut self) {
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }

    /// Stops accepting requests, lets requests in flight finish and joins
    /// every thread.
    pub fn shutdown(mut self) {
        for _ in 0..self.workers.len() {
            self.http.unblock();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        drop(self.jobs.take());
        if let Some(b) = self.batcher.take() {
            let _ = b.join();
        }
    }
}

fn batch_loop(
    backend: impl Completer,
    rx: mpsc::Receiver<Job>,
    cfg: &ServeConfig,
    stats: &ServeStats,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let deadline = Instant::now() + cfg.batch_window;
        while jobs.len() < cfg.max_batch {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(mpsc::TryRecvError::Disconnected) => break,
                Err(mpsc::TryRecvError::Empty) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match rx.recv_timeout(left) {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
            }
        }
        let requests: Vec<ChatRequest> = jobs.iter().map(|j| j.request.clone()).collect();
        let t0 = Instant::now();
        let mut results = backend.complete_batch(&requests);
        if results.len() != jobs.len() {
            let e = CompletionError {
                client_error: false,
                message: format!(
                    "the backend returned {} answers for {} requests",
                    results.len(),
                    jobs.len()
                ),
            };
            results = jobs.iter().map(|_| Err(e.clone())).collect();
        }
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .requests
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        stats
            .max_batch_seen
            .fetch_max(jobs.len() as u64, Ordering::Relaxed);
        tracing::debug!(
            batch = jobs.len(),
            seconds = t0.elapsed().as_secs_f64(),
            "batch done"
        );
        for (job, result) in jobs.into_iter().zip(results) {
            // A client that went away no longer listens; nothing to do.
            let _ = job.reply.send(result);
        }
    }
}
