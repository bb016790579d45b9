//! Host-side handles on plugin components: schema-checked operator calls,
//! LLM backends with call timeouts, and environments.

use std::{
    collections::HashMap,
    sync::{Arc, mpsc},
    time::Duration,
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RResult, RSlice, RStr, RString, RVec},
};
use flowrl_plugin_abi::{
    ChatRequest, ChatResponse, EnvironmentBox, LlmBackend_TO, LlmBackendBox, OperatorLibraryBox,
    PluginError, PluginErrorKind,
};
use serde_json::Value;

use crate::{HostError, Schema};

/// One operator of a loaded operator library, with its parsed schemas.
#[derive(Debug, Clone)]
pub struct Operator {
    /// Operator name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Schema of its input.
    pub input_schema: Schema,
    /// Schema of its output.
    pub output_schema: Schema,
}

/// A constructed operator library. Every call's input is checked against
/// the operator's input schema before the call and its output against the
/// output schema after it.
pub struct OperatorLibrary {
    name: String,
    inner: OperatorLibraryBox,
    operators: Vec<Operator>,
    index: HashMap<String, usize>,
}

impl std::fmt::Debug for OperatorLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorLibrary")
            .field("name", &self.name)
            .field("operators", &self.operators)
            .finish_non_exhaustive()
    }
}

impl OperatorLibrary {
    /// Wraps a constructed library trait object, reading and parsing its
    /// operator list. `name` is `plugin/library`, used in messages.
    ///
    /// # Errors
    /// [`HostError::InvalidSchema`] when an operator publishes an unusable schema.
    pub fn new(name: String, inner: OperatorLibraryBox) -> Result<Self, HostError> {
        let mut operators = Vec::new();
        let mut index = HashMap::new();
        for info in inner.operators() {
            let parse = |text: &RString, which: &str| {
                Schema::parse(text.as_str()).map_err(|reason| HostError::InvalidSchema {
                    context: format!("{name}: operator `{}` {which} schema", info.name),
                    reason,
                })
            };
            let op = Operator {
                name: info.name.to_string(),
                description: info.description.to_string(),
                input_schema: parse(&info.input_schema, "input")?,
                output_schema: parse(&info.output_schema, "output")?,
            };
            index.insert(op.name.clone(), operators.len());
            operators.push(op);
        }
        Ok(Self {
            name,
            inner,
            operators,
            index,
        })
    }

    /// `plugin/library` name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its operators, in the order the plugin lists them.
    pub fn operators(&self) -> &[Operator] {
        &self.operators
    }

    /// The operator called `name`.
    pub fn operator(&self, name: &str) -> Option<&Operator> {
        self.index.get(name).map(|&i| &self.operators[i])
    }

    /// Runs `operator` on the JSON text `input`, with `executor` as the LLM
    /// it may call (`None`: calls to the executor fail with an
    /// `unavailable` error). Returns the operator's JSON output text.
    ///
    /// # Errors
    /// Unknown operator, invalid input JSON, schema violations of input or
    /// output, or the plugin's own error (a caught panic included).
    pub fn call(
        &self,
        operator: &str,
        input: &str,
        executor: Option<&LlmBackend>,
    ) -> Result<String, HostError> {
        let op = self
            .operator(operator)
            .ok_or_else(|| HostError::UnknownOperator {
                library: self.name.clone(),
                name: operator.to_string(),
                available: self.operators.iter().map(|o| o.name.clone()).collect(),
            })?;
        let context = |what: &str| format!("{}: operator `{operator}` {what}", self.name);
        let value: Value = serde_json::from_str(input).map_err(|e| HostError::InvalidJson {
            context: context("input"),
            reason: e.to_string(),
        })?;
        op.input_schema
            .validate(&value)
            .map_err(|errors| HostError::SchemaViolation {
                context: context("input"),
                errors,
            })?;

        let output = match executor {
            Some(backend) => {
                let handle = ExecutorHandle {
                    inner: Arc::clone(&backend.inner),
                    timeout: backend.timeout,
                };
                self.inner.call(
                    operator.into(),
                    input.into(),
                    LlmBackend_TO::from_ptr(&handle, TD_Opaque),
                )
            }
            None => self.inner.call(
                operator.into(),
                input.into(),
                LlmBackend_TO::from_ptr(&NoExecutor, TD_Opaque),
            ),
        };
        let output = output.into_result().map_err(|error| HostError::Plugin {
            context: context("call"),
            error,
        })?;
        let value: Value =
            serde_json::from_str(output.as_str()).map_err(|e| HostError::InvalidJson {
                context: context("output"),
                reason: e.to_string(),
            })?;
        op.output_schema
            .validate(&value)
            .map_err(|errors| HostError::SchemaViolation {
                context: context("output"),
                errors,
            })?;
        Ok(output.into_string())
    }
}

/// The executor handed to operators when the host has no LLM configured:
/// every call fails with a clear `unavailable` error.
struct NoExecutor;

const NO_EXECUTOR: &str = "no LLM executor is configured for this operator call";

