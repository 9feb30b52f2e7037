//! Compiling a component in a child process under limits.
//!
//! Why: Cranelift's time and memory grow with the shape of the input, not
//! its size (a 115 KB component took 19 s and 830 MB, a 205 KB one 1.65 GB).
//! An upload must not be able to take the server down or hog it, so the
//! server re-executes its own binary as `verdict compile-worker`, which reads
//! the component on stdin, compiles it with the same engine configuration
//! and writes the serialized artifact to stdout, under an address-space and
//! a CPU limit, and is killed when it outlives the wall-clock limit. A
//! compile over its limits is the upload's fault (422), never a crash of
//! the server.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::sandbox::SandboxError;

/// The hidden subcommand the server runs its compile worker as.
pub const SUBCOMMAND: &str = "compile-worker";

/// The worker's exit code when the component itself does not compile.
const EXIT_INVALID: u8 = 3;
/// The worker's exit code when it could not set itself up (limits, I/O).
const EXIT_SETUP: u8 = 4;

/// Stderr kept from the worker (its error message).
const MAX_STDERR: u64 = 16 * 1024;

/// Limits for one compile in a child process.
#[derive(Debug, Clone)]
pub struct WorkerLimits {
    /// The `verdict` executable to run as the worker (normally this one).
    pub exe: PathBuf,
    /// Address space the compile may add to what the worker maps at start.
    pub memory_bytes: u64,
    /// Wall-clock time, after which the worker is killed; also its CPU limit.
    pub timeout: Duration,
    /// Added to `memory_bytes` per MiB of component.
    pub memory_bytes_per_mib: u64,
    /// Added to `timeout` per MiB of component.
    pub timeout_per_mib: Duration,
}

impl WorkerLimits {
    /// The limits for compiling a component of `size` bytes. They grow
    /// with each MiB past the first: a component carrying an interpreter
    /// is large and takes seconds to compile, while the shape-driven
    /// blow-ups the limits exist for (a 115 KB component taking 19 s) are
    /// small components, and stay under the base limits.
    pub fn for_size(&self, size: usize) -> WorkerLimits {
        let mib = (size as u64).saturating_sub(1 << 20).div_ceil(1 << 20);
        WorkerLimits {
            exe: self.exe.clone(),
            memory_bytes: self
                .memory_bytes
                .saturating_add(self.memory_bytes_per_mib.saturating_mul(mib)),
            timeout: self
                .timeout
                .saturating_add(self.timeout_per_mib.saturating_mul(mib as u32)),
            memory_bytes_per_mib: 0,
            timeout_per_mib: Duration::ZERO,
        }
    }
}

/// Compile `bytes` in a worker process; returns the serialized artifact.
pub fn compile(limits: &WorkerLimits, bytes: &[u8]) -> Result<Vec<u8>, SandboxError> {
    let limits = &limits.for_size(bytes.len());
    let cpu_seconds = limits.timeout.as_secs() + 1;
    let mut child = Command::new(&limits.exe)
        .arg(SUBCOMMAND)
        .arg(limits.memory_bytes.to_string())
        .arg(cpu_seconds.to_string())
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            SandboxError::Setup(format!(
                "cannot start the compile worker `{}`: {e}",
                limits.exe.display()
            ))
        })?;
    let started = Instant::now();
    // Pipes are fed and drained on their own threads, so neither side can
    // block the other on a full pipe.
    let mut stdin = child.stdin.take().expect("piped");
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        // A worker that dies early closes the pipe; its exit status says why.
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).map(|_| out)
    });
    let stderr = child.stderr.take().expect("piped");
    let err_reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stderr.take(MAX_STDERR).read_to_string(&mut out);
        out
    });

    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= limits.timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SandboxError::Setup(format!(
                    "cannot wait for the compile worker: {e}"
                )));
            }
        }
    };
    let _ = writer.join();
    let artifact = reader.join().ok().and_then(Result::ok);
    let message = err_reader.join().unwrap_or_default();
    let message = message.trim();
    let Some(status) = status else {
        return Err(SandboxError::TooExpensive(format!(
            "took longer than {} ms (the server's `compile_timeout_ms` and \
             `compile_timeout_ms_per_mib` for its size)",
            limits.timeout.as_millis()
        )));
    };
    match (status.code(), artifact) {
        (Some(0), Some(artifact)) => Ok(artifact),
        (Some(code), _) if code == i32::from(EXIT_INVALID) => {
            if out_of_memory(message) {
                Err(too_much_memory(limits))
            } else {
                Err(SandboxError::Compile(message.to_string()))
            }
        }
        _ => Err(failed(status, message, limits)),
    }
}

/// Why a worker that neither produced an artifact nor refused the
/// component ended.
fn failed(status: ExitStatus, message: &str, limits: &WorkerLimits) -> SandboxError {
    use std::os::unix::process::ExitStatusExt;
    match (status.signal(), status.code()) {
        // SIGXCPU at the CPU limit, SIGKILL a second later if ignored.
        (Some(libc::SIGXCPU | libc::SIGKILL), _) => SandboxError::TooExpensive(format!(
            "used more than {} s of CPU (the server's `compile_timeout_ms` and \
             `compile_timeout_ms_per_mib` for its size)",
            limits.timeout.as_secs() + 1
        )),
        (Some(libc::SIGABRT), _) if message.contains("overflowed its stack") => {
            SandboxError::TooExpensive("needed more stack than a compile may use".into())
        }
        // Rust aborts when an allocation fails; a failed mapping can fault.
        (Some(libc::SIGABRT | libc::SIGSEGV | libc::SIGBUS), _) => too_much_memory(limits),
        _ if out_of_memory(message) => too_much_memory(limits),
        // A panic: the compiler could not handle this input.
        (None, Some(101)) => SandboxError::Compile(format!("the compiler failed: {message}")),
        _ => SandboxError::Setup(format!(
            "the compile worker failed ({status}): {}",
            if message.is_empty() {
                "no message"
            } else {
                message
            }
        )),
    }
}

