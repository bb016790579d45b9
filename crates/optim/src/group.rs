//! Parameter groups: sets of parameters with their own learning-rate
//! multiplier and weight decay (typically: no decay on norms and biases).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{OptimError, invalid};

/// Name of the implicit group holding every parameter no other group claims.
/// It uses the optimizer's own learning rate and weight decay.
pub const DEFAULT_GROUP: &str = "default";

/// Selects parameters by name. A name matches when it matches any entry of
/// any list; an empty selector matches nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NameMatch {
    /// Names matched exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exact: Vec<String>,
    /// Prefixes (`model.embed_tokens.`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefix: Vec<String>,
    /// Suffixes (`bias`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suffix: Vec<String>,
    /// Substrings (`norm`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contains: Vec<String>,
}

impl NameMatch {
    /// Whether `name` matches any entry.
    pub fn matches(&self, name: &str) -> bool {
        self.exact.iter().any(|s| s == name)
            || self.prefix.iter().any(|s| name.starts_with(s.as_str()))
            || self.suffix.iter().any(|s| name.ends_with(s.as_str()))
            || self.contains.iter().any(|s| name.contains(s.as_str()))
    }
}

fn one() -> f32 {
    1.0
}

fn is_one(x: &f32) -> bool {
    *x == 1.0
}

/// One parameter group: which parameters it claims and how their
/// hyper-parameters differ from the optimizer's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Unique group name (not `default`).
    pub name: String,
    /// Multiplier on the step's learning rate (dimensionless, ≥ 0; default 1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub lr_scale: f32,
    /// Weight decay of this group, replacing the optimizer's; `None` keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f32>,
    /// Parameters claimed by name.
    #[serde(default, rename = "match")]
    pub select: NameMatch,
}

impl GroupConfig {
    /// A group with the optimizer's settings that claims nothing yet.
    pub fn new(name: impl Into<String>) -> Self {
        GroupConfig {
            name: name.into(),
            lr_scale: 1.0,
            weight_decay: None,
            select: NameMatch::default(),
        }
    }

    /// The usual exemption: weight decay 0 for every parameter whose name
    /// contains `norm` (RMSNorm/LayerNorm scales) or ends with `bias`.
    pub fn no_decay_norms_and_biases() -> Self {
        GroupConfig {
            name: "no_decay".into(),
            lr_scale: 1.0,
            weight_decay: Some(0.0),
            select: NameMatch {
                suffix: vec!["bias".into()],
                contains: vec!["norm".into()],
                ..NameMatch::default()
            },
        }
    }

    /// Checks the name and the ranges of the settings.
    ///
    /// # Errors
    /// [`OptimError::InvalidConfig`].
    pub fn validate(&self) -> Result<(), OptimError> {
        if self.name.is_empty() || self.name == DEFAULT_GROUP {
            return Err(invalid(
                "name",
                format!("group name `{}` is empty or reserved", self.name),
            ));
        }
        if !(self.lr_scale.is_finite() && self.lr_scale >= 0.0) {
            return Err(invalid(
                "lr_scale",
                format!(
                    "group `{}`: {} is not a finite value ≥ 0",
                    self.name, self.lr_scale
                ),
            ));
        }
        if let Some(wd) = self.weight_decay
            && !(wd.is_finite() && wd >= 0.0)
        {
            return Err(invalid(
                "weight_decay",
                format!("group `{}`: {wd} is not a finite value ≥ 0", self.name),
            ));
        }
        Ok(())
    }
}

/// A predicate on parameter names, for selections a [`NameMatch`] cannot
/// express. Predicates are not saved in state files.
pub type NamePredicate = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The learning-rate multiplier and weight decay that apply to one parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupSettings {
    /// Multiplier on the step's learning rate.
    pub lr_scale: f64,
    /// Weight-decay coefficient.
    pub weight_decay: f64,
}