impl flowrl_plugin_abi::LlmBackend for NoExecutor {
    fn describe(&self) -> RString {
        r#"{"backend":"none"}"#.into()
    }

    fn chat(&self, _request: RStr<'_>) -> RResult<RString, PluginError> {
        RResult::RErr(PluginError::unavailable(NO_EXECUTOR))
    }

    fn chat_batch(&self, requests: RSlice<'_, RString>) -> RVec<RResult<RString, PluginError>> {
        requests
            .iter()
            .map(|_| RResult::RErr(PluginError::unavailable(NO_EXECUTOR)))
            .collect()
    }
}

/// A loaded backend as handed to an operator, keeping the host's timeout.
struct ExecutorHandle {
    inner: Arc<LlmBackendBox>,
    timeout: Option<Duration>,
}

impl flowrl_plugin_abi::LlmBackend for ExecutorHandle {
    fn describe(&self) -> RString {
        self.inner.describe()
    }

    fn chat(&self, request: RStr<'_>) -> RResult<RString, PluginError> {
        let text = request.to_string();
        timed(&self.inner, self.timeout, move |b| {
            b.chat(RStr::from_str(&text)).into_result()
        })
        .map_err(timeout_to_plugin_error)
        .and_then(|r| r)
        .into()
    }

    fn chat_batch(&self, requests: RSlice<'_, RString>) -> RVec<RResult<RString, PluginError>> {
        let owned: Vec<RString> = requests.to_vec();
        let n = owned.len();
        match timed(&self.inner, self.timeout, move |b| {
            b.chat_batch(RSlice::from_slice(&owned))
        }) {
            Ok(results) => results,
            Err(err) => {
                let err = timeout_to_plugin_error(err);
                (0..n).map(|_| RResult::RErr(err.clone())).collect()
            }
        }
    }
}

fn timeout_to_plugin_error(err: TimedError) -> PluginError {
    match err {
        TimedError::Timeout(after) => PluginError::new(
            PluginErrorKind::TIMEOUT,
            format!(
                "executor gave no answer within {:.3} s",
                after.as_secs_f64()
            ),
        ),
        TimedError::Thread(reason) => {
            PluginError::execution(format!("cannot start worker thread: {reason}"))
        }
    }
}

enum TimedError {
    Timeout(Duration),
    Thread(String),
}

/// Runs `f` on the backend, on a worker thread when `timeout` is set.
///
/// A call that exceeds the timeout is abandoned: its thread keeps running
/// (a plugin call cannot be cancelled safely) and its result is dropped.
fn timed<T: Send + 'static>(
    backend: &Arc<LlmBackendBox>,
    timeout: Option<Duration>,
    f: impl FnOnce(&LlmBackendBox) -> T + Send + 'static,
) -> Result<T, TimedError> {
    let Some(limit) = timeout else {
        return Ok(f(backend));
    };
    let backend = Arc::clone(backend);
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("flowrl-backend-call".to_string())
        .spawn(move || {
            let _ = tx.send(f(&backend));
        })
        .map_err(|e| TimedError::Thread(e.to_string()))?;
    rx.recv_timeout(limit)
        .map_err(|_| TimedError::Timeout(limit))
}

/// A constructed LLM backend, with an optional per-call timeout.
#[derive(Clone)]
pub struct LlmBackend {
    name: String,
    inner: Arc<LlmBackendBox>,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for LlmBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmBackend")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl LlmBackend {
    /// Wraps a constructed backend trait object; no timeout.
    pub fn new(name: String, inner: LlmBackendBox) -> Self {
        Self {
            name,
            inner: Arc::new(inner),
            timeout: None,
        }
    }

    /// The same backend with a per-call time limit (`None`: wait forever).
    ///
    /// Timed calls run on a worker thread; a call that exceeds the limit is
    /// abandoned, its thread left to finish on its own.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// The per-call time limit.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// `plugin/backend` name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The backend's JSON description text.
    pub fn describe(&self) -> String {
        self.inner.describe().into_string()
    }

    /// Completes one request.
    ///
    /// # Errors
    /// The plugin's error, [`HostError::Timeout`], or an answer that is not a
    /// [`ChatResponse`].
    pub fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, HostError> {
        let context = format!("{}: chat", self.name);
        let text = serde_json::to_string(request).map_err(|e| HostError::InvalidJson {
            context: context.clone(),
            reason: e.to_string(),
        })?;
        let answer = timed(&self.inner, self.timeout, move |b| {
            b.chat(RStr::from_str(&text)).into_result()
        })
        .map_err(|e| self.timed_error(&context, e))?
        .map_err(|error| HostError::Plugin {
            context: context.clone(),
            error,
        })?;
        parse_response(&context, answer.as_str())
    }

