//! The server: listener thread, one thread per connection, fault script,
//! request log and concurrency counter.

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http::{self, ReadError, Request};
use crate::openai::{Generation, content_text, count_tokens, error_json, stop_list};
use crate::{FakeError, Fault};

/// Settings of a [`FakeServer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeConfig {
    /// Models listed by `/v1/models` and accepted in requests. Empty: any
    /// model name is accepted and `/v1/models` lists `fake-model`.
    pub models: Vec<String>,
    /// When set, requests must carry `Authorization: Bearer <key>`; others
    /// get 401.
    pub api_key: Option<String>,
    /// Delay before answering every completion request that has no fault
    /// of its own (useful to observe concurrency).
    pub default_delay: Duration,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            models: Vec::new(),
            api_key: None,
            default_delay: Duration::ZERO,
        }
    }
}

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// Arrival order, from 0, over all requests of the server.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Request target (path and query).
    pub path: String,
    /// Header fields as sent.
    pub headers: Vec<(String, String)>,
    /// Body as text (lossy UTF-8).
    pub body: String,
    /// The fault applied to this request, if any.
    pub fault: Option<Fault>,
    /// When the request was fully read.
    pub received_at: Instant,
}

impl RecordedRequest {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, when it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

struct State {
    config: FakeConfig,
    stop: AtomicBool,
    faults: Mutex<VecDeque<Fault>>,
    replies: Mutex<VecDeque<String>>,
    log: Mutex<Vec<RecordedRequest>>,
    seq: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    connections: Mutex<Vec<(u64, TcpStream)>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    accepted: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking connection thread must not take the whole server down.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running fake OpenAI-compatible server on `127.0.0.1` (a port chosen by
/// the system). Dropping it stops the listener, closes every open
/// connection and joins all threads.
pub struct FakeServer {
    addr: SocketAddr,
    state: Arc<State>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FakeServer {
    /// Starts a server with default settings.
    ///
    /// # Errors
    /// [`FakeError::Bind`] when no loopback port can be bound.
    pub fn start() -> Result<Self, FakeError> {
        Self::with_config(FakeConfig::default())
    }

    /// Starts a server with `config`, bound to `127.0.0.1:0`.
    ///
    /// # Errors
    /// [`FakeError::Bind`] when no loopback port can be bound,
    /// [`FakeError::Spawn`] when the listener thread cannot start.
    pub fn with_config(config: FakeConfig) -> Result<Self, FakeError> {
        let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
            .map_err(FakeError::Bind)?;
        let addr = listener.local_addr().map_err(FakeError::Bind)?;
        let state = Arc::new(State {
            config,
            stop: AtomicBool::new(false),
            faults: Mutex::new(VecDeque::new()),
            replies: Mutex::new(VecDeque::new()),
            log: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            connections: Mutex::new(Vec::new()),
            workers: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
        });
        let acceptor_state = Arc::clone(&state);
        let acceptor = std::thread::Builder::new()
            .name("fake-openai-accept".into())
            .spawn(move || accept_loop(listener, acceptor_state))
            .map_err(FakeError::Spawn)?;
        Ok(Self {
            addr,
            state,
            acceptor: Some(acceptor),
        })
    }

    /// The bound address (always `127.0.0.1`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1`, the base URL an OpenAI client is given.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Appends `fault` to the script: each completion request (chat or
    /// text) takes the next scripted fault, in arrival order; when the
    /// script is empty requests are answered normally.
    pub fn push_fault(&self, fault: Fault) {
        lock(&self.state.faults).push_back(fault);
    }

    /// Appends several faults to the script, in order.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.state.faults).extend(faults);
    }

    /// Scripted faults not yet consumed.
    pub fn pending_faults(&self) -> usize {
        lock(&self.state.faults).len()
    }

    /// Appends a scripted reply text: each successful completion takes the
    /// next one; when none is left the reply is `echo: <last user message>`
    /// (chat) or `echo: <prompt>` (completions).
    pub fn push_reply(&self, text: impl Into<String>) {
        lock(&self.state.replies).push_back(text.into());
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        let mut log = lock(&self.state.log).clone();
        log.sort_by_key(|r| r.seq);
        log
    }

    /// Requests whose path is `path` (query ignored).
    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.split('?').next() == Some(path))
            .collect()
    }

