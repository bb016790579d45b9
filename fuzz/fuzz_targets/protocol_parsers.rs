//! Feeds arbitrary bytes to every protocol parser: none may panic, and a DSL
//! string that parses must print to a string that parses to the same graph.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = flowrl_envs::think_action::parse_turn(s);
    let _ = flowrl_envs::canvas::parse_action(s);
    if let Ok(w) = flowrl_envs::canvas::dsl::parse(s) {
        let printed = w.to_string();
        let again = flowrl_envs::canvas::dsl::parse(&printed).expect("printed DSL must parse");
        assert_eq!(again, w);
    }
});
