//! HTTP: actix handlers for the residents' pages, the API and health, the routes table,
//! security headers and rate limits.

mod api;
mod charts;
mod dashboard;
mod error;
mod exports;
mod i18n;
mod indicators;
mod limits;
mod metrics;
mod openapi;
mod optout;
mod pages;
mod planner;
mod privacy;
mod session;
mod viewer;

pub use error::ApiError;
pub use i18n::{ui_language, Catalog};
pub use metrics::{track as track_metrics, Metrics};
pub use openapi::document as openapi_document;
pub use session::middleware as session_middleware;
pub use session::Throttle;

use crate::config::Settings;
use crate::db::Database;
use crate::form::FormRegistry;
use crate::submit::Writer;
use actix_governor::governor::clock::QuantaInstant;
use actix_governor::governor::middleware::NoOpMiddleware;
use actix_governor::{Governor, GovernorConfig, GovernorConfigBuilder};
use actix_web::http::Method;
use actix_web::middleware::{Condition, DefaultHeaders};
use actix_web::{web, HttpResponse};
use futures_util::StreamExt;
use std::sync::Arc;

/// Shared by every handler.
pub struct AppState {
    pub forms: Arc<FormRegistry>,
    pub db: Database,
    pub writer: Writer,
    pub settings: Settings,
    pub catalog: Arc<Catalog>,
    /// Signs the anti-forgery tokens of the form pages.
    pub secret: Vec<u8>,
    pub throttle: session::Throttle,
    pub metrics: Metrics,
}

/// Headers on every response: no inline script, no framing, no sniffing, no referrer
/// leaking survey addresses to other sites.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "same-origin"))
        .add(("X-Frame-Options", "DENY"))
        .add((
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=()",
        ))
}

/// Reads a body up to `limit` bytes, whatever `Content-Length` claims.
pub(crate) async fn read_limited(
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(body)
}

type PostLimit = GovernorConfig<limits::PeerIp, NoOpMiddleware<QuantaInstant>>;

/// The per-address limits on POSTs, built once so every worker thread shares one count.
#[derive(Clone)]
pub struct RateLimits {
    enabled: bool,
    pages: PostLimit,
    api: PostLimit,
    sign_in: PostLimit,
}

/// Sign-ins per address: a burst, then one every few seconds. The per-email lockout
/// (session.rs) stops guessing one password; this stops trying many emails.
const SIGN_IN_BURST: u32 = 20;
const SECONDS_PER_SIGN_IN: u64 = 3;

impl RateLimits {
    pub fn new(settings: &Settings, catalog: Arc<Catalog>) -> RateLimits {
        let config = |page: Option<Arc<Catalog>>, period: std::time::Duration, burst: u32| {
            GovernorConfigBuilder::default()
                .key_extractor(limits::PeerIp {
                    page,
                    trust_forwarded_for: settings.trust_forwarded_for,
                })
                .period(period)
                .burst_size(burst.max(1))
                .methods(vec![Method::POST])
                .finish()
                .expect("rate limit settings are positive")
        };
        let per_post = std::time::Duration::from_secs(1) / settings.rate_limit_per_second.max(1);
        let burst = settings.rate_limit_burst;
        RateLimits {
            enabled: settings.rate_limit_per_second > 0,
            pages: config(Some(catalog.clone()), per_post, burst),
            api: config(None, per_post, burst),
            sign_in: config(
                Some(catalog),
                std::time::Duration::from_secs(SECONDS_PER_SIGN_IN),
                SIGN_IN_BURST,
            ),
        }
    }

    fn wrap(
        &self,
        config: &PostLimit,
    ) -> Condition<Governor<limits::PeerIp, NoOpMiddleware<QuantaInstant>>> {
        Condition::new(self.enabled, Governor::new(config))
    }
}

/// A resource whose answers no browser or proxy may keep: planners' pages and raw
/// responses, and the sign-in page with its CSRF token.
fn private(
    path: &str,
) -> actix_web::Resource<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::resource(path).wrap(DefaultHeaders::new().add(("Cache-Control", "no-store")))
}

pub fn configure(cfg: &mut web::ServiceConfig, limits: &RateLimits) {
    // Extraction failures answer with the same JSON error body as everything else.
    cfg.app_data(web::QueryConfig::default().error_handler(|err, _| {
        ApiError::BadRequest(format!("invalid query parameters: {err}")).into()
    }))
    .app_data(
        web::PathConfig::default()
            .error_handler(|err, _| ApiError::BadRequest(format!("invalid path: {err}")).into()),
    )
    .route("/", web::get().to(pages::index))
    .route("/healthz", web::get().to(api::healthz))
    .route("/readyz", web::get().to(metrics::readyz))
    .route("/metrics", web::get().to(metrics::metrics))
    .route("/api/openapi.json", web::get().to(openapi::openapi_json))
    .service(private("/dashboard").route(web::get().to(dashboard::list)))
    .service(private("/dashboard/{form}").route(web::get().to(dashboard::form)))
    .service(private("/dashboard/{form}/import").route(web::post().to(dashboard::import)))
    .service(private("/admin/audit").route(web::get().to(dashboard::audit)))
    .route(
        "/unsubscribe/{form}/{email}/{signature}",
        web::get().to(optout::page),
    )
    .route(
        "/unsubscribe/{form}/{email}/{signature}",
        web::post().to(optout::record),
    )
    .service(
        private("/login")
            .wrap(limits.wrap(&limits.sign_in))
            .route(web::get().to(session::login_form))
            .route(web::post().to(session::login)),
    )
    .service(private("/logout").route(web::post().to(session::logout)))
    .route(
        "/static/app.css",
        web::get()
            .to(|| async { asset("text/css; charset=utf-8", include_str!("static/app.css")) }),
    )
    .route(
        "/static/form.js",
        web::get().to(|| async {
            asset(
                "text/javascript; charset=utf-8",
                include_str!("static/form.js"),
            )
        }),
    )
    .service(
        web::scope("/f")
            .wrap(limits.wrap(&limits.pages))
            .route("/{form}", web::get().to(pages::form_page))
            .route("/{form}", web::post().to(pages::form_submit)),
    )
    .service(
        web::scope("/api/v1")
            .wrap(limits.wrap(&limits.api))
            .route("/forms", web::get().to(api::list_forms))
            .route("/forms/{form}", web::get().to(api::get_form))
            .route("/forms/{form}/submissions", web::post().to(api::submit))
            .route("/forms/{form}/indicators", web::get().to(indicators::json))
            .route(
                "/forms/{form}/indicators.csv",
                web::get().to(indicators::csv),
            )
            .service(private("/forms/{form}/responses").route(web::get().to(exports::responses)))
            .route(
                "/forms/{form}/responses/{id}",
                web::delete().to(privacy::delete_response),
            )
            .service(
                private("/forms/{form}/dictionary.csv").route(web::get().to(exports::dictionary)),
            ),
    )
    .default_service(web::to(api::not_found));
}
