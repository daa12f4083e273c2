//! The accept loop. Written by hand (rather than `axum::serve`) so that a simulated
//! partition can cut live connections and drop new ones, and so that shutdown joins
//! every connection task.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Shared;

pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if shared.faults.is_partitioned() {
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(app.clone());
                let mut sever = shared.faults.sever_epoch();
                let mut stop = shutdown.clone();
                connections.spawn(async move {
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        result = conn => {
                            if let Err(e) = result {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        }
                        _ = sever.changed() => {}
                        _ = stop.changed() => {}
                    }
                });
            }
        }
    }
    // Dropping the connection futures closes the sockets.
    connections.shutdown().await;
}
