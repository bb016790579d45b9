//! A small JSON Schema validator for the subset plugins publish.
//!
//! Supported keywords: `type` (string or list, `integer` included), `enum`,
//! `const`, `properties`, `required`, `additionalProperties` (boolean or
//! schema), `items`, `minItems`, `maxItems`, `minLength`, `maxLength`,
//! `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `anyOf`,
//! `oneOf`, `allOf`, `not`, boolean schemas, and local `$ref`s
//! (`#`, `#/$defs/…`, `#/definitions/…`, any JSON pointer into the same
//! document), which covers what schemars generates. Other keywords
//! (`format`, `pattern`, `title`, `description`, …) are accepted and ignored.

use serde_json::Value;

/// Deepest `$ref`/combinator nesting followed before giving up (guards
/// against recursive schemas applied to deep values).
const MAX_DEPTH: usize = 128;
/// At most this many violations are reported per validation.
const MAX_ERRORS: usize = 16;

/// A parsed JSON Schema document.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    root: Value,
}

impl Schema {
    /// Parses a schema from JSON text.
    ///
    /// # Errors
    /// When the text is not JSON, or is JSON but neither an object nor a boolean.
    pub fn parse(text: &str) -> Result<Self, String> {
        let root: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Self::from_value(root)
    }

    /// Wraps an already-parsed schema value.
    ///
    /// # Errors
    /// When the value is neither an object nor a boolean.
    pub fn from_value(root: Value) -> Result<Self, String> {
        match root {
            Value::Object(_) | Value::Bool(_) => Ok(Self { root }),
            other => Err(format!(
                "a schema must be an object or a boolean, got {other}"
            )),
        }
    }

    /// The schema as a JSON value.
    pub fn as_value(&self) -> &Value {
        &self.root
    }

    /// Checks `value`; returns the violations (each prefixed with the JSON
    /// pointer of the offending value, `/` for the root), at most 16.
    ///
    /// # Errors
    /// The list of violations when `value` does not conform.
    pub fn validate(&self, value: &Value) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        let mut path = String::new();
        self.check(&self.root, value, &mut path, &mut errors, 0);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Whether `value` conforms.
    pub fn is_valid(&self, value: &Value) -> bool {
        let mut errors = Vec::new();
        self.check(&self.root, value, &mut String::new(), &mut errors, 0);
        errors.is_empty()
    }

    fn check(
        &self,
        schema: &Value,
        value: &Value,
        path: &mut String,
        errors: &mut Vec<String>,
        depth: usize,
    ) {
        if errors.len() >= MAX_ERRORS {
            return;
        }
        let at = |path: &str| {
            if path.is_empty() {
                "/".to_string()
            } else {
                path.to_string()
            }
        };
        if depth > MAX_DEPTH {
            errors.push(format!(
                "{}: schema nesting deeper than {MAX_DEPTH}",
                at(path)
            ));
            return;
        }
        let obj = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => {
                errors.push(format!("{}: no value is allowed here", at(path)));
                return;
            }
            Value::Object(obj) => obj,
            _ => return,
        };

        if let Some(Value::String(reference)) = obj.get("$ref") {
            match self.resolve(reference) {
                Some(target) => self.check(target, value, path, errors, depth + 1),
                None => errors.push(format!("{}: unresolvable $ref `{reference}`", at(path))),
            }
        }

        if let Some(ty) = obj.get("type") {
            let ok = match ty {
                Value::String(t) => type_matches(t, value),
                Value::Array(ts) => ts
                    .iter()
                    .any(|t| t.as_str().is_some_and(|t| type_matches(t, value))),
                _ => true,
            };
            if !ok {
                errors.push(format!(
                    "{}: expected type {ty}, got {}",
                    at(path),
                    type_name(value)
                ));
                return;
            }
        }
        if let Some(Value::Array(options)) = obj.get("enum")
            && !options.iter().any(|o| json_eq(o, value))
        {
            errors.push(format!(
                "{}: {} is not one of {}",
                at(path),
                short(value),
                Value::Array(options.clone())
            ));
        }
        if let Some(expected) = obj.get("const")
            && !json_eq(expected, value)
        {
            errors.push(format!(
                "{}: expected {expected}, got {}",
                at(path),
                short(value)
            ));
        }

