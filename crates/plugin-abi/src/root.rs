//! The root module every plugin library exports.

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{RResult, RStr},
};

use crate::{EnvironmentBox, LlmBackendBox, OperatorLibraryBox, PluginError, PluginMetadata};

/// The version of the flowrl plugin interface this crate defines.
///
/// Bumped whenever a change would make old plugins misbehave in a new host
/// (or the reverse) even though `abi_stable`'s layout check would accept
/// them, e.g. a changed meaning of a JSON payload. The host refuses a plugin
/// whose [`PluginRoot::interface_version`] differs, naming both versions.
pub const INTERFACE_VERSION: u32 = 1;

/// Name `abi_stable` records for the root module; a library exporting a root
/// module of another name is refused.
pub const ROOT_MODULE_NAME: &str = "flowrl_plugin";

/// The root module of a plugin library: its interface version, metadata,
/// and one constructor per component kind.
///
/// Each constructor takes the component name (one of those listed in
/// [`PluginMetadata::provides`]) and a JSON configuration text (`"{}"` for
/// defaults). Constructors of kinds a library does not provide return
/// [`crate::PluginErrorKind::UNSUPPORTED`].
///
/// This is a prefix type: fields may only be appended after
/// `new_environment`, and hosts read such later fields as `Option`s so that
/// libraries built against an older interface still load.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginRootRef)))]
#[sabi(missing_field(option))]
pub struct PluginRoot {
    /// [`INTERFACE_VERSION`] of the interface crate the library was built with.
    pub interface_version: u32,
    /// Returns the library's metadata.
    pub metadata: extern "C" fn() -> RResult<PluginMetadata, PluginError>,
    /// Constructs an operator library: `(name, config_json)`.
    pub new_operator_library:
        extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<OperatorLibraryBox, PluginError>,
    /// Constructs an LLM backend: `(name, config_json)`.
    pub new_llm_backend: extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<LlmBackendBox, PluginError>,
    /// Constructs an environment: `(name, config_json)`.
    #[sabi(last_prefix_field)]
    pub new_environment: extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<EnvironmentBox, PluginError>,
}

impl RootModule for PluginRootRef {
    declare_root_module_statics! {PluginRootRef}
    const BASE_NAME: &'static str = ROOT_MODULE_NAME;
    const NAME: &'static str = ROOT_MODULE_NAME;
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
