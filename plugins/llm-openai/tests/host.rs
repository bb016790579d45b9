//! The plugin registered statically in the plugin host, called through the
//! ABI against the fake server.

use flowrl_fake_openai::{FakeServer, Fault};
use flowrl_plugin_abi::ChatRequest;
use flowrl_plugin_host::{Host, HostError, abi::ComponentKind, abi::PluginErrorKind};
use serde_json::{Value, json};

fn backend_config(server: &FakeServer) -> String {
    json!({
        "base_url": server.base_url(),
        "model": "fake-model",
        "api_key": "sk-test",
        "timeout_s": 5.0,
        "max_retries": 2,
        "backoff_base_ms": 10,
        "max_concurrency": 2,
    })
    .to_string()
}

#[test]
fn chat_through_the_abi_works_against_the_fake_server() {
    let server = FakeServer::start().unwrap();
    let mut host = Host::new();
    host.add_static(flowrl_llm_openai::flowrl_plugin_root())
        .unwrap();
    assert!(host.errors().is_empty());
    let library = host.provider(ComponentKind::LLM_BACKEND, "openai").unwrap();
    assert_eq!(library.name(), "openai-llm");

    let backend = library
        .llm_backend("openai", &backend_config(&server))
        .unwrap();
    let description: Value = serde_json::from_str(&backend.describe()).unwrap();
    assert_eq!(description["base_url"], server.base_url());
    assert_eq!(description["api_key_set"], true);
    assert!(!backend.describe().contains("sk-test"));

    let mut request = ChatRequest::user("ping");
    request.logprobs = true;
    let answer = backend.chat(&request).unwrap();
    assert_eq!(answer.text, "echo: ping");
    assert_eq!(answer.logprobs.as_ref().map(Vec::len), Some(2));

    // A batch, one request of which meets a 400 that must not be retried.
    server.push_fault(Fault::Status {
        status: 400,
        message: "prompt too long".into(),
    });
    let answers = backend
        .chat_batch(&[ChatRequest::user("a"), ChatRequest::user("b")])
        .unwrap();
    let failed: Vec<_> = answers.iter().filter(|a| a.is_err()).collect();
    assert_eq!(failed.len(), 1);
    let message = failed[0].as_ref().unwrap_err().to_string();
    assert!(
        message.contains("prompt too long") && message.contains("400"),
        "{message}"
    );
    assert!(
        answers
            .iter()
            .any(|a| a.as_ref().is_ok_and(|r| r.text.starts_with("echo: ")))
    );
}

#[test]
fn bad_configs_and_names_are_refused_through_the_abi() {
    let mut host = Host::new();
    host.add_static(flowrl_llm_openai::flowrl_plugin_root())
        .unwrap();
    let library = host.library("openai-llm").unwrap();
    let err = library.llm_backend("gpt", "{}").unwrap_err();
    assert!(
        matches!(&err, HostError::Plugin { error, .. } if error.kind == PluginErrorKind::NOT_FOUND),
        "{err:?}"
    );
    let err = library
        .llm_backend("openai", r#"{"model": "m", "max_concurrency": 0}"#)
        .unwrap_err();
    assert!(
        matches!(&err, HostError::Plugin { error, .. } if error.kind == PluginErrorKind::INVALID_INPUT),
        "{err:?}"
    );
    let err = library
        .llm_backend("openai", r#"{"model": "m", "bogus": 1}"#)
        .unwrap_err();
    assert!(err.to_string().contains("bogus"), "{err}");
}
