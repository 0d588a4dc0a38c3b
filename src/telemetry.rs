//! Logging setup. `RUST_LOG` filters (default `info`); `GENDERLENS_LOG_FORMAT=json` switches to JSON lines.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("GENDERLENS_LOG_FORMAT").is_ok_and(|v| v == "json");
    // Closing a request span logs one line per request with its latency.
    let builder = tracing_subscriber::fmt()
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        // Colour codes only on a terminal, not in journald or log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests spawning several apps) is harmless, so its error is ignored.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The root span of every request: request id, method, route pattern, form and status.
/// It never records the raw path or query (an unsubscribe link holds an email address),
/// the client address, or anything from the body; its close event carries the latency.
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        use actix_web::HttpMessage;
        let route = request.match_pattern();
        let form = route
            .as_deref()
            .and_then(|pattern| form_segment(pattern, request.path()));
        let request_id = request
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        tracing::info_span!(
            "request",
            request_id = %request_id,
            method = %request.method(),
            route = route.as_deref().unwrap_or("unmatched"),
            form = form,
            status = tracing::field::Empty,
        )
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        let status = match outcome {
            Ok(response) => response.status(),
            Err(err) => err.as_response_error().status_code(),
        };
        span.record("status", status.as_u16());
    }
}

/// The path segment standing where the route pattern says `{form}`, if it is a slug.
fn form_segment<'a>(pattern: &str, path: &'a str) -> Option<&'a str> {
    let index = pattern.split('/').position(|s| s == "{form}")?;
    path.split('/')
        .nth(index)
        .filter(|id| crate::form::is_slug(id))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_form_comes_from_the_matching_segment() {
        let pattern = "/api/v1/forms/{form}/indicators";
        assert_eq!(
            super::form_segment(pattern, "/api/v1/forms/kyiv-1/indicators"),
            Some("kyiv-1")
        );
        assert_eq!(
            super::form_segment(pattern, "/api/v1/forms/<x>/indicators"),
            None
        );
        assert_eq!(super::form_segment("/healthz", "/healthz"), None);
    }
}
