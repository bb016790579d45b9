//! Running untrusted Python (model-written code, tests) in a sandbox.
//!
//! The default backend is bubblewrap (`bwrap`): every namespace is unshared
//! (network, PID, IPC, UTS, cgroup, user), the system directories (`/usr`,
//! `/bin`, `/lib*`, a few loader files of `/etc`) are bound read-only, `/tmp`
//! is a private size-capped tmpfs and the only writable place, and the program
//! itself is bound read-only at `/code/main.py`. When the host process runs as
//! root, the sandbox drops to an unprivileged user (default 65534, `nobody`)
//! before starting bubblewrap, so the kernel enforces the process limit.
//!
//! Resource limits, applied to every sandbox run:
//! * address space (`RLIMIT_AS`), CPU seconds (`RLIMIT_CPU`), file size
//!   (`RLIMIT_FSIZE`), no core dumps — set in the child before `exec`;
//! * processes (`RLIMIT_NPROC`) — set inside the sandbox by `prlimit`
//!   (util-linux), so that it counts only the sandbox's own processes (bubblewrap
//!   gives every run its own user namespace);
//! * a wall-clock timeout that kills the whole process group (and, through
//!   bubblewrap's PID namespace and `--die-with-parent`, everything inside).
//!
//! Standard output and error are captured with a size cap: the first and last
//! halves are kept with a `...(truncated)...` marker between them.
//!
//! The **plain fallback** ([`Fallback::Plain`]) runs the interpreter as an
//! ordinary subprocess with the same rlimits and timeout but *no* namespace
//! isolation: the code can read the host's files, use the network and, as
//! root, ignore the process limit. It is off unless configured, and only used
//! when bubblewrap is missing.

use std::collections::VecDeque;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::RewardsError;

/// What to do when bubblewrap is not available.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// Fail with [`RewardsError::BwrapMissing`] (the default).
    #[default]
    None,
    /// Run as a plain subprocess with rlimits and a timeout, without namespace
    /// isolation (see the module docs for what that does not protect).
    Plain,
}

/// The isolation a [`Sandbox`] actually uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// bubblewrap namespaces plus rlimits.
    Bubblewrap,
    /// rlimits and timeout only.
    Plain,
}

/// Sandbox settings. Sizes are in bytes, times in milliseconds or seconds as named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// Path of `bwrap`; `None` searches `PATH`, then `/usr/bin/bwrap`.
    pub bwrap: Option<PathBuf>,
    /// Behaviour when bubblewrap is missing.
    pub fallback: Fallback,
    /// The Python interpreter: a name looked up in the sandbox's `PATH`
    /// (`/usr/local/bin:/usr/bin:/bin`) or an absolute path inside it.
    pub python: String,
    /// Interpreter flags put before the program path. The default `-I -S`
    /// (isolated mode, no `site` import) starts fastest and sees only the
    /// standard library.
    pub python_args: Vec<String>,
    /// Wall-clock limit in milliseconds; the process group is killed after it.
    pub timeout_ms: u64,
    /// CPU-time limit in seconds (`RLIMIT_CPU`; SIGXCPU, then SIGKILL a second later).
    pub cpu_seconds: u64,
    /// Address-space limit in bytes (`RLIMIT_AS`); 0 disables it.
    pub memory_bytes: u64,
    /// Maximum number of processes/threads inside the sandbox (`RLIMIT_NPROC`); 0 disables it.
    pub max_processes: u64,
    /// Largest file the code may write, in bytes (`RLIMIT_FSIZE`).
    pub max_file_bytes: u64,
    /// Size of the private `/tmp` tmpfs in bytes (bubblewrap `--size`); 0: no size option.
    pub tmp_size_bytes: u64,
    /// Bytes of stdout and of stderr kept (first half and last half).
    pub output_limit_bytes: usize,
    /// User id the sandbox runs as when the host process is root.
    pub unprivileged_uid: u32,
    /// Group id the sandbox runs as when the host process is root.
    pub unprivileged_gid: u32,
    /// Extra host paths bound read-only at the same place inside the sandbox.
    pub extra_ro_binds: Vec<PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            bwrap: None,
            fallback: Fallback::None,
            python: "python3".into(),
            python_args: vec!["-I".into(), "-S".into()],
            timeout_ms: 10_000,
            cpu_seconds: 10,
            memory_bytes: 1 << 30,
            max_processes: 32,
            max_file_bytes: 16 << 20,
            tmp_size_bytes: 64 << 20,
            output_limit_bytes: 64 << 10,
            unprivileged_uid: 65_534,
            unprivileged_gid: 65_534,
            extra_ro_binds: Vec::new(),
        }
    }
}

