//! `GET /healthz`: 200 when the database and the token both answer, 503
//! when either does not, with what each said.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;

pub async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let gatehouse = &state.gatehouse;
    let database = gatehouse.db(|store| store.check()).await;
    let token = gatehouse.vault.refresh_keys().await;
    let healthy = database.is_ok() && token.is_ok();
    let body = json!({
        "status": if healthy { "ok" } else { "unavailable" },
        "database": match &database {
            Ok(()) => json!({ "ok": true }),
            Err(error) => json!({ "ok": false, "error": error.to_string() }),
        },
        "token": match &token {
            Ok(version) => json!({
                "ok": true,
                "active_key_version": version,
                "stats": gatehouse.vault.stats(),
            }),
            Err(error) => json!({ "ok": false, "error": error.to_string() }),
        },
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
