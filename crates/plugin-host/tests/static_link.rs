//! Plugins linked statically register through the same root-module type
//! as loaded ones. Both crates are linked with their `builtin` feature, which
//! is also what lets two plugin crates share one binary.

use flowrl_plugin_host::{Host, HostError, PluginSource, abi::PluginErrorKind};
use serde_json::{Value, json};

#[test]
fn statically_linked_plugins_register_and_run() {
    let mut host = Host::new();
    host.add_static(flowrl_example_operator_plugin::flowrl_plugin_root())
        .unwrap();
    host.add_static(flowrl_test_fixtures_plugin::flowrl_plugin_root())
        .unwrap();
    assert!(host.errors().is_empty());
    let lib = host.library("example-text").unwrap();
    assert_eq!(lib.source(), &PluginSource::Static);
    assert_eq!(lib.metadata().version.as_str(), "0.1.0");

    let ops = lib.operator_library("text", "{}").unwrap();
    let out: Value =
        serde_json::from_str(&ops.call("WordCount", r#"{"text": "x y"}"#, None).unwrap()).unwrap();
    assert_eq!(out["words"], json!(2));

    let fixtures = host
        .library("test-fixtures")
        .unwrap()
        .operator_library("fixtures", "{}")
        .unwrap();
    let err = fixtures.call("Panic", "{}", None).unwrap_err();
    assert!(
        matches!(err, HostError::Plugin { ref error, .. } if error.kind == PluginErrorKind::PANIC)
    );

    // Registering the same plugin twice is refused by name.
    let err = host
        .add_static(flowrl_example_operator_plugin::flowrl_plugin_root())
        .unwrap_err();
    assert!(matches!(err, HostError::DuplicateName { .. }), "{err:?}");
    assert_eq!(host.errors().len(), 1);
}
