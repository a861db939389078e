//! The HTTP API (contract section 6): routes, request bodies, status codes.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use super::backend::Refusal;
use super::service::Service;
use crate::event::Event;

/// Request bodies larger than this get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The service's routes.
pub(crate) fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/v1/score", post(score))
        .route("/v1/events", post(events))
        .route("/v1/reload", post(reload))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(service)
}

async fn score(
    State(service): State<Arc<Service>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let event = match parse(body) {
        Ok(event) => event,
        Err(response) => return response,
    };
    let Event::Withdrawal(w) = event else {
        return error(
            StatusCode::BAD_REQUEST,
            &format!(
                "/v1/score takes a withdrawal event; this is a {} event (send it to /v1/events)",
                kind_name(&event)
            ),
        );
    };
    let started = Instant::now();
    match on_store(&service, || service.backend.try_score(&w)) {
        Ok(decision) => {
            service.metrics.decided(&decision, started.elapsed());
            if let Some(log) = &service.log {
                if let Err(e) = log.append_decision(&decision) {
                    tracing::error!(error = %e, id = %decision.id, "cannot append to the decision log");
                    return error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &format!("the decision could not be logged: {e}"),
                    );
                }
            }
            tracing::debug!(id = %decision.id, tier = %decision.tier, score = decision.score, "scored");
            json(StatusCode::OK, decision.to_json())
        }
        Err(refusal) => refused(&service, refusal, &w.id),
    }
}

async fn events(
    State(service): State<Arc<Service>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let event = match parse(body) {
        Ok(event) => event,
        Err(response) => return response,
    };
    match on_store(&service, || service.backend.try_record(&event)) {
        Ok(()) => {
            service.metrics.recorded(kind_name(&event));
            tracing::debug!(
                kind = kind_name(&event),
                user_id = event.user_id(),
                "recorded"
            );
            Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Body::empty())
                .unwrap_or_default()
        }
        Err(refusal) => {
            let id = match &event {
                Event::Withdrawal(w) => w.id.as_str(),
                _ => "",
            };
            refused(&service, refusal, id)
        }
    }
}

async fn reload(State(service): State<Arc<Service>>) -> Response {
    let outcome = tokio::task::spawn_blocking(move || service.reload()).await;
    match outcome {
        Ok(Ok(ruleset)) => json(
            StatusCode::OK,
            serde_json::json!({ "ruleset": ruleset }).to_string(),
        ),
        Ok(Err(problems)) => json(
            StatusCode::UNPROCESSABLE_ENTITY,
            serde_json::json!({ "problems": problems }).to_string(),
        ),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the reload did not finish: {e}"),
        ),
    }
}

async fn healthz(State(service): State<Arc<Service>>) -> Response {
    let ruleset = service.backend.scorer().rules().id().to_string();
    match on_store(&service, || service.backend.check_store()) {
        Ok(()) => json(
            StatusCode::OK,
            serde_json::json!({ "status": "ok", "ruleset": ruleset }).to_string(),
        ),
        Err(refusal) => {
            let message = match refusal {
                Refusal::Store(message) => message,
                Refusal::Duplicate => String::new(),
            };
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({ "status": "store unreachable", "error": message }).to_string(),
            )
        }
    }
}

async fn metrics(State(service): State<Arc<Service>>) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
        .body(Body::from(service.metrics.render()))
        .unwrap_or_default()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such endpoint: POST /v1/score, POST /v1/events, POST /v1/reload, GET /healthz, GET /metrics",
    )
}

/// The body as one event, whatever its content type; 400 or 413 otherwise.
#[allow(clippy::result_large_err)] // the error is the response itself
fn parse(body: Result<Bytes, BytesRejection>) -> Result<Event, Response> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("the body is larger than {MAX_BODY_BYTES} bytes")
        } else {
            rejection.body_text()
        };
        error(status, &message)
    })?;
    let text = std::str::from_utf8(&body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("the body is not valid UTF-8 (byte {})", e.valid_up_to() + 1),
        )
    })?;
    if text.trim().is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "the body is empty; send one event as a JSON object",
        ));
    }
    Event::parse_line(text).map_err(|message| error(StatusCode::BAD_REQUEST, &message))
}

/// Runs a store operation: inline for the in-process store (microseconds), and for a shared
/// store on this worker thread with the runtime told it may block (its other tasks move on).
fn on_store<T>(service: &Service, op: impl FnOnce() -> T) -> T {
    if service.backend.may_block() {
        tokio::task::block_in_place(op)
    } else {
        op()
    }
}

fn refused(service: &Service, refusal: Refusal, id: &str) -> Response {
    match refusal {
        Refusal::Duplicate => error(
            StatusCode::CONFLICT,
            &format!("withdrawal id \"{id}\" was already recorded; ids must be unique"),
        ),
        Refusal::Store(message) => {
            service.metrics.store_error();
            tracing::warn!(error = %message, "state store unavailable");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("the state store is unavailable: {message}"),
            )
        }
    }
}

fn kind_name(event: &Event) -> &'static str {
    match event {
        Event::Withdrawal(_) => "withdrawal",
        Event::PasswordReset { .. } => "password_reset",
        Event::Login { .. } => "login",
    }
}

fn json(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

fn error(status: StatusCode, message: &str) -> Response {
    json(status, serde_json::json!({ "error": message }).to_string())
}
