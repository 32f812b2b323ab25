//! Group commit (DESIGN §9): requests hand their counts to one writer task, which folds
//! everything queued into one transaction with one upsert per group, hour and release, and
//! answers each request only once that transaction has committed.
//!
//! Exactly once (DESIGN §5): a request's `Idempotency-Key` is claimed in the flush's own
//! transaction, so a repeat is never counted; and every flush writes its id beside its
//! counts, so when the commit's reply is lost the writer asks the database whether that id
//! is there before answering, instead of answering 503 for counts that were stored.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use foldhash::fast::RandomState;
use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::counts::CountStore;
use super::payload::Usage;
use crate::db::WriteGate;
use crate::model::{GroupKey, Release};
use crate::rollup::{HOUR_SECONDS, start_of_day};
use crate::telemetry::Metrics;

/// How many queued requests one flush may take; bounds a transaction's size.
const MAX_JOBS_PER_FLUSH: usize = 2048;
/// How many times the writer lets other tasks run to gather stragglers before flushing.
const MAX_GATHER_ROUNDS: usize = 8;

/// One count to add, from a report or a usage message.
#[derive(Clone, Debug)]
pub enum Write {
    Report {
        app_id: i64,
        key: GroupKey,
        hash: String,
        at: DateTime<Utc>,
    },
    Usage {
        app_id: i64,
        usage: Usage,
        at: DateTime<Utc>,
    },
}

/// An `Idempotency-Key` of a request, with the answer it gets when its counts are added.
#[derive(Clone, Debug)]
pub struct Claim {
    pub app_id: i64,
    pub key: String,
    /// The JSON body of the 202.
    pub answer: String,
}

/// What became of a request's writes once their flush committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Added now.
    Counted,
    /// Its key was claimed by an earlier request (or, after a lost reply, possibly by this
    /// one): the stored answer is the answer.
    Claimed,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the write queue is full")]
    Overloaded,
    #[error("the writer has stopped")]
    Stopped,
    #[error("the database refused the batch: {0}")]
    Database(String),
}

struct Job {
    writes: Vec<Write>,
    claim: Option<Claim>,
    done: oneshot::Sender<Result<Outcome, WriteError>>,
}

/// The handle request handlers submit through; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task. It ends once every `Writer` is dropped and the queue is drained.
    pub fn spawn(
        db: DatabaseConnection,
        gate: WriteGate,
        queue_capacity: usize,
        metrics: Metrics,
    ) -> (Writer, JoinHandle<()>) {
        let (queue, jobs) = mpsc::channel(queue_capacity);
        let task = tokio::spawn(run(db, gate, jobs, metrics));
        (Writer { queue }, task)
    }

    /// Requests waiting for the writer now (not counting the flush in progress).
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Adds `writes` atomically: all of them are committed, or none and an error is returned.
    /// With a claim, they are added only when its key was never claimed before.
    pub async fn submit(
        &self,
        writes: Vec<Write>,
        claim: Option<Claim>,
    ) -> Result<Outcome, WriteError> {
        let (done, committed) = oneshot::channel();
        self.queue
            .try_send(Job {
                writes,
                claim,
                done,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => WriteError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => WriteError::Stopped,
            })?;
        committed.await.map_err(|_| WriteError::Stopped)?
    }
}

async fn run(
    db: DatabaseConnection,
    gate: WriteGate,
    mut jobs: mpsc::Receiver<Job>,
    metrics: Metrics,
) {
    let mut store = CountStore::new(db);
    let mut batch = Vec::with_capacity(MAX_JOBS_PER_FLUSH);
    while jobs.recv_many(&mut batch, MAX_JOBS_PER_FLUSH).await > 0 {
        gather_stragglers(&mut jobs, &mut batch).await;
        let (outcomes, elapsed) = {
            let _gate = gate.enter().await;
            // Timed once the gate is ours: the commit itself, not the wait for other writers.
            let started = std::time::Instant::now();
            let outcomes = flush(&mut store, &batch).await;
            (outcomes, started.elapsed())
        };
        metrics.writer_flush(batch.len(), elapsed);
        tracing::debug!(jobs = batch.len(), ?elapsed, "flushed");
        for (job, outcome) in batch.drain(..).zip(outcomes) {
            // A request that gave up waiting has nobody to tell.
            let _ = job.done.send(outcome);
        }
    }
    store.close().await;
}

