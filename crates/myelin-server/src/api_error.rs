//! `ApiError`: every error a client can see, and the one place errors become wire statuses — a
//! gRPC status with Axon's `axoniq-errorcode` trailer, or an HTTP status with the same header.
//! Lower crates speak their own terms; this file translates them, by exhaustive match.

use myelin_protocol::ErrorCode;
use myelin_replication::ReplicationError;
use myelin_storage::{Rejection, StorageError};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::Status;

/// Metadata key of the Axon error code, sent as a trailer on failed calls.
pub const ERROR_CODE_KEY: &str = "axoniq-errorcode";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("No token for {method}")]
    TokenMissing { method: String },
    #[error("Invalid token for {method}")]
    InvalidToken { method: String },
    #[error("Context not found: {0}")]
    ContextNotFound(String),
    #[error("No active AxonServers found for context: {0}")]
    NoServerForContext(String),
    #[error("{0}")]
    Rejected(Rejection),
    #[error("Invalid event: {0}")]
    InvalidEvent(String),
    #[error("Invalid request: {0}")]
    InvalidRequest(String),
    #[error("Message of {size} bytes is larger than the maximum of {max} bytes")]
    PayloadTooLarge { size: usize, max: usize },
    #[error("Message too large: {0}")]
    TransportLimit(String),
    #[error("Transaction has more than {max} events")]
    TooManyEvents { max: usize },
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Replication(#[from] ReplicationError),
    #[error("No handler for query: {0}")]
    NoHandlerForQuery(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error("server is shutting down")]
    ShuttingDown,
    #[error("No node named {0} in the cluster")]
    NoSuchNode(String),
    #[error("Cannot remove {0}: it is the last node of the cluster")]
    CannotRemoveLastNode(String),
    #[error("Call to another node failed: {0}")]
    Peer(String),
    #[error("No event processor {0} is running in a connected application")]
    ProcessorNotFound(String),
    #[error("{target} does not run event processor {processor}")]
    UnknownMoveTarget { processor: String, target: String },
    #[error("The application could not carry out the instruction: {0}")]
    InstructionFailed(String),
    #[error("No connected application {0}")]
    NoSuchApplication(String),
    #[error("No application named {0}")]
    NoSuchApplicationRecord(String),
    #[error("No user named {0}")]
    NoSuchUser(String),
    #[error("Unknown role {0}")]
    UnknownRole(String),
    #[error("Too many failed logins for {user}; try again in {retry_after_s} s")]
    TooManyLoginAttempts { user: String, retry_after_s: u64 },
    #[error("Internal error: {0}")]
    Internal(String),
    /// An error another node answered with, passed on unchanged.
    #[error("{message}")]
    FromPeer { code: ErrorCode, message: String },
}

