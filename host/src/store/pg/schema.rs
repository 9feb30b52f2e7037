//! The PostgreSQL schema, as numbered migrations embedded in the binary.
//!
//! Every start applies the migrations the database has not seen yet, in
//! one transaction that first takes an advisory transaction lock: replicas
//! starting together take turns, and the second finds the work done. A
//! database whose schema is newer than this release is refused rather than
//! written with assumptions that no longer hold.
//!
//! Tables are prefixed `verdict_` so they can share a schema with others.
//! The chain order comes from `verdict_chain_head`, locked by the
//! transaction that appends (never from a database sequence: its values have
//! gaps and commit out of order). `seq` and `prev_hash` are unique, so two
//! writers that somehow skipped the lock could not fork the chain.

use postgres::Client;

use super::{setup_error, PgError};

/// The key of the advisory lock migrations run under (an arbitrary
/// constant: "verdict" in ASCII).
const MIGRATION_LOCK: i64 = 0x7665_7264_6963_74;

/// `(version, SQL)`, oldest first. Never edit a released migration: add one.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    r#"
CREATE TABLE verdict_chain_head (
    id smallint PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL,
    hash text NOT NULL,
    -- Nanoseconds since the epoch of the last decision: decided_at never
    -- decreases along the chain, whichever replica's clock wrote it.
    decided_at_ns bigint
);
INSERT INTO verdict_chain_head (id, seq, hash) VALUES
    (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE verdict_decisions (
    seq bigint PRIMARY KEY,
    prev_hash text NOT NULL UNIQUE,
    hash text NOT NULL,
    -- The canonical body bytes exactly as hashed (see store/chain.rs).
    body bytea NOT NULL,
    service text NOT NULL,
    environment text NOT NULL,
    verdict text NOT NULL,
    decided_at_ns bigint NOT NULL
);
CREATE INDEX verdict_decisions_service ON verdict_decisions (service, seq);
CREATE INDEX verdict_decisions_environment ON verdict_decisions (environment, seq);
CREATE INDEX verdict_decisions_verdict ON verdict_decisions (verdict, seq);
CREATE INDEX verdict_decisions_time ON verdict_decisions (decided_at_ns, seq);

CREATE TABLE verdict_idempotency (
    key text PRIMARY KEY,
    -- sha256 of the request as first sent; NULL for keys copied from a
    -- store written before fingerprints were kept.
    fingerprint bytea,
    seq bigint NOT NULL REFERENCES verdict_decisions (seq)
);

CREATE TABLE verdict_used_digests (digest text PRIMARY KEY);

CREATE TABLE verdict_policy_blobs (digest text PRIMARY KEY, bytes bytea NOT NULL);
CREATE TABLE verdict_policies (name text PRIMARY KEY, meta text NOT NULL);
CREATE TABLE verdict_policy_versions (
    name text NOT NULL,
    digest text NOT NULL,
    PRIMARY KEY (name, digest)
);
CREATE TABLE verdict_bindings (name text PRIMARY KEY, value text NOT NULL);
CREATE TABLE verdict_freezes (id text PRIMARY KEY, value text NOT NULL);
CREATE TABLE verdict_registry_meta (key text PRIMARY KEY);
CREATE TABLE verdict_checkpoint (id smallint PRIMARY KEY CHECK (id = 1), note text NOT NULL);

-- Bumped by every change to policies, bindings or freezes, in the same
-- transaction: replicas poll it to pick up each other's changes.
CREATE TABLE verdict_active_set (id smallint PRIMARY KEY CHECK (id = 1), version bigint NOT NULL);
INSERT INTO verdict_active_set (id, version) VALUES (1, 0);
"#,
)];

/// Applies the pending migrations; returns the schema version now in place.
pub(super) fn migrate(client: &mut Client, who: &str) -> Result<i32, PgError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    // Checked first rather than `CREATE … IF NOT EXISTS`, whose notice
    // would be logged on every start; the lock makes the check race-free.
    let exists: bool = tx
        .query_one(
            "SELECT to_regclass('verdict_schema_migrations') IS NOT NULL",
            &[],
        )?
        .get(0);
    if !exists {
        tx.batch_execute(
            "CREATE TABLE verdict_schema_migrations (
                version integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )?;
    }
    let current: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM verdict_schema_migrations",
            &[],
        )?
        .get(0);
    let latest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if current > latest {
        return Err(setup_error(format!(
            "the database schema is at version {current}, newer than this release of verdict \
             knows ({latest}): upgrade verdict (replicas of different releases cannot share \
             a database across a schema change)"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tracing::info!(version, by = who, "applying database schema migration");
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO verdict_schema_migrations (version) VALUES ($1)",
            &[version],
        )?;
    }
    tx.commit()?;
    Ok(latest)
}
