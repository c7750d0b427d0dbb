//! HTTPS served directly, with rustls.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::IntoMakeServiceWithConnectInfo;
use axum_server::tls_rustls::RustlsConfig;

use crate::config::TlsConfig;
use crate::server::StartError;

pub async fn serve(
    listener: tokio::net::TcpListener,
    app: IntoMakeServiceWithConnectInfo<Router, SocketAddr>,
    tls: &TlsConfig,
) -> Result<(), StartError> {
    // Several providers may be compiled in; this process uses ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = RustlsConfig::from_pem_file(&tls.certificate, &tls.private_key)
        .await
        .map_err(|error| {
            StartError::Tls(format!(
                "cannot load {} and {}: {error}",
                tls.certificate.display(),
                tls.private_key.display()
            ))
        })?;
    let listener = listener
        .into_std()
        .map_err(|error| StartError::Serve(error.to_string()))?;
    let handle = axum_server::Handle::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        crate::server::shutdown_signal().await;
        shutdown.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    axum_server::from_tcp_rustls(listener, config)
        .map_err(|error| StartError::Serve(error.to_string()))?
        .handle(handle)
        .serve(app)
        .await
        .map_err(|error| StartError::Serve(error.to_string()))
}
