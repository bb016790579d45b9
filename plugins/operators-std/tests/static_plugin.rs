//! The operator plugin loads statically through the plugin host and runs
//! operators through the ABI with the simulator as the executor.

use flowrl_llm_sim::{SimBackend, SimConfig};
use flowrl_operators::{OperatorOutput, Registry, TaskContext};
use flowrl_plugin_host::{Host, HostError, abi::PluginErrorKind};
use serde_json::json;

fn context() -> TaskContext {
    let mut c = TaskContext::new("m1", "math", "What is 19 plus 23?");
    c.gold = Some(json!({ "answers": ["42"] }));
    c
}

#[test]
fn operator_call_through_the_abi_with_the_simulator() {
    let mut host = Host::new();
    host.add_static(flowrl_operators_std::flowrl_plugin_root())
        .unwrap();
    host.add_static(flowrl_llm_sim::flowrl_plugin_root())
        .unwrap();
    assert!(host.errors().is_empty(), "{:?}", host.errors());

    let ops = host
        .library("operators-std")
        .unwrap()
        .operator_library("workflow-r1", "{}")
        .unwrap();
    let names: Vec<&str> = ops.operators().iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, flowrl_operators::WORKFLOW_R1_OPERATORS);
    let flowsteer = host
        .library("operators-std")
        .unwrap()
        .operator_library("flowsteer", "{}")
        .unwrap();
    assert_eq!(flowsteer.operators().len(), 12);

    let sim = host
        .library("llm-sim")
        .unwrap()
        .llm_backend("sim", r#"{"seed": 11}"#)
        .unwrap();
    let input = json!({ "context": context(), "text": "$question" }).to_string();
    let text = ops.call("AnswerGenerate", &input, Some(&sim)).unwrap();
    let out: OperatorOutput = serde_json::from_str(&text).unwrap();
    assert!(out.answer.is_some());
    assert!(out.executor_calls >= 1);

    // The same call in-process gives the same output (the simulator is deterministic).
    let direct = SimBackend::new(SimConfig {
        seed: 11,
        ..SimConfig::default()
    })
    .unwrap();
    let local = Registry::workflow_r1()
        .call_text("AnswerGenerate", "$question", &context(), None, &direct)
        .unwrap();
    assert_eq!(out, local);

    // Structured input.
    let input =
        json!({ "context": context(), "input": { "inputs": ["41", "42", "42"] } }).to_string();
    let out: OperatorOutput =
        serde_json::from_str(&ops.call("ScEnsemble", &input, Some(&sim)).unwrap()).unwrap();
    assert!(out.answer.is_some());

    // A malformed argument comes back as invalid input with the explanation.
    let input = json!({ "context": context(), "text": "$last" }).to_string();
    match ops.call("Review", &input, Some(&sim)).unwrap_err() {
        HostError::Plugin { error, .. } => {
            assert_eq!(error.kind, PluginErrorKind::INVALID_INPUT);
            assert!(error.message().contains("$last"), "{}", error.message());
        }
        other => panic!("{other:?}"),
    }

    // Without an executor the operator reports it as unavailable.
    let input = json!({ "context": context(), "text": "" }).to_string();
    match ops.call("AnswerGenerate", &input, None).unwrap_err() {
        HostError::Plugin { error, .. } => {
            assert_eq!(error.kind, PluginErrorKind::UNAVAILABLE, "{error}")
        }
        other => panic!("{other:?}"),
    }
}
