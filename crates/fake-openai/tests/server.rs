//! The fake server over real loopback sockets, with a raw HTTP/1.1 client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use flowrl_fake_openai::{FakeConfig, FakeServer, Fault, fake_logprob};
use serde_json::{Value, json};

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Sends one request on `stream` and reads the answer head and body (as far
/// as the server sends it).
fn exchange(stream: &mut TcpStream, method: &str, path: &str, extra: &str, body: &str) -> Answer {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (n, v) = line.split_once(':').unwrap();
        headers.push((n.to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap();
    let mut body = Vec::new();
    reader.take(len as u64).read_to_end(&mut body).unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

fn connect(server: &FakeServer) -> TcpStream {
    let stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

fn chat_body(text: &str, logprobs: bool) -> String {
    json!({"model": "m", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}], "logprobs": logprobs}).to_string()
}

#[test]
fn chat_completion_echoes_with_usage_and_logprobs_over_keep_alive() {
    let server = FakeServer::start().unwrap();
    assert_eq!(server.addr().ip().to_string(), "127.0.0.1");
    let mut stream = connect(&server);
    let a = exchange(
        &mut stream,
        "POST",
        "/v1/chat/completions",
        "",
        &chat_body("hello there", true),
    );
    assert_eq!(a.status, 200);
    let v = a.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "echo: hello there");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7})
    );
    let content = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    let tokens: Vec<&str> = content
        .iter()
        .map(|t| t["token"].as_str().unwrap())
        .collect();
    assert_eq!(tokens, ["echo:", " hello", " there"]);
    assert_eq!(
        content[1]["logprob"].as_f64().unwrap(),
        fake_logprob(" hello")
    );

    // Same connection: scripted reply, max_tokens truncation.
    server.push_reply("one two three");
    let body =
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2})
            .to_string();
    let a = exchange(&mut stream, "POST", "/v1/chat/completions", "", &body);
    let v = a.json();
    assert_eq!(v["choices"][0]["message"]["content"], "one two");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert!(v["choices"][0]["logprobs"].is_null());
    assert_eq!(server.connections_accepted(), 1);
    assert_eq!(server.requests_to("/v1/chat/completions").len(), 2);
}

#[test]
fn completions_and_models() {
    let config = FakeConfig {
        models: vec!["tiny".into()],
        api_key: Some("sk-test".into()),
        ..FakeConfig::default()
    };
    let server = FakeServer::with_config(config).unwrap();
    let mut stream = connect(&server);
    let auth = "Authorization: Bearer sk-test\r\n";
    let a = exchange(&mut stream, "GET", "/v1/models", auth, "");
    assert_eq!(a.json()["data"][0]["id"], "tiny");

    let body = json!({"model": "tiny", "prompt": "a b. c", "logprobs": 1, "stop": "."}).to_string();
    let v = exchange(&mut stream, "POST", "/v1/completions", auth, &body).json();
    assert_eq!(v["choices"][0]["text"], "echo: a b");
    let lp = &v["choices"][0]["logprobs"];
    assert_eq!(lp["tokens"], json!(["echo:", " a", " b"]));
    assert_eq!(
        lp["token_logprobs"][2].as_f64().unwrap(),
        fake_logprob(" b")
    );
    assert_eq!(lp["text_offset"], json!([0, 5, 7]));

    // Wrong key, unknown model, bad body, unknown route.
    let a = exchange(
        &mut stream,
        "POST",
        "/v1/completions",
        "Authorization: Bearer nope\r\n",
        &body,
    );
    assert_eq!(a.status, 401);
    assert_eq!(a.json()["error"]["code"], "invalid_api_key");
    let body = json!({"model": "big", "prompt": "x"}).to_string();
    let a = exchange(&mut stream, "POST", "/v1/completions", auth, &body);
    assert_eq!(a.status, 404);
    let a = exchange(
        &mut stream,
        "POST",
        "/v1/chat/completions",
        auth,
        "{not json",
    );
    assert_eq!(a.status, 400);
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    assert_eq!(
        exchange(&mut stream, "GET", "/v2/else", auth, "").status,
        404
    );
    assert_eq!(
        exchange(&mut stream, "GET", "/v1/chat/completions", auth, "").status,
        405
    );
}

#[test]
fn faults_follow_the_script_in_order() {
    let server = FakeServer::start().unwrap();
    server.push_faults([
        Fault::RateLimited {
            retry_after: Some("2".into()),
        },
        Fault::ServerError,
        Fault::Status {
            status: 400,
            message: "context too long".into(),
        },
        Fault::MalformedJson,
        Fault::Delay(Duration::from_millis(150)),
    ]);
    let mut stream = connect(&server);
    let body = chat_body("x", false);
    let a = exchange(&mut stream, "POST", "/v1/chat/completions", "", &body);
    assert_eq!((a.status, a.header("retry-after")), (429, Some("2")));
    assert_eq!(
        exchange(&mut stream, "POST", "/v1/chat/completions", "", &body).status,
        500
    );
    // The model list is not a completion: it takes no fault.
    assert_eq!(
        exchange(&mut stream, "GET", "/v1/models", "", "").status,
        200
    );
    let a = exchange(&mut stream, "POST", "/v1/chat/completions", "", &body);
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error"]["message"], "context too long");
    let a = exchange(&mut stream, "POST", "/v1/chat/completions", "", &body);
    assert_eq!(a.status, 200);
    assert!(serde_json::from_slice::<Value>(&a.body).is_err());
    let start = Instant::now();
    let a = exchange(&mut stream, "POST", "/v1/chat/completions", "", &body);
    assert_eq!(a.status, 200);
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert_eq!(server.pending_faults(), 0);
    let log = server.requests();
    assert_eq!(log.len(), 6);
    assert_eq!(
        log[0].fault,
        Some(Fault::RateLimited {
            retry_after: Some("2".into())
        })
    );
    assert_eq!(log[2].path, "/v1/models");
    assert_eq!(log[2].fault, None);
    assert_eq!(log[3].json().unwrap()["messages"][1]["content"], "x");
}

#[test]
fn dropped_connections_cut_the_answer() {
    let server = FakeServer::start().unwrap();
    server.push_faults([Fault::DropConnection, Fault::CloseWithoutResponse]);
    let body = chat_body("hello", false);

    let mut stream = connect(&server);
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let (head, partial) = text.split_once("\r\n\r\n").unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        partial.len() < len,
        "body should be cut: {} of {len}",
        partial.len()
    );

    let mut stream = connect(&server);
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    assert!(raw.is_empty());
}

#[test]
fn records_concurrency_and_drop_does_not_hang() {
    let server = FakeServer::with_config(FakeConfig {
        default_delay: Duration::from_millis(200),
        ..FakeConfig::default()
    })
    .unwrap();
    let addr = server.addr();
    let handles: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                exchange(
                    &mut s,
                    "POST",
                    "/v1/chat/completions",
                    "",
                    &chat_body("x", false),
                )
                .status
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    assert_eq!(server.max_concurrent(), 3);

    // An idle keep-alive connection and a request stuck in a long delay must
    // not keep the server alive.
    let _idle = TcpStream::connect(addr).unwrap();
    server.push_fault(Fault::Delay(Duration::from_secs(30)));
    let mut busy = TcpStream::connect(addr).unwrap();
    let body = chat_body("x", false);
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    busy.write_all(request.as_bytes()).unwrap();
    while server.pending_faults() > 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let start = Instant::now();
    drop(server);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(TcpStream::connect(addr).is_err());
}
