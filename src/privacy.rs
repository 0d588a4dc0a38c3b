//! Residents' data leaves when it should: purging a form's responses before a date,
//! deleting one response for a data-subject request, and each form's retention period.
//! Indicators read the stored responses, so they reflect every deletion at once.
//! Every deletion is written to the audit log (who, what, how many — never answers).

use crate::auth;
use crate::db::{responses, AnyConnection, Database, DbError};
use crate::form::FormRegistry;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use std::sync::Arc;

/// Deletes `form`'s responses received before `before`; returns how many.
pub fn purge_before(
    conn: &mut AnyConnection,
    form: &str,
    before: NaiveDateTime,
    actor: &str,
) -> Result<usize, DbError> {
    crate::db::write_transaction(conn, |conn| {
        let deleted = responses::delete_received_before(conn, form, before)?;
        auth::audit(
            conn,
            actor,
            "purge",
            Some(form),
            &format!("{deleted} responses received before {before} UTC"),
        )?;
        Ok(deleted)
    })
}

/// Deletes one response (by response id or submission id); false when there is none.
pub fn delete_response(
    conn: &mut AnyConnection,
    form: &str,
    id: &str,
    actor: &str,
) -> Result<bool, DbError> {
    crate::db::write_transaction(conn, |conn| {
        let deleted = responses::delete_one(conn, form, id)? > 0;
        if deleted {
            auth::audit(conn, actor, "delete response", Some(form), id)?;
        }
        Ok(deleted)
    })
}

/// Applies every form's `retention_days` at `now`; returns (form, deleted) where any were.
pub fn apply_retention(
    conn: &mut AnyConnection,
    forms: &FormRegistry,
    now: DateTime<Utc>,
) -> Result<Vec<(String, usize)>, DbError> {
    let mut purged = Vec::new();
    for form in forms.all() {
        let Some(days) = form.retention_days else {
            continue;
        };
        let before = (now - Duration::days(i64::from(days))).naive_utc();
        let deleted = purge_before(conn, &form.id, before, "retention")?;
        if deleted > 0 {
            purged.push((form.id.clone(), deleted));
        }
    }
    Ok(purged)
}

/// How often the server applies retention periods.
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Applies retention periods now and then hourly, inside `genderlens serve`.
pub fn spawn_retention(db: Database, forms: Arc<FormRegistry>) {
    if forms.all().all(|f| f.retention_days.is_none()) {
        return;
    }
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(RETENTION_EVERY);
        loop {
            tick.tick().await;
            let forms = forms.clone();
            let outcome = db
                .run(move |conn| apply_retention(conn, &forms, Utc::now()))
                .await;
            match outcome {
                Ok(purged) => {
                    for (form, deleted) in purged {
                        tracing::info!(%form, deleted, "retention period applied");
                    }
                }
                Err(err) => tracing::warn!(error = %err, "applying retention periods failed"),
            }
        }
    });
}
