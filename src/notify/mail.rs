//! Sending through lettre: SMTP per `GENDERLENS_SMTP_URL` (`smtp://` STARTTLS, `smtps://`
//! TLS, `?tls=none` plain, with timeouts), or `.eml` files under `data/mail/` when no SMTP
//! is configured; and the wording of each message, plain text plus HTML.

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum MailError {
    #[error("invalid SMTP URL: {0}")]
    Url(String),
    #[error("invalid address `{0}`")]
    Address(String),
    #[error("building the message failed: {0}")]
    Build(String),
    /// The server refused for good (5xx): retrying will not help.
    #[error("the mail server refused the message: {0}")]
    Permanent(String),
    #[error("sending failed: {0}")]
    Transient(String),
}

pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
}

/// The contract's URL forms to lettre's: plain `smtp://` means STARTTLS here, and
/// `?tls=none` means no TLS (lettre's plain `smtp://`).
fn lettre_url(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    let tls = params
        .iter()
        .find_map(|p| p.strip_prefix("tls="))
        .map(str::to_owned);
    params.retain(|p| !p.starts_with("tls="));
    if base.starts_with("smtp://") {
        match tls.as_deref() {
            Some("none") => {}
            Some(mode) => params.push(if mode == "opportunistic" {
                "tls=opportunistic"
            } else {
                "tls=required"
            }),
            None => params.push("tls=required"),
        }
    }
    if params.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", params.join("&"))
    }
}

impl Mailer {
    /// `timeout` bounds each SMTP step; keep it well inside the claim lease, so that a
    /// send always ends before another instance may take the message over.
    pub fn new(
        smtp_url: Option<&str>,
        data_dir: &Path,
        timeout: Duration,
    ) -> Result<Mailer, MailError> {
        match smtp_url {
            Some(url) => AsyncSmtpTransport::<Tokio1Executor>::from_url(&lettre_url(url))
                .map(|b| Mailer::Smtp(b.timeout(Some(timeout)).build()))
                .map_err(|e| MailError::Url(e.to_string())),
            None => {
                let dir = data_dir.join("mail");
                std::fs::create_dir_all(&dir).map_err(|e| MailError::Transient(e.to_string()))?;
                Ok(Mailer::File(AsyncFileTransport::new(dir)))
            }
        }
    }

    pub async fn send(&self, message: Message) -> Result<(), MailError> {
        match self {
            Mailer::Smtp(smtp) => smtp.send(message).await.map(|_| ()).map_err(|e| {
                // A refused connection is neither transient nor permanent in lettre's
                // terms: retry everything but a definite 5xx.
                if e.is_permanent() {
                    MailError::Permanent(e.to_string())
                } else {
                    MailError::Transient(e.to_string())
                }
            }),
            Mailer::File(file) => file
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| MailError::Transient(e.to_string())),
        }
    }
}

/// A piece of a message's body.
pub enum Block {
    Paragraph(String),
    /// Lines shown as a list (gaps, counts).
    List(Vec<String>),
}

/// A message's words: subject, body, links.
pub struct Letter {
    pub subject: String,
    /// The language it is written in (`Content-Language`, `<html lang>`).
    pub language: String,
    pub body: Vec<Block>,
    pub links: Vec<(String, String)>,
    /// The opt-out link (`List-Unsubscribe`, one-click per RFC 8058).
    pub unsubscribe: String,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Letter {
    fn text(&self) -> String {
        let mut out = self
            .body
            .iter()
            .map(|block| match block {
                Block::Paragraph(p) => p.clone(),
                Block::List(items) => items
                    .iter()
                    .map(|i| format!("- {i}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        for (label, href) in &self.links {
            out.push_str(&format!("\n\n{label}: {href}"));
        }
        out.push('\n');
        out
    }

    fn html(&self) -> String {
        let mut out = format!(
            "<!doctype html><html lang=\"{}\"><body style=\"font-family:sans-serif;line-height:1.5\">",
            escape(&self.language)
        );
        for block in &self.body {
            match block {
                Block::Paragraph(p) => out.push_str(&format!("<p>{}</p>", escape(p))),
                Block::List(items) => {
                    out.push_str("<ul>");
                    for i in items {
                        out.push_str(&format!("<li>{}</li>", escape(i)));
                    }
                    out.push_str("</ul>");
                }
            }
        }
        for (label, href) in &self.links {
            out.push_str(&format!(
                "<p><a href=\"{}\">{}</a></p>",
                escape(href),
                escape(label)
            ));
        }
        out.push_str("</body></html>");
        out
    }

    /// A multipart (plain text + HTML) message with `Message-ID` and `Date`.
    pub fn build(&self, from: &str, to: &str) -> Result<Message, MailError> {
        let from: Mailbox = from
            .parse()
            .map_err(|_| MailError::Address(from.to_owned()))?;
        let to: Mailbox = to.parse().map_err(|_| MailError::Address(to.to_owned()))?;
        let mut message = Message::builder()
            .from(from)
            .to(to)
            .subject(&self.subject)
            .date_now()
            .message_id(None)
            .multipart(MultiPart::alternative_plain_html(self.text(), self.html()))
            .map_err(|e| MailError::Build(e.to_string()))?;
        let mut header = |name: &'static str, value: String| {
            let name = HeaderName::new_from_ascii_str(name);
            message
                .headers_mut()
                .insert_raw(HeaderValue::new(name, value));
        };
        header("Content-Language", self.language.clone());
        header("List-Unsubscribe", format!("<{}>", self.unsubscribe));
        // Mail providers then POST to the link themselves; a GET only shows a page.
        header(
            "List-Unsubscribe-Post",
            "List-Unsubscribe=One-Click".to_owned(),
        );
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_urls_map_to_lettre_urls() {
        assert_eq!(
            lettre_url("smtp://u:p@host:587"),
            "smtp://u:p@host:587?tls=required"
        );
        assert_eq!(
            lettre_url("smtp://127.0.0.1:2525?tls=none"),
            "smtp://127.0.0.1:2525"
        );
        assert_eq!(lettre_url("smtps://host"), "smtps://host");
    }

    #[test]
    fn letters_have_both_parts_and_escape_html() {
        let letter = Letter {
            subject: "S".into(),
            language: "kk".into(),
            body: vec![
                Block::Paragraph("<b>x</b>".into()),
                Block::List(vec!["a".into()]),
            ],
            links: vec![("Dashboard".into(), "http://h/d".into())],
            unsubscribe: "http://h/u".into(),
        };
        let raw = String::from_utf8(
            letter
                .build("a@example.org", "b@example.org")
                .expect("build")
                .formatted(),
        )
        .expect("utf8");
        assert!(raw.contains("text/plain") && raw.contains("text/html"));
        assert!(raw.contains("&lt;b&gt;x&lt;/b&gt;"));
        assert!(raw.contains("List-Unsubscribe: <http://h/u>"));
        assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(raw.contains("Message-ID:"));
        assert!(raw.contains("Content-Language: kk"));
    }
}
