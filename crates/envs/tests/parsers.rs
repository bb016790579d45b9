//! The protocol parsers: worked cases and never-panic properties.

use flowrl_envs::canvas::action::parse_target;
use flowrl_envs::canvas::dsl::parse;
use flowrl_envs::canvas::{
    ActionError, CanvasAction, DslError, OpSlot, Step, Workflow, parse_action,
};
use flowrl_envs::think_action::{ToolCallError, TurnAction, parse_turn, truncate_middle};
use proptest::prelude::*;

#[test]
fn think_then_tool() {
    let t = parse_turn("<think>check it</think>\n<tool>Review: $last</tool> trailing");
    assert_eq!(t.think.as_deref(), Some("check it"));
    assert_eq!(
        t.action,
        TurnAction::Tool {
            name: "Review".into(),
            input: "$last".into()
        }
    );
    assert_eq!(
        &"<think>check it</think>\n<tool>Review: $last</tool> trailing"[t.consumed..],
        " trailing"
    );
}

#[test]
fn first_action_wins_and_answers_are_trimmed() {
    let t = parse_turn("<think>x</think><answer> Paris </answer><tool>Review: a</tool>");
    assert_eq!(t.action, TurnAction::Answer("Paris".into()));
    let t = parse_turn("<tool>AnswerGenerate: q: with colon</tool><answer>b</answer>");
    assert_eq!(
        t.action,
        TurnAction::Tool {
            name: "AnswerGenerate".into(),
            input: "q: with colon".into()
        }
    );
}

#[test]
fn malformed_and_missing_actions_are_values_not_errors() {
    let t = parse_turn("<think>hm</think><tool>Review the answer</tool>");
    assert!(matches!(
        t.action,
        TurnAction::MalformedTool {
            error: ToolCallError::MissingColon,
            ..
        }
    ));
    let t = parse_turn("<tool>9lives: x</tool>");
    assert!(matches!(
        t.action,
        TurnAction::MalformedTool {
            error: ToolCallError::BadName(_),
            ..
        }
    ));
    let t = parse_turn("<tool>Review:   </tool>");
    assert!(matches!(
        t.action,
        TurnAction::MalformedTool {
            error: ToolCallError::EmptyInput(_),
            ..
        }
    ));
    let t = parse_turn("<think>just thinking</think>");
    assert_eq!(t.action, TurnAction::None);
    let t = parse_turn("<answer>unclosed");
    assert_eq!(t.action, TurnAction::None);
}

#[test]
fn truncation_keeps_both_ends() {
    let s: String = "a".repeat(1500) + &"b".repeat(1500);
    let t = truncate_middle(&s, 1024);
    assert!(t.starts_with(&"a".repeat(1024)));
    assert!(t.ends_with(&"b".repeat(1024)));
    assert!(t.contains("...(truncated)..."));
    assert_eq!(truncate_middle("short", 1024), "short");
    // Counts characters, not bytes.
    let u = "é".repeat(10);
    assert_eq!(truncate_middle(&u, 5), u);
}

#[test]
fn dsl_round_trip_of_the_reference_example() {
    let s = "A -> [B, C] -> D ? E : done -> (F -> G) * 2";
    let w = parse(s).unwrap();
    assert_eq!(w.to_string(), s);
    assert_eq!(w.nodes.len(), 4);
    assert_eq!(w.node_ids(), ["node_1", "node_2", "node_3", "node_4"]);
    let st = w.stats();
    assert_eq!(st.operators, 7);
    assert_eq!(st.unique_types.len(), 7);
    assert!(st.has_parallel && st.has_conditional && st.has_loop);
    assert_eq!(parse("  A->[B,C]->D?E:done->(F->G)*2 ").unwrap(), w);
    assert_eq!(parse("").unwrap(), Workflow::new());
}

#[test]
fn dsl_errors_point_at_the_problem() {
    assert_eq!(
        parse("A -> [B] -> C"),
        Err(DslError::ParallelTooSmall { at: 5 })
    );
    assert!(matches!(
        parse("A -> (B) * 11"),
        Err(DslError::BadCount { .. })
    ));
    assert!(matches!(parse("A -> done"), Err(DslError::BadName { .. })));
    assert!(matches!(
        parse("A -> "),
        Err(DslError::Expected { at: 5, .. })
    ));
    assert!(matches!(
        parse("A B"),
        Err(DslError::Expected { at: 2, .. })
    ));
    assert!(matches!(
        parse("A -> é"),
        Err(DslError::BadChar { ch: 'é', at: 5 })
    ));
}

