//! Reading a handler application's stream (commands or queries) until it ends, the client goes
//! away or the node shuts down; shared by the command and query services.

use tokio_util::sync::CancellationToken;
use tonic::Streaming;

/// Hands every message of `inbound` to `handle`, in order, until the stream ends or `shutdown`.
pub(crate) async fn read_until_end<M>(
    mut inbound: Streaming<M>,
    shutdown: &CancellationToken,
    what: &str,
    mut handle: impl FnMut(M),
) {
    loop {
        let message = tokio::select! {
            message = inbound.message() => message,
            _ = shutdown.cancelled() => return,
        };
        match message {
            Ok(Some(message)) => handle(message),
            Ok(None) => return,
            Err(status) => {
                tracing::debug!("{what} stream ended: {status}");
                return;
            }
        }
    }
}
