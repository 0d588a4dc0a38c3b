//! Operations endpoints: `/metrics` in the Prometheus text format and `/readyz`.
//! Request counts and latencies come from a middleware, stored submissions from the
//! handlers that store them; outbox and pool figures are read when scraped. Labels never
//! carry answers, addresses or raw paths (unmatched paths share one label).

use super::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FormLabels {
    form: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

/// 0.5 ms to about 16 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    submissions: Family<FormLabels, Counter>,
    outbox: Family<StatusLabels, Gauge>,
    pool_connections: Gauge,
    pool_idle: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("genderlens");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and route",
            latency.clone(),
        );
        let submissions = Family::<FormLabels, Counter>::default();
        registry.register(
            "submissions_stored",
            "Responses stored (new, not resent duplicates) by form",
            submissions.clone(),
        );
        let outbox = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "outbox_messages",
            "Notifications in the outbox by status (pending is the depth, failed the failures)",
            outbox.clone(),
        );
        let pool_connections = Gauge::default();
        registry.register(
            "db_pool_connections",
            "Connections held by the read pool",
            pool_connections.clone(),
        );
        let pool_idle = Gauge::default();
        registry.register(
            "db_pool_idle_connections",
            "Idle connections in the read pool",
            pool_idle.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            submissions,
            outbox,
            pool_connections,
            pool_idle,
        }
    }
}

impl Metrics {
    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    pub fn submission_stored(&self, form: &str) {
        self.submissions
            .get_or_create(&FormLabels {
                form: form.to_owned(),
            })
            .inc();
    }

    fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Counts every request under its route pattern (`/f/{form}`), never its raw path.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let result = next.call(req).await;
    if let Some(state) = state {
        let status = match &result {
            Ok(response) => response.status(),
            Err(err) => err.as_response_error().status_code(),
        };
        state.metrics.observe(
            &method,
            &route,
            status.as_u16(),
            started.elapsed().as_secs_f64(),
        );
    }
    result
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics in the Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let counts = state
        .db
        .run(|conn| crate::db::outbox::counts_by_status(conn).map_err(crate::db::DbError::from))
        .await;
    match counts {
        Ok(counts) => {
            for status in ["pending", "failed"] {
                let n = counts.iter().find(|(s, _)| s == status).map_or(0, |c| c.1);
                state
                    .metrics
                    .outbox
                    .get_or_create(&StatusLabels {
                        status: status.to_owned(),
                    })
                    .set(n);
            }
        }
        Err(err) => tracing::warn!(error = %err, "outbox figures unavailable for /metrics"),
    }
    let (connections, idle) = state.db.pool_state();
    state.metrics.pool_connections.set(i64::from(connections));
    state.metrics.pool_idle.set(i64::from(idle));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    status: &'static str,
    checks: Checks,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Checks {
    database: bool,
    migrations: bool,
    forms: usize,
}

/// Ready to serve: the database answers, its migrations are applied, forms are loaded.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A check failed", body = Readiness)))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = state.db.run(crate::db::migrations_applied).await;
    let forms = state.forms.all().count();
    let (database_ok, migrations_ok) = match &database {
        Ok(applied) => (true, *applied),
        Err(err) => {
            tracing::warn!(error = %err, "readiness: the database is unreachable");
            (false, false)
        }
    };
    let ready = database_ok && migrations_ok && forms > 0;
    let body = Readiness {
        status: if ready { "ready" } else { "unavailable" },
        checks: Checks {
            database: database_ok,
            migrations: migrations_ok,
            forms,
        },
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