#[test]
fn actions_of_every_kind() {
    let p = |s: &str| parse_action(s).map(|a| a.action);
    assert_eq!(
        p("<think>start simple</think><action>add</action><operator>Programmer</operator>"),
        Ok(CanvasAction::AddOperator {
            op: "Programmer".into()
        })
    );
    assert_eq!(
        p(
            "<action>add</action><structure>parallel</structure><operators>AnswerGenerate, Programmer</operators>"
        ),
        Ok(CanvasAction::AddParallel {
            ops: vec!["AnswerGenerate".into(), "Programmer".into()]
        })
    );
    assert_eq!(
        p(
            "<action>add</action><structure>conditional</structure><condition>Review</condition><true>Revise</true><false>done</false>"
        ),
        Ok(CanvasAction::AddConditional {
            check: "Review".into(),
            on_fail: Some("Revise".into()),
            on_pass: None
        })
    );
    assert_eq!(
        p("<action>add</action><structure>loop</structure><operators>Review,Revise</operators>"),
        Ok(CanvasAction::AddLoop {
            ops: vec!["Review".into(), "Revise".into()],
            count: 3
        })
    );
    assert_eq!(
        p("<action>delete</action><target>node_2</target>"),
        Ok(CanvasAction::Delete { target: 2 })
    );
    assert_eq!(
        p("<action>modify</action><target>node_1</target><operator>Custom</operator>"),
        Ok(CanvasAction::Modify {
            target: 1,
            op: "Custom".into()
        })
    );
    assert_eq!(
        p("<action>set_prompt</action><target>3</target><prompt> Check units. </prompt>"),
        Ok(CanvasAction::SetPrompt {
            target: 3,
            prompt: "Check units.".into()
        })
    );
    assert_eq!(
        p("<action>finish</action>"),
        Ok(CanvasAction::Finish { answer: None })
    );
}

#[test]
fn only_the_first_action_counts() {
    let text = "<action>add</action><operator>Plan</operator> then <action>finish</action>";
    let a = parse_action(text).unwrap();
    assert_eq!(a.action, CanvasAction::AddOperator { op: "Plan".into() });
    assert_eq!(&text[a.consumed..], " then <action>finish</action>");
    // Arguments after a second action do not leak into the first.
    let e = parse_action("<action>add</action><action>delete</action><operator>Plan</operator>");
    assert_eq!(
        e,
        Err(ActionError::MissingTag {
            action: "add",
            tag: "operator"
        })
    );
}

#[test]
fn action_errors() {
    assert_eq!(
        parse_action("I will add Programmer"),
        Err(ActionError::NoAction)
    );
    assert_eq!(
        parse_action("<action>grow</action>"),
        Err(ActionError::UnknownAction("grow".into()))
    );
    assert_eq!(
        parse_action("<action>add</action><structure>tree</structure>"),
        Err(ActionError::UnknownStructure("tree".into()))
    );
    assert!(matches!(
        parse_action("<action>add</action><structure>parallel</structure><operators>A</operators>"),
        Err(ActionError::TooFewOperators { got: 1, .. })
    ));
    assert_eq!(
        parse_action(
            "<action>add</action><structure>loop</structure><operators>A</operators><count>0</count>"
        ),
        Err(ActionError::BadCount("0".into()))
    );
    assert_eq!(
        parse_target("node_x"),
        Err(ActionError::BadTarget("node_x".into()))
    );
    assert_eq!(
        parse_action("<action>set_prompt</action><target>node_1</target><prompt> </prompt>"),
        Err(ActionError::EmptyPrompt)
    );
}

fn name() -> impl Strategy<Value = String> {
    "[A-Z][a-zA-Z0-9_]{0,8}".prop_filter("keyword", |s| s != "done")
}

fn step() -> impl Strategy<Value = Step> {
    let slot = || name().prop_map(OpSlot::new);
    prop_oneof![
        slot().prop_map(Step::Operator),
        prop::collection::vec(slot(), 2..4).prop_map(Step::Parallel),
        (slot(), prop::option::of(slot()), prop::option::of(slot())).prop_map(
            |(check, on_fail, on_pass)| Step::Conditional {
                check,
                on_fail,
                on_pass
            }
        ),
        (prop::collection::vec(slot(), 1..4), 1u8..=10)
            .prop_map(|(body, count)| Step::Loop { body, count }),
    ]
}

proptest! {
    #[test]
    fn dsl_print_parse_round_trip(steps in prop::collection::vec(step(), 0..6)) {
        let mut w = Workflow::new();
        for s in steps { w.push(s); }
        let printed = w.to_string();
        prop_assert_eq!(parse(&printed).unwrap(), w);
    }

    #[test]
    fn parsers_never_panic(s in "\\PC{0,200}") {
        let _ = parse_turn(&s);
        let _ = parse_action(&s);
        let _ = parse(&s);
    }

    #[test]
    fn parsers_never_panic_on_tag_soup(
        parts in prop::collection::vec(prop::sample::select(vec![
            "<think>", "</think>", "<tool>", "</tool>", "<answer>", "</answer>", "<action>", "</action>",
            "add", "finish", "delete", "<operator>", "</operator>", "<structure>", "</structure>", "loop",
            "parallel", "conditional", "<operators>", "</operators>", "<count>", "</count>", "<target>",
            "</target>", "node_1", "A,B", ":", "Review", "é", "->", "[", "]", "(", ")", "*", "?", " ", "12",
        ]), 0..40)
    ) {
        let s: String = parts.concat();
        let _ = parse_turn(&s);
        let _ = parse_action(&s);
        let _ = parse(&s);
    }
}
