//! The `verdict` command line. Thin glue over the library: parse, call, print,
//! map the outcome to an exit code.
//!
//! - [`build`]: `verdict policy build` (guest toolchain detection, componentize)
//! - [`fixtures`]: `verdict policy test` (fixture runner over the real sandbox)
//! - [`scaffold`]: `verdict policy new`
//! - [`sdk`]: the WIT and SDKs the binary carries (`verdict wit`, `verdict policy sdk`)
//! - [`serve`]: `verdict serve`
//! - [`client`]: commands that talk to a running server (decide, audit, replay, push, list)

pub mod build;
pub mod client;
pub mod fixtures;
pub mod polyglot;
pub mod scaffold;
pub mod sdk;
pub mod serve;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::engine::Engine;

#[derive(Debug, Parser)]
#[command(
    name = "verdict",
    version,
    about = "Deployment policy engine: promote, hold, rollback or freeze"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the decision server (zero config: 127.0.0.1:8080, ./verdict-data, built-in policies).
    Serve(serve::ServeArgs),
    /// Ask a running server for a decision. Exit code: 0 promote, 10 hold,
    /// 11 rollback, 12 freeze, 1 error.
    Decide {
        #[command(flatten)]
        server: client::Server,
        #[command(flatten)]
        args: client::DecideArgs,
    },
    /// Query, verify and export the audit trail.
    Audit {
        #[command(flatten)]
        server: client::Server,
        #[command(subcommand)]
        cmd: client::AuditCommand,
    },
    /// Re-run a stored decision against the current policies (nothing is stored).
    /// Exit code 0 if the verdict and every policy's outcome are unchanged, 1 otherwise.
    Replay {
        #[command(flatten)]
        server: client::Server,
        id: String,
        /// Use exactly the recorded policy digests and settings.
        #[arg(long)]
        as_recorded: bool,
    },
    /// Write, build, test and upload policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Show what the server's metric sources would pull for a request (the
    /// same arguments as `decide`); nothing is decided or stored. Exit code 0
    /// if every metric arrived complete, 1 otherwise.
    Pull {
        #[command(flatten)]
        server: client::Server,
        #[command(flatten)]
        args: client::DecideArgs,
    },
    /// Print the WIT contract policies implement (the one this binary
    /// checks), or write the WIT package (`policy.wit`, `preinit.wit`) into `<out>/`.
    Wit {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Manage where decisions are stored.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Internal: compile a component read on stdin under limits and write
    /// the artifact to stdout (`verdict serve` runs this for each upload).
    #[command(name = "compile-worker", hide = true)]
    CompileWorker { memory_bytes: u64, cpu_seconds: u64 },
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy an embedded store (audit trail, policies, bindings, freezes and
    /// the latest checkpoint) into an empty PostgreSQL database, then verify
    /// the copy: the same records and the same head hash. Stop the server
    /// first; nothing is removed from the source.
    Migrate {
        /// The data dir of a verdict that ran on the embedded store (or its
        /// `store` directory).
        #[arg(long)]
        from: PathBuf,
        /// The database: `postgres://user:password@host:port/database`.
        #[arg(long, env = "VERDICT_STORE", hide_env_values = true)]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Create a new policy project that builds anywhere: the template, two
    /// fixtures, and the SDK this binary carries, vendored under `vendor/`.
    New {
        /// Directory to create; its last component is the policy name.
        dir: PathBuf,
        /// The policy's language (js: TypeScript, compiled by the build).
        #[arg(long, value_enum, default_value = "rust")]
        lang: scaffold::Lang,
    },
    /// The SDKs this binary carries.
    #[command(subcommand)]
    Sdk(SdkCommand),
    /// Build a policy (Rust crate, Python or JavaScript/TypeScript project)
    /// into a WebAssembly component; prints its path last.
    Build {
        crate_dir: PathBuf,
        /// Where to write the component.
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Run a directory of JSON fixtures through a component in the real sandbox.
    Test {
        component: PathBuf,
        fixtures: PathBuf,
    },
    /// Upload a component to a running server as policy `name`.
    Push {
        #[command(flatten)]
        server: client::Server,
        name: String,
        component: PathBuf,
    },
    /// List the policies a running server has.
    List {
        #[command(flatten)]
        server: client::Server,
    },
}

#[derive(Debug, Subcommand)]
pub enum SdkCommand {
    /// Replace a project's vendored SDK with this binary's (after upgrading
    /// Verdict). Refuses when a vendored file was edited, naming it.
    Update {
        /// The policy project (Cargo.toml, pyproject.toml or package.json).
        dir: PathBuf,
        /// Replace edited vendored files too.
        #[arg(long)]
        force: bool,
    },
    /// Write one SDK as a package directory (for `cargo package`, `pip
    /// wheel`, `npm pack`, or reading).
    Write {
        #[arg(long, value_enum)]
        lang: scaffold::Lang,
        /// Directory to create.
        dir: PathBuf,
    },
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(args).map(|()| ExitCode::SUCCESS),
        Command::Decide { server, args } => {
            let verdict = client::decide(&server, args)?;
            Ok(ExitCode::from(verdict.exit_code() as u8))
        }
        Command::Audit { server, cmd } => Ok(exit(client::audit(&server, cmd)?)),
        Command::Replay {
            server,
            id,
            as_recorded,
        } => Ok(exit(client::replay(&server, &id, as_recorded)?)),
        Command::Policy(cmd) => policy(cmd),
        Command::Pull { server, args } => Ok(exit(client::pull(&server, args)?)),
        Command::Wit { out } => {
            for path in sdk::wit(out.as_deref())? {
                println!("wrote {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Store(StoreCommand::Migrate { from, to }) => {
            let done = crate::store::migrate(&from, &to)?;
            println!(
                "copied {} decisions, {} policies ({} versions), {} bindings, {} freezes",
                done.decisions, done.policies, done.policy_versions, done.bindings, done.freezes
            );
            println!(
                "verified: {} records, head {}",
                done.verify.checked,
                done.verify.head.as_deref().unwrap_or("(empty chain)")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::CompileWorker {
            memory_bytes,
            cpu_seconds,
        } => Ok(crate::engine::compile_worker_main(
            memory_bytes,
            cpu_seconds,
        )),
    }
}

fn exit(success: bool) -> ExitCode {
    if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn policy(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Sdk(SdkCommand::Update { dir, force }) => {
            let u = sdk::update(&dir, force)?;
            let from = u.from.as_deref().unwrap_or("an unrecorded version");
            println!(
                "{}: vendored SDK from verdict {from} replaced by verdict {}'s (contract verdict:policy@{})",
                dir.display(),
                u.to,
                sdk::contract_version()
            );
            if u.changed.is_empty() {
                println!("no file changed");
            }
            for f in &u.changed {
                println!("changed {f}");
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Sdk(SdkCommand::Write { lang, dir }) => {
            if dir.exists() {
                anyhow::bail!("`{}` already exists; pick a new directory", dir.display());
            }
            for f in sdk::Sdk::of(lang).write(&dir)? {
                println!("wrote {}", f.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::New { dir, lang } => {
            let created = scaffold::new_policy_in(lang, &dir)?;
            for f in &created.files {
                println!("created {}", f.display());
            }
            println!(
                "next: verdict policy build {0} && verdict policy test <component> {0}/fixtures",
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Build { crate_dir, out } => {
            let path = build::build(&crate_dir, out.as_deref())?;
            println!("{}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Test {
            component,
            fixtures: dir,
        } => {
            let bytes = std::fs::read(&component)
                .with_context(|| format!("cannot read `{}`", component.display()))?;
            let engine = Engine::new(None)?;
            let name = component.display().to_string();
            let policy = Arc::new(engine.compile(&name, &bytes)?);
            let summary = fixtures::run_dir(&engine, policy, &dir)?;
            for run in &summary.runs {
                let file = run.file.file_name().unwrap_or_default().to_string_lossy();
                match &run.failure {
                    None => println!("ok    {file}"),
                    Some(why) => println!("FAIL  {file}: {why}"),
                }
            }
            println!("{} passed, {} failed", summary.passed(), summary.failed());
            Ok(exit(summary.failed() == 0))
        }
        PolicyCommand::Push {
            server,
            name,
            component,
        } => {
            client::push(&server, &name, &component)?;
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::List { server } => {
            client::list(&server)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