/// The ordered list of groups of an optimizer plus explicit assignments.
///
/// A parameter belongs to, in order of precedence: the group it is explicitly
/// [assigned](Self::assign) to; the first group whose [`NameMatch`] or
/// predicate accepts its name; the [`DEFAULT_GROUP`].
#[derive(Clone, Default)]
pub struct ParamGroups {
    groups: Vec<GroupConfig>,
    predicates: Vec<Option<NamePredicate>>,
    assignments: BTreeMap<String, String>,
}

impl fmt::Debug for ParamGroups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let preds: Vec<bool> = self.predicates.iter().map(Option::is_some).collect();
        f.debug_struct("ParamGroups")
            .field("groups", &self.groups)
            .field("has_predicate", &preds)
            .field("assignments", &self.assignments)
            .finish()
    }
}

impl ParamGroups {
    /// No groups: every parameter is in the default group.
    pub fn new() -> Self {
        Self::default()
    }

    /// Groups from configurations, in order.
    ///
    /// # Errors
    /// As [`Self::add`].
    pub fn from_configs(
        configs: impl IntoIterator<Item = GroupConfig>,
    ) -> Result<Self, OptimError> {
        let mut g = Self::new();
        for c in configs {
            g.add(c)?;
        }
        Ok(g)
    }

    /// Appends a group selected by its [`NameMatch`].
    ///
    /// # Errors
    /// [`OptimError::InvalidConfig`] for bad settings,
    /// [`OptimError::DuplicateGroup`] when the name is taken.
    pub fn add(&mut self, config: GroupConfig) -> Result<(), OptimError> {
        config.validate()?;
        if self.index_of(&config.name).is_some() {
            return Err(OptimError::DuplicateGroup(config.name));
        }
        self.groups.push(config);
        self.predicates.push(None);
        Ok(())
    }

    /// Appends a group that also claims every name `predicate` accepts.
    ///
    /// # Errors
    /// As [`Self::add`].
    pub fn add_with_predicate(
        &mut self,
        config: GroupConfig,
        predicate: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Result<(), OptimError> {
        self.add(config)?;
        if let Some(last) = self.predicates.last_mut() {
            *last = Some(Arc::new(predicate));
        }
        Ok(())
    }

    /// Puts the parameter `param` in `group` (a group name or
    /// [`DEFAULT_GROUP`]), overriding every name rule.
    ///
    /// # Errors
    /// [`OptimError::UnknownGroup`].
    pub fn assign(&mut self, param: impl Into<String>, group: &str) -> Result<(), OptimError> {
        if group != DEFAULT_GROUP && self.index_of(group).is_none() {
            return Err(OptimError::UnknownGroup(group.to_owned()));
        }
        self.assignments.insert(param.into(), group.to_owned());
        Ok(())
    }

    fn index_of(&self, group: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.name == group)
    }

    /// The group `param` belongs to, or `None` for the default group.
    pub fn resolve(&self, param: &str) -> Option<&GroupConfig> {
        if let Some(g) = self.assignments.get(param) {
            return self.index_of(g).map(|i| &self.groups[i]);
        }
        self.groups
            .iter()
            .zip(&self.predicates)
            .find(|(g, p)| g.select.matches(param) || p.as_ref().is_some_and(|p| p(param)))
            .map(|(g, _)| g)
    }

    /// Name of the group `param` belongs to.
    pub fn group_name(&self, param: &str) -> &str {
        self.resolve(param)
            .map_or(DEFAULT_GROUP, |g| g.name.as_str())
    }

    /// Effective settings of `param` given the optimizer's weight decay.
    pub fn settings(&self, param: &str, base_weight_decay: f32) -> GroupSettings {
        match self.resolve(param) {
            None => GroupSettings {
                lr_scale: 1.0,
                weight_decay: f64::from(base_weight_decay),
            },
            Some(g) => GroupSettings {
                lr_scale: f64::from(g.lr_scale),
                weight_decay: f64::from(g.weight_decay.unwrap_or(base_weight_decay)),
            },
        }
    }

