//! The server against real clients: flowrl's own `openai` backend and raw
//! HTTP for the error paths.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowrl_llm_openai::{OpenAiClient, OpenAiConfig};
use flowrl_plugin_abi::{ChatRequest, ChatResponse, ComponentKind, Usage};
use flowrl_plugin_host::Host;
use flowrl_serve::{Completer, CompletionError, ServeConfig, Server};
use serde_json::{Value, json};

/// Echoes the last message, records batch sizes, and takes a little time so
/// that concurrent requests queue up behind a running batch.
#[derive(Clone, Default)]
struct Echo {
    batches: Arc<Mutex<Vec<usize>>>,
}

impl Completer for Echo {
    fn complete_batch(
        &self,
        requests: &[ChatRequest],
    ) -> Vec<Result<ChatResponse, CompletionError>> {
        self.batches.lock().unwrap().push(requests.len());
        std::thread::sleep(Duration::from_millis(150));
        requests
            .iter()
            .map(|r| {
                let last = &r.messages.last().unwrap().content;
                if last == "fail" {
                    return Err(CompletionError {
                        client_error: false,
                        message: "backend exploded".into(),
                    });
                }
                let text = format!(
                    "echo:{last}:t={}:max={}",
                    r.sampling.temperature, r.max_tokens
                );
                Ok(ChatResponse {
                    logprobs: r.logprobs.then(|| vec![-0.5; 3]),
                    usage: Usage {
                        prompt_tokens: 7,
                        completion_tokens: 3,
                    },
                    finish_reason: "stop".into(),
                    text,
                })
            })
            .collect()
    }
}

fn config() -> ServeConfig {
    ServeConfig {
        model: "echo".into(),
        max_batch: 8,
        batch_window: Duration::from_millis(20),
        http_threads: 16,
        max_body_bytes: 4096,
        max_tokens_limit: 100,
    }
}