/// How a sandboxed run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ExecOutcome {
    /// Exit status 0.
    Passed,
    /// A non-zero exit status (an assertion, an exception, a syntax error).
    Failed {
        /// The exit code.
        exit_code: i32,
        /// The last lines of stderr (at most 1,000 bytes).
        stderr_tail: String,
    },
    /// Killed after the wall-clock limit.
    Timeout,
    /// The address-space limit was hit (Python raised `MemoryError`).
    MemoryLimit,
    /// The CPU-time limit was hit (SIGXCPU or the hard-limit SIGKILL).
    CpuLimit,
    /// Killed by another signal.
    Signaled {
        /// The signal number.
        signal: i32,
    },
    /// The sandbox itself failed to set up (bubblewrap reported an error).
    SandboxFailure {
        /// bubblewrap's message.
        message: String,
    },
}

impl ExecOutcome {
    /// `true` only for [`ExecOutcome::Passed`].
    pub fn passed(&self) -> bool {
        matches!(self, ExecOutcome::Passed)
    }
}

/// The result of one sandboxed run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExecResult {
    /// How it ended.
    pub outcome: ExecOutcome,
    /// Captured standard output (lossy UTF-8, capped).
    pub stdout: String,
    /// Captured standard error (lossy UTF-8, capped).
    pub stderr: String,
    /// Whether stdout or stderr were cut to the cap.
    pub truncated: bool,
    /// Wall-clock time of the run in milliseconds.
    pub wall_ms: u64,
    /// The isolation used.
    pub isolation: Isolation,
}

#[derive(Debug, Clone)]
enum Backend {
    Bwrap(PathBuf),
    Plain,
}

/// A configured sandbox; cheap to share between threads (`&Sandbox` is `Sync`).
#[derive(Debug, Clone)]
pub struct Sandbox {
    config: SandboxConfig,
    backend: Backend,
    prlimit: Option<PathBuf>,
}

const PRLIMIT: &str = "/usr/bin/prlimit";