    /// Completes a batch; one result per request, in order.
    ///
    /// # Errors
    /// [`HostError::Timeout`] when the whole batch exceeds the time limit.
    pub fn chat_batch(
        &self,
        requests: &[ChatRequest],
    ) -> Result<Vec<Result<ChatResponse, HostError>>, HostError> {
        let context = format!("{}: chat_batch", self.name);
        let texts = requests
            .iter()
            .map(|r| serde_json::to_string(r).map(RString::from))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| HostError::InvalidJson {
                context: context.clone(),
                reason: e.to_string(),
            })?;
        let n = texts.len();
        let answers = timed(&self.inner, self.timeout, move |b| {
            b.chat_batch(RSlice::from_slice(&texts))
        })
        .map_err(|e| self.timed_error(&context, e))?;
        if answers.len() != n {
            return Err(HostError::Plugin {
                context,
                error: PluginError::invalid_output(format!(
                    "{} answers for {n} requests",
                    answers.len()
                )),
            });
        }
        Ok(answers
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                let ctx = format!("{context}[{i}]");
                match a.into_result() {
                    Ok(text) => parse_response(&ctx, text.as_str()),
                    Err(error) => Err(HostError::Plugin {
                        context: ctx,
                        error,
                    }),
                }
            })
            .collect())
    }

    fn timed_error(&self, context: &str, err: TimedError) -> HostError {
        match err {
            TimedError::Timeout(after) => HostError::Timeout {
                context: context.to_string(),
                after,
            },
            TimedError::Thread(reason) => HostError::Thread {
                context: context.to_string(),
                reason,
            },
        }
    }
}

fn parse_response(context: &str, text: &str) -> Result<ChatResponse, HostError> {
    serde_json::from_str(text).map_err(|e| HostError::InvalidJson {
        context: format!("{context} response"),
        reason: e.to_string(),
    })
}

/// What [`Environment::step`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Observation text.
    pub observation: String,
    /// Reward of the step (finite).
    pub reward: f64,
    /// Whether the episode ended.
    pub done: bool,
    /// Extra information, a JSON object.
    pub info: serde_json::Map<String, Value>,
}

/// A constructed environment. Tasks are checked against the optional
/// `task_schema` of its description; step results are checked for a finite
/// reward and a JSON-object `info`.
pub struct Environment {
    name: String,
    inner: EnvironmentBox,
    description: Value,
    task_schema: Option<Schema>,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment")
            .field("name", &self.name)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl Environment {
    /// Wraps a constructed environment trait object, reading its description.
    ///
    /// # Errors
    /// A description that is not JSON or a `task_schema` that is not a schema.
    pub fn new(name: String, inner: EnvironmentBox) -> Result<Self, HostError> {
        let text = inner.describe();
        let description: Value =
            serde_json::from_str(text.as_str()).map_err(|e| HostError::InvalidJson {
                context: format!("{name}: description"),
                reason: e.to_string(),
            })?;
        let task_schema = match description.get("task_schema") {
            Some(schema) => Some(Schema::from_value(schema.clone()).map_err(|reason| {
                HostError::InvalidSchema {
                    context: format!("{name}: task schema"),
                    reason,
                }
            })?),
            None => None,
        };
        Ok(Self {
            name,
            inner,
            description,
            task_schema,
        })
    }

    /// `plugin/environment` name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The environment's JSON description.
    pub fn description(&self) -> &Value {
        &self.description
    }

    /// Starts an episode on the JSON task text; returns the first observation.
    ///
    /// # Errors
    /// Invalid JSON, a task-schema violation, or the plugin's error.
    pub fn reset(&mut self, task: &str) -> Result<String, HostError> {
        let context = format!("{}: task", self.name);
        let value: Value = serde_json::from_str(task).map_err(|e| HostError::InvalidJson {
            context: context.clone(),
            reason: e.to_string(),
        })?;
        if let Some(schema) = &self.task_schema {
            schema
                .validate(&value)
                .map_err(|errors| HostError::SchemaViolation {
                    context: context.clone(),
                    errors,
                })?;
        }
        self.inner
            .reset(task.into())
            .into_result()
            .map(RString::into_string)
            .map_err(|error| HostError::Plugin {
                context: format!("{}: reset", self.name),
                error,
            })
    }

    /// Applies one action (the policy's turn text).
    ///
    /// # Errors
    /// The plugin's error, a non-finite reward or an `info` that is not a JSON object.
    pub fn step(&mut self, action: &str) -> Result<Step, HostError> {
        let context = format!("{}: step", self.name);
        let result = self
            .inner
            .step(action.into())
            .into_result()
            .map_err(|error| HostError::Plugin {
                context: context.clone(),
                error,
            })?;
        if !result.reward.is_finite() {
            return Err(HostError::Plugin {
                context,
                error: PluginError::invalid_output(format!(
                    "reward {} is not finite",
                    result.reward
                )),
            });
        }
        let info = match serde_json::from_str::<Value>(result.info.as_str()) {
            Ok(Value::Object(map)) => map,
            Ok(other) => {
                return Err(HostError::InvalidJson {
                    context: format!("{context} info"),
                    reason: format!("expected a JSON object, got {other}"),
                });
            }
            Err(e) => {
                return Err(HostError::InvalidJson {
                    context: format!("{context} info"),
                    reason: e.to_string(),
                });
            }
        };
        Ok(Step {
            observation: result.observation.into_string(),
            reward: result.reward,
            done: result.done,
            info,
        })
    }
}