/// Commits one flush; each job's outcome, in order.
async fn flush(store: &mut CountStore, batch: &[Job]) -> Vec<Result<Outcome, WriteError>> {
    let flush_id = match crate::secrets::random_bytes::<16>() {
        Ok(bytes) => hex::encode(bytes),
        Err(e) => return vec![Err(WriteError::Database(e.to_string())); batch.len()],
    };
    let jobs: Vec<(&[Write], Option<&Claim>)> = batch
        .iter()
        .map(|job| (job.writes.as_slice(), job.claim.as_ref()))
        .collect();
    let failure = match store.add(&flush_id, &jobs).await {
        Ok(counted) => {
            return counted
                .into_iter()
                .map(|counted| {
                    Ok(if counted {
                        Outcome::Counted
                    } else {
                        Outcome::Claimed
                    })
                })
                .collect();
        }
        Err(e) => e,
    };
    // The commit may have happened with its reply lost: the flush's id tells.
    match store.committed(&flush_id).await {
        Ok(true) => {
            tracing::warn!(error = %failure, jobs = batch.len(), "the flush committed though its reply was lost");
            jobs.iter()
                .map(|(_, claim)| {
                    Ok(if claim.is_some() {
                        Outcome::Claimed
                    } else {
                        Outcome::Counted
                    })
                })
                .collect()
        }
        Ok(false) => {
            tracing::warn!(error = %failure, jobs = batch.len(), "group commit failed");
            vec![Err(WriteError::Database(failure.to_string())); batch.len()]
        }
        Err(e) => {
            tracing::error!(error = %failure, lookup = %e, jobs = batch.len(), "group commit failed and its outcome is unknown");
            vec![Err(WriteError::Database(failure.to_string())); batch.len()]
        }
    }
}

/// Lets the request handlers that are already running hand in their jobs before a flush.
///
/// Requests answered by one flush come back together; the first few wake the writer while the
/// rest are still being parsed. Flushing at once would commit a handful and leave the others
/// waiting for the next commit, so flushes alternate between big and tiny. Yielding costs
/// microseconds and stops as soon as a round brings nothing new, so a lone request is not held.
async fn gather_stragglers(jobs: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>) {
    for _ in 0..MAX_GATHER_ROUNDS {
        if batch.len() >= MAX_JOBS_PER_FLUSH {
            return;
        }
        tokio::task::yield_now().await;
        let before = batch.len();
        while batch.len() < MAX_JOBS_PER_FLUSH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if batch.len() == before {
            return;
        }
    }
}

/// A group's share of one flush.
pub struct GroupTally<'a> {
    pub key: &'a GroupKey,
    pub count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// A release row's key: app id, release, event type or usage kind, and the start of its hour
/// or day (Unix seconds).
pub type ReleaseKey<'a> = (i64, &'a Release, &'a str, i64);

/// A map of one flush's rows, hashed by foldhash rather than SipHash. Its keys hold
/// client-chosen text, but foldhash seeds each map afresh (time, addresses) and a flush holds
/// at most `MAX_JOBS_PER_FLUSH` requests, so even keys crafted to collide would cost one flush
/// a few milliseconds, not the server its availability.
pub type FlushMap<K, V> = HashMap<K, V, RandomState>;

/// One flush's writes, added up: one entry per group, per group and hour, and per release,
/// kind and hour or day, so each row is written once per flush however many requests it took.
#[derive(Default)]
pub struct Folded<'a> {
    /// Keyed by app id and group hash.
    pub groups: FlushMap<(i64, &'a str), GroupTally<'a>>,
    /// Keyed by app id, group hash and hour (Unix seconds).
    pub hours: FlushMap<(i64, &'a str, i64), i64>,
    /// Reports per release, event type and hour: the per-release roll-up.
    pub releases: FlushMap<ReleaseKey<'a>, i64>,
    /// The same per release, event type and day, for reads over many days.
    pub release_days: FlushMap<ReleaseKey<'a>, i64>,
    /// Usage per release, kind and hour.
    pub usage: FlushMap<ReleaseKey<'a>, i64>,
    /// The same per release, kind and day.
    pub usage_days: FlushMap<ReleaseKey<'a>, i64>,
}

fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(HOUR_SECONDS) * HOUR_SECONDS
}