impl Sandbox {
    /// Checks the configuration and finds bubblewrap.
    ///
    /// # Errors
    /// [`RewardsError::BwrapMissing`] when bubblewrap is missing and the
    /// fallback is [`Fallback::None`]; [`RewardsError::InvalidConfig`] for a
    /// zero timeout or output cap, or a process limit without `prlimit`.
    pub fn new(config: SandboxConfig) -> Result<Self, RewardsError> {
        if config.timeout_ms == 0 || config.cpu_seconds == 0 || config.output_limit_bytes == 0 {
            return Err(RewardsError::InvalidConfig(
                "timeout_ms, cpu_seconds and output_limit_bytes must be positive".into(),
            ));
        }
        if config.python.is_empty() {
            return Err(RewardsError::InvalidConfig(
                "python must not be empty".into(),
            ));
        }
        let backend = match find_bwrap(config.bwrap.as_deref()) {
            Some(p) => Backend::Bwrap(p),
            None => match config.fallback {
                Fallback::Plain => Backend::Plain,
                Fallback::None => {
                    let searched = config.bwrap.as_ref().map_or_else(
                        || " in PATH or /usr/bin".to_string(),
                        |p| format!(" at {}", p.display()),
                    );
                    return Err(RewardsError::BwrapMissing { searched });
                }
            },
        };
        let prlimit = if config.max_processes > 0 {
            let p = PathBuf::from(PRLIMIT);
            if !p.is_file() {
                return Err(RewardsError::InvalidConfig(format!(
                    "{PRLIMIT} (util-linux) is needed for max_processes; install it or set max_processes = 0"
                )));
            }
            Some(p)
        } else {
            None
        };
        Ok(Self {
            config,
            backend,
            prlimit,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// The isolation this sandbox provides.
    pub fn isolation(&self) -> Isolation {
        match self.backend {
            Backend::Bwrap(_) => Isolation::Bubblewrap,
            Backend::Plain => Isolation::Plain,
        }
    }

    /// Runs a Python program (the text of a `.py` file) and reports how it ended.
    ///
    /// # Errors
    /// Only machine problems: the temporary directory cannot be written or the
    /// sandbox cannot be started ([`RewardsError::Io`], [`RewardsError::Spawn`]).
    /// Everything the program does — crash, hang, allocate, fork — is an
    /// [`ExecOutcome`].
    pub fn run_python(&self, code: &str) -> Result<ExecResult, RewardsError> {
        let dir = tempfile::Builder::new()
            .prefix("flowrl-sandbox-")
            .tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let file = dir.path().join("main.py");
        std::fs::write(&file, code)?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))?;
        let mut cmd = self.command(dir.path());
        self.apply_limits(&mut cmd);
        let result = self.execute(cmd);
        drop(dir);
        result
    }

    /// Builds the command line for the chosen backend.
    fn command(&self, code_dir: &Path) -> Command {
        let c = &self.config;
        let mut inner: Vec<String> = Vec::new();
        if let Some(p) = &self.prlimit {
            inner.push(p.display().to_string());
            inner.push(format!("--nproc={0}:{0}", c.max_processes));
            inner.push("--".into());
        }
        match &self.backend {
            Backend::Bwrap(bwrap) => {
                let mut cmd = Command::new(bwrap);
                cmd.args([
                    "--unshare-all",
                    "--die-with-parent",
                    "--new-session",
                    "--cap-drop",
                    "ALL",
                ]);
                cmd.args(["--hostname", "sandbox"]);
                for dir in [
                    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
                ] {
                    let p = Path::new(dir);
                    match std::fs::read_link(p) {
                        Ok(target) => {
                            cmd.arg("--symlink").arg(target).arg(dir);
                        }
                        Err(_) if p.is_dir() => {
                            cmd.args(["--ro-bind", dir, dir]);
                        }
                        Err(_) => {}
                    }
                }
                for f in [
                    "/etc/ld.so.cache",
                    "/etc/ld.so.conf",
                    "/etc/ld.so.conf.d",
                    "/etc/alternatives",
                    "/etc/localtime",
                ] {
                    if Path::new(f).exists() {
                        cmd.args(["--ro-bind", f, f]);
                    }
                }
                for p in &c.extra_ro_binds {
                    cmd.arg("--ro-bind").arg(p).arg(p);
                }
                cmd.args(["--proc", "/proc", "--dev", "/dev"]);
                if c.tmp_size_bytes > 0 {
                    cmd.arg("--size").arg(c.tmp_size_bytes.to_string());
                }
                cmd.args(["--tmpfs", "/tmp"]);
                cmd.arg("--ro-bind").arg(code_dir).arg("/code");
                // The root and the directories bubblewrap created in it (e.g.
                // /etc for the loader files) become read-only; /tmp stays writable.
                cmd.args(["--remount-ro", "/"]);
                cmd.args(["--chdir", "/tmp", "--clearenv"]);
                for (k, v) in SANDBOX_ENV {
                    cmd.args(["--setenv", k, v]);
                }
                cmd.arg("--");
                cmd.args(&inner);
                cmd.arg(&c.python).args(&c.python_args).arg("/code/main.py");
                cmd
            }
            Backend::Plain => {
                let mut argv = inner;
                argv.extend([
                    c.python.clone(),
                    "-I".into(),
                    code_dir.join("main.py").display().to_string(),
                ]);
                let mut cmd = Command::new(&argv[0]);
                cmd.args(&argv[1..]);
                cmd.current_dir(code_dir).env_clear();
                for (k, v) in SANDBOX_ENV {
                    cmd.env(k, v);
                }
                cmd.env("HOME", code_dir);
                cmd
            }
        }
    }

    /// Sets the rlimits (and the unprivileged user for bubblewrap as root) in
    /// the child between `fork` and `exec`, and puts it in its own process group.
    fn apply_limits(&self, cmd: &mut Command) {
        let c = &self.config;
        let limits = [
            (libc::RLIMIT_AS, c.memory_bytes, c.memory_bytes),
            (libc::RLIMIT_CPU, c.cpu_seconds, c.cpu_seconds + 1),
            (libc::RLIMIT_FSIZE, c.max_file_bytes, c.max_file_bytes),
            (libc::RLIMIT_CORE, 0, 0),
        ];
        // SAFETY: geteuid has no preconditions.
        let is_root = unsafe { libc::geteuid() } == 0;
        let drop_to = (is_root && matches!(self.backend, Backend::Bwrap(_)))
            .then_some((c.unprivileged_uid, c.unprivileged_gid));
        cmd.process_group(0);
        // SAFETY: the closure runs in the forked child before exec; it only
        // makes async-signal-safe system calls (setrlimit, setgroups, setgid,
        // setuid) on values computed before the fork, and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                for (res, soft, hard) in limits {
                    if res == libc::RLIMIT_AS && soft == 0 {
                        continue;
                    }
                    let lim = libc::rlimit {
                        rlim_cur: soft,
                        rlim_max: hard,
                    };
                    if libc::setrlimit(res, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some((uid, gid)) = drop_to
                    && (libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0)
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    fn execute(&self, mut cmd: Command) -> Result<ExecResult, RewardsError> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|source| RewardsError::Spawn { program, source })?;
        let pid = child.id() as libc::pid_t;
        let cap = self.config.output_limit_bytes;
        let out_rx = child.stdout.take().map(|s| spawn_reader(s, cap));
        let err_rx = child.stderr.take().map(|s| spawn_reader(s, cap));
        let deadline = start + Duration::from_millis(self.config.timeout_ms);
        let mut timed_out = false;
        let mut sleep = Duration::from_micros(100);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => {
                    let _ = self.stop(&mut child, pid);
                    return Err(RewardsError::Io(e));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                timed_out = true;
                break self.stop(&mut child, pid)?;
            }
            std::thread::sleep(sleep.min(deadline - now));
            sleep = (sleep * 2).min(Duration::from_millis(2));
        };
        // Whatever is left of the group (plain mode) goes too.
        kill_group(pid);
        let wall_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let collect = |rx: Option<mpsc::Receiver<Capped>>| {
            rx.and_then(|rx| rx.recv_timeout(Duration::from_secs(2)).ok())
                .unwrap_or_default()
        };
        let (out, err) = (collect(out_rx), collect(err_rx));
        let truncated = out.total > out.cap || err.total > err.cap;
        let (stdout, stderr) = (out.render(), err.render());
        let isolation = self.isolation();
        let outcome = if timed_out {
            ExecOutcome::Timeout
        } else {
            classify(status, &stderr, isolation)
        };
        Ok(ExecResult {
            outcome,
            stdout,
            stderr,
            truncated,
            wall_ms,
            isolation,
        })
    }
}

