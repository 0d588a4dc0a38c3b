//! The single writer: one thread with its own connection commits queued responses in
//! batches (group commit), so many concurrent submissions share one commit and one
//! fsync while each is acknowledged only after its batch is durable.

use crate::db::responses::{self, ResponseMeta, ResponseRow};
use crate::db::{AnyConnection, Database, DbError};
use crate::form::{Form, FormRegistry};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::Connection;
use std::collections::hash_map::{Entry, HashMap};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Responses committed in one transaction at most.
const MAX_BATCH: usize = 512;
/// Responses waiting for the writer at most; beyond that submitters get a 503.
const QUEUE_DEPTH: usize = 8192;

/// The outcome of storing one response.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    Created(ResponseMeta),
    /// The submission id was used before; `same_answers` tells a harmless resend from a conflict.
    Existing {
        meta: ResponseMeta,
        same_answers: bool,
    },
}

struct Job {
    row: ResponseRow,
    reply: oneshot::Sender<Result<Stored, String>>,
}

/// Handle to the writer thread; cloning shares the same queue. The thread ends once every
/// handle is dropped and the queue is drained.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    pub fn start(db: &Database, forms: Arc<FormRegistry>) -> Result<Writer, DbError> {
        let conn = db.open_connection()?;
        let (queue, jobs) = mpsc::channel(QUEUE_DEPTH);
        let db = db.clone();
        std::thread::Builder::new()
            .name("genderlens-writer".into())
            .spawn(move || run(db, conn, jobs, forms))
            .map_err(|e| DbError::Unavailable(format!("cannot start the writer: {e}")))?;
        Ok(Writer { queue })
    }

    /// Queues `row` and waits until its batch is committed (or failed).
    pub async fn store(&self, row: ResponseRow) -> Result<Stored, DbError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .try_send(Job { row, reply })
            .map_err(|_| DbError::Unavailable("too many submissions are waiting".into()))?;
        answer
            .await
            .map_err(|_| DbError::Unavailable("the writer stopped".into()))?
            .map_err(DbError::Unavailable)
    }
}

fn run(db: Database, conn: AnyConnection, mut jobs: mpsc::Receiver<Job>, forms: Arc<FormRegistry>) {
    let mut conn = Some(conn);
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // After a failure the connection may be dead (PostgreSQL restarted, disk full):
        // open a fresh one for the next batch.
        let active = match conn.take() {
            Some(c) => Ok(c),
            None => db.open_connection(),
        };
        let result = active.map_err(|e| e.to_string()).and_then(|mut c| {
            let outcome = commit_batch(&mut c, &batch, &forms).map_err(|e| e.to_string());
            if outcome.is_ok() {
                conn = Some(c);
            }
            outcome
        });
        match result {
            Ok(outcomes) => {
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                tracing::error!(error = %err, size = batch.len(), "storing a batch of responses failed");
                for job in batch {
                    let _ = job.reply.send(Err(err.clone()));
                }
            }
        }
    }
}

fn commit_batch(
    conn: &mut AnyConnection,
    batch: &[Job],
    forms: &FormRegistry,
) -> Result<Vec<Stored>, DieselError> {
    let rows: Vec<&ResponseRow> = batch.iter().map(|job| &job.row).collect();
    store_batch(conn, &rows, &|id| forms.get(id))
}

/// Finds a form by id, to queue its notifications.
pub type FormLookup<'a> = &'a dyn Fn(&str) -> Option<Arc<Form>>;

/// Stores rows in one transaction: a submission id seen before (stored, or earlier in the
/// batch) is not stored again. Milestones the new responses cross are queued in the same
/// transaction. Used by the writer thread and by bulk imports.
pub fn store_batch(
    conn: &mut AnyConnection,
    rows: &[&ResponseRow],
    forms: FormLookup,
) -> Result<Vec<Stored>, DieselError> {
    crate::db::write_transaction(conn, |conn| {
        let outcomes = insert_batch(conn, rows)?;
        let mut created: Vec<&str> = Vec::new();
        for outcome in &outcomes {
            if let Stored::Created(meta) = outcome {
                if !created.contains(&meta.form_id.as_str()) {
                    created.push(&meta.form_id);
                }
            }
        }
        let now = chrono::Utc::now().naive_utc();
        for form_id in created {
            if let Some(form) = forms(form_id) {
                crate::notify::enqueue_reached_milestones(conn, &form, now)?;
            }
        }
        Ok(outcomes)
    })
}

