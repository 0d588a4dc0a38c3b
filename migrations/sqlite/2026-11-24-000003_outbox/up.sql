-- Notifications to survey owners, written in the same transaction as the event that
-- causes them and sent by a worker. `dedupe_key` makes each notification happen once
-- (a milestone per form, a closing report per form version, a digest per window).
-- `locked_until` is the lease of the instance sending it, so several instances sharing
-- one PostgreSQL database never send the same message twice.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY NOT NULL,
    dedupe_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    form_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    locked_until TIMESTAMP,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
CREATE UNIQUE INDEX outbox_dedupe ON outbox (dedupe_key);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

-- Owners who stopped a form's summaries (the List-Unsubscribe link).
CREATE TABLE mail_optouts (
    email TEXT NOT NULL,
    form_id TEXT NOT NULL,
    PRIMARY KEY (email, form_id)
);
