//! The plugin built as a real shared library, loaded by path through the
//! plugin host, and called against the fake server.
//!
//! The library is built with `cargo build` into `<target>/plugin-tests`, the
//! target directory the plugin-host tests use, so the build does not wait on
//! the lock of the `cargo test` that runs this file.

use std::path::{Path, PathBuf};
use std::process::Command;

use flowrl_fake_openai::FakeServer;
use flowrl_plugin_abi::ChatRequest;
use flowrl_plugin_host::{Host, PluginSource};
use serde_json::json;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn build_library() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
    .join("plugin-tests");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "--quiet",
            "-p",
            "flowrl-llm-openai",
            "--target-dir",
        ])
        .arg(&target)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "building the plugin failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target.join("debug").join(format!(
        "{}flowrl_llm_openai{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

#[test]
fn the_shared_library_loads_and_chats() {
    let path = build_library();
    let server = FakeServer::start().unwrap();
    let mut host = Host::new();
    let library = host.load(&path).unwrap();
    assert_eq!(library.name(), "openai-llm");
    assert!(
        matches!(library.source(), PluginSource::Path(_)),
        "{:?}",
        library.source()
    );
    let config = json!({"base_url": server.base_url(), "model": "m", "timeout_s": 5.0}).to_string();
    let backend = library.llm_backend("openai", &config).unwrap();
    let mut request = ChatRequest::user("from a shared library");
    request.logprobs = true;
    let answer = backend.chat(&request).unwrap();
    assert_eq!(answer.text, "echo: from a shared library");
    assert_eq!(answer.logprobs.map(|l| l.len()), Some(5));
    assert_eq!(server.requests_to("/v1/chat/completions").len(), 1);
}