/// One raw HTTP/1.1 exchange: (status, JSON body).
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn client(server: &Server, model: &str) -> OpenAiClient {
    OpenAiClient::new(&OpenAiConfig {
        base_url: Some(server.base_url()),
        model: Some(model.into()),
        max_retries: 0,
        timeout_s: 20.0,
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn the_openai_backend_talks_to_the_server_and_gets_log_probs() {
    let server = Server::start("127.0.0.1:0", Echo::default(), config()).unwrap();
    let c = client(&server, "echo");
    assert_eq!(c.list_models().unwrap(), ["echo"]);
    let mut req = ChatRequest::user("hello");
    req.logprobs = true;
    req.max_tokens = 9;
    req.sampling.temperature = 0.0;
    let r = c.chat(&req).unwrap();
    assert_eq!(r.text, "echo:hello:t=0:max=9");
    assert_eq!(r.logprobs, Some(vec![-0.5; 3]));
    assert_eq!((r.usage.prompt_tokens, r.usage.completion_tokens), (7, 3));
    assert_eq!(r.finish_reason, "stop");
    server.shutdown();
}

#[test]
fn concurrent_requests_are_batched_and_each_gets_its_own_answer() {
    let echo = Echo::default();
    let server = Server::start("127.0.0.1:0", echo.clone(), config()).unwrap();
    let addr = server.local_addr();
    let threads: Vec<_> = (0..12)
        .map(|i| {
            std::thread::spawn(move || {
                let body = json!({"model": "echo", "messages": [{"role": "user", "content": format!("q{i}")}]});
                http(addr, "POST", "/v1/chat/completions", &body.to_string())
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let (status, body) = t.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["choices"][0]["message"]["content"],
            format!("echo:q{i}:t=1:max=100"),
            "answers must not be mixed up"
        );
        assert_eq!(body["usage"]["total_tokens"], 10);
        assert!(body["choices"][0]["logprobs"].is_null());
    }
    let batches = echo.batches.lock().unwrap().clone();
    assert_eq!(batches.iter().sum::<usize>(), 12);
    assert!(
        batches.iter().all(|&b| b <= 8),
        "no batch exceeds max_batch: {batches:?}"
    );
    assert!(
        batches.iter().any(|&b| b > 1),
        "concurrent requests were never batched: {batches:?}"
    );
    assert_eq!(
        server
            .stats()
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        12
    );
    server.shutdown();
}

#[test]
fn bad_requests_get_openai_shaped_errors_naming_the_parameter() {
    let server = Server::start("127.0.0.1:0", Echo::default(), config()).unwrap();
    let addr = server.local_addr();
    let post = |body: &str| http(addr, "POST", "/v1/chat/completions", body);
    let user = |extra: Value| {
        let mut b = json!({"messages": [{"role": "user", "content": "x"}]});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b.to_string()
    };
    for (body, status, param) in [
        ("{not json".to_string(), 400, "body"),
        ("[1]".to_string(), 400, "body"),
        (json!({"messages": []}).to_string(), 400, "messages"),
        (
            json!({"messages": [{"role": "wizard", "content": "x"}]}).to_string(),
            400,
            "messages[0].role",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}).to_string(),
            400,
            "messages[0].content",
        ),
        (user(json!({"temperature": "hot"})), 400, "temperature"),
        (user(json!({"temperature": 3.0})), 400, "temperature"),
        (user(json!({"top_p": 0.0})), 400, "top_p"),
        (user(json!({"max_tokens": 101})), 400, "max_tokens"),
        (user(json!({"max_tokens": -1})), 400, "max_tokens"),
        (user(json!({"stop": 3})), 400, "stop"),
        (user(json!({"n": 2})), 400, "n"),
        (user(json!({"stream": true})), 400, "stream"),
        (user(json!({"top_logprobs": 5})), 400, "top_logprobs"),
    ] {
        let (s, b) = post(&body);
        assert_eq!(s, status, "{body} -> {b}");
        assert_eq!(b["error"]["param"], param, "{body} -> {b}");
        assert_eq!(b["error"]["type"], "invalid_request_error");
        assert!(!b["error"]["message"].as_str().unwrap().is_empty());
    }
    let (s, b) = post(&user(json!({"model": "gpt-9"})));
    assert_eq!(s, 404);
    assert!(
        b["error"]["message"].as_str().unwrap().contains("`echo`"),
        "{b}"
    );
    let (s, _) = post(&"x".repeat(5000));
    assert_eq!(s, 413);
    let (s, b) = http(addr, "GET", "/v1/nothing", "");
    assert_eq!(s, 404, "{b}");
    let (s, _) = http(addr, "POST", "/v1/completions", "{}");
    assert_eq!(s, 404);
    // A backend failure is a 500 with the backend's message, and the server
    // keeps serving.
    let (s, b) = post(&json!({"messages": [{"role": "user", "content": "fail"}]}).to_string());
    assert_eq!(s, 500);
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("backend exploded")
    );
    let (s, b) = http(addr, "GET", "/health", "");
    assert_eq!((s, b["status"].as_str()), (200, Some("ok")));
    // Text parts, a developer message and a single stop string are accepted.
    let (s, b) = post(
        &json!({"messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
        ], "stop": "\n", "max_completion_tokens": 5})
        .to_string(),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["choices"][0]["message"]["content"], "echo:ab:t=1:max=5");
    server.shutdown();
}

#[test]
fn the_simulated_executor_is_served_through_the_plugin_host() {
    let mut host = Host::new();
    host.add_static(flowrl_llm_sim::flowrl_plugin_root())
        .unwrap();
    let lib = host.provider(ComponentKind::LLM_BACKEND, "sim").unwrap();
    let backend = lib.llm_backend("sim", "{}").unwrap();
    let server = Server::start(
        "127.0.0.1:0",
        backend,
        ServeConfig {
            model: "sim".into(),
            ..ServeConfig::default()
        },
    )
    .unwrap();
    let c = client(&server, "sim");
    let r = c
        .chat(&ChatRequest::user(
            "What is 2 + 2? Answer in <answer> tags.",
        ))
        .unwrap();
    assert!(!r.text.is_empty());
    assert!(r.usage.completion_tokens > 0, "{r:?}");
    server.shutdown();
}

#[test]
fn invalid_settings_and_busy_ports_are_reported() {
    let e = Server::start(
        "127.0.0.1:0",
        Echo::default(),
        ServeConfig {
            max_batch: 0,
            ..config()
        },
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("max_batch"), "{e}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let e = Server::start(&addr, Echo::default(), config())
        .err()
        .unwrap();
    assert!(e.to_string().contains(&addr), "{e}");
}
