//! diesel schema, portable across SQLite and PostgreSQL (see `migrations/`).

diesel::table! {
    form_versions (form_id, version) {
        form_id -> Text,
        version -> Integer,
        hash -> Text,
        definition -> Text,
        loaded_at -> Timestamp,
    }
}

diesel::table! {
    responses (id) {
        id -> Text,
        form_id -> Text,
        form_version -> Integer,
        submission_id -> Text,
        received_at -> Timestamp,
        answers_hash -> Text,
        sex -> Nullable<Text>,
        by_1 -> Nullable<Text>,
        by_2 -> Nullable<Text>,
        by_3 -> Nullable<Text>,
        by_4 -> Nullable<Text>,
        weight -> Nullable<Double>,
        answers -> Text,
        analysis -> Binary,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        role -> Text,
        password_hash -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    grants (user_id, form_id) {
        user_id -> Text,
        form_id -> Text,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        user_id -> Text,
        prefix -> Text,
        secret_hash -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Text,
        at -> Timestamp,
        actor -> Text,
        action -> Text,
        form_id -> Nullable<Text>,
        detail -> Text,
    }
}

diesel::joinable!(grants -> users (user_id));
diesel::joinable!(api_tokens -> users (user_id));

diesel::table! {
    outbox (id) {
        id -> Text,
        dedupe_key -> Text,
        kind -> Text,
        form_id -> Text,
        recipient -> Text,
        payload -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        locked_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        claim_token -> Nullable<Text>,
    }
}

diesel::table! {
    mail_optouts (email, form_id) {
        email -> Text,
        form_id -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    form_versions,
    responses,
    users,
    grants,
    api_tokens,
    audit_log,
    outbox,
    mail_optouts
);
