//! Axon's error codes (`AXONIQ-xxxx`), each with the gRPC status and HTTP status Axon Server uses for
//! it. Clients match on the code string: Axon Framework turns the `axoniq-errorcode` trailer into its
//! exception types, so these numbers are part of the protocol. Codes Myelin adds for situations Axon
//! has no code for live in unused numbers (marked below).

use tonic::Code;

/// The error codes Myelin sends. The table below is the one place they are defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Other,
    AuthenticationTokenMissing,
    AuthenticationInvalidToken,
    UnsupportedInstruction,
    InstructionExecutionError,
    InstructionResultTimeout,
    NoSuchApplication,
    NoSuchNode,
    ContextNotFound,
    NoAxonServerForContext,
    InvalidSequence,
    PayloadTooLarge,
    TooManyEvents,
    /// Myelin: an event whose fields contradict each other (e.g. a sequence without an aggregate).
    InvalidEvent,
    /// Myelin: a request that is malformed (e.g. negative permits).
    InvalidRequest,
    /// Myelin: no user by that name (Axon has no code; next to NO_SUCH_APPLICATION).
    NoSuchUser,
    UnknownRole,
    NoLeaderAvailable,
    CannotRemoveLastNode,
    EventProcessorNotFound,
    EventProcessorMoveUnknownTarget,
    TooManyRequests,
    NoHandlerForCommand,
    ConnectionToHandlerLost,
    CommandTimeout,
    CommandDuplicated,
    NoHandlerForQuery,
    QueryTimeout,
    QueryDuplicated,
    DatafileReadError,
    DatafileWriteError,
    Interrupted,
}

impl ErrorCode {
    /// Every code, for tables and tests.
    pub const ALL: [ErrorCode; 32] = [
        ErrorCode::Other,
        ErrorCode::AuthenticationTokenMissing,
        ErrorCode::AuthenticationInvalidToken,
        ErrorCode::UnsupportedInstruction,
        ErrorCode::InstructionExecutionError,
        ErrorCode::InstructionResultTimeout,
        ErrorCode::NoSuchApplication,
        ErrorCode::NoSuchNode,
        ErrorCode::ContextNotFound,
        ErrorCode::NoAxonServerForContext,
        ErrorCode::InvalidSequence,
        ErrorCode::PayloadTooLarge,
        ErrorCode::TooManyEvents,
        ErrorCode::InvalidEvent,
        ErrorCode::InvalidRequest,
        ErrorCode::NoSuchUser,
        ErrorCode::UnknownRole,
        ErrorCode::NoLeaderAvailable,
        ErrorCode::CannotRemoveLastNode,
        ErrorCode::EventProcessorNotFound,
        ErrorCode::EventProcessorMoveUnknownTarget,
        ErrorCode::TooManyRequests,
        ErrorCode::NoHandlerForCommand,
        ErrorCode::ConnectionToHandlerLost,
        ErrorCode::CommandTimeout,
        ErrorCode::CommandDuplicated,
        ErrorCode::NoHandlerForQuery,
        ErrorCode::QueryTimeout,
        ErrorCode::QueryDuplicated,
        ErrorCode::DatafileReadError,
        ErrorCode::DatafileWriteError,
        ErrorCode::Interrupted,
    ];