pub(super) fn fold<'a>(writes: impl Iterator<Item = &'a Write>) -> Folded<'a> {
    let mut folded = Folded::default();
    for write in writes {
        match write {
            Write::Report {
                app_id,
                key,
                hash,
                at,
            } => {
                let group = folded
                    .groups
                    .entry((*app_id, hash.as_str()))
                    .or_insert(GroupTally {
                        key,
                        count: 0,
                        first_seen: *at,
                        last_seen: *at,
                    });
                group.count += 1;
                group.first_seen = Ord::min(group.first_seen, *at);
                group.last_seen = Ord::max(group.last_seen, *at);
                let hour = hour_of(*at);
                *folded
                    .hours
                    .entry((*app_id, hash.as_str(), hour))
                    .or_insert(0) += 1;
                *folded
                    .releases
                    .entry((*app_id, &key.release, key.event_type.as_str(), hour))
                    .or_insert(0) += 1;
            }
            Write::Usage { app_id, usage, at } => {
                *folded
                    .usage
                    .entry((*app_id, &usage.release, usage.kind.as_str(), hour_of(*at)))
                    .or_insert(0) += usage.count;
            }
        }
    }
    // The days from the hours, not from each write: a flush has a few release hours but many
    // writes, and each write's lookup hashes its whole release.
    folded.release_days = by_day(&folded.releases);
    folded.usage_days = by_day(&folded.usage);
    folded
}

