//! The HTTP side of `shadowtap run`: `/metrics`, `/healthz` and `/readyz` over axum, with the
//! exporter-toolkit web configuration ([`web`]: TLS and basic authentication).
//!
//! It only reads the [`State`] the packet thread publishes; it never touches the engine, so a
//! slow or hostile client cannot stall packet processing. [`conn`] bounds what clients can hold:
//! open connections, the time to send a request head, the TLS handshake.

pub mod conn;
pub mod web;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::export::metrics::{self, State};

/// Serves until `stop` is set; connections still open then are closed with the runtime (a
/// scrape in flight at a stop is cut).
///
/// # Errors
/// A TLS certificate or key that cannot be loaded, or an I/O failure of the listener.
pub async fn serve(
    listener: std::net::TcpListener,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    web: web::WebConfig,
) -> anyhow::Result<()> {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::get;
    let auth = Arc::new(web::BasicAuth::new(web.basic_auth_users.clone()));
    let stats = Arc::new(conn::Stats::default());
    let http_stats = Arc::clone(&stats);
    let metrics_state = Arc::clone(&state);
    let ready_state = Arc::clone(&state);
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let st = metrics_state.lock().map(|s| s.clone()).unwrap_or_default();
                let http = Arc::clone(&http_stats);
                async move {
                    let body = metrics::encode(&st).and_then(|mut b| {
                        b.extend(http.encode()?);
                        Ok(b)
                    });
                    match body {
                        Ok(body) => (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body),
                        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain")], e.to_string().into_bytes()),
                    }
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready_state.lock().map(|s| s.readiness()).unwrap_or_else(|_| Err("state unavailable".into()));
                async move {
                    match ready {
                        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
                        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
                    }
                }
            }),
        );
    let app = app.layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
        let auth = Arc::clone(&auth);
        async move {
            let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            if auth.allows(given) {
                next.run(req).await
            } else {
                (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"shadowtap\"")], "unauthorized\n")
                    .into_response()
            }
        }
    }));
    let stopped = async move {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let tls = match &web.tls_server_config {
        Some(tls) => {
            // ring as the one crypto provider (no C toolchain beyond what libpcap already needs).
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert_file, &tls.key_file)
                .await
                .map_err(|e| anyhow::anyhow!("TLS certificate {} / key {}: {e}", tls.cert_file.display(), tls.key_file.display()))?;
            // HTTP/1.1 only: hyper serves http1 here, so h2 must not be negotiated.
            let mut server = (*config.get_inner()).clone();
            server.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(Arc::new(server))
        }
        None => None,
    };
    conn::accept_loop(listener, app, tls, stats, stopped).await?;
    Ok(())
}
