//! An axum app served on 127.0.0.1 in the background, stopped when dropped: the embedded
//! origin and `pacer serve` both run on it.

use std::net::SocketAddr;

use axum::Router;

/// A running server; dropping it shuts it down gracefully.
#[derive(Debug)]
pub(crate) struct LoopbackServer {
    address: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl LoopbackServer {
    /// Serves `app` on `127.0.0.1:port` (0 = any free port) from the current tokio runtime;
    /// handlers may extract the peer's `ConnectInfo<SocketAddr>`. `name` labels its errors.
    pub(crate) async fn start(
        app: Router,
        port: u16,
        name: &'static str,
    ) -> std::io::Result<LoopbackServer> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let address = listener.local_addr()?;
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let service = app.into_make_service_with_connect_info::<SocketAddr>();
            let served = axum::serve(listener, service).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = served.await {
                tracing::error!(%error, server = name, "stopped");
            }
        });
        Ok(LoopbackServer {
            address,
            shutdown: Some(shutdown),
        })
    }

    /// The bound address.
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}
