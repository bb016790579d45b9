//! The client against the fake OpenAI server on 127.0.0.1: answers,
//! log-probs, every injected fault, the batch concurrency limit, timeouts
//! and an unreachable server.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use flowrl_fake_openai::{FakeConfig, FakeServer, Fault, fake_logprob, tokenize};
use flowrl_llm_openai::{Endpoint, OpenAiClient, OpenAiConfig, OpenAiError};
use flowrl_plugin_abi::{ChatMessage, ChatRequest, PluginError, PluginErrorKind};

/// Small timeouts and backoffs so the whole file runs in a few seconds.
fn config(server: &FakeServer) -> OpenAiConfig {
    OpenAiConfig {
        base_url: Some(server.base_url()),
        model: Some("fake-model".into()),
        api_key: Some("sk-test".into()),
        timeout_s: 5.0,
        connect_timeout_s: 1.0,
        max_retries: 3,
        backoff_base_ms: 20,
        max_backoff_ms: 2_000,
        max_concurrency: 4,
        endpoint: Endpoint::Chat,
    }
}

fn client(config: &OpenAiConfig) -> OpenAiClient {
    // Resolve without the process environment so ambient variables cannot
    // change what the tests see.
    OpenAiClient::from_resolved(config.resolve_with(|_| None).unwrap())
}

fn request(text: &str) -> ChatRequest {
    let mut r = ChatRequest::user(text);
    r.messages
        .insert(0, ChatMessage::new("system", "answer briefly"));
    r
}

fn expected_logprobs(text: &str) -> Vec<f32> {
    tokenize(text)
        .into_iter()
        .map(|t| fake_logprob(t) as f32)
        .collect()
}

#[test]
fn chat_returns_text_usage_and_logprobs() {
    let server = FakeServer::with_config(FakeConfig {
        api_key: Some("sk-test".into()),
        models: vec!["fake-model".into()],
        ..FakeConfig::default()
    })
    .unwrap();
    let client = client(&config(&server));
    let mut req = request("what is two plus two");
    req.logprobs = true;
    req.stop = vec!["never".into()];
    let answer = client.chat(&req).unwrap();
    assert_eq!(answer.text, "echo: what is two plus two");
    assert_eq!(answer.finish_reason, "stop");
    assert_eq!(answer.usage.prompt_tokens, 7);
    assert_eq!(answer.usage.completion_tokens, 6);
    assert_eq!(answer.logprobs, Some(expected_logprobs(&answer.text)));

    // Without log-probs none are asked for or returned; max_tokens is sent.
    let mut req = request("a b c d");
    req.max_tokens = 2;
    let answer = client.chat(&req).unwrap();
    assert_eq!(
        (answer.text.as_str(), answer.finish_reason.as_str()),
        ("echo: a", "length")
    );
    assert_eq!(answer.logprobs, None);

    let log = server.requests_to("/v1/chat/completions");
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].header("authorization"), Some("Bearer sk-test"));
    let body = log[0].json().unwrap();
    assert_eq!(body["model"], "fake-model");
    assert_eq!(body["logprobs"], true);
    assert_eq!(body["stop"][0], "never");
    assert_eq!(body["messages"][0]["role"], "system");
    assert!(log[1].json().unwrap().get("logprobs").is_none());
    assert_eq!(
        client.list_models().unwrap(),
        vec!["fake-model".to_string()]
    );
}

#[test]
fn completions_endpoint_returns_token_logprobs() {
    let server = FakeServer::start().unwrap();
    let client = client(&OpenAiConfig {
        endpoint: Endpoint::Completions,
        ..config(&server)
    });
    let mut req = ChatRequest::user("the sky is");
    req.logprobs = true;
    let answer = client.chat(&req).unwrap();
    assert_eq!(answer.text, "echo: the sky is");
    assert_eq!(answer.logprobs, Some(expected_logprobs(&answer.text)));
    assert_eq!(answer.usage.prompt_tokens, 3);
    let log = server.requests_to("/v1/completions");
    assert_eq!(log.len(), 1);
    let body = log[0].json().unwrap();
    assert_eq!(body["prompt"], "the sky is");
    assert_eq!(body["logprobs"], 1);
}

