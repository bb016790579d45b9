//! Discovery and loading of plugin libraries.

use std::path::{Path, PathBuf};

use abi_stable::library::{LibraryError, lib_header_from_path};
use flowrl_plugin_abi::{
    ComponentInfo, ComponentKind, INTERFACE_VERSION, PluginMetadata, PluginRootRef,
};

use crate::{Environment, HostError, LlmBackend, OperatorLibrary, PluginSource};

/// Environment variable listing plugin directories or files, separated like
/// `PATH` (`:` on Unix, `;` on Windows).
pub const PLUGIN_PATH_ENV: &str = "FLOWRL_PLUGIN_PATH";

/// File extensions recognised as shared libraries when scanning directories.
pub const LIBRARY_EXTENSIONS: &[&str] = &["so", "dylib", "dll"];

/// The shared libraries in `dir` (by extension, non-recursive), sorted by path.
///
/// # Errors
/// [`HostError::NotFound`] when `dir` does not exist, [`HostError::Io`] when
/// it cannot be listed.
pub fn discover(dir: &Path) -> Result<Vec<PathBuf>, HostError> {
    if !dir.exists() {
        return Err(HostError::NotFound {
            path: dir.to_path_buf(),
        });
    }
    let io = |e: std::io::Error| HostError::Io {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let is_lib = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| LIBRARY_EXTENSIONS.contains(&e));
        if is_lib && path.is_file() {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// The entries of [`PLUGIN_PATH_ENV`] (empty when unset).
pub fn plugin_path_from_env() -> Vec<PathBuf> {
    std::env::var_os(PLUGIN_PATH_ENV)
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// One loaded plugin library.
#[derive(Clone)]
pub struct Library {
    metadata: PluginMetadata,
    source: PluginSource,
    root: PluginRootRef,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("metadata", &self.metadata)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Library {
    /// Library name from its metadata.
    pub fn name(&self) -> &str {
        self.metadata.name.as_str()
    }

    /// The library's metadata.
    pub fn metadata(&self) -> &PluginMetadata {
        &self.metadata
    }

    /// Where it was loaded from.
    pub fn source(&self) -> &PluginSource {
        &self.source
    }

    /// The components of `kind` it provides.
    pub fn components(&self, kind: ComponentKind) -> impl Iterator<Item = &ComponentInfo> {
        self.metadata
            .provides
            .iter()
            .filter(move |c| c.kind == kind)
    }

    /// Whether it provides the component `name` of `kind`.
    pub fn provides(&self, kind: ComponentKind, name: &str) -> bool {
        self.components(kind).any(|c| c.name.as_str() == name)
    }

    /// Constructs its operator library `name` from the JSON text `config`.
    ///
    /// # Errors
    /// The plugin's error, or an invalid published schema.
    pub fn operator_library(&self, name: &str, config: &str) -> Result<OperatorLibrary, HostError> {
        let inner = (self.root.new_operator_library())(name.into(), config.into())
            .into_result()
            .map_err(|error| HostError::Plugin {
                context: format!("plugin `{}`: operator library `{name}`", self.name()),
                error,
            })?;
        OperatorLibrary::new(format!("{}/{name}", self.name()), inner)
    }

    /// Constructs its LLM backend `name` from the JSON text `config`.
    ///
    /// # Errors
    /// The plugin's error.
    pub fn llm_backend(&self, name: &str, config: &str) -> Result<LlmBackend, HostError> {
        let inner = (self.root.new_llm_backend())(name.into(), config.into())
            .into_result()
            .map_err(|error| HostError::Plugin {
                context: format!("plugin `{}`: LLM backend `{name}`", self.name()),
                error,
            })?;
        Ok(LlmBackend::new(format!("{}/{name}", self.name()), inner))
    }

    /// Constructs its environment `name` from the JSON text `config`.
    ///
    /// # Errors
    /// The plugin's error, or an invalid description or task schema.
    pub fn environment(&self, name: &str, config: &str) -> Result<Environment, HostError> {
        let inner = (self.root.new_environment())(name.into(), config.into())
            .into_result()
            .map_err(|error| HostError::Plugin {
                context: format!("plugin `{}`: environment `{name}`", self.name()),
                error,
            })?;
        Environment::new(format!("{}/{name}", self.name()), inner)
    }
}

/// A plugin that failed to load, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError {
    /// What was being loaded.
    pub source: PluginSource,
    /// Why it failed.
    pub error: HostError,
}

/// The set of loaded plugin libraries, plus one error per library that
/// failed to load.
///
/// Loading never aborts on a bad plugin: each failure is recorded in
/// [`Host::errors`] and loading goes on. Libraries are never unloaded (their
/// code may be referenced by trait objects until the process exits).
#[derive(Debug, Default)]
pub struct Host {
    libraries: Vec<Library>,
    errors: Vec<LoadError>,
}

impl Host {
    /// An empty host.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loaded libraries, in load order.
    pub fn libraries(&self) -> &[Library] {
        &self.libraries
    }

    /// Failures so far, in load order.
    pub fn errors(&self) -> &[LoadError] {
        &self.errors
    }

    /// The loaded library called `name`.
    pub fn library(&self, name: &str) -> Option<&Library> {
        self.libraries.iter().find(|l| l.name() == name)
    }

    /// Registers a plugin linked into this binary, through the very same
    /// root-module type a dynamic library exports (e.g. the
    /// `flowrl_plugin_root()` that `export_plugin!` generates).
    ///
    /// # Errors
    /// Interface mismatch, failing metadata or a duplicate name; the error is
    /// also recorded in [`Host::errors`].
    pub fn add_static(&mut self, root: PluginRootRef) -> Result<&Library, HostError> {
        self.register(PluginSource::Static, root)
    }

    /// Loads one shared library with `abi_stable`'s `lib_header_from_path`
    /// and `init_root_module`, checking the `abi_stable` header, the
    /// interface crate's version, the root module's layout, the flowrl
    /// interface version and name uniqueness.
    ///
    /// # Errors
    /// The first failed check; the error is also recorded in [`Host::errors`].
    pub fn load(&mut self, path: &Path) -> Result<&Library, HostError> {
        let source = PluginSource::Path(path.to_path_buf());
        match open_root(path) {
            Ok(root) => self.register(source, root),
            Err(error) => {
                self.errors.push(LoadError {
                    source,
                    error: error.clone(),
                });
                Err(error)
            }
        }
    }

    /// Loads every entry of `paths`: files are loaded, directories are
    /// scanned with [`discover`]. Returns the number of libraries loaded;
    /// failures are recorded in [`Host::errors`].
    pub fn load_paths<I, P>(&mut self, paths: I) -> usize
    where
        I: IntoIterator<Item = P>,
        P: AsRef<Path>,
    {
        let mut loaded = 0;
        for path in paths {
            let path = path.as_ref();
            if path.is_dir() {
                match discover(path) {
                    Ok(files) => {
                        for file in files {
                            loaded += usize::from(self.load(&file).is_ok());
                        }
                    }
                    Err(error) => self.errors.push(LoadError {
                        source: PluginSource::Path(path.to_path_buf()),
                        error,
                    }),
                }
            } else {
                loaded += usize::from(self.load(path).is_ok());
            }
        }
        loaded
    }

    /// Loads the directories and files listed in [`PLUGIN_PATH_ENV`].
    pub fn load_from_env(&mut self) -> usize {
        self.load_paths(plugin_path_from_env())
    }

    /// The first loaded library that provides component `name` of `kind`.
    ///
    /// # Errors
    /// [`HostError::UnknownComponent`] listing what is available.
    pub fn provider(&self, kind: ComponentKind, name: &str) -> Result<&Library, HostError> {
        self.libraries
            .iter()
            .find(|l| l.provides(kind, name))
            .ok_or_else(|| HostError::UnknownComponent {
                kind: kind.name().into_owned(),
                name: name.to_string(),
                available: self
                    .libraries
                    .iter()
                    .flat_map(|l| l.components(kind).map(|c| c.name.to_string()))
                    .collect(),
            })
    }

    fn register(
        &mut self,
        source: PluginSource,
        root: PluginRootRef,
    ) -> Result<&Library, HostError> {
        match self.check(&source, root) {
            Ok(metadata) => {
                self.libraries.push(Library {
                    metadata,
                    source,
                    root,
                });
                let last = self.libraries.len() - 1;
                Ok(&self.libraries[last])
            }
            Err(error) => {
                self.errors.push(LoadError {
                    source,
                    error: error.clone(),
                });
                Err(error)
            }
        }
    }

    fn check(
        &self,
        source: &PluginSource,
        root: PluginRootRef,
    ) -> Result<PluginMetadata, HostError> {
        let version = root.interface_version();
        if version != INTERFACE_VERSION {
            return Err(HostError::IncompatibleVersion {
                library: source.clone(),
                what: "flowrl plugin interface".to_string(),
                plugin: version.to_string(),
                host: INTERFACE_VERSION.to_string(),
            });
        }
        let metadata = (root.metadata())()
            .into_result()
            .map_err(|e| HostError::InitFailed {
                library: source.clone(),
                reason: format!("metadata: {e}"),
            })?;
        if metadata.name.is_empty() {
            return Err(HostError::InitFailed {
                library: source.clone(),
                reason: "metadata: the library name is empty".to_string(),
            });
        }
        if let Some(first) = self.library(metadata.name.as_str()) {
            return Err(HostError::DuplicateName {
                name: metadata.name.to_string(),
                first: first.source.clone(),
                second: source.clone(),
            });
        }
        Ok(metadata)
    }
}

fn open_root(path: &Path) -> Result<PluginRootRef, HostError> {
    if !path.exists() {
        return Err(HostError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let source = PluginSource::Path(path.to_path_buf());
    let header = lib_header_from_path(path).map_err(|e| library_error(path, &source, e))?;
    header
        .init_root_module::<PluginRootRef>()
        .map_err(|e| library_error(path, &source, e))
}

fn library_error(path: &Path, source: &PluginSource, error: LibraryError) -> HostError {
    match error {
        LibraryError::OpenError { err, .. } => HostError::NotAPlugin {
            path: path.to_path_buf(),
            reason: format!("cannot be loaded as a shared library: {err}"),
        },
        LibraryError::GetSymbolError { .. } => HostError::NotAPlugin {
            path: path.to_path_buf(),
            reason: "the shared library does not export a flowrl plugin root module \
                     (build it with `flowrl_plugin_abi::export_plugin!`)"
                .to_string(),
        },
        LibraryError::InvalidAbiHeader(found) => HostError::IncompatibleAbi {
            library: source.clone(),
            reason: format!("built with an incompatible abi_stable ({found:?})"),
        },
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => HostError::IncompatibleVersion {
            library: source.clone(),
            what: "flowrl-plugin-abi".to_string(),
            plugin: actual_version.to_string(),
            host: expected_version.to_string(),
        },
        LibraryError::AbiInstability(e) => HostError::IncompatibleAbi {
            library: source.clone(),
            reason: format!("root module layout differs: {e}"),
        },
        LibraryError::RootModule { err, .. } => HostError::InitFailed {
            library: source.clone(),
            reason: err.to_string(),
        },
        other => HostError::IncompatibleAbi {
            library: source.clone(),
            reason: other.to_string().trim().to_string(),
        },
    }
}