    /// Largest number of requests that were being handled at the same time.
    pub fn max_concurrent(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Stops the server (same as dropping it).
    pub fn shutdown(self) {}
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept with a connection of our own.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(handle) = self.acceptor.take() {
            let _ = handle.join();
        }
        for (_, stream) in lock(&self.state.connections).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let workers: Vec<_> = lock(&self.state.workers).drain(..).collect();
        for handle in workers {
            let _ = handle.join();
        }
    }
}

fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut next_id = 0u64;
    for stream in listener.incoming() {
        if state.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        state.accepted.fetch_add(1, Ordering::SeqCst);
        next_id += 1;
        let id = next_id;
        if let Ok(clone) = stream.try_clone() {
            lock(&state.connections).push((id, clone));
        }
        let worker_state = Arc::clone(&state);
        let spawned = std::thread::Builder::new()
            .name(format!("fake-openai-conn-{id}"))
            .spawn(move || {
                serve_connection(stream, &worker_state);
                lock(&worker_state.connections).retain(|(cid, _)| *cid != id);
            });
        if let Ok(handle) = spawned {
            let mut workers = lock(&state.workers);
            workers.retain(|h| !h.is_finished());
            workers.push(handle);
        }
    }
}

/// What to send back for one request.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Close the socket after sending only the head and half the body.
    truncate: bool,
    /// Close the socket without sending anything.
    close_silently: bool,
}

impl Reply {
    fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: value.to_string().into_bytes(),
            truncate: false,
            close_silently: false,
        }
    }

    fn error(status: u16, message: &str, kind: &str, code: Option<&str>) -> Self {
        Self::json(status, &error_json(message, kind, code))
    }
}

/// Decrements the in-flight counter when dropped.
struct InFlight<'a>(&'a State);

