//! The JSON Schema of the trajectory format.

/// The JSON Schema (draft 2020-12) of one [`crate::Trajectory`] record, as
/// pretty-printed JSON with a trailing newline.
///
/// The committed copy lives in `docs/schemas/trajectory.schema.json`; a test
/// fails when the two drift apart.
pub fn trajectory_schema_json() -> String {
    let schema = schemars::schema_for!(crate::Trajectory);
    let mut s = serde_json::to_string_pretty(&schema).expect("a JSON Schema always serialises");
    s.push('\n');
    s
}
