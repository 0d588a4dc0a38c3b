-- Planners and admins. A password is optional: API-only users sign in with tokens.
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (email);

-- Which forms a planner may read; form_id '*' grants every form.
CREATE TABLE grants (
    user_id TEXT NOT NULL REFERENCES users (id),
    form_id TEXT NOT NULL,
    PRIMARY KEY (user_id, form_id)
);

-- API tokens, kept only as a SHA-256 of their secret part; `prefix` identifies one
-- in listings and revocations without revealing it.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    prefix TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE UNIQUE INDEX api_tokens_prefix ON api_tokens (prefix);

-- Who exported or imported what, and when.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY NOT NULL,
    at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    form_id TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