fn insert_batch(
    conn: &mut AnyConnection,
    rows: &[&ResponseRow],
) -> Result<Vec<Stored>, DieselError> {
    conn.transaction(|conn| {
        let mut outcomes = resolve_known(conn, rows)?;
        let fresh: Vec<ResponseRow> = rows
            .iter()
            .zip(&outcomes)
            .filter(|(_, outcome)| outcome.is_none())
            .map(|(row, _)| (*row).clone())
            .collect();
        if fresh.is_empty() {
            return Ok(outcomes.into_iter().flatten().collect());
        }
        // One multi-row insert in a savepoint; if another instance sharing the PostgreSQL
        // database inserted one of these submission ids meanwhile, fall back to row by row.
        match conn.transaction(|conn| responses::insert_many(conn, &fresh)) {
            Ok(_) => {}
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                for (row, outcome) in rows.iter().zip(outcomes.iter_mut()) {
                    if outcome.is_none() {
                        *outcome = Some(store_one(conn, row)?);
                    }
                }
                return Ok(outcomes.into_iter().flatten().collect());
            }
            Err(err) => return Err(err),
        }
        Ok(rows
            .iter()
            .zip(outcomes)
            .map(|(row, outcome)| outcome.unwrap_or_else(|| Stored::Created(meta_of(row))))
            .collect())
    })
}

fn meta_of(row: &ResponseRow) -> ResponseMeta {
    ResponseMeta {
        id: row.id.clone(),
        form_id: row.form_id.clone(),
        form_version: row.form_version,
        received_at: row.received_at,
        answers_hash: row.answers_hash.clone(),
    }
}

fn existing_outcome(meta: ResponseMeta, row: &ResponseRow) -> Stored {
    let same_answers = meta.answers_hash == row.answers_hash;
    Stored::Existing { meta, same_answers }
}

/// Outcomes already decided before inserting: submission ids stored earlier, and repeats
/// of a submission id earlier in the same batch (a double-tapped submit).
fn resolve_known(
    conn: &mut AnyConnection,
    rows: &[&ResponseRow],
) -> Result<Vec<Option<Stored>>, DieselError> {
    let mut by_form: HashMap<&str, Vec<&str>> = HashMap::new();
    for row in rows {
        by_form
            .entry(&row.form_id)
            .or_default()
            .push(&row.submission_id);
    }
    let mut stored: HashMap<(String, String), ResponseMeta> = HashMap::new();
    for (form, submissions) in by_form {
        for (submission, meta) in responses::find_submissions(conn, form, &submissions)? {
            stored.insert((form.to_owned(), submission), meta);
        }
    }
    let mut first_in_batch: HashMap<(&str, &str), &ResponseRow> = HashMap::new();
    Ok(rows
        .iter()
        .map(|row| {
            let key = (row.form_id.clone(), row.submission_id.clone());
            if let Some(meta) = stored.get(&key) {
                return Some(existing_outcome(meta.clone(), row));
            }
            match first_in_batch.entry((&row.form_id, &row.submission_id)) {
                Entry::Occupied(first) => Some(existing_outcome(meta_of(first.get()), row)),
                Entry::Vacant(slot) => {
                    slot.insert(row);
                    None
                }
            }
        })
        .collect())
}

fn store_one(conn: &mut AnyConnection, row: &ResponseRow) -> Result<Stored, DieselError> {
    if let Some(meta) = responses::find_by_submission(conn, &row.form_id, &row.submission_id)? {
        return Ok(existing_outcome(meta, row));
    }
    conn.transaction(|conn| responses::insert(conn, row))?;
    Ok(Stored::Created(meta_of(row)))
}