impl<'a> InFlight<'a> {
    fn enter(state: &'a State) -> Self {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve_connection(stream: TcpStream, state: &State) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    while !state.stop.load(Ordering::SeqCst) {
        let request = match http::read_request(&mut reader) {
            Ok(r) => r,
            Err(ReadError::Closed | ReadError::Io(_)) => return,
            Err(ReadError::Malformed(why)) => {
                let body = error_json(&why, "invalid_request_error", None).to_string();
                let _ = http::write_response(&mut writer, 400, &[], body.as_bytes(), false);
                return;
            }
            Err(ReadError::TooLarge(what)) => {
                let body = error_json(&format!("{what} too large"), "invalid_request_error", None)
                    .to_string();
                let _ = http::write_response(&mut writer, 413, &[], body.as_bytes(), false);
                return;
            }
        };
        let _guard = InFlight::enter(state);
        let keep_alive = request.keep_alive();
        let reply = handle(&request, state);
        if state.stop.load(Ordering::SeqCst) || reply.close_silently {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
        if reply.truncate {
            let head = http::response_head(reply.status, &reply.headers, reply.body.len(), true);
            let _ = writer.write_all(&head);
            let _ = writer.write_all(&reply.body[..reply.body.len() / 2]);
            let _ = writer.flush();
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
        if http::write_response(
            &mut writer,
            reply.status,
            &reply.headers,
            &reply.body,
            keep_alive,
        )
        .is_err()
            || !keep_alive
        {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Sleeps for `d` in short steps, returning early when the server stops.
fn sleep_unless_stopped(state: &State, d: Duration) {
    let end = Instant::now() + d;
    while !state.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= end {
            return;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(10)));
    }
}

fn handle(request: &Request, state: &State) -> Reply {
    let seq = state.seq.fetch_add(1, Ordering::SeqCst);
    let path = request.target.split('?').next().unwrap_or("").to_string();
    let is_completion = matches!(path.as_str(), "/v1/chat/completions" | "/v1/completions");
    let fault = if is_completion && request.method == "POST" {
        lock(&state.faults).pop_front()
    } else {
        None
    };
    lock(&state.log).push(RecordedRequest {
        seq,
        method: request.method.clone(),
        path: request.target.clone(),
        headers: request.headers.clone(),
        body: String::from_utf8_lossy(&request.body).into_owned(),
        fault: fault.clone(),
        received_at: Instant::now(),
    });

    match &fault {
        Some(Fault::Delay(d)) => sleep_unless_stopped(state, *d),
        None if is_completion => sleep_unless_stopped(state, state.config.default_delay),
        _ => {}
    }
    match fault {
        Some(Fault::Status { status, message }) => {
            let kind = if status >= 500 {
                "server_error"
            } else {
                "invalid_request_error"
            };
            return Reply::error(status, &message, kind, None);
        }
        Some(Fault::RateLimited { retry_after }) => {
            let mut reply = Reply::error(
                429,
                "Rate limit reached; slow down.",
                "rate_limit_error",
                Some("rate_limit_exceeded"),
            );
            if let Some(value) = retry_after {
                reply.headers.push(("Retry-After".into(), value));
            }
            return reply;
        }
        Some(Fault::ServerError) => {
            return Reply::error(
                500,
                "The server had an error while processing your request.",
                "server_error",
                None,
            );
        }
        Some(Fault::MalformedJson) => {
            return Reply {
                status: 200,
                headers: Vec::new(),
                body: br#"{"id": "chatcmpl-broken", "choices": [{"message": "#.to_vec(),
                truncate: false,
                close_silently: false,
            };
        }
        Some(Fault::DropConnection) => {
            let mut reply = route(request, &path, state, seq);
            reply.truncate = true;
            return reply;
        }
        Some(Fault::CloseWithoutResponse) => {
            let mut reply = Reply::json(200, &Value::Null);
            reply.close_silently = true;
            return reply;
        }
        Some(Fault::Delay(_)) | None => {}
    }
    route(request, &path, state, seq)
}

fn authorized(request: &Request, state: &State) -> bool {
    match &state.config.api_key {
        None => true,
        Some(key) => request
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|v| v.trim() == key),
    }
}

fn route(request: &Request, path: &str, state: &State, seq: u64) -> Reply {
    let method_ok = |m: &str| request.method == m;
    match path {
        "/v1/models" | "/v1/chat/completions" | "/v1/completions"
            if !authorized(request, state) =>
        {
            Reply::error(
                401,
                "Incorrect API key provided.",
                "invalid_request_error",
                Some("invalid_api_key"),
            )
        }
        "/v1/models" if method_ok("GET") => models(state),
        "/v1/chat/completions" if method_ok("POST") => completion(request, state, seq, true),
        "/v1/completions" if method_ok("POST") => completion(request, state, seq, false),
        "/v1/models" | "/v1/chat/completions" | "/v1/completions" => Reply::error(
            405,
            &format!("method {} not allowed on {path}", request.method),
            "invalid_request_error",
            None,
        ),
        _ => Reply::error(
            404,
            &format!("no route for {path}"),
            "invalid_request_error",
            None,
        ),
    }
}

fn models(state: &State) -> Reply {
    let names: Vec<&str> = if state.config.models.is_empty() {
        vec!["fake-model"]
    } else {
        state.config.models.iter().map(String::as_str).collect()
    };
    let data: Vec<Value> = names
        .into_iter()
        .map(|id| json!({ "id": id, "object": "model", "created": 1_700_000_000u64, "owned_by": "flowrl-fake" }))
        .collect();
    Reply::json(200, &json!({ "object": "list", "data": data }))
}

fn bad_request(message: impl AsRef<str>) -> Reply {
    Reply::error(400, message.as_ref(), "invalid_request_error", None)
}

fn completion(request: &Request, state: &State, seq: u64, chat: bool) -> Reply {
    let body: Value = match serde_json::from_slice(&request.body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return bad_request("request body must be a JSON object"),
        Err(e) => return bad_request(format!("request body is not valid JSON: {e}")),
    };
    let Some(model) = body.get("model").and_then(Value::as_str) else {
        return bad_request("`model` is required and must be a string");
    };
    if !state.config.models.is_empty() && !state.config.models.iter().any(|m| m == model) {
        return Reply::error(
            404,
            &format!("The model `{model}` does not exist."),
            "invalid_request_error",
            Some("model_not_found"),
        );
    }
    let max_tokens = match body.get("max_tokens") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            None => return bad_request("`max_tokens` must be a non-negative integer"),
        },
    };
    if let Some(n) = body.get("n").and_then(Value::as_u64)
        && n != 1
    {
        return bad_request("only n = 1 is supported");
    }
    let stop = match stop_list(&body) {
        Ok(s) => s,
        Err(e) => return bad_request(e),
    };
    let (prompt_text, prompt_tokens) = if chat {
        let Some(messages) = body.get("messages").and_then(Value::as_array) else {
            return bad_request("`messages` is required and must be an array");
        };
        if messages.is_empty() {
            return bad_request("`messages` must not be empty");
        }
        let mut last_user = String::new();
        let mut tokens = 0;
        for m in messages {
            let (Some(role), Some(content)) = (
                m.get("role").and_then(Value::as_str),
                m.get("content").and_then(content_text),
            ) else {
                return bad_request("each message needs a string `role` and text `content`");
            };
            tokens += count_tokens(&content);
            if role == "user" {
                last_user = content;
            }
        }
        (last_user, tokens)
    } else {
        let prompt = match body.get("prompt") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) if items.len() == 1 && items[0].is_string() => {
                items[0].as_str().unwrap_or_default().to_string()
            }
            _ => return bad_request("`prompt` is required and must be a string"),
        };
        let n = count_tokens(&prompt);
        (prompt, n)
    };
    let reply = lock(&state.replies)
        .pop_front()
        .unwrap_or_else(|| format!("echo: {prompt_text}"));
    let generation = Generation::new(&reply, max_tokens, &stop, prompt_tokens);
    let value = if chat {
        let logprobs = match body.get("logprobs") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return bad_request("`logprobs` must be a boolean"),
        };
        generation.chat_json(seq, model, logprobs)
    } else {
        let logprobs = match body.get("logprobs") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n) if n <= 5 => Some(n),
                _ => return bad_request("`logprobs` must be an integer between 0 and 5"),
            },
        };
        generation.completion_json(seq, model, logprobs)
    };
    Reply::json(200, &value)
}
