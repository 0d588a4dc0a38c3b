-- Each form version as it was loaded, so old responses stay interpretable.
CREATE TABLE form_versions (
    form_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    hash TEXT NOT NULL,
    definition TEXT NOT NULL,
    loaded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (form_id, version)
);

-- One row per response. `sex` and `by_1..by_4` (the form's `disaggregation.by`, in
-- order) are columns so breakdowns can filter and group without reading answers.
-- `analysis` holds one little-endian f64 per analysis slot of the form version
-- (choice index, selection bit set, number, or days since 1970; NaN = no value):
-- indicators read it without parsing JSON. `answers` is the canonical JSON record.
CREATE TABLE responses (
    id TEXT PRIMARY KEY NOT NULL,
    form_id TEXT NOT NULL,
    form_version INTEGER NOT NULL,
    submission_id TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL,
    answers_hash TEXT NOT NULL,
    sex TEXT,
    by_1 TEXT,
    by_2 TEXT,
    by_3 TEXT,
    by_4 TEXT,
    weight DOUBLE PRECISION,
    answers TEXT NOT NULL,
    analysis BYTEA NOT NULL,
    FOREIGN KEY (form_id, form_version) REFERENCES form_versions (form_id, version)
);

CREATE UNIQUE INDEX responses_submission ON responses (form_id, submission_id);
CREATE INDEX responses_form_received ON responses (form_id, received_at);
