//! Loads real shared libraries through the host.

mod support;

use std::time::{Duration, Instant};

use flowrl_plugin_host::{
    Host, HostError, PluginSource,
    abi::{ChatRequest, ComponentKind, PluginErrorKind},
};
use serde_json::{Value, json};
use support::{EXAMPLE, FIXTURES, FUTURE, NOT_FLOWRL, OLD_ABI, library};

fn host_with(libs: &[&str]) -> Host {
    let mut host = Host::new();
    for lib in libs {
        if let Err(e) = host.load(&library(lib)) {
            panic!("loading {lib}: {e}");
        }
    }
    host
}

fn plugin_kind(err: &HostError) -> Option<PluginErrorKind> {
    match err {
        HostError::Plugin { error, .. } => Some(error.kind),
        _ => None,
    }
}

#[test]
fn example_plugin_loads_and_its_operators_run() {
    let host = host_with(&[EXAMPLE, FIXTURES]);
    let lib = host.library("example-text").expect("example plugin loaded");
    assert_eq!(lib.source(), &PluginSource::Path(library(EXAMPLE)));
    assert!(lib.provides(ComponentKind::OPERATOR_LIBRARY, "text"));
    let ops = lib.operator_library("text", "{}").unwrap();
    let names: Vec<&str> = ops.operators().iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["WordCount", "Summarize"]);

    let out = ops
        .call("WordCount", r#"{"text": "a b a\nc a", "top": 1}"#, None)
        .unwrap();
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        out,
        json!({"words": 5, "lines": 2, "characters": 9, "top_words": [{"word": "a", "count": 3}]})
    );

    // No executor configured: the operator falls back to its own summary.
    let text =
        r#"{"text": "First sentence here. Second one is longer than that.", "max_words": 4}"#;
    let out: Value = serde_json::from_str(&ops.call("Summarize", text, None).unwrap()).unwrap();
    assert_eq!(
        out,
        json!({"summary": "First sentence here.", "method": "extractive"})
    );

    // With an executor from another plugin library, it asks the LLM.
    let echo = host
        .provider(ComponentKind::LLM_BACKEND, "echo")
        .unwrap()
        .llm_backend("echo", "{}")
        .unwrap();
    let out: Value =
        serde_json::from_str(&ops.call("Summarize", text, Some(&echo)).unwrap()).unwrap();
    assert_eq!(out["method"], "llm");
    assert!(
        out["summary"]
            .as_str()
            .unwrap()
            .starts_with("echo: Summarise"),
        "{out}"
    );
}

#[test]
fn a_panicking_plugin_gives_errors_and_the_host_goes_on() {
    let host = host_with(&[FIXTURES]);
    let lib = host.library("test-fixtures").unwrap();
    let ops = lib.operator_library("fixtures", "{}").unwrap();
    for _ in 0..3 {
        let err = ops.call("Panic", "{}", None).unwrap_err();
        assert_eq!(plugin_kind(&err), Some(PluginErrorKind::PANIC), "{err}");
        assert!(
            err.to_string().contains("the Panic operator always panics"),
            "{err}"
        );
        assert_eq!(ops.call("Noop", "{}", None).unwrap(), "{}");
    }
    let err = lib.llm_backend("boom", "{}").unwrap_err();
    assert_eq!(plugin_kind(&err), Some(PluginErrorKind::PANIC), "{err}");
    assert!(err.to_string().contains("cannot be constructed"), "{err}");
    assert!(lib.llm_backend("echo", "{}").is_ok());
}

#[test]
fn incompatible_interface_version_is_refused_naming_both_versions() {
    let mut host = Host::new();
    let err = host.load(&library(FUTURE)).unwrap_err();
    let plugin_version = (flowrl_plugin_host::abi::INTERFACE_VERSION + 1).to_string();
    let host_version = flowrl_plugin_host::abi::INTERFACE_VERSION.to_string();
    match &err {
        HostError::IncompatibleVersion { plugin, host, .. } => {
            assert_eq!(plugin, &plugin_version);
            assert_eq!(host, &host_version);
        }
        other => panic!("expected IncompatibleVersion, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "built against flowrl plugin interface {plugin_version}"
        )) && text.contains(&format!(
            "implements flowrl plugin interface {host_version}"
        )),
        "{text}"
    );
    assert_eq!(host.errors().len(), 1);
    assert!(host.libraries().is_empty());
}