/// Release rows by hour summed into rows by day.
fn by_day<'a>(hours: &FlushMap<ReleaseKey<'a>, i64>) -> FlushMap<ReleaseKey<'a>, i64> {
    let mut days = FlushMap::default();
    for ((app_id, release, kind, hour), count) in hours {
        *days
            .entry((*app_id, *release, *kind, start_of_day(*hour)))
            .or_insert(0) += count;
    }
    days
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Arch, EventType, Platform};
    use sea_orm::{ActiveModelTrait, ConnectOptions, Database, EntityTrait, Set, TransactionTrait};
    use tokio::task::JoinSet;

    pub(crate) fn key(reason: &str) -> GroupKey {
        GroupKey {
            release: Release {
                app_name: "editor".into(),
                version: "1.0".into(),
                channel: "stable".into(),
                platform: Platform::Linux,
                arch: Arch::X86_64,
            },
            event_type: EventType::Crash,
            reason: reason.into(),
        }
    }

    #[test]
    fn folds_writes_to_one_row_per_group_and_hour() {
        let t0 = DateTime::from_timestamp(7200 + 10, 0).expect("valid time");
        let t1 = DateTime::from_timestamp(7200 + 3600 + 5, 0).expect("valid time");
        let a = key("a");
        let b = key("b");
        let writes: Vec<Write> = [(&a, t0), (&a, t1), (&a, t0), (&b, t0)]
            .into_iter()
            .map(|(k, at)| Write::Report {
                app_id: 1,
                hash: k.hash(),
                key: k.clone(),
                at,
            })
            .collect();
        let folded = fold(writes.iter());
        assert_eq!(folded.groups.len(), 2);
        let a_hash = a.hash();
        let group = &folded.groups[&(1, a_hash.as_str())];
        assert_eq!(
            (group.count, group.first_seen, group.last_seen),
            (3, t0, t1)
        );
        assert_eq!(folded.hours.len(), 3);
        assert_eq!(folded.hours[&(1, a.hash().as_str(), 7200)], 2);
    }

    #[test]
    fn folds_a_release_by_hour_and_by_day() {
        use crate::model::UsageKind;
        let day = 86_400;
        let at = |seconds| DateTime::from_timestamp(seconds, 0).expect("valid time");
        let (a, b) = (key("a"), key("b"));
        let release = &a.release;
        let mut writes: Vec<Write> = [(&a, 7200 + 10), (&b, 7200 + 20), (&a, 3 * 3600)]
            .into_iter()
            .map(|(k, seconds)| Write::Report {
                app_id: 1,
                hash: k.hash(),
                key: k.clone(),
                at: at(seconds),
            })
            .collect();
        for (count, seconds) in [(5, 10), (7, 3600 + 10), (11, day + 10)] {
            writes.push(Write::Usage {
                app_id: 1,
                usage: Usage {
                    release: release.clone(),
                    kind: UsageKind::Session,
                    count,
                },
                at: at(seconds),
            });
        }
        let folded = fold(writes.iter());
        fn rows<'a>(rows: &FlushMap<ReleaseKey<'a>, i64>) -> Vec<(&'a str, i64, i64)> {
            let mut rows: Vec<_> = rows
                .iter()
                .map(|((app_id, release, kind, start), count)| {
                    assert_eq!((*app_id, *release), (1, &key("a").release));
                    (*kind, *start, *count)
                })
                .collect();
            rows.sort();
            rows
        }
        assert_eq!(
            rows(&folded.releases),
            [("crash", 7200, 2), ("crash", 3 * 3600, 1)]
        );
        assert_eq!(rows(&folded.release_days), [("crash", 0, 3)]);
        assert_eq!(
            rows(&folded.usage),
            [
                ("session", 0, 5),
                ("session", 3600, 7),
                ("session", day, 11)
            ]
        );
        assert_eq!(
            rows(&folded.usage_days),
            [("session", 0, 12), ("session", day, 11)]
        );
    }

    /// A SQLite file on a pool of two connections: the writer holds one once it has flushed,
    /// the test reads through the other. No tables yet.
    async fn two_connection_db(dir: &tempfile::TempDir) -> DatabaseConnection {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        let mut options = ConnectOptions::new(url);
        options.max_connections(2).sqlx_logging(false);
        Database::connect(options).await.expect("SQLite file")
    }

    /// Migrates and creates an app; its id.
    async fn migrate_with_app(db: &DatabaseConnection) -> i64 {
        use migration::MigratorTrait;
        migration::Migrator::up(db, None).await.expect("migrations");
        let account = entity::accounts::ActiveModel {
            name: Set("test".into()),
            created_at: Set(Utc::now()),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("account");
        entity::apps::ActiveModel {
            account_id: Set(account.id),
            name: Set("editor".into()),
            reports_enabled: Set(true),
            created_at: Set(Utc::now()),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("app")
        .id
    }

    pub(crate) fn report(app_id: i64, reason: &str) -> Vec<Write> {
        let key = key(reason);
        vec![Write::Report {
            app_id,
            hash: key.hash(),
            key,
            at: Utc::now(),
        }]
    }

    async fn stored_count(db: &DatabaseConnection) -> i64 {
        entity::report_groups::Entity::find()
            .all(db)
            .await
            .expect("report_groups")
            .iter()
            .map(|group| group.count)
            .sum()
    }

    #[tokio::test]
    async fn every_request_of_a_failed_flush_gets_the_error_and_the_writer_carries_on() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = two_connection_db(&dir).await;
        let (writer, task) = Writer::spawn(db.clone(), WriteGate::default(), 64, Metrics::new());
        let mut requests = JoinSet::new();
        for n in 0..16 {
            let writer = writer.clone();
            // No table exists yet: every flush fails.
            requests
                .spawn(async move { writer.submit(report(1, &format!("r{}", n % 3)), None).await });
        }
        while let Some(outcome) = requests.join_next().await {
            let outcome = outcome.expect("request task");
            assert!(
                matches!(outcome, Err(WriteError::Database(_))),
                "{outcome:?}"
            );
        }

        let app_id = migrate_with_app(&db).await;
        writer
            .submit(report(app_id, "r0"), None)
            .await
            .expect("the writer carries on once the database works");
        assert_eq!(stored_count(&db).await, 1, "nothing of the failed flushes");
        drop(writer);
        task.await
            .expect("the writer ends once every handle is gone");
    }

    #[tokio::test]
    async fn a_full_queue_sheds_requests_instead_of_holding_them() {
        const CAPACITY: usize = 4;
        const REQUESTS: usize = 64;
        let dir = tempfile::tempdir().expect("temp dir");
        let db = two_connection_db(&dir).await;
        let app_id = migrate_with_app(&db).await;
        // Holding both connections stalls the writer's first flush.
        let stall = (
            db.begin().await.expect("begin"),
            db.begin().await.expect("begin"),
        );
        let (writer, task) =
            Writer::spawn(db.clone(), WriteGate::default(), CAPACITY, Metrics::new());
        let mut requests = JoinSet::new();
        for _ in 0..REQUESTS {
            let writer = writer.clone();
            requests.spawn(async move { writer.submit(report(app_id, "burst"), None).await });
        }
        // While stalled, the writer holds at most one queue's worth and the queue another;
        // everything else must be shed at once, so these answers arrive before the stall ends.
        for _ in 0..REQUESTS - 2 * CAPACITY {
            let outcome = requests
                .join_next()
                .await
                .expect("a request")
                .expect("task");
            assert!(
                matches!(outcome, Err(WriteError::Overloaded)),
                "{outcome:?}"
            );
        }
        stall.0.rollback().await.expect("rollback");
        stall.1.rollback().await.expect("rollback");
        let mut committed = 0;
        while let Some(outcome) = requests.join_next().await {
            match outcome.expect("task") {
                Ok(_) => committed += 1,
                Err(WriteError::Overloaded) => {}
                Err(other) => panic!("{other}"),
            }
        }
        assert!(committed > 0);
        assert_eq!(stored_count(&db).await, committed);
        drop(writer);
        task.await
            .expect("the writer ends once every handle is gone");
    }
}
