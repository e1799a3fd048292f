//! The start-up race between a handler's subscriptions and the first messages for it. An
//! application that has just connected sends its subscriptions and, a moment later on another
//! stream, its first command or query; the server may see the dispatch before the subscription.
//! So a dispatch that finds no handler waits a short grace for registrations to change before it
//! answers "no handler".

use std::time::Duration;

use tokio::sync::watch;

/// Longest a dispatch without a handler waits for one to register.
pub(crate) const NO_HANDLER_GRACE_MS: u64 = 250;

/// Returns once `found()` holds, or after the grace. `registrations` must be taken before the
/// first check, so no change between the check and the wait is missed.
pub(crate) async fn wait_for_handler(
    mut registrations: watch::Receiver<u64>,
    mut found: impl FnMut() -> bool,
) {
    if found() {
        return;
    }
    let grace = Duration::from_millis(NO_HANDLER_GRACE_MS);
    let _ = tokio::time::timeout(grace, async {
        while registrations.changed().await.is_ok() {
            if found() {
                return;
            }
        }
    })
    .await;
}