        match value {
            Value::Object(map) => {
                if let Some(Value::Array(required)) = obj.get("required") {
                    for name in required.iter().filter_map(Value::as_str) {
                        if !map.contains_key(name) {
                            errors
                                .push(format!("{}: missing required property `{name}`", at(path)));
                        }
                    }
                }
                let properties = obj.get("properties").and_then(Value::as_object);
                let additional = obj.get("additionalProperties");
                for (key, item) in map {
                    let len = path.len();
                    path.push('/');
                    path.push_str(&key.replace('~', "~0").replace('/', "~1"));
                    if let Some(sub) = properties.and_then(|p| p.get(key)) {
                        self.check(sub, item, path, errors, depth + 1);
                    } else if let Some(extra) = additional {
                        if extra == &Value::Bool(false) {
                            errors.push(format!("{}: property not allowed", at(path)));
                        } else {
                            self.check(extra, item, path, errors, depth + 1);
                        }
                    }
                    path.truncate(len);
                }
            }
            Value::Array(items) => {
                if let Some(min) = obj.get("minItems").and_then(Value::as_u64)
                    && (items.len() as u64) < min
                {
                    errors.push(format!(
                        "{}: {} items, at least {min} required",
                        at(path),
                        items.len()
                    ));
                }
                if let Some(max) = obj.get("maxItems").and_then(Value::as_u64)
                    && (items.len() as u64) > max
                {
                    errors.push(format!(
                        "{}: {} items, at most {max} allowed",
                        at(path),
                        items.len()
                    ));
                }
                if let Some(sub) = obj.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        let len = path.len();
                        path.push('/');
                        path.push_str(&i.to_string());
                        self.check(sub, item, path, errors, depth + 1);
                        path.truncate(len);
                    }
                }
            }
            Value::String(s) => {
                let chars = s.chars().count() as u64;
                if let Some(min) = obj.get("minLength").and_then(Value::as_u64)
                    && chars < min
                {
                    errors.push(format!(
                        "{}: string of {chars} characters, at least {min} required",
                        at(path)
                    ));
                }
                if let Some(max) = obj.get("maxLength").and_then(Value::as_u64)
                    && chars > max
                {
                    errors.push(format!(
                        "{}: string of {chars} characters, at most {max} allowed",
                        at(path)
                    ));
                }
            }
            Value::Number(n) => {
                if let Some(x) = n.as_f64() {
                    let bound = |k: &str| obj.get(k).and_then(Value::as_f64);
                    if let Some(m) = bound("minimum").filter(|m| x < *m) {
                        errors.push(format!("{}: {x} is less than the minimum {m}", at(path)));
                    }
                    if let Some(m) = bound("maximum").filter(|m| x > *m) {
                        errors.push(format!("{}: {x} is greater than the maximum {m}", at(path)));
                    }
                    if let Some(m) = bound("exclusiveMinimum").filter(|m| x <= *m) {
                        errors.push(format!("{}: {x} is not greater than {m}", at(path)));
                    }
                    if let Some(m) = bound("exclusiveMaximum").filter(|m| x >= *m) {
                        errors.push(format!("{}: {x} is not less than {m}", at(path)));
                    }
                }
            }
            _ => {}
        }

        if let Some(Value::Array(all)) = obj.get("allOf") {
            for sub in all {
                self.check(sub, value, path, errors, depth + 1);
            }
        }
        if let Some(Value::Array(any)) = obj.get("anyOf")
            && !any.iter().any(|sub| self.matches(sub, value, depth))
        {
            errors.push(format!(
                "{}: {} matches none of the anyOf alternatives",
                at(path),
                short(value)
            ));
        }
        if let Some(Value::Array(one)) = obj.get("oneOf") {
            let n = one
                .iter()
                .filter(|sub| self.matches(sub, value, depth))
                .count();
            if n != 1 {
                errors.push(format!(
                    "{}: {} matches {n} oneOf alternatives, exactly 1 required",
                    at(path),
                    short(value)
                ));
            }
        }
        if let Some(not) = obj.get("not")
            && self.matches(not, value, depth)
        {
            errors.push(format!(
                "{}: {} matches a `not` schema",
                at(path),
                short(value)
            ));
        }
    }

    fn matches(&self, schema: &Value, value: &Value, depth: usize) -> bool {
        let mut errors = Vec::new();
        self.check(schema, value, &mut String::new(), &mut errors, depth + 1);
        errors.is_empty()
    }

    fn resolve(&self, reference: &str) -> Option<&Value> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(&self.root);
        }
        self.root.pointer(pointer)
    }
}

