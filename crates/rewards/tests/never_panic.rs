//! The text parsers accept any input without panicking and stay consistent.

use flowrl_rewards::format::{check_format, last_answer, parse_blocks};
use flowrl_rewards::math::{
    evaluate_arithmetic, extract_boxed, extract_last_number, normalize_math,
};
use flowrl_rewards::{
    F1Config, ThinkActionRewardConfig, extract_answer, f1_reward, math_equal, think_action_reward,
};
use proptest::prelude::*;

/// Strings biased towards the characters the parsers care about.
fn texty() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\\boxed{".to_string()),
        Just("}".to_string()),
        Just("{".to_string()),
        Just("\\frac".to_string()),
        Just("\\sqrt".to_string()),
        Just("\\pi".to_string()),
        Just("####".to_string()),
        Just("<think>".to_string()),
        Just("</think>".to_string()),
        Just("<tool>".to_string()),
        Just("</tool>".to_string()),
        Just("<info>".to_string()),
        Just("</info>".to_string()),
        Just("<answer>".to_string()),
        Just("</answer>".to_string()),
        Just("<".to_string()),
        Just("^".to_string()),
        Just("%".to_string()),
        "[0-9.,/ +*-]{1,6}",
        "\\PC{0,4}",
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn math_parsers_never_panic(a in texty(), b in texty()) {
        let _ = extract_answer(&a);
        let _ = extract_boxed(&a);
        let _ = extract_last_number(&a);
        let _ = evaluate_arithmetic(&a);
        let n = normalize_math(&a);
        // Reflexive whenever the normalised answer is non-empty.
        prop_assert_eq!(math_equal(&a, &a), !n.is_empty());
        prop_assert_eq!(math_equal(&a, &b), math_equal(&b, &a));
    }

    #[test]
    fn arbitrary_unicode_never_panics(a in "\\PC{0,64}", b in "\\PC{0,64}") {
        let _ = extract_answer(&a);
        let _ = math_equal(&a, &b);
        let _ = check_format(&a);
        let _ = f1_reward(&a, &[b.as_str()], &F1Config::default());
    }

    #[test]
    fn format_automaton_never_panics(a in texty()) {
        let parsed = parse_blocks(&a);
        let checked = check_format(&a);
        // A well-formed response also parses, and ends with its answer.
        if let Ok(blocks) = &checked {
            prop_assert!(parsed.is_ok());
            prop_assert_eq!(blocks.last().map(|b| b.content.trim()), last_answer(&a));
        }
        let r = think_action_reward(&a, &["1"], &ThinkActionRewardConfig::default());
        prop_assert!(r.reward >= -1.5 && r.reward <= 1.0);
        prop_assert_eq!(r.format == 0.0, checked.is_ok());
    }

    #[test]
    fn generated_well_formed_responses_pass(turns in proptest::collection::vec(("[a-z ]{0,8}[a-z]", "[a-z]{1,8}", "[a-z ]{0,8}"), 0..5), ans in "[a-z ]{0,8}") {
        let mut s = String::from("<think>start</think>");
        for (tool, think, info) in &turns {
            s.push_str(&format!("\n<tool>{tool}</tool>\n<info>{info}</info>\n<think>{think}</think>"));
        }
        s.push_str(&format!("<answer>{ans}</answer>"));
        prop_assert!(check_format(&s).is_ok(), "{}", s);
    }
}
