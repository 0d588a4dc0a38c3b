//! `GET /api/openapi.json`: the OpenAPI 3.1 description generated from the handlers'
//! `#[utoipa::path]` annotations and their request/response types.

use super::{api, dashboard, exports, indicators, metrics, optout, pages, privacy, session};
use actix_web::HttpResponse;
use std::borrow::Cow;
use std::sync::OnceLock;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "genderlens",
        description = "Gender-responsive needs assessments: public surveys, validated \
                       submissions, and indicators of every answer by sex."
    ),
    paths(
        api::healthz,
        metrics::readyz,
        metrics::metrics,
        api::list_forms,
        api::get_form,
        api::submit,
        indicators::json,
        indicators::csv,
        exports::responses,
        exports::dictionary,
        privacy::delete_response,
        pages::index,
        pages::form_page,
        pages::form_submit,
        optout::page,
        optout::record,
        dashboard::list,
        dashboard::form,
        dashboard::import,
        dashboard::audit,
        session::login_form,
        session::login,
        session::logout,
        openapi_json,
    ),
    modifiers(&BearerToken),
    tags(
        (name = "residents", description = "Filling in surveys, no login"),
        (name = "planners", description = "Bearer token or a signed-in web session"),
        (name = "owners", description = "Survey owners' mail"),
        (name = "operations", description = "Health, readiness, metrics, this description"),
    )
)]
struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The API token `genderlens user add` prints"))
                    .build(),
            ),
        );
    }
}

/// The indicators report. Its figures are nullable in nested, field-specific ways (a
/// suppressed figure is `null`, an inapplicable one absent), so its schema is written out
/// from the contract's "Indicators JSON" rather than derived.
pub struct Indicators;

impl PartialSchema for Indicators {
    fn schema() -> RefOr<Schema> {
        // Replaced by `indicators_schema()` in the served document.
        RefOr::T(Schema::Object(Default::default()))
    }
}

impl ToSchema for Indicators {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Indicators")
    }
}

fn indicators_schema() -> serde_json::Value {
    use serde_json::json;
    let number = json!({ "type": ["number", "null"] });
    let interval = json!({
        "type": ["array", "null"], "items": { "type": "number" }, "minItems": 2, "maxItems": 2
    });
    let reasons = json!({ "type": "object", "additionalProperties": { "type": "string" } });
    let side = json!({
        "type": "object",
        "required": ["n", "missing"],
        "properties": {
            "n": { "type": ["integer", "null"], "minimum": 0 },
            "count": { "type": ["integer", "null"], "minimum": 0 },
            "counts": {
                "type": ["object", "null"],
                "additionalProperties": { "type": "integer", "minimum": 0 }
            },
            "estimate": number, "sd": number, "median": number, "ci": interval,
            "n_eff": number,
            "missing": {
                "type": ["integer", "null"], "minimum": 0,
                "description": "Not answered or not relevant; null when the side is suppressed"
            },
            "reasons": reasons,
        },
        "additionalProperties": false,
    });
    let test = json!({
        "type": "object",
        "required": ["method", "statistic", "p_value"],
        "properties": {
            "method": {
                "enum": ["chi_square", "fisher", "welch_t", "mann_whitney", "wald_z"]
            },
            "statistic": number, "df": number,
            "p_value": { "type": ["number", "null"], "minimum": 0, "maximum": 1 },
            "q_value": { "type": ["number", "null"], "minimum": 0, "maximum": 1 },
            "effect": number, "cramers_v": number,
            "reason": { "type": "string" },
        },
        "additionalProperties": false,
    });
    json!({
        "type": "object",
        "required": ["form", "form_version", "generated_at", "responses", "by", "alpha",
                     "min_cell", "weighted", "sex_counts", "indicators"],
        "properties": {
            "form": { "type": "string" },
            "form_version": { "type": "integer", "minimum": 1 },
            "generated_at": { "type": "string", "format": "date-time" },
            "responses": {
                "type": ["integer", "null"], "minimum": 0,
                "description": "All responses; null only in a public report where it would reveal a hidden sex count"
            },
            "by": { "type": ["string", "null"] },
            "alpha": { "type": "number", "exclusiveMinimum": 0, "maximum": 0.5 },
            "min_cell": { "type": "integer", "minimum": 0 },
            "weighted": { "type": "boolean" },
            "sex_counts": {
                "type": "object",
                "description": "Responses per sex value; null where public suppression hides a small count",
                "additionalProperties": { "type": ["integer", "null"], "minimum": 0 }
            },
            "indicators": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["question", "kind", "option", "group", "female", "male",
                                 "gap", "test", "suppressed", "reason"],
                    "properties": {
                        "question": { "type": "string" },
                        "kind": { "enum": ["proportion", "distribution", "mean"] },
                        "option": { "type": ["string", "null"] },
                        "group": {
                            "type": ["object", "null"],
                            "description": "{dimension: level} for a cell of a `by` breakdown",
                            "additionalProperties": { "type": "string" },
                            "maxProperties": 1
                        },
                        "female": side,
                        "male": side,
                        "gap": {
                            "type": "object",
                            "required": ["difference", "ci", "ratio"],
                            "properties": {
                                "difference": number, "ci": interval, "ratio": number,
                                "adjusted_ratio": number, "relative": number,
                                "hedges_g": number, "reasons": reasons,
                            },
                            "additionalProperties": false,
                        },
                        "test": test,
                        "tests": { "type": "array", "items": test },
                        "suppressed": { "type": "boolean" },
                        "reason": { "type": ["string", "null"] },
                    },
                    "additionalProperties": false,
                }
            }
        },
        "additionalProperties": false,
    })
}

/// The served document, built once.
pub fn document() -> &'static serde_json::Value {
    static DOCUMENT: OnceLock<serde_json::Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        document["components"]["schemas"]["Indicators"] = indicators_schema();
        document
    })
}

/// This description.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 description", body = Object)))]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