#[test]
fn an_older_interface_crate_is_refused_by_the_abi_stable_version_check() {
    let mut host = Host::new();
    let err = host.load(&library(OLD_ABI)).unwrap_err();
    match &err {
        HostError::IncompatibleVersion {
            what, plugin, host, ..
        } => {
            assert_eq!(what, "flowrl-plugin-abi");
            assert_eq!(plugin, "0.0.1");
            assert_eq!(host, env!("CARGO_PKG_VERSION"));
        }
        other => panic!("expected IncompatibleVersion, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("built against flowrl-plugin-abi 0.0.1")
            && text.contains(&format!(
                "implements flowrl-plugin-abi {}",
                env!("CARGO_PKG_VERSION")
            )),
        "{text}"
    );
}

#[test]
fn random_files_and_foreign_libraries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("libx.so");
    std::fs::write(&junk, b"\x7fELF? no, just forty bytes of not a library....").unwrap();
    let mut host = Host::new();
    let err = host.load(&junk).unwrap_err();
    assert!(matches!(err, HostError::NotAPlugin { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("cannot be loaded as a shared library"),
        "{err}"
    );

    let err = host.load(&library(NOT_FLOWRL)).unwrap_err();
    assert!(matches!(err, HostError::NotAPlugin { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("does not export a flowrl plugin root module"),
        "{err}"
    );

    // A system library, when one is at a usual place.
    let system = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib/aarch64-linux-gnu/libm.so.6",
        "/usr/lib64/libm.so.6",
        "/lib64/libm.so.6",
        "/usr/lib/libm.so.6",
    ];
    match system.iter().map(std::path::Path::new).find(|p| p.exists()) {
        Some(libm) => {
            let err = host.load(libm).unwrap_err();
            assert!(err.to_string().contains("not a flowrl plugin"), "{err}");
        }
        None => eprintln!("no system libm found; skipped that case"),
    }

    let missing = dir.path().join("libmissing.so");
    let err = host.load(&missing).unwrap_err();
    assert_eq!(err, HostError::NotFound { path: missing });
    assert!(host.libraries().is_empty());
    assert!(host.errors().len() >= 3);
}

#[test]
fn a_directory_loads_the_good_plugins_and_one_error_per_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    for lib in [EXAMPLE, FIXTURES, FUTURE, NOT_FLOWRL] {
        let src = library(lib);
        std::fs::copy(&src, dir.path().join(src.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.path().join("libx.so"), b"junk").unwrap();
    std::fs::write(
        dir.path().join("README.txt"),
        b"not a library, not looked at",
    )
    .unwrap();

    let mut host = Host::new();
    let loaded = host.load_paths([dir.path()]);
    assert_eq!(loaded, 2);
    let mut names: Vec<&str> = host.libraries().iter().map(|l| l.name()).collect();
    names.sort_unstable();
    assert_eq!(names, ["example-text", "test-fixtures"]);
    assert_eq!(host.errors().len(), 3, "{:?}", host.errors());
    let has =
        |pred: fn(&HostError) -> bool| host.errors().iter().filter(|e| pred(&e.error)).count();
    assert_eq!(
        has(|e| matches!(e, HostError::IncompatibleVersion { .. })),
        1
    );
    assert_eq!(has(|e| matches!(e, HostError::NotAPlugin { .. })), 2);
}

#[test]
fn duplicate_names_are_refused() {
    let mut host = host_with(&[EXAMPLE]);
    // The same file again (the OS hands back the same loaded library).
    let err = host.load(&library(EXAMPLE)).unwrap_err();
    assert!(
        matches!(err, HostError::DuplicateName { ref name, .. } if name == "example-text"),
        "{err:?}"
    );

    // A copy at another path is a separate library with the same name.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("libcopy.so");
    std::fs::copy(library(EXAMPLE), &copy).unwrap();
    let err = host.load(&copy).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("duplicate plugin name `example-text`"),
        "{text}"
    );
    assert!(
        text.contains(&library(EXAMPLE).display().to_string()),
        "{text}"
    );
    assert_eq!(host.libraries().len(), 1);
    assert_eq!(host.errors().len(), 2);
}

#[test]
fn operator_payloads_are_checked_against_the_schemas() {
    let host = host_with(&[FIXTURES]);
    let ops = host
        .library("test-fixtures")
        .unwrap()
        .operator_library("fixtures", "{}")
        .unwrap();
    let err = ops.call("BadOutput", "{}", None).unwrap_err();
    match &err {
        HostError::SchemaViolation { context, errors } => {
            assert!(context.contains("output"), "{context}");
            assert!(errors[0].starts_with("/ok:"), "{errors:?}");
        }
        other => panic!("expected a schema violation, got {other:?}"),
    }
    let err = ops
        .call("AskLlm", r#"{"question": "?"}"#, None)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("missing required property `prompt`"),
        "{err}"
    );
    let err = ops.call("AskLlm", "{not json", None).unwrap_err();
    assert!(matches!(err, HostError::InvalidJson { .. }), "{err:?}");
    let err = ops.call("Nope", "{}", None).unwrap_err();
    assert!(
        err.to_string()
            .contains("available: Noop, Panic, BadOutput, AskLlm"),
        "{err}"
    );
}

#[test]
fn executors_backends_and_timeouts() {
    let host = host_with(&[FIXTURES]);
    let lib = host.library("test-fixtures").unwrap();
    let ops = lib.operator_library("fixtures", "{}").unwrap();

    // No executor: a clear `unavailable` error from inside the operator.
    let err = ops.call("AskLlm", r#"{"prompt": "hi"}"#, None).unwrap_err();
    assert_eq!(
        plugin_kind(&err),
        Some(PluginErrorKind::UNAVAILABLE),
        "{err}"
    );
    assert!(
        err.to_string().contains("no LLM executor is configured"),
        "{err}"
    );

    let echo = lib.llm_backend("echo", "{}").unwrap();
    let out = ops
        .call("AskLlm", r#"{"prompt": "hi there"}"#, Some(&echo))
        .unwrap();
    assert_eq!(out, r#"{"answer":"echo: hi there"}"#);

    let mut request = ChatRequest::user("one two three");
    request.logprobs = true;
    let answer = echo.chat(&request).unwrap();
    assert_eq!(answer.text, "echo: one two three");
    assert_eq!(answer.logprobs.as_deref(), Some(&[-0.5f32; 4][..]));
    assert_eq!(answer.usage.prompt_tokens, 3);
    let batch = echo
        .chat_batch(&[ChatRequest::user("a"), ChatRequest::user("b")])
        .unwrap();
    let texts: Vec<String> = batch.into_iter().map(|r| r.unwrap().text).collect();
    assert_eq!(texts, ["echo: a", "echo: b"]);
    assert!(echo.describe().contains("\"backend\":\"echo\""));

    // A slow backend with a timeout: the host stops waiting.
    let slow = lib
        .llm_backend("echo", r#"{"delay_ms": 3000}"#)
        .unwrap()
        .with_timeout(Some(Duration::from_millis(100)));
    let start = Instant::now();
    let err = slow.chat(&ChatRequest::user("x")).unwrap_err();
    assert!(matches!(err, HostError::Timeout { .. }), "{err:?}");
    assert!(
        err.to_string().contains("no answer within 0.100 s"),
        "{err}"
    );
    let err = ops
        .call("AskLlm", r#"{"prompt": "x"}"#, Some(&slow))
        .unwrap_err();
    assert_eq!(plugin_kind(&err), Some(PluginErrorKind::TIMEOUT), "{err}");
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );

    let err = lib.llm_backend("echo", r#"{"delay": 1}"#).unwrap_err();
    assert_eq!(
        plugin_kind(&err),
        Some(PluginErrorKind::INVALID_INPUT),
        "{err}"
    );
}

#[test]
fn environments_run_through_the_abi() {
    let host = host_with(&[FIXTURES]);
    let lib = host
        .provider(ComponentKind::ENVIRONMENT, "countdown")
        .unwrap();
    let mut env = lib.environment("countdown", "{}").unwrap();
    assert_eq!(env.description()["name"], "countdown");

    let err = env.step("down").unwrap_err();
    assert_eq!(
        plugin_kind(&err),
        Some(PluginErrorKind::INVALID_STATE),
        "{err}"
    );
    let err = env.reset(r#"{"start": 0}"#).unwrap_err();
    assert!(matches!(err, HostError::SchemaViolation { .. }), "{err:?}");

    assert_eq!(env.reset(r#"{"start": 2}"#).unwrap(), "2 left");
    let s = env.step("wait").unwrap();
    assert_eq!(
        (s.observation.as_str(), s.reward, s.done),
        ("2 left", 0.0, false)
    );
    env.step("down").unwrap();
    let s = env.step("down").unwrap();
    assert_eq!((s.reward, s.done), (1.0, true));
    assert_eq!(s.info["left"], 0);
    assert!(env.step("down").is_err());

    let err = host
        .provider(ComponentKind::ENVIRONMENT, "chess")
        .unwrap_err();
    assert!(err.to_string().contains("available: countdown"), "{err}");
}
