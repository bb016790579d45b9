//! A plugin as an imagined `flowrl-plugin-abi` 0.0.1 would have produced it:
//! a root module of the same name with only an interface version and a name
//! function. The host must refuse it at `abi_stable`'s version check, naming
//! both crate versions.

use abi_stable::{
    StableAbi, declare_root_module_statics, export_root_module, library::RootModule,
    prefix_type::PrefixTypeTrait, sabi_types::VersionStrings, std_types::RString,
};

/// The root module of the old interface.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = OldRootRef)))]
pub struct OldRoot {
    /// Interface version of the old crate.
    pub interface_version: u32,
    /// Library name.
    #[sabi(last_prefix_field)]
    pub name: extern "C" fn() -> RString,
}

impl RootModule for OldRootRef {
    declare_root_module_statics! {OldRootRef}
    const BASE_NAME: &'static str = "flowrl_plugin";
    const NAME: &'static str = "flowrl_plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("0.0.1");
}

extern "C" fn name() -> RString {
    RString::from("old-abi")
}

/// Exports the old root module.
#[export_root_module]
pub fn old_root() -> OldRootRef {
    OldRoot {
        interface_version: 0,
        name,
    }
    .leak_into_prefix()
}
