//! Loading and calling flowrl plugins.
//!
//! A [`Host`] collects plugin libraries from three places, all through the
//! same root-module type of `flowrl-plugin-abi`:
//!
//! * [`Host::add_static`] — plugins linked into the binary;
//! * [`Host::load`] / [`Host::load_paths`] — shared libraries given by path
//!   (`--plugin PATH`), directories scanned with [`discover`];
//! * [`Host::load_from_env`] — the directories in `FLOWRL_PLUGIN_PATH`.
//!
//! Each library is checked (abi_stable header and layout, interface crate
//! version, [`flowrl_plugin_abi::INTERFACE_VERSION`], unique name); a failing
//! library gives one [`LoadError`] and the others load regardless.
//!
//! Components are constructed from a [`Library`] and wrapped in host-side
//! handles: [`OperatorLibrary`] validates every call's input and output
//! against the operator's JSON Schemas ([`Schema`]), [`LlmBackend`] applies an
//! optional per-call timeout, and [`Environment`] checks tasks and step results.

mod components;
pub mod error;
mod host;
pub mod schema;

pub use components::{Environment, LlmBackend, Operator, OperatorLibrary, Step};
pub use error::{HostError, PluginSource};
pub use flowrl_plugin_abi as abi;
pub use host::{
    Host, LIBRARY_EXTENSIONS, Library, LoadError, PLUGIN_PATH_ENV, discover, plugin_path_from_env,
};
pub use schema::Schema;