fn type_matches(ty: &str, value: &Value) -> bool {
    match ty {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => match value {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|x| x.fract() == 0.0)
            }
            _ => false,
        },
        _ => true,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// JSON equality where numbers compare by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// A value's JSON text, cut to 60 characters for messages.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= 60 {
        text
    } else {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(v: Value) -> Schema {
        Schema::from_value(v).unwrap()
    }

    #[test]
    fn object_properties_required_and_additional() {
        let s = schema(json!({
            "type": "object",
            "properties": { "text": { "type": "string", "minLength": 1 }, "n": { "type": "integer", "minimum": 0 } },
            "required": ["text"],
            "additionalProperties": false
        }));
        assert!(s.validate(&json!({"text": "hi", "n": 3})).is_ok());
        let errs = s.validate(&json!({"n": -1, "zzz": true})).unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("missing required property `text`")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("/n:") && e.contains("minimum")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("/zzz:") && e.contains("not allowed")),
            "{errs:?}"
        );
        assert!(s.validate(&json!({"text": ""})).is_err());
        assert!(s.validate(&json!({"text": "a", "n": 1.5})).is_err());
        assert!(s.validate(&json!("text")).unwrap_err()[0].contains("expected type"));
    }

    #[test]
    fn refs_enums_arrays_and_combinators() {
        let s = schema(json!({
            "$defs": { "Color": { "enum": ["red", "green"] } },
            "type": "object",
            "properties": {
                "colors": { "type": "array", "items": { "$ref": "#/$defs/Color" }, "maxItems": 2 },
                "opt": { "type": ["string", "null"] },
                "either": { "anyOf": [{ "type": "integer" }, { "const": "auto" }] },
                "exactly": { "oneOf": [{ "type": "number" }, { "type": "integer" }] }
            }
        }));
        assert!(
            s.validate(&json!({"colors": ["red"], "opt": null, "either": "auto"}))
                .is_ok()
        );
        let errs = s.validate(&json!({"colors": ["red", "blue"]})).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("/colors/1:"), "{errs:?}");
        assert!(
            s.validate(&json!({"colors": ["red", "red", "red"]}))
                .is_err()
        );
        assert!(s.validate(&json!({"either": "manual"})).is_err());
        assert!(s.validate(&json!({"opt": 3})).is_err());
        // 2 is both a number and an integer: oneOf fails; 2.5 only a number.
        assert!(s.validate(&json!({"exactly": 2})).is_err());
        assert!(s.validate(&json!({"exactly": 2.5})).is_ok());
    }

    #[test]
    fn schemars_output_is_understood() {
        #[derive(schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Inner {
            k: u8,
        }
        #[derive(schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Outer {
            name: String,
            inner: Inner,
            list: Vec<Inner>,
            maybe: Option<u32>,
        }
        let s = schema(serde_json::to_value(schemars::schema_for!(Outer)).unwrap());
        assert!(
            s.validate(&json!({"name": "a", "inner": {"k": 1}, "list": [{"k": 2}], "maybe": null}))
                .is_ok()
        );
        assert!(
            s.validate(&json!({"name": "a", "inner": {"k": 300}, "list": []}))
                .is_err()
        );
        assert!(
            s.validate(&json!({"name": "a", "inner": {"k": 1}, "list": [{}]}))
                .is_err()
        );
    }

    #[test]
    fn bad_refs_and_bad_schemas_are_reported() {
        assert!(Schema::parse("[1]").is_err());
        assert!(Schema::parse("not json").is_err());
        let s = schema(json!({"$ref": "#/$defs/Missing"}));
        assert!(s.validate(&json!(1)).unwrap_err()[0].contains("unresolvable"));
        let recursive = schema(json!({"$ref": "#"}));
        assert!(recursive.validate(&json!(1)).unwrap_err()[0].contains("deeper"));
        assert!(schema(json!(false)).validate(&json!(null)).is_err());
    }
}
