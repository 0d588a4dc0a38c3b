//! Per-IP rate limiting of submissions (per instance: each server counts on its own).
//! Residents get a friendly page in every interface language; API clients get JSON.

use super::i18n::{Catalog, UI_LANGUAGES};
use actix_governor::governor::clock::{Clock, DefaultClock, QuantaInstant};
use actix_governor::governor::NotUntil;
use actix_governor::{KeyExtractor, SimpleKeyExtractionError};
use actix_web::dev::ServiceRequest;
use actix_web::{HttpResponse, HttpResponseBuilder};
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Clone)]
pub struct PeerIp {
    /// `Some`: answer with an HTML page in these words; `None`: with the JSON error body.
    pub page: Option<Arc<Catalog>>,
    /// Behind a reverse proxy every request comes from the proxy: count by the address it
    /// appended to `X-Forwarded-For` instead (the last one; earlier ones the client wrote).
    pub trust_forwarded_for: bool,
}

/// The address a trusted proxy appended: the last entry of the last `X-Forwarded-For`.
fn forwarded_for(req: &ServiceRequest) -> Option<IpAddr> {
    let header = req.headers().get_all("x-forwarded-for").last()?;
    header
        .to_str()
        .ok()?
        .rsplit(',')
        .next()?
        .trim()
        .parse()
        .ok()
}

impl KeyExtractor for PeerIp {
    type Key = IpAddr;
    type KeyExtractionError = SimpleKeyExtractionError<&'static str>;

    fn extract(&self, req: &ServiceRequest) -> Result<IpAddr, Self::KeyExtractionError> {
        let forwarded = self
            .trust_forwarded_for
            .then(|| forwarded_for(req))
            .flatten();
        forwarded
            .or_else(|| req.peer_addr().map(|a| a.ip()))
            .ok_or_else(|| SimpleKeyExtractionError::new("cannot tell the client's address"))
    }

    fn exceed_rate_limit_response(
        &self,
        negative: &NotUntil<QuantaInstant>,
        mut response: HttpResponseBuilder,
    ) -> HttpResponse {
        let wait = negative
            .wait_time_from(DefaultClock::default().now())
            .as_secs()
            .max(1);
        response.insert_header(("retry-after", wait.to_string()));
        match &self.page {
            None => response.json(serde_json::json!({
                "error": "rate_limited",
                "message": format!("too many submissions from this address; try again in {wait} s"),
            })),
            Some(catalog) => {
                // The visitor's language is not known here, so the page says it in each.
                let mut body = String::from(
                    "<!doctype html><html lang=\"uk\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>429</title><link rel=\"stylesheet\" href=\"/static/app.css\"></head><body><main>",
                );
                for lang in UI_LANGUAGES {
                    body.push_str(&format!(
                        "<section lang=\"{lang}\"><h1>{}</h1><p>{}</p></section>",
                        catalog.text(lang, "too-many-title", &[]),
                        catalog.text(lang, "too-many-body", &[])
                    ));
                }
                body.push_str("</main></body></html>");
                response.content_type("text/html; charset=utf-8").body(body)
            }
        }
    }
}
