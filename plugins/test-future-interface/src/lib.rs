//! A plugin whose root module declares interface version
//! `INTERFACE_VERSION + 1`, as a plugin built against a newer, incompatible
//! flowrl plugin interface would; the host must refuse it and name both
//! versions.

use abi_stable::{export_root_module, prefix_type::PrefixTypeTrait};
use flowrl_plugin_abi::{
    INTERFACE_VERSION, Metadata, Plugin, PluginRoot, PluginRootRef, author::root_module_value,
};

struct FuturePlugin;

impl Plugin for FuturePlugin {
    fn metadata() -> Metadata {
        Metadata {
            name: "future-interface".into(),
            version: "9.0.0".into(),
            description: "Built against a newer plugin interface.".into(),
            provides: Vec::new(),
        }
    }
}

/// Root module with the bumped interface version.
#[export_root_module]
pub fn flowrl_plugin_root() -> PluginRootRef {
    PluginRoot {
        interface_version: INTERFACE_VERSION + 1,
        ..root_module_value::<FuturePlugin>()
    }
    .leak_into_prefix()
}
