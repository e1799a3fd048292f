//! Wire limits shared by the services, with units last in their names.

/// Most events one append transaction may carry.
pub const APPEND_TRANSACTION_EVENTS_MAX: usize = 100_000;

/// Most bytes one append transaction may carry in total.
pub const APPEND_TRANSACTION_BYTES_MAX: usize = 64 * 1024 * 1024;

/// After this many blacklisted events in a row, a tracking stream sends one anyway so the client's
/// token advances (Axon Server's `blacklisted-send-after`).
pub const BLACKLISTED_SEND_AFTER_EVENTS: u64 = 1000;