    /// The code string clients match on, e.g. `AXONIQ-2000`.
    /// The error code with this `AXONIQ-xxxx` string, if Myelin knows it.
    pub fn from_code(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.code() == code)
    }

    pub fn code(self) -> &'static str {
        self.entry().0
    }

    /// The gRPC status code Axon Server uses for this error.
    pub fn grpc_code(self) -> Code {
        self.entry().1
    }

    /// The HTTP status Axon Server's REST API uses for this error.
    pub fn http_status(self) -> u16 {
        self.entry().2
    }

    fn entry(self) -> (&'static str, Code, u16) {
        match self {
            ErrorCode::Other => ("AXONIQ-0001", Code::Cancelled, 500),
            ErrorCode::AuthenticationTokenMissing => ("AXONIQ-1000", Code::PermissionDenied, 403),
            ErrorCode::AuthenticationInvalidToken => ("AXONIQ-1001", Code::PermissionDenied, 403),
            ErrorCode::UnsupportedInstruction => ("AXONIQ-1002", Code::Unknown, 400),
            ErrorCode::InstructionExecutionError => ("AXONIQ-1003", Code::Internal, 500),
            ErrorCode::InstructionResultTimeout => ("AXONIQ-1004", Code::Internal, 500),
            ErrorCode::NoSuchApplication => ("AXONIQ-1300", Code::NotFound, 404),
            ErrorCode::NoSuchNode => ("AXONIQ-1301", Code::NotFound, 404),
            ErrorCode::ContextNotFound => ("AXONIQ-1302", Code::NotFound, 404),
            ErrorCode::NoAxonServerForContext => ("AXONIQ-1400", Code::Unavailable, 503),
            ErrorCode::InvalidSequence => ("AXONIQ-2000", Code::OutOfRange, 409),
            ErrorCode::PayloadTooLarge => ("AXONIQ-2001", Code::InvalidArgument, 400),
            ErrorCode::TooManyEvents => ("AXONIQ-2002", Code::InvalidArgument, 400),
            ErrorCode::InvalidEvent => ("AXONIQ-2010", Code::InvalidArgument, 400),
            ErrorCode::InvalidRequest => ("AXONIQ-2011", Code::InvalidArgument, 400),
            ErrorCode::NoSuchUser => ("AXONIQ-1310", Code::NotFound, 404),
            ErrorCode::UnknownRole => ("AXONIQ-2510", Code::InvalidArgument, 400),
            ErrorCode::NoLeaderAvailable => ("AXONIQ-2100", Code::NotFound, 404),
            ErrorCode::CannotRemoveLastNode => ("AXONIQ-2310", Code::FailedPrecondition, 406),
            ErrorCode::EventProcessorNotFound => ("AXONIQ-2800", Code::NotFound, 404),
            ErrorCode::EventProcessorMoveUnknownTarget => ("AXONIQ-2801", Code::NotFound, 404),
            ErrorCode::TooManyRequests => ("AXONIQ-1900", Code::ResourceExhausted, 429),
            ErrorCode::NoHandlerForCommand => ("AXONIQ-4000", Code::NotFound, 500),
            ErrorCode::ConnectionToHandlerLost => ("AXONIQ-4001", Code::Cancelled, 500),
            ErrorCode::CommandTimeout => ("AXONIQ-4002", Code::Cancelled, 504),
            ErrorCode::CommandDuplicated => ("AXONIQ-4005", Code::InvalidArgument, 400),
            ErrorCode::NoHandlerForQuery => ("AXONIQ-5000", Code::NotFound, 400),
            ErrorCode::QueryTimeout => ("AXONIQ-5006", Code::Cancelled, 504),
            ErrorCode::QueryDuplicated => ("AXONIQ-5007", Code::InvalidArgument, 400),
            ErrorCode::DatafileReadError => ("AXONIQ-9000", Code::Cancelled, 500),
            ErrorCode::DatafileWriteError => ("AXONIQ-9100", Code::Cancelled, 500),
            ErrorCode::Interrupted => ("AXONIQ-9500", Code::Cancelled, 500),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let codes: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(codes.len(), ErrorCode::ALL.len());
        for c in codes {
            assert!(c.starts_with("AXONIQ-") && c.len() == 11, "{c}");
        }
    }

    #[test]
    fn the_codes_clients_match_on_keep_axons_numbers() {
        assert_eq!(ErrorCode::InvalidSequence.code(), "AXONIQ-2000");
        assert_eq!(ErrorCode::InvalidSequence.grpc_code(), Code::OutOfRange);
        assert_eq!(ErrorCode::AuthenticationTokenMissing.code(), "AXONIQ-1000");
        assert_eq!(ErrorCode::AuthenticationInvalidToken.code(), "AXONIQ-1001");
        assert_eq!(ErrorCode::ContextNotFound.grpc_code(), Code::NotFound);
        assert_eq!(
            ErrorCode::NoAxonServerForContext.grpc_code(),
            Code::Unavailable
        );
    }
}
