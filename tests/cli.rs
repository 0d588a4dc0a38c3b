//! The binary's command line: `forms check`, `migrate`, users, imports, `mail`, and refusing to serve broken forms.

use std::path::PathBuf;
use std::process::Command;

fn genderlens() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_genderlens"));
    // Keep a developer's own configuration out of the tests.
    cmd.env_remove("GENDERLENS_DATABASE_URL")
        .env("GENDERLENS_CONFIG", "/nonexistent/genderlens.toml");
    cmd
}

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn forms_check_reports_every_problem_with_file_line_and_question() {
    let out = genderlens()
        .args(["forms", "check"])
        .arg(repo("tests/fixtures/broken-forms"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let file = repo("tests/fixtures/broken-forms/broken.yaml");
    let file = file.display();
    for expected in [
        format!("{file}:11: error: question `age`: min 100 is greater than max 10"),
        format!("{file}:16: error: question `band`: `calculation` does not parse"),
        format!("{file}:19: error: question `comments`: a `by` dimension must be a select_one"),
        format!("{file}:11: warning: question `age`: the label has no `ru` translation"),
    ] {
        assert!(
            stdout.contains(&expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    let more = repo("tests/fixtures/broken-forms/more-broken.yaml");
    let more = more.display();
    for expected in [
        format!("{more}:11: error: question `district`: this id is used by more than one question"),
        format!("{more}:11: error: question `district`: choice list `districts` does not exist"),
        format!("{more}:14: error: question `later`: `relevant` refers to unknown question ${{nowhere}}"),
        format!("{more}:10: error: question `sex`: the female and male values must differ"),
        format!("{more}:13: error: question `note_text`: the weight must be a numeric question or calculate"),
    ] {
        assert!(
            stdout.contains(&expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(stdout.contains("0 form(s) loaded"), "{stdout}");
}

#[test]
fn shipped_example_forms_pass_the_check() {
    let out = genderlens()
        .args(["forms", "check"])
        .arg(repo("forms"))
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("2 form(s) loaded, 0 error(s), 0 warning(s)"),
        "{stdout}"
    );
}

#[test]
fn server_refuses_to_start_on_a_broken_form_and_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = genderlens()
        .env("GENDERLENS_FORMS_DIR", repo("tests/fixtures/broken-forms"))
        .env("GENDERLENS_DATA_DIR", dir.path())
        .env(
            "GENDERLENS_DATABASE_URL",
            format!("sqlite://{}/db.sqlite", dir.path().display()),
        )
        .env("GENDERLENS_BIND", "127.0.0.1:0")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("min 100 is greater than max 10"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("db.sqlite").exists(),
        "nothing is created for a broken form"
    );
}

#[test]
fn migrate_creates_the_schema_and_is_repeatable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/sub/db.sqlite", dir.path().display());
    for _ in 0..2 {
        let out = genderlens()
            .arg("migrate")
            .env("GENDERLENS_DATABASE_URL", &url)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(dir.path().join("sub/db.sqlite").exists());
    let out = genderlens()
        .arg("migrate")
        .env("GENDERLENS_DATABASE_URL", "mysql://localhost/x")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL"));
}

#[test]
fn users_tokens_and_revocation_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let run = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut child = genderlens()
            .args(args)
            .env("GENDERLENS_DATABASE_URL", &url)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run");
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("write");
        }
        let out = child.wait_with_output().expect("output");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(
        &[
            "user",
            "add",
            "Planner@Example.org",
            "--role",
            "planner",
            "--grant",
            "test-survey",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    assert!(ok, "{err}");
    let token = out
        .lines()
        .find(|l| l.starts_with("gl_"))
        .expect("a token is printed")
        .to_owned();
    let prefix = token.split('_').nth(1).expect("prefix").to_owned();
    let (_, list, _) = run(&["user", "token", "list", "planner@example.org"], None);
    assert!(list.contains(&prefix) && list.contains("live"), "{list}");
    assert!(!list.contains(&token), "tokens are never shown again");
    let signs_in = |token: &str| {
        let db = genderlens::db::Database::connect(&url, Default::default(), 1).expect("db");
        let account = genderlens::auth::authenticate_token(&mut db.get().expect("conn"), token);
        account.expect("lookup").is_some()
    };
    assert!(signs_in(&token), "the printed token works");
    let (ok, _, _) = run(&["user", "token", "revoke", &prefix], None);
    assert!(ok);
    assert!(!signs_in(&token), "a revoked token no longer does");
    let (_, list, _) = run(&["user", "token", "list", "planner@example.org"], None);
    assert!(list.contains("revoked"), "{list}");
    let (ok, _, err) = run(&["user", "token", "revoke", &prefix], None);
    assert!(!ok && err.contains("no live token"), "{err}");
    let (ok, _, err) = run(
        &["user", "add", "planner@example.org", "--role", "planner"],
        None,
    );
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = run(&["user", "add", "x@example.org", "--role", "boss"], None);
    assert!(!ok && err.contains("role"), "{err}");
    let (ok, _, err) = run(
        &[
            "user",
            "add",
            "y@example.org",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert!(!ok && err.contains("10 characters"), "{err}");
}

/// `genderlens import test-survey CSV EXTRA…`: its exit code and standard output.
fn import_csv(url: &str, csv: &std::path::Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = genderlens()
        .args(["import", "test-survey"])
        .arg(csv)
        .args(extra)
        .env("GENDERLENS_DATABASE_URL", url)
        .env("GENDERLENS_FORMS_DIR", repo("tests/fixtures/forms"))
        .output()
        .expect("run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn paper_surveys_import_all_or_nothing_with_line_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let csv = dir.path().join("paper.csv");
    std::fs::write(
        &csv,
        "submission_id,sex,age,district,has_children,services_used/health,services_used/social\n\
         6f1c7a4e-0d55-4f59-9f3c-1b2a3c4d5e6f,female,40,podilskyi,no,1,0\n\
         ,male,7,podilskyi,no,0,1\n",
    )
    .expect("write");
    let import = |extra: &[&str]| import_csv(&url, &csv, extra);
    let (code, out) = import(&[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("paper.csv:3: question `age`"), "{out}");
    assert!(out.contains("0 stored"), "{out}");
    let (code, out) = import(&["--skip-invalid"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 stored"), "{out}");
    let (_, out) = import(&["--skip-invalid"]);
    assert!(out.contains("0 stored, 1 already present"), "{out}");

    // A data-subject request by submission id, then a purge by date.
    let purge = |args: &[&str]| {
        let out = genderlens()
            .args(["purge", "test-survey"])
            .args(args)
            .env("GENDERLENS_DATABASE_URL", &url)
            .env("GENDERLENS_FORMS_DIR", repo("tests/fixtures/forms"))
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, out) = purge(&["--before", "yesterday"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("neither YYYY-MM-DD nor an RFC 3339 time"),
        "{out}"
    );
    let (code, out) = purge(&["--before", "2000-01-01"]);
    assert_eq!(
        (code, out.trim()),
        (
            Some(0),
            "0 responses received before 2000-01-01 00:00:00 UTC deleted"
        )
    );
    let (code, out) = purge(&["--response", "6f1c7a4e-0d55-4f59-9f3c-1b2a3c4d5e6f"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = purge(&["--response", "6f1c7a4e-0d55-4f59-9f3c-1b2a3c4d5e6f"]);
    assert_eq!(code, Some(1), "deleted already: {out}");
    let (_, out) = import(&["--skip-invalid"]);
    assert!(
        out.contains("1 stored"),
        "stored anew after deletion: {out}"
    );
    let (code, out) = purge(&["--before", "2999-01-01T00:00:00Z"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 responses received before"), "{out}");
}

#[test]
fn imports_refuse_unknown_columns_ragged_lines_and_reused_submission_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let import = |name: &str, body: &str, extra: &[&str]| {
        let csv = dir.path().join(name);
        std::fs::write(&csv, body).expect("write");
        import_csv(&url, &csv, extra)
    };
    let id = "6f1c7a4e-0d55-4f59-9f3c-1b2a3c4d5e6f";
    // A misspelt column would drop that answer from every row: the file is refused.
    let (code, out) = import(
        "typo.csv",
        "sex,agee,district,has_children\nfemale,40,podilskyi,no\n",
        &["--skip-invalid"],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("typo.csv:1: column `agee` is not a question"),
        "{out}"
    );
    assert!(out.contains("0 stored"), "{out}");
    // Exported metadata and calculated columns are read back and ignored.
    let (code, out) = import(
        "first.csv",
        &format!(
            "id,submission_id,form_version,received_at,sex,age,age_group,district,has_children\n\
                  x,{id},1,2026-01-01,female,40,older,podilskyi,no\n"
        ),
        &[],
    );
    assert_eq!((code, out.contains("1 stored")), (Some(0), true), "{out}");
    // A ragged line is that line's problem; a reused submission id with other answers is
    // a rejection, like the API's 409; either keeps the other rows out unless skipped.
    let mixed = format!(
        "submission_id,sex,age,district,has_children\n\
         ,male,50,podilskyi,no\n\
         ,female,30,podilskyi\n\
         {id},female,41,podilskyi,no\n"
    );
    let (code, out) = import("mixed.csv", &mixed, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("mixed.csv:3: 4 cells where the header has 5"),
        "{out}"
    );
    assert!(out.contains("0 stored"), "{out}");
    let (code, out) = import("mixed.csv", &mixed, &["--skip-invalid"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("mixed.csv:4: submission_id was stored before with other answers"),
        "{out}"
    );
    assert!(out.contains("1 stored"), "{out}");
    // All or nothing also when the only problem is found while storing.
    let (code, out) = import(
        "conflict.csv",
        &format!("submission_id,sex,age,district,has_children\n,male,60,podilskyi,no\n{id},female,42,podilskyi,no\n"),
        &[],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("conflict.csv:3: submission_id"), "{out}");
    assert!(out.contains("0 stored"), "{out}");
    let count = genderlens()
        .args(["export", "test-survey", "--format", "csv"])
        .env("GENDERLENS_DATABASE_URL", &url)
        .env("GENDERLENS_FORMS_DIR", repo("tests/fixtures/forms"))
        .output()
        .expect("export");
    let lines = String::from_utf8_lossy(&count.stdout).lines().count();
    assert_eq!(lines, 3, "a header and the two stored rows");
}

#[test]
fn exports_keep_answers_to_questions_a_later_version_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let forms = dir.path().join("forms");
    std::fs::create_dir(&forms).expect("forms dir");
    let survey =
        std::fs::read_to_string(repo("tests/fixtures/forms/survey.yaml")).expect("fixture");
    // Version 1 asks for a postcode too; version 2 drops that question.
    let v1 = survey.replace(
        "  - { id: comments,",
        "  - { id: postcode, type: text, label: { en: Postcode, uk: Індекс } }\n  - { id: comments,",
    );
    assert_ne!(v1, survey);
    let v2 = survey.replace("version: 1", "version: 2");
    let use_version = |text: &str| std::fs::write(forms.join("survey.yaml"), text).expect("form");
    let run = |db: &str, args: &[&str]| {
        let out = genderlens()
            .args(args)
            .env(
                "GENDERLENS_DATABASE_URL",
                format!("sqlite://{}/{db}", dir.path().display()),
            )
            .env("GENDERLENS_FORMS_DIR", &forms)
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    use_version(&v1);
    std::fs::write(
        path("paper.csv"),
        "sex,age,district,has_children,postcode\nfemale,40,podilskyi,no,01001\n",
    )
    .expect("csv");
    let (code, out, err) = run("a.db", &["import", "test-survey", &path("paper.csv")]);
    assert_eq!(code, Some(0), "{out}{err}");

    use_version(&v2);
    let (code, _, err) = run("a.db", &["export", "test-survey", "-o", &path("all.csv")]);
    assert_eq!(code, Some(0), "{err}");
    let text = std::fs::read_to_string(path("all.csv")).expect("export");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().expect("headers").clone();
    let row = reader.records().next().expect("a row").expect("row");
    let postcode = headers
        .iter()
        .position(|h| h == "postcode")
        .expect("postcode column kept");
    assert_eq!(&row[postcode], "01001");
    let dictionary = std::fs::read_to_string(path("all.dictionary.csv")).expect("dictionary");
    assert!(
        dictionary.contains("not in version 2; last in version 1"),
        "{dictionary}"
    );

    // XLSX: the code stays text, with its leading zero; the age is a number.
    let xlsx = path("all.xlsx");
    let (code, _, err) = run(
        "a.db",
        &["export", "test-survey", "--format", "xlsx", "-o", &xlsx],
    );
    assert_eq!(code, Some(0), "{err}");
    use calamine::Reader;
    let mut workbook: calamine::Xlsx<_> = calamine::open_workbook(&xlsx).expect("workbook");
    let sheet = workbook.worksheet_range("responses").expect("responses");
    let header: Vec<String> = sheet
        .rows()
        .next()
        .expect("header")
        .iter()
        .map(|c| c.to_string())
        .collect();
    let cell = |name: &str| {
        let column = header.iter().position(|h| h == name).expect(name);
        sheet.get((1, column)).cloned()
    };
    assert_eq!(
        cell("postcode"),
        Some(calamine::Data::String("01001".into()))
    );
    assert_eq!(cell("age"), Some(calamine::Data::Float(40.0)));

    // Imported elsewhere, where version 1 was seen too, the retired column is read past
    // with a note. (Into the same database it would be a conflict: that submission id
    // without the postcode is other answers.)
    use_version(&v1);
    std::fs::write(path("empty.csv"), "sex,age\n").expect("csv");
    let (code, out, err) = run("b.db", &["import", "test-survey", &path("empty.csv")]);
    assert_eq!(code, Some(0), "version 1 recorded there: {out}{err}");
    use_version(&v2);
    let (code, out, err) = run("b.db", &["import", "test-survey", &path("all.csv")]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("1 stored"), "{out}");
    assert!(
        err.contains("column `postcode` is from an earlier version"),
        "{err}"
    );
}

/// Runs `genderlens mail ARGS` with its database and data in `data`, forms from `forms`
/// and `env` on top: (success, stdout, stderr).
fn mail(
    data: &std::path::Path,
    forms: &std::path::Path,
    env: &[(&str, String)],
    args: &[&str],
) -> (bool, String, String) {
    let out = genderlens()
        .arg("mail")
        .args(args)
        .env("GENDERLENS_DATABASE_URL", db_url(data))
        .env("GENDERLENS_DATA_DIR", data)
        .env("GENDERLENS_FORMS_DIR", forms)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Like `mail`, which must succeed; its stdout.
fn mail_ok(
    data: &std::path::Path,
    forms: &std::path::Path,
    env: &[(&str, String)],
    args: &[&str],
) -> String {
    let (ok, out, err) = mail(data, forms, env, args);
    assert!(ok, "{args:?}: {err}");
    out
}

fn db_url(data: &std::path::Path) -> String {
    format!("sqlite://{}/db.sqlite", data.display())
}

fn opted_out(url: &str, email: &str, form: &str) -> bool {
    let db = genderlens::db::Database::connect(url, Default::default(), 1).expect("db");
    genderlens::db::outbox::opted_out(&mut db.get().expect("conn"), email, form).expect("query")
}

#[test]
fn mail_opt_out_and_opt_in_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = db_url(dir.path());
    let forms = repo("tests/fixtures/forms");
    let run = |args: &[&str]| mail(dir.path(), &forms, &[], args);
    let (ok, out, err) = run(&["opt-out", "Owner@Example.org", "--form", "test-survey"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(
            "no more mail about `test-survey`: no digests, milestone messages or closing reports"
        ),
        "{out}"
    );
    assert!(opted_out(&url, "owner@example.org", "test-survey"));
    assert!(!opted_out(&url, "owner@example.org", "closed-survey"));
    let (ok, _, err) = run(&["opt-out", "owner@example.org", "--form", "nope"]);
    assert!(!ok && err.contains("no form `nope`"), "{err}");

    let (ok, out, _) = run(&["opt-out", "owner@example.org"]);
    assert!(ok && out.contains("about any survey"), "{out}");
    assert!(opted_out(&url, "owner@example.org", "closed-survey"));
    // One form cannot be resumed under an opt-out of every form: it says so.
    let (ok, _, err) = run(&["opt-in", "owner@example.org", "--form", "closed-survey"]);
    assert!(!ok && err.contains("opted out of every survey"), "{err}");
    let (ok, out, err) = run(&["opt-in", "owner@example.org"]);
    assert!(
        ok && out.contains("gets mail about any survey again"),
        "{out}{err}"
    );
    assert!(!opted_out(&url, "owner@example.org", "test-survey"));
    assert!(!opted_out(&url, "owner@example.org", "closed-survey"));
}

/// A closed form with owners o01…o08, beside the fixture forms.
fn forms_with_crowd(dir: &std::path::Path) -> PathBuf {
    let forms = dir.join("forms");
    std::fs::create_dir_all(&forms).expect("forms dir");
    for entry in std::fs::read_dir(repo("tests/fixtures/forms")).expect("fixtures") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, forms.join(path.file_name().expect("name"))).expect("copy");
    }
    let owners: Vec<String> = (1..=8).map(|i| format!("o{i:02}@example.org")).collect();
    let crowd = format!(
        "id: crowd-survey\nversion: 1\ntitle: {{ en: Crowd }}\nlanguages: [en]\nstatus: closed\n\
         owners: [{}]\ndisaggregation:\n  sex: {{ question: sex, female: f, male: m }}\n\
         questions:\n  - {{ id: sex, type: select_one, choices: sex, label: {{ en: Sex }} }}\n\
         choices:\n  sex: [ {{ value: f, label: {{ en: F }} }}, {{ value: m, label: {{ en: M }} }} ]\n",
        owners.join(", ")
    );
    std::fs::write(forms.join("crowd.yaml"), crowd).expect("write");
    forms
}

/// `mail send-pending` for cron: the closing reports of both closed forms are due; seven
/// of the nine owners opted out, so the first batch of five sends nothing — and it goes
/// on to send the other two, as `.eml` files when no SMTP is configured.
#[test]
fn send_pending_skips_opted_out_owners_and_sends_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = db_url(dir.path());
    let forms = forms_with_crowd(dir.path());
    let run = |args: &[&str]| mail_ok(dir.path(), &forms, &[], args);
    run(&["opt-out", "owner@example.org"]);
    for i in 1..=6 {
        run(&[
            "opt-out",
            &format!("o{i:02}@example.org"),
            "--form",
            "crowd-survey",
        ]);
    }
    let out = run(&["send-pending"]);
    assert!(out.contains("2 message(s) sent"), "{out}");
    let mut written: Vec<String> = std::fs::read_dir(dir.path().join("mail"))
        .expect("data/mail")
        .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("read"))
        .collect();
    written.sort();
    assert_eq!(written.len(), 2);
    for (mail, to) in written.iter().zip(["o07@example.org", "o08@example.org"]) {
        assert!(mail.contains(&format!("To: {to}")), "{mail}");
    }
    let db = genderlens::db::Database::connect(&url, Default::default(), 1).expect("db");
    let skipped = genderlens::db::outbox::with_status(&mut db.get().expect("conn"), "skipped")
        .expect("query");
    assert_eq!(skipped.len(), 7);
    assert!(skipped
        .iter()
        .all(|r| r.last_error.as_deref() == Some("the owner opted out")));
    assert!(
        run(&["send-pending"]).contains("0 message(s) sent"),
        "sent once"
    );
}

/// Sends that keep failing are given up after `GENDERLENS_MAIL_MAX_ATTEMPTS` and listed by
/// `mail failed`.
#[test]
fn mail_failed_lists_messages_after_their_last_attempt() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let env = [
        (
            "GENDERLENS_SMTP_URL",
            format!("smtp://127.0.0.1:{port}?tls=none"),
        ),
        ("GENDERLENS_MAIL_MAX_ATTEMPTS", "3".to_owned()),
        ("GENDERLENS_MAIL_RETRY_SECONDS", "0".to_owned()),
    ];
    let forms = repo("tests/fixtures/forms");
    let run = |args: &[&str]| mail_ok(dir.path(), &forms, &env, args);
    assert_eq!(run(&["failed"]), "", "nothing failed yet");
    // Without a retry delay the three attempts happen in this one run.
    assert!(run(&["send-pending"]).contains("0 message(s) sent"));
    let failed = run(&["failed"]);
    assert_eq!(failed.lines().count(), 1, "{failed}");
    assert!(
        failed.contains("closed-survey closing to owner@example.org after 3 attempts: "),
        "{failed}"
    );
}