#[test]
fn rate_limits_and_server_errors_are_retried_then_succeed() {
    let server = FakeServer::start().unwrap();
    server.push_faults([
        Fault::RateLimited {
            retry_after: Some("0.3".into()),
        },
        Fault::ServerError,
        Fault::Status {
            status: 503,
            message: "loading".into(),
        },
    ]);
    let client = client(&config(&server));
    let start = Instant::now();
    let answer = client.chat(&request("hi")).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(answer.text, "echo: hi");
    let log = server.requests_to("/v1/chat/completions");
    assert_eq!(log.len(), 4);
    // Retry-After was honoured: the second attempt came ≥ 0.3 s after the first.
    let gap = log[1].received_at - log[0].received_at;
    assert!(gap >= Duration::from_millis(300), "{gap:?}");
    // The two 5xx backoffs are 20–40 ms then 40–80 ms.
    let gap = log[2].received_at - log[1].received_at;
    assert!(
        gap >= Duration::from_millis(10) && gap < Duration::from_millis(1000),
        "{gap:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[test]
fn retries_are_bounded_and_exhaustion_is_a_typed_error() {
    let server = FakeServer::start().unwrap();
    server.push_faults(std::iter::repeat_n(Fault::ServerError, 4));
    let client = client(&OpenAiConfig {
        max_retries: 2,
        ..config(&server)
    });
    let err = client.chat(&request("hi")).unwrap_err();
    match &err {
        OpenAiError::RetriesExhausted {
            attempts,
            status,
            url,
            ..
        } => {
            assert_eq!((*attempts, *status), (3, Some(500)));
            assert_eq!(url, &format!("{}/chat/completions", server.base_url()));
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    assert!(
        err.to_string().contains("500: The server had an error"),
        "{err}"
    );
    assert_eq!(server.requests_to("/v1/chat/completions").len(), 3);
    assert_eq!(server.pending_faults(), 1);
    assert_eq!(PluginError::from(err).kind, PluginErrorKind::EXECUTION);
    let _ = client.chat(&request("drain the last 500"));

    // 429s without Retry-After fall back to the backoff and are bounded too.
    server.push_faults(std::iter::repeat_n(
        Fault::RateLimited { retry_after: None },
        10,
    ));
    let before = server.pending_faults();
    let err = client.chat(&request("hi")).unwrap_err();
    assert!(
        matches!(
            err,
            OpenAiError::RetriesExhausted {
                status: Some(429),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(before - server.pending_faults(), 3);
}

#[test]
fn client_errors_fail_at_once_with_the_server_message() {
    let server = FakeServer::start().unwrap();
    server.push_fault(Fault::Status {
        status: 400,
        message: "This model's maximum context length is 4096 tokens".into(),
    });
    let client = client(&config(&server));
    let err = client.chat(&request("hi")).unwrap_err();
    match &err {
        OpenAiError::Rejected {
            status, message, ..
        } => {
            assert_eq!(*status, 400);
            assert_eq!(
                message,
                "This model's maximum context length is 4096 tokens"
            );
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(
        server.requests_to("/v1/chat/completions").len(),
        1,
        "4xx must not be retried"
    );
    assert!(err.to_string().contains("400"));

    // A wrong key is a 401 from the server itself.
    let guarded = FakeServer::with_config(FakeConfig {
        api_key: Some("sk-right".into()),
        ..FakeConfig::default()
    })
    .unwrap();
    let err = client_for_key(&guarded, "sk-wrong")
        .chat(&request("hi"))
        .unwrap_err();
    assert!(
        matches!(&err, OpenAiError::Rejected { status: 401, message, .. } if message.contains("Incorrect API key")),
        "{err:?}"
    );
}

fn client_for_key(server: &FakeServer, key: &str) -> OpenAiClient {
    client(&OpenAiConfig {
        api_key: Some(key.into()),
        ..config(server)
    })
}

#[test]
fn malformed_json_is_a_typed_error() {
    let server = FakeServer::start().unwrap();
    server.push_fault(Fault::MalformedJson);
    let client = client(&config(&server));
    let err = client.chat(&request("hi")).unwrap_err();
    assert!(
        matches!(&err, OpenAiError::MalformedResponse { detail, .. } if detail.contains("not JSON")),
        "{err:?}"
    );
    assert_eq!(PluginError::from(err).kind, PluginErrorKind::INVALID_OUTPUT);
    assert_eq!(server.requests_to("/v1/chat/completions").len(), 1);
}

#[test]
fn dropped_connections_are_retried() {
    let server = FakeServer::start().unwrap();
    server.push_faults([Fault::DropConnection, Fault::CloseWithoutResponse]);
    let client = client(&config(&server));
    let answer = client.chat(&request("still there?")).unwrap();
    assert_eq!(answer.text, "echo: still there?");
    assert_eq!(server.requests_to("/v1/chat/completions").len(), 3);
    assert_eq!(server.pending_faults(), 0);
}

#[test]
fn batches_respect_the_concurrency_limit_and_keep_order() {
    let server = FakeServer::with_config(FakeConfig {
        default_delay: Duration::from_millis(150),
        ..FakeConfig::default()
    })
    .unwrap();
    let client = client(&OpenAiConfig {
        max_concurrency: 3,
        ..config(&server)
    });
    let requests: Vec<ChatRequest> = (0..9).map(|i| request(&format!("q{i}"))).collect();
    let start = Instant::now();
    let answers = client.chat_batch(&requests);
    let elapsed = start.elapsed();
    assert_eq!(answers.len(), 9);
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a.as_ref().unwrap().text, format!("echo: q{i}"));
    }
    assert_eq!(server.max_concurrent(), 3);
    // 9 requests of 150 ms, 3 at a time: three rounds, not one and not nine.
    assert!(elapsed >= Duration::from_millis(440), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1300), "{elapsed:?}");

    // A failing request in a batch fails alone.
    server.push_fault(Fault::Status {
        status: 422,
        message: "bad".into(),
    });
    let answers = client.chat_batch(&requests[..1]);
    assert!(matches!(
        answers[0],
        Err(OpenAiError::Rejected { status: 422, .. })
    ));
}

#[test]
fn slow_answers_time_out_near_the_limit() {
    let server = FakeServer::start().unwrap();
    server.push_fault(Fault::Delay(Duration::from_secs(5)));
    let client = client(&OpenAiConfig {
        timeout_s: 0.4,
        ..config(&server)
    });
    let start = Instant::now();
    let err = client.chat(&request("hi")).unwrap_err();
    let elapsed = start.elapsed();
    assert!(matches!(err, OpenAiError::Timeout { .. }), "{err:?}");
    assert!(elapsed >= Duration::from_millis(350), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    assert!(err.to_string().contains(&server.base_url()), "{err}");
    assert_eq!(PluginError::from(err).kind, PluginErrorKind::TIMEOUT);
    // Not retried.
    assert_eq!(server.requests_to("/v1/chat/completions").len(), 1);
}

#[test]
fn an_unreachable_server_is_named_in_the_error() {
    // A port that was just free and has no listener now. It is taken on
    // 127.0.0.2, where no fake server of a parallel test can bind it again.
    let port = {
        let l = TcpListener::bind("127.0.0.2:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base_url = format!("http://127.0.0.2:{port}/v1");
    let client = client(&OpenAiConfig {
        base_url: Some(base_url.clone()),
        model: Some("m".into()),
        max_retries: 1,
        backoff_base_ms: 10,
        ..OpenAiConfig::default()
    });
    let start = Instant::now();
    let err = client.chat(&request("hi")).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(3));
    match &err {
        OpenAiError::Unreachable { url, attempts, .. } => {
            assert_eq!(url, &format!("{base_url}/chat/completions"));
            assert_eq!(*attempts, 2);
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(err.to_string().contains(&base_url), "{err}");
    assert_eq!(PluginError::from(err).kind, PluginErrorKind::UNAVAILABLE);
}

#[test]
fn requests_without_messages_are_refused_before_sending() {
    let server = FakeServer::start().unwrap();
    let client = client(&config(&server));
    let mut req = ChatRequest::user("x");
    req.messages.clear();
    assert!(matches!(
        client.chat(&req),
        Err(OpenAiError::InvalidRequest(_))
    ));
    assert!(server.requests().is_empty());
}
