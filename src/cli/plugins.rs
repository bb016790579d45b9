//! `flowrl plugins list|call`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use flowrl_plugin_host::{
    Host, Library, PLUGIN_PATH_ENV,
    abi::{ComponentKind, PluginMetadata},
};
use serde_json::{Value, json};

#[derive(Debug, Subcommand)]
pub enum PluginsCmd {
    /// Every loaded plugin library with its operators, LLM backends and
    /// environments, and every load error (exit status 1 when there is one).
    List {
        #[command(flatten)]
        load: LoadArgs,
        /// Print JSON (with operator schemas) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run one operator on a JSON input and print its JSON output. No LLM
    /// executor is configured: an operator that needs one fails clearly.
    Call {
        #[command(flatten)]
        load: LoadArgs,
        /// Operator name, e.g. `WordCount`.
        #[arg(long)]
        operator: String,
        /// Operator input: JSON text, or `@FILE` to read it from a file.
        #[arg(long)]
        input: String,
        /// Operator library that provides it (needed only when several do).
        #[arg(long)]
        library: Option<String>,
        /// JSON configuration of the operator library.
        #[arg(long, default_value = "{}")]
        config: String,
    },
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// A plugin library file, or a directory of them; repeatable. Loaded
    /// after the entries of FLOWRL_PLUGIN_PATH.
    #[arg(long = "plugin", value_name = "PATH")]
    plugins: Vec<PathBuf>,
    /// Ignore FLOWRL_PLUGIN_PATH.
    #[arg(long)]
    no_env: bool,
}

pub(crate) fn load(args: &LoadArgs) -> Host {
    let mut host = Host::new();
    // The built-in plugins are linked into this binary through the same ABI.
    for root in [
        flowrl_operators_std::flowrl_plugin_root(),
        flowrl_llm_sim::flowrl_plugin_root(),
        flowrl_llm_openai::flowrl_plugin_root(),
        flowrl_llm_local::flowrl_plugin_root(),
    ] {
        if let Err(e) = host.add_static(root) {
            tracing::warn!("built-in plugin: {e}");
        }
    }
    if !args.no_env {
        host.load_from_env();
    }
    host.load_paths(&args.plugins);
    host
}

pub fn run(cmd: PluginsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginsCmd::List { load: args, json } => {
            let host = load(&args);
            if json {
                println!("{}", serde_json::to_string_pretty(&list_json(&host))?);
            } else {
                print!("{}", list_text(&host));
            }
            Ok(if host.errors().is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        PluginsCmd::Call {
            load: args,
            operator,
            input,
            library,
            config,
        } => {
            let host = load(&args);
            for e in host.errors() {
                tracing::warn!("plugin not loaded: {}", e.error);
            }
            let input = match input.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("reading operator input from {path}"))?,
                None => input,
            };
            let ops = find_operator_library(&host, &operator, library.as_deref(), &config)?;
            let output = ops.call(&operator, &input, None)?;
            let pretty = serde_json::from_str::<Value>(&output)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or(output);
            println!("{pretty}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn find_operator_library(
    host: &Host,
    operator: &str,
    library: Option<&str>,
    config: &str,
) -> anyhow::Result<flowrl_plugin_host::OperatorLibrary> {
    if let Some(name) = library {
        let lib = host.provider(ComponentKind::OPERATOR_LIBRARY, name)?;
        return Ok(lib.operator_library(name, config)?);
    }
    let mut found = Vec::new();
    for lib in host.libraries() {
        for component in lib.components(ComponentKind::OPERATOR_LIBRARY) {
            let ops = lib.operator_library(component.name.as_str(), config)?;
            if ops.operator(operator).is_some() {
                found.push(ops);
            }
        }
    }
    match found.len() {
        0 => bail!(
            "no loaded operator library has an operator `{operator}` \
             (load plugins with --plugin PATH or {PLUGIN_PATH_ENV}; see `flowrl plugins list`)"
        ),
        1 => Ok(found.remove(0)),
        _ => {
            let names: Vec<&str> = found.iter().map(|o| o.name()).collect();
            bail!(
                "operator `{operator}` is provided by several libraries ({}); choose one with --library",
                names.join(", ")
            )
        }
    }
}

fn components_by_kind(metadata: &PluginMetadata) -> Vec<(ComponentKind, Vec<(String, String)>)> {
    [
        ComponentKind::OPERATOR_LIBRARY,
        ComponentKind::LLM_BACKEND,
        ComponentKind::ENVIRONMENT,
    ]
    .into_iter()
    .map(|kind| {
        let items = metadata
            .provides
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| (c.name.to_string(), c.description.to_string()))
            .collect();
        (kind, items)
    })
    .collect()
}

fn list_text(host: &Host) -> String {
    let mut out = String::new();
    if host.libraries().is_empty() && host.errors().is_empty() {
        out.push_str(&format!(
            "no plugins loaded (give --plugin PATH or set {PLUGIN_PATH_ENV})\n"
        ));
    }
    for lib in host.libraries() {
        let m = lib.metadata();
        out.push_str(&format!("{} {}  ({})\n", m.name, m.version, lib.source()));
        if !m.description.is_empty() {
            out.push_str(&format!("  {}\n", m.description));
        }
        for (kind, items) in components_by_kind(m) {
            for (name, description) in items {
                out.push_str(&format!("  {kind} `{name}`: {description}\n"));
                if kind == ComponentKind::OPERATOR_LIBRARY {
                    match lib.operator_library(&name, "{}") {
                        Ok(ops) => {
                            for op in ops.operators() {
                                out.push_str(&format!("    {}: {}\n", op.name, op.description));
                            }
                        }
                        Err(e) => out.push_str(&format!("    (cannot list operators: {e})\n")),
                    }
                }
            }
        }
    }
    if !host.errors().is_empty() {
        out.push_str(&format!(
            "{} plugin(s) failed to load:\n",
            host.errors().len()
        ));
        for e in host.errors() {
            out.push_str(&format!("  {}\n", e.error));
        }
    }
    out
}

fn library_json(lib: &Library) -> Value {
    let m = lib.metadata();
    let components: Vec<Value> = m
        .provides
        .iter()
        .map(|c| {
            let mut v = json!({
                "kind": c.kind.name(),
                "name": c.name.as_str(),
                "description": c.description.as_str(),
            });
            if c.kind == ComponentKind::OPERATOR_LIBRARY {
                v["operators"] = match lib.operator_library(c.name.as_str(), "{}") {
                    Ok(ops) => ops
                        .operators()
                        .iter()
                        .map(|op| {
                            json!({
                                "name": op.name,
                                "description": op.description,
                                "input_schema": op.input_schema.as_value(),
                                "output_schema": op.output_schema.as_value(),
                            })
                        })
                        .collect(),
                    Err(e) => json!({ "error": e.to_string() }),
                };
            }
            v
        })
        .collect();
    json!({
        "name": m.name.as_str(),
        "version": m.version.as_str(),
        "description": m.description.as_str(),
        "source": lib.source().to_string(),
        "provides": components,
    })
}

fn list_json(host: &Host) -> Value {
    json!({
        "libraries": host.libraries().iter().map(library_json).collect::<Vec<_>>(),
        "errors": host
            .errors()
            .iter()
            .map(|e| json!({ "source": e.source.to_string(), "error": e.error.to_string() }))
            .collect::<Vec<_>>(),
    })
}