impl ApiError {
    /// The Axon error code for this error; `None` for plain gRPC statuses without one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        Some(match self {
            ApiError::TokenMissing { .. } => ErrorCode::AuthenticationTokenMissing,
            ApiError::InvalidToken { .. } => ErrorCode::AuthenticationInvalidToken,
            ApiError::ContextNotFound(_) => ErrorCode::ContextNotFound,
            ApiError::NoServerForContext(_) => ErrorCode::NoAxonServerForContext,
            ApiError::Rejected(rejection) => match rejection {
                Rejection::InvalidSequence { .. } | Rejection::SnapshotAhead { .. } => {
                    ErrorCode::InvalidSequence
                }
                Rejection::UnknownContext(_) => ErrorCode::ContextNotFound,
                Rejection::Malformed(_) => ErrorCode::InvalidEvent,
            },
            ApiError::InvalidEvent(_) => ErrorCode::InvalidEvent,
            ApiError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            ApiError::PayloadTooLarge { .. } | ApiError::TransportLimit(_) => {
                ErrorCode::PayloadTooLarge
            }
            ApiError::TooManyEvents { .. } => ErrorCode::TooManyEvents,
            ApiError::Storage(storage) => match storage {
                StorageError::Rocks(_) | StorageError::Directory { .. } => {
                    ErrorCode::DatafileWriteError
                }
                StorageError::Corrupt { .. } => ErrorCode::DatafileReadError,
            },
            ApiError::Replication(replication) => match replication {
                ReplicationError::NotLeader { .. }
                | ReplicationError::LeadershipLost(_)
                | ReplicationError::NoLeader { .. }
                | ReplicationError::Timeout { .. } => ErrorCode::NoLeaderAvailable,
                ReplicationError::ShuttingDown(_) => ErrorCode::Interrupted,
                ReplicationError::Failed { .. } => ErrorCode::DatafileWriteError,
            },
            ApiError::NoHandlerForQuery(_) => ErrorCode::NoHandlerForQuery,
            ApiError::ShuttingDown => ErrorCode::Interrupted,
            ApiError::NoSuchNode(_) => ErrorCode::NoSuchNode,
            ApiError::CannotRemoveLastNode(_) => ErrorCode::CannotRemoveLastNode,
            ApiError::Peer(_) => ErrorCode::Other,
            ApiError::ProcessorNotFound(_) => ErrorCode::EventProcessorNotFound,
            ApiError::UnknownMoveTarget { .. } => ErrorCode::EventProcessorMoveUnknownTarget,
            ApiError::InstructionFailed(_) => ErrorCode::InstructionExecutionError,
            ApiError::NoSuchApplication(_) => ErrorCode::NoSuchApplication,
            ApiError::NoSuchApplicationRecord(_) => ErrorCode::NoSuchApplication,
            ApiError::NoSuchUser(_) => ErrorCode::NoSuchUser,
            ApiError::UnknownRole(_) => ErrorCode::UnknownRole,
            ApiError::TooManyLoginAttempts { .. } => ErrorCode::TooManyRequests,
            ApiError::Internal(_) => ErrorCode::Other,
            ApiError::FromPeer { code, .. } => *code,
            ApiError::Unimplemented(_) => return None,
        })
    }

    /// Logs a server fault at error level, client mistakes at debug.
    fn log(&self) {
        match self.error_code() {
            Some(
                ErrorCode::DatafileReadError | ErrorCode::DatafileWriteError | ErrorCode::Other,
            ) => {
                tracing::error!("request failed: {self}")
            }
            _ => tracing::debug!("request refused: {self}"),
        }
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Status {
        error.log();
        let message = error.to_string();
        match error.error_code() {
            Some(code) => {
                let mut metadata = MetadataMap::new();
                metadata.insert(ERROR_CODE_KEY, MetadataValue::from_static(code.code()));
                Status::with_metadata(code.grpc_code(), message, metadata)
            }
            None => Status::unimplemented(message),
        }
    }
}

/// The HTTP side: the status Axon's REST API uses, the `AxonIQ-ErrorCode` header and a JSON body.
impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        self.log();
        let code = self.error_code().unwrap_or(ErrorCode::Other);
        let status = axum::http::StatusCode::from_u16(code.http_status())
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({
            "success": false,
            "code": code.code(),
            "message": self.to_string(),
        });
        let mut response = (
            status,
            [(HTTP_ERROR_CODE_HEADER, code.code())],
            axum::Json(body),
        )
            .into_response();
        if let ApiError::TooManyLoginAttempts { retry_after_s, .. } = self {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_after_s),
            );
        }
        response
    }
}

/// Header of the Axon error code on HTTP responses.
pub const HTTP_ERROR_CODE_HEADER: &str = "AxonIQ-ErrorCode";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_conflicts_carry_out_of_range_and_axoniq_2000() {
        let status: Status = ApiError::Rejected(Rejection::InvalidSequence {
            aggregate_id: "a1".into(),
            got: 3,
            expected: 2,
        })
        .into();
        assert_eq!(status.code(), tonic::Code::OutOfRange);
        assert_eq!(
            status
                .metadata()
                .get(ERROR_CODE_KEY)
                .and_then(|v| v.to_str().ok()),
            Some("AXONIQ-2000")
        );
        assert_eq!(
            status.message(),
            "Invalid sequence number 3 for aggregate a1, expected 2"
        );
    }

    #[test]
    fn unimplemented_has_no_error_code() {
        let status: Status = ApiError::Unimplemented("QueryEvents".into()).into();
        assert_eq!(status.code(), tonic::Code::Unimplemented);
        assert!(status.metadata().get(ERROR_CODE_KEY).is_none());
    }
}