const SANDBOX_ENV: [(&str, &str); 5] = [
    ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ("HOME", "/tmp"),
    ("LANG", "C.UTF-8"),
    ("PYTHONDONTWRITEBYTECODE", "1"),
    ("PYTHONHASHSEED", "0"),
];

impl Sandbox {
    /// Stops a running sandbox. With bubblewrap, the namespace's init process
    /// (the only child of the outer `bwrap`) is killed first, which ends every
    /// process of the PID namespace and lets the outer `bwrap` reap it and
    /// exit; the process group is killed after a short grace period, or at
    /// once without bubblewrap.
    fn stop(
        &self,
        child: &mut std::process::Child,
        pid: libc::pid_t,
    ) -> std::io::Result<std::process::ExitStatus> {
        if matches!(self.backend, Backend::Bwrap(_)) {
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            for inner in children
                .split_whitespace()
                .filter_map(|c| c.parse::<libc::pid_t>().ok())
            {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe {
                    libc::kill(inner, libc::SIGKILL);
                }
            }
            let grace = Instant::now() + Duration::from_millis(500);
            while Instant::now() < grace {
                if let Some(status) = child.try_wait()? {
                    return Ok(status);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        kill_group(pid);
        child.wait()
    }
}

fn kill_group(pid: libc::pid_t) {
    // SAFETY: kill has no memory-safety preconditions; a stale group id only
    // makes it fail with ESRCH.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

fn classify(status: std::process::ExitStatus, stderr: &str, isolation: Isolation) -> ExecOutcome {
    let signal = status.signal().or_else(|| {
        // bubblewrap reports a child killed by signal s as exit status 128 + s.
        let code = status.code()?;
        (isolation == Isolation::Bubblewrap && (129..=128 + 64).contains(&code))
            .then_some(code - 128)
    });
    if let Some(sig) = signal {
        return match sig {
            libc::SIGXCPU => ExecOutcome::CpuLimit,
            _ => ExecOutcome::Signaled { signal: sig },
        };
    }
    match status.code() {
        Some(0) => ExecOutcome::Passed,
        Some(code) => {
            let tail = tail_chars(stderr, 1000);
            if isolation == Isolation::Bubblewrap && stderr.starts_with("bwrap:") {
                ExecOutcome::SandboxFailure { message: tail }
            } else if last_line_is_memory_error(stderr) {
                ExecOutcome::MemoryLimit
            } else {
                ExecOutcome::Failed {
                    exit_code: code,
                    stderr_tail: tail,
                }
            }
        }
        None => ExecOutcome::Signaled { signal: 0 },
    }
}

fn last_line_is_memory_error(stderr: &str) -> bool {
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.trim_start().starts_with("MemoryError"))
}

fn tail_chars(s: &str, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s.to_string();
    }
    let mut start = s.len() - max_bytes;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

/// A capped capture: first `cap / 2` and last `cap / 2` bytes.
#[derive(Debug, Default)]
struct Capped {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: usize,
    cap: usize,
}

impl Capped {
    fn push(&mut self, data: &[u8]) {
        self.total += data.len();
        let half = self.cap / 2;
        let mut rest = data;
        if self.head.len() < half {
            let n = (half - self.head.len()).min(rest.len());
            self.head.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
        let tail_cap = self.cap - half;
        if rest.len() >= tail_cap {
            self.tail.clear();
            self.tail.extend(&rest[rest.len() - tail_cap..]);
        } else {
            let overflow = (self.tail.len() + rest.len()).saturating_sub(tail_cap);
            self.tail.drain(..overflow);
            self.tail.extend(rest);
        }
    }

    fn render(&self) -> String {
        let mut bytes = self.head.clone();
        if self.total > self.cap {
            bytes.extend_from_slice(b"\n...(truncated)...\n");
        }
        bytes.extend(self.tail.iter());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn spawn_reader<R: Read + Send + 'static>(mut stream: R, cap: usize) -> mpsc::Receiver<Capped> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Capped {
            cap,
            ..Capped::default()
        };
        let mut chunk = [0u8; 8192];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.push(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(buf);
    });
    rx
}

fn find_bwrap(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return p.is_file().then(|| p.to_path_buf());
    }
    let from_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|d| d.join("bwrap"))
        .find(|p| p.is_file());
    from_path.or_else(|| {
        let p = PathBuf::from("/usr/bin/bwrap");
        p.is_file().then_some(p)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_keeps_head_and_tail() {
        let mut c = Capped {
            cap: 8,
            ..Capped::default()
        };
        c.push(b"abc");
        c.push(b"defghijkl");
        c.push(b"mn");
        assert_eq!(c.total, 14);
        assert_eq!(c.render(), "abcd\n...(truncated)...\nklmn");
        let mut small = Capped {
            cap: 8,
            ..Capped::default()
        };
        small.push(b"hi");
        assert_eq!(small.render(), "hi");
    }

    #[test]
    fn missing_bwrap_is_a_clear_error() {
        let cfg = SandboxConfig {
            bwrap: Some("/nonexistent/bwrap".into()),
            ..SandboxConfig::default()
        };
        let err = Sandbox::new(cfg).unwrap_err();
        assert!(
            err.to_string().contains("apt-get install bubblewrap"),
            "{err}"
        );
        let cfg = SandboxConfig {
            bwrap: Some("/nonexistent/bwrap".into()),
            fallback: Fallback::Plain,
            ..SandboxConfig::default()
        };
        assert_eq!(
            Sandbox::new(cfg).map(|s| s.isolation()).ok(),
            Some(Isolation::Plain)
        );
    }
}