fn out_of_memory(message: &str) -> bool {
    message.contains("memory allocation of")
        || message.contains("Cannot allocate memory")
        || message.contains("out of memory")
}

fn too_much_memory(limits: &WorkerLimits) -> SandboxError {
    SandboxError::TooExpensive(format!(
        "needed more than {} MiB of memory (the server's `compile_memory_bytes` and \
         `compile_memory_bytes_per_mib` for its size)",
        limits.memory_bytes >> 20
    ))
}

/// The worker side: `verdict compile-worker <memory-bytes> <cpu-seconds>`.
/// Limits itself first, then reads the component on stdin and writes the
/// artifact on stdout.
pub fn main(memory: u64, cpu: u64) -> ExitCode {
    let fail = |code: u8, message: String| {
        // Best effort: stderr is how the parent learns why.
        let _ = writeln!(std::io::stderr(), "{message}");
        ExitCode::from(code)
    };
    if let Err(e) = limit_self(memory, cpu) {
        return fail(EXIT_SETUP, format!("cannot set the compile limits: {e}"));
    }
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
        return fail(EXIT_SETUP, format!("cannot read the component: {e}"));
    }
    match super::sandbox::compile_to_artifact(&bytes) {
        Ok(artifact) => match std::io::stdout().lock().write_all(&artifact) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(EXIT_SETUP, format!("cannot write the artifact: {e}")),
        },
        Err(e) => fail(EXIT_INVALID, e),
    }
}

/// Cap this process's address space at what it maps now plus
/// `memory_bytes` (so the executable's own size does not count against the
/// compile), and its CPU time at `cpu_seconds`.
fn limit_self(memory_bytes: u64, cpu_seconds: u64) -> std::io::Result<()> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| std::io::Error::other("unreadable /proc/self/statm"))?;
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let address_space = pages.saturating_mul(page).saturating_add(memory_bytes);
    let rlimit = |soft: u64, hard: u64| libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: each rlimit is a valid value for the duration of its call.
    check(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rlimit(address_space, address_space)) })?;
    // SIGXCPU at the soft limit, SIGKILL a second later if it is ignored.
    check(unsafe { libc::setrlimit(libc::RLIMIT_CPU, &rlimit(cpu_seconds, cpu_seconds + 1)) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn limits() -> WorkerLimits {
        WorkerLimits {
            exe: PathBuf::from("/nonexistent/verdict"),
            memory_bytes: 64 << 20,
            timeout: Duration::from_secs(2),
            memory_bytes_per_mib: 0,
            timeout_per_mib: Duration::ZERO,
        }
    }

    #[test]
    fn limits_grow_with_the_component_size() {
        let base = WorkerLimits {
            memory_bytes_per_mib: 32 << 20,
            timeout_per_mib: Duration::from_secs(4),
            ..limits()
        };
        // A small component (every Rust policy) gets the base limits.
        let small = base.for_size(30_000);
        assert_eq!(small.memory_bytes, 64 << 20);
        assert_eq!(small.timeout, Duration::from_secs(2));
        assert_eq!(base.for_size(1 << 20).timeout, Duration::from_secs(2));
        // An 18 MB interpreter (17.5 MiB) gets 17 MiB's allowance more.
        let python = base.for_size(18_373_252);
        assert_eq!(python.memory_bytes, (64 + 17 * 32) << 20);
        assert_eq!(python.timeout, Duration::from_secs(2 + 17 * 4));
    }

    /// A wait status: killed by `signal`, or exited with `code`.
    fn killed(signal: i32) -> ExitStatus {
        ExitStatus::from_raw(signal)
    }

    fn exited(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn worker_endings_are_told_apart() {
        let l = limits();
        let text = |e: SandboxError| e.to_string();
        let cpu = text(failed(killed(libc::SIGXCPU), "", &l));
        assert!(
            cpu.contains("too expensive") && cpu.contains("3 s of CPU"),
            "{cpu}"
        );
        let mem = text(failed(
            killed(libc::SIGABRT),
            "memory allocation of 81920 bytes failed",
            &l,
        ));
        assert!(
            mem.contains("too expensive") && mem.contains("64 MiB"),
            "{mem}"
        );
        let stack = text(failed(
            killed(libc::SIGABRT),
            "thread 'main' has overflowed its stack",
            &l,
        ));
        assert!(stack.contains("stack"), "{stack}");
        let panic = text(failed(exited(101), "panicked at cranelift", &l));
        assert!(panic.starts_with("component failed to compile"), "{panic}");
        let setup = text(failed(exited(EXIT_SETUP.into()), "cannot read", &l));
        assert!(setup.starts_with("engine set-up failed"), "{setup}");
    }

    #[test]
    fn a_missing_worker_is_a_setup_error() {
        let err = compile(&limits(), b"\0asm").unwrap_err().to_string();
        assert!(err.contains("cannot start the compile worker"), "{err}");
    }
}