    /// The group configurations, in order.
    pub fn configs(&self) -> &[GroupConfig] {
        &self.groups
    }

    /// Explicit assignments, parameter name → group name.
    pub fn assignments(&self) -> &BTreeMap<String, String> {
        &self.assignments
    }

    /// Replaces the configurations and assignments (as saved in a state
    /// file), keeping the predicate of each group whose name survives.
    ///
    /// # Errors
    /// As [`Self::add`] and [`Self::assign`]; on error `self` is unchanged.
    pub fn restore(
        &mut self,
        configs: &[GroupConfig],
        assignments: &BTreeMap<String, String>,
    ) -> Result<(), OptimError> {
        let mut next = ParamGroups::new();
        for c in configs {
            let pred = self
                .index_of(&c.name)
                .and_then(|i| self.predicates[i].clone());
            next.add(c.clone())?;
            if let Some(last) = next.predicates.last_mut() {
                *last = pred;
            }
        }
        for (param, group) in assignments {
            next.assign(param.clone(), group)?;
        }
        *self = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_is_assignment_then_first_match_then_default() {
        let mut g = ParamGroups::new();
        g.add(GroupConfig::no_decay_norms_and_biases()).unwrap();
        let mut emb = GroupConfig::new("embeddings");
        emb.lr_scale = 0.1;
        g.add_with_predicate(emb, |n| n.starts_with("model.embed"))
            .unwrap();
        assert_eq!(g.group_name("model.norm.weight"), "no_decay");
        assert_eq!(
            g.group_name("model.layers.0.self_attn.q_proj.bias"),
            "no_decay"
        );
        assert_eq!(g.group_name("model.embed_tokens.weight"), "embeddings");
        assert_eq!(
            g.group_name("model.layers.0.mlp.up_proj.weight"),
            DEFAULT_GROUP
        );
        g.assign("model.norm.weight", DEFAULT_GROUP).unwrap();
        g.assign("model.layers.0.mlp.up_proj.weight", "embeddings")
            .unwrap();
        assert_eq!(g.group_name("model.norm.weight"), DEFAULT_GROUP);
        assert_eq!(
            g.group_name("model.layers.0.mlp.up_proj.weight"),
            "embeddings"
        );
        let s = g.settings("model.layers.0.input_layernorm.weight", 0.01);
        assert_eq!(s.weight_decay, 0.0);
        let s = g.settings("model.embed_tokens.weight", 0.01);
        assert!((s.lr_scale - 0.1).abs() < 1e-7);
        assert!((s.weight_decay - 0.01).abs() < 1e-9);
    }

    #[test]
    fn rejects_bad_groups() {
        let mut g = ParamGroups::new();
        assert!(g.add(GroupConfig::new(DEFAULT_GROUP)).is_err());
        let mut neg = GroupConfig::new("a");
        neg.lr_scale = -1.0;
        assert!(g.add(neg).is_err());
        g.add(GroupConfig::new("a")).unwrap();
        assert_eq!(
            g.add(GroupConfig::new("a")),
            Err(OptimError::DuplicateGroup("a".into()))
        );
        assert_eq!(
            g.assign("w", "b"),
            Err(OptimError::UnknownGroup("b".into()))
        );
    }

    #[test]
    fn restore_keeps_predicates_of_surviving_groups() {
        let mut g = ParamGroups::new();
        g.add_with_predicate(GroupConfig::new("p"), |n| n == "x")
            .unwrap();
        let configs = vec![GroupConfig::new("p"), GroupConfig::new("q")];
        g.restore(&configs, &BTreeMap::from([("y".into(), "q".into())]))
            .unwrap();
        assert_eq!(g.group_name("x"), "p");
        assert_eq!(g.group_name("y"), "q");
        let json = serde_json::to_string(&g.configs()[0]).unwrap();
        assert_eq!(json, r#"{"name":"p","match":{}}"#);
    }
}
