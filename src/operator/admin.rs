//! The operator's admin server: `/livez` (the process serves), `/readyz` (every watch has
//! listed once, so the caches hold the HA ConfigMaps) and `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;

use super::watch::Cache;

pub fn router(cache: Arc<Cache>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(cache)
}

async fn readyz(State(cache): State<Arc<Cache>>) -> Response {
    if cache.is_synced() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the HA ConfigMap caches have not synced yet\n",
        )
            .into_response()
    }
}

async fn metrics(State(cache): State<Arc<Cache>>) -> Response {
    super::metrics::get()
        .configmaps
        .set(cache.configmap_count() as i64);
    let mut body = crate::metrics::get().encode_body();
    body.push_str(&super::metrics::get().encode_body());
    body.push_str("# EOF\n");
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Serve until `stop` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    cache: Arc<Cache>,
    mut stop: watch::Receiver<bool>,
) {
    let app = router(cache);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "admin server failed");
    }
}
