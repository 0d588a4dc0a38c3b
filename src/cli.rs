//! The command line: `serve` (default), `migrate`, `forms check|import-xlsform|export-xlsform`, …

use crate::config::Settings;
use crate::db::Database;
use crate::form::{self, Form, Severity};
use crate::startup::{self, Application};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(
    name = "genderlens",
    version,
    about = "Gender-responsive needs assessments"
)]
pub struct Cli {
    /// Optional configuration file; `GENDERLENS_*` environment variables override it.
    #[arg(
        long,
        global = true,
        default_value = "genderlens.toml",
        env = "GENDERLENS_CONFIG"
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default); migrations run on start.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the indicators report of a form (what the API gives, without the server).
    Indicators {
        form: String,
        /// A `disaggregation.by` dimension for a sex × dimension breakdown.
        #[arg(long)]
        by: Option<String>,
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
        /// Small-cell threshold: raises GENDERLENS_MIN_CELL, never lowers it.
        #[arg(long)]
        min_cell: Option<u64>,
        #[arg(long, default_value_t = 0.05)]
        alpha: f64,
        /// Use the form's design weight.
        #[arg(long)]
        weighted: bool,
        /// Apply the suppression the public sees (small counts hidden too).
        #[arg(long)]
        public: bool,
    },
    /// Store generated responses to a form, to explore indicators without real data.
    DemoData {
        form: String,
        #[arg(long, default_value_t = 2_000)]
        responses: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Write every response with a data dictionary.
    Export {
        form: String,
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
        /// Output file (CSV: the dictionary goes beside it); standard output for CSV/JSON without it.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// Load responses keyed in from paper (CSV with the export's columns).
    Import {
        form: String,
        file: PathBuf,
        /// Store the valid rows even when others are rejected.
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Delete responses: all received before a date, or one (a data-subject request).
    Purge {
        form: String,
        /// Delete responses received before this date (YYYY-MM-DD means 00:00 UTC, or RFC 3339).
        #[arg(
            long,
            required_unless_present = "response",
            conflicts_with = "response"
        )]
        before: Option<String>,
        /// Delete one response: its id or the submission id it was sent with.
        #[arg(long)]
        response: Option<String>,
    },
    /// Notifications to survey owners.
    Mail {
        #[command(subcommand)]
        command: MailCommand,
    },
    /// Manage planner and admin accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Work with form files.
    Forms {
        #[command(subcommand)]
        command: FormsCommand,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Xlsx,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// Queue what is due and send every pending message once (for cron).
    SendPending,
    /// List messages that failed for good.
    Failed,
    /// Stop all mail to EMAIL (digests, milestones, closing reports): about one form
    /// with --form, else about every form.
    OptOut {
        email: String,
        #[arg(long)]
        form: Option<String>,
    },
    /// Resume mail to EMAIL about one form with --form; without it, undo every opt-out
    /// of EMAIL.
    OptIn {
        email: String,
        #[arg(long)]
        form: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; prints a one-time API token.
    Add {
        email: String,
        #[arg(long)]
        role: String,
        /// Read a web password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// A form id the user may read (`*` for all); repeatable.
        #[arg(long = "grant")]
        grants: Vec<String>,
    },
    /// Let a user read a form (`*` for all).
    Grant { email: String, form: String },
    /// API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create another token for a user; printed once.
    Create { email: String },
    /// List a user's tokens by prefix.
    List { email: String },
    /// Revoke the token with this prefix.
    Revoke { prefix: String },
}

#[derive(Debug, Subcommand)]
pub enum FormsCommand {
    /// Load and check every form file; exit 1 on any error.
    Check {
        /// Directory of form files (default: the configured forms directory).
        dir: Option<PathBuf>,
    },
    /// Convert an XLSForm workbook (.xlsx, .xls) to the native YAML form file.
    ImportXlsform {
        file: PathBuf,
        /// Output file, e.g. forms/ID.yaml (default: standard output).
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// Write a form of the forms directory as an XLSForm workbook.
    ExportXlsform {
        form: String,
        /// Output file (default: ID.xlsx).
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(&cli.config)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Migrate => {
            crate::db::Database::connect(&settings.database_url, settings.sqlite_synchronous, 1)
                .context("migrating the database")?;
            println!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::Indicators {
            form,
            by,
            format,
            min_cell,
            alpha,
            weighted,
            public,
        } => {
            let (form, db) = open_form(&settings, &form)?;
            let query = crate::indicators::Query {
                by,
                min_cell: crate::indicators::min_cell(min_cell, settings.min_cell),
                alpha,
                weighted,
                public,
            };
            let report = crate::indicators::compute(&mut *db.get()?, &form, &query)?;
            let text = match format {
                ReportFormat::Table => crate::indicators::to_table(&report),
                ReportFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
                ReportFormat::Csv => crate::indicators::to_csv(&report)?,
            };
            write_stdout(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::DemoData {
            form,
            responses,
            seed,
        } => {
            let (form, db) = open_form(&settings, &form)?;
            let stored = crate::demo::generate(&mut *db.get()?, &form, responses, seed)?;
            println!("{stored} generated responses stored for {}", form.id);
            Ok(ExitCode::SUCCESS)
        }
        Command::Export {
            form,
            format,
            output,
        } => {
            let (form, db) = open_form(&settings, &form)?;
            let mut conn = db.get()?;
            let count = match (format, &output) {
                (ExportFormat::Xlsx, None) => anyhow::bail!("an XLSX export needs -o FILE.xlsx"),
                (ExportFormat::Xlsx, Some(path)) => {
                    crate::export::write_xlsx(&mut conn, &form, path)?
                }
                (ExportFormat::Json, None) => {
                    crate::export::write_json_lines(&mut conn, &form, std::io::stdout().lock())?
                }
                (ExportFormat::Json, Some(path)) => {
                    crate::export::write_json_lines(&mut conn, &form, std::fs::File::create(path)?)?
                }
                (ExportFormat::Csv, None) => {
                    crate::export::write_csv(&mut conn, &form, std::io::stdout().lock())?
                }
                (ExportFormat::Csv, Some(path)) => {
                    let dictionary = path.with_extension("dictionary.csv");
                    crate::export::write_dictionary_csv(
                        &crate::export::Layout::load(&mut conn, &form)?,
                        std::fs::File::create(&dictionary)?,
                    )?;
                    crate::export::write_csv(&mut conn, &form, std::fs::File::create(path)?)?
                }
            };
            crate::auth::audit(
                &mut conn,
                "cli",
                "export",
                Some(&form.id),
                &format!("{format:?}, {count} responses"),
            )?;
            eprintln!("{count} responses exported");
            Ok(ExitCode::SUCCESS)
        }
        Command::Import {
            form,
            file,
            skip_invalid,
        } => {
            let (form, db) = open_form(&settings, &form)?;
            let mut conn = db.get()?;
            let data = std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            let report = crate::import::import_csv(&mut conn, &form, data, skip_invalid)?;
            for column in &report.retired_columns {
                eprintln!(
                    "{}:1: note: column `{column}` is from an earlier version of the form; its cells are not imported",
                    file.display()
                );
            }
            for r in &report.rejected {
                println!("{}:{}: {}", file.display(), r.line, r.reason);
            }
            let all_or_nothing = report.nothing_stored(skip_invalid);
            println!(
                "{} stored, {} already present, {} rejected{}",
                report.stored,
                report.already_present,
                report.rejected.len(),
                if report.refused {
                    " — the file is refused: fix its header"
                } else if all_or_nothing {
                    " — nothing stored (use --skip-invalid to store the valid rows)"
                } else {
                    ""
                }
            );
            let detail = format!(
                "{} stored, {} rejected from {}",
                report.stored,
                report.rejected.len(),
                file.display()
            );
            crate::auth::audit(&mut conn, "cli", "import", Some(&form.id), &detail)?;
            Ok(if all_or_nothing {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Purge {
            form,
            before,
            response,
        } => {
            let (form, db) = open_form(&settings, &form)?;
            let mut conn = db.get()?;
            match (before, response) {
                (Some(before), _) => {
                    let before = parse_cutoff(&before)?;
                    let deleted = crate::privacy::purge_before(&mut conn, &form.id, before, "cli")?;
                    println!("{deleted} responses received before {before} UTC deleted");
                    Ok(ExitCode::SUCCESS)
                }
                (None, Some(id)) => {
                    if crate::privacy::delete_response(&mut conn, &form.id, &id, "cli")? {
                        println!("response {id} deleted");
                        Ok(ExitCode::SUCCESS)
                    } else {
                        eprintln!("no response {id} in {}", form.id);
                        Ok(ExitCode::FAILURE)
                    }
                }
                (None, None) => anyhow::bail!("give --before DATE or --response ID"),
            }
        }
        Command::Mail {
            command: MailCommand::Failed,
        } => {
            let db = crate::db::Database::connect(
                &settings.database_url,
                settings.sqlite_synchronous,
                1,
            )?;
            let mut out = String::new();
            for row in crate::db::outbox::with_status(&mut *db.get()?, "failed")? {
                out.push_str(&format!(
                    "{} {} {} to {} after {} attempts: {}\n",
                    row.created_at.format("%Y-%m-%d %H:%M"),
                    row.form_id,
                    row.kind,
                    row.recipient,
                    row.attempts,
                    row.last_error.unwrap_or_default()
                ));
            }
            write_stdout(&out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Mail {
            command: MailCommand::OptOut { email, form },
        } => opt_command(&settings, &email, form.as_deref(), false),
        Command::Mail {
            command: MailCommand::OptIn { email, form },
        } => opt_command(&settings, &email, form.as_deref(), true),
        Command::Mail {
            command: MailCommand::SendPending,
        } => {
            // Built inside the runtime, as `serve` does: the SMTP transport needs one.
            let sent = actix_web::rt::System::new().block_on(async move {
                let app = Application::build(Settings {
                    bind: "127.0.0.1:0".into(),
                    ..settings
                })?;
                anyhow::Ok(app.send_pending().await?)
            })?;
            println!("{sent} message(s) sent");
            Ok(ExitCode::SUCCESS)
        }
        Command::User { command } => {
            let db = crate::db::Database::connect(
                &settings.database_url,
                settings.sqlite_synchronous,
                1,
            )?;
            user_command(&mut *db.get()?, command)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Forms {
            command: FormsCommand::Check { dir },
        } => Ok(check_forms(&dir.unwrap_or(settings.forms_dir))),
        Command::Forms {
            command: FormsCommand::ImportXlsform { file, output },
        } => import_xlsform(&file, output.as_deref()),
        Command::Forms {
            command: FormsCommand::ExportXlsform { form, output },
        } => {
            let forms = startup::load_forms(&settings)?;
            let found = forms
                .get(&form)
                .with_context(|| format!("no form `{form}` in {}", settings.forms_dir.display()))?;
            let output = output.unwrap_or_else(|| PathBuf::from(format!("{form}.xlsx")));
            form::xlsform_export::write_file(&found.source, &output)?;
            eprintln!("{} written", output.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Converts a workbook to YAML. Notices go to standard error; the YAML is written only
/// when the form passes every check, so a refused workbook leaves nothing behind.
fn import_xlsform(
    file: &std::path::Path,
    output: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let (loaded, problems, _) = form::xlsform::load(file);
    for problem in &problems {
        eprintln!("{problem}");
    }
    let Some(loaded) = loaded else {
        eprintln!("{}: not converted", file.display());
        return Ok(ExitCode::FAILURE);
    };
    let source = loaded.source;
    let header = format!(
        "# Converted from {} by `genderlens forms import-xlsform`.\n",
        file.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    let yaml = header + &form::to_yaml(&source)?;
    match output {
        Some(path) => {
            std::fs::write(path, yaml).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("{} written (form `{}`)", path.display(), source.id);
        }
        None => write_stdout(&yaml)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings)?;
        app.run_until_stopped().await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn check_forms(dir: &std::path::Path) -> ExitCode {
    let report = form::load_dir(dir);
    for problem in &report.problems {
        println!("{problem}");
    }
    let errors = report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    let warnings = report.problems.len() - errors;
    println!(
        "{} form(s) loaded, {errors} error(s), {warnings} warning(s)",
        report.forms.len()
    );
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Loads the forms and the database for a command about one form.
fn open_form(settings: &Settings, id: &str) -> anyhow::Result<(Arc<Form>, Database)> {
    let forms = startup::load_forms(settings)?;
    let db = startup::open_database(settings, &forms)?;
    let form = forms
        .get(id)
        .with_context(|| format!("no form `{id}` in {}", settings.forms_dir.display()))?;
    Ok((form, db))
}

/// `mail opt-out` (`opt_in` false) and `mail opt-in`.
fn opt_command(
    settings: &Settings,
    email: &str,
    form: Option<&str>,
    opt_in: bool,
) -> anyhow::Result<ExitCode> {
    use crate::db::outbox::{self, OptOut};
    // A form named must be loaded: a typo would otherwise stop (or resume) nothing.
    let db = match form {
        Some(id) => open_form(settings, id)?.1,
        None => Database::connect(&settings.database_url, settings.sqlite_synchronous, 1)?,
    };
    let mut conn = db.get()?;
    let about = form.map_or("any survey".to_owned(), |f| format!("`{f}`"));
    if !opt_in {
        outbox::opt_out(&mut conn, email, form)?;
        println!("{email} gets no more mail about {about}: no digests, milestone messages or closing reports");
        return Ok(ExitCode::SUCCESS);
    }
    let removed = outbox::opt_in(&mut conn, email, form)?;
    if let Some(f) = form {
        if outbox::opt_out_of(&mut conn, email, f)? == OptOut::EveryForm {
            eprintln!(
                "{email} opted out of every survey, so still gets no mail about `{f}`; \
                 `genderlens mail opt-in {email}` resumes all of it"
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    let note = if removed == 0 {
        " (it had not opted out)"
    } else {
        ""
    };
    println!("{email} gets mail about {about} again{note}");
    Ok(ExitCode::SUCCESS)
}

/// Prints a command's output; a closed pipe (`… | head`) ends quietly.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn user_command(conn: &mut crate::db::AnyConnection, command: UserCommand) -> anyhow::Result<()> {
    use crate::auth;
    match command {
        UserCommand::Add {
            email,
            role,
            password_stdin,
            grants,
        } => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                Some(line.trim_end_matches(['\n', '\r']).to_owned())
            } else {
                None
            };
            let role = auth::Role::parse(&role)?;
            let token = auth::add_user(conn, &email, role, password.as_deref(), &grants)?;
            write_stdout(&format!(
                "created {} {email}\nAPI token (shown once, keep it safe):\n{token}\n",
                role.as_str()
            ))
        }
        UserCommand::Grant { email, form } => {
            let id = auth::user_id(conn, &email)?;
            crate::db::accounts::grant(conn, &id, &form)?;
            write_stdout(&format!("{email} may read {form}\n"))
        }
        UserCommand::Token {
            command: TokenCommand::Create { email },
        } => {
            let id = auth::user_id(conn, &email)?;
            write_stdout(&format!("{}\n", auth::create_token(conn, &id)?))
        }
        UserCommand::Token {
            command: TokenCommand::List { email },
        } => {
            let id = auth::user_id(conn, &email)?;
            let mut out = String::from("prefix    created                  status\n");
            for t in crate::db::accounts::tokens_of(conn, &id)? {
                let status = t
                    .revoked_at
                    .map_or("live".to_owned(), |r| format!("revoked {r}"));
                out.push_str(&format!(
                    "{:<9} {:<24} {status}\n",
                    t.prefix,
                    t.created_at.format("%Y-%m-%d %H:%M:%S")
                ));
            }
            write_stdout(&out)
        }
        UserCommand::Token {
            command: TokenCommand::Revoke { prefix },
        } => {
            let now = chrono::Utc::now().naive_utc();
            if !crate::db::accounts::revoke_token(conn, &prefix, now)? {
                anyhow::bail!(auth::AuthError::NoSuchToken(prefix));
            }
            write_stdout(&format!("revoked {prefix}\n"))
        }
    }
}

/// `YYYY-MM-DD` (midnight UTC) or an RFC 3339 timestamp, as a UTC time.
fn parse_cutoff(text: &str) -> anyhow::Result<chrono::NaiveDateTime> {
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_time(chrono::NaiveTime::MIN));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.naive_utc())
        .with_context(|| format!("`{text}` is neither YYYY-MM-DD nor an RFC 3339 time"))
}
