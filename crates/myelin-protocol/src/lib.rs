//! Myelin's protocol layer: the Axon Server gRPC types generated from `proto/`, Axon's error codes,
//! the wire limits, and the newtypes that keep global tokens and aggregate sequence numbers apart.
//! Everything above this crate speaks these types; nothing here does I/O.

mod error_code;
mod ids;
pub mod limits;

pub use error_code::ErrorCode;
pub use ids::{SequenceNumber, Token};

/// Generated types, laid out like Axon's protobuf packages (`io.axoniq.axonserver.grpc.*`).
#[allow(clippy::all, missing_docs)]
pub mod grpc {
    tonic::include_proto!("io.axoniq.axonserver.grpc");

    pub mod control {
        tonic::include_proto!("io.axoniq.axonserver.grpc.control");
    }
    pub mod event {
        tonic::include_proto!("io.axoniq.axonserver.grpc.event");
    }
    pub mod command {
        tonic::include_proto!("io.axoniq.axonserver.grpc.command");
    }
    pub mod query {
        tonic::include_proto!("io.axoniq.axonserver.grpc.query");
    }
}

/// Myelin's replication log entries (`proto/myelin/log.proto`).
#[allow(clippy::all, missing_docs)]
pub mod log {
    tonic::include_proto!("myelin.log");
}
