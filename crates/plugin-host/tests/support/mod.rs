//! Builds the test plugin crates as real shared libraries, once per test
//! process, with `cargo build` into `<target>/plugin-tests` (a target
//! directory of its own, so the build never waits on the lock of the
//! `cargo test` that runs us).

#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

/// Library (crate) names of the plugin crates the tests load.
pub const EXAMPLE: &str = "flowrl_example_operator_plugin";
pub const FIXTURES: &str = "flowrl_test_fixtures_plugin";
pub const FUTURE: &str = "flowrl_test_future_interface_plugin";
pub const NOT_FLOWRL: &str = "flowrl_test_not_flowrl";
pub const OLD_ABI: &str = "flowrl_test_old_abi_plugin";

const PACKAGES: &[&str] = &[
    "flowrl-example-operator-plugin",
    "flowrl-test-fixtures-plugin",
    "flowrl-test-future-interface-plugin",
    "flowrl-test-not-flowrl",
    "flowrl-test-old-abi-plugin",
];

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn target_dir() -> PathBuf {
    let base = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    };
    base.join("plugin-tests")
}

fn build(release: bool) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = target_dir();
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .arg("build")
        .arg("--quiet");
    for p in PACKAGES {
        cmd.args(["-p", p]);
    }
    cmd.arg("--target-dir").arg(&target);
    if release {
        cmd.arg("--release");
    }
    let out = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the test plugins failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(target.join(if release { "release" } else { "debug" }))
}

/// The directory holding the plugin libraries built with the dev
/// (`release == false`) or release profile, built on first use.
pub fn plugin_dir(release: bool) -> &'static Path {
    static DEBUG: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    static RELEASE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let cell = if release { &RELEASE } else { &DEBUG };
    match cell.get_or_init(|| build(release)) {
        Ok(dir) => dir,
        Err(message) => panic!("{message}"),
    }
}

/// Path of the dev-profile shared library of crate `lib_name` (e.g. `lib<name>.so`).
pub fn library(lib_name: &str) -> PathBuf {
    library_in(false, lib_name)
}

/// Path of the shared library of crate `lib_name` built with the dev
/// (`release == false`) or release profile.
pub fn library_in(release: bool, lib_name: &str) -> PathBuf {
    plugin_dir(release).join(format!(
        "{}{lib_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}
