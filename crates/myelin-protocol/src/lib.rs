//! Myelin's protocol layer: the Axon Server gRPC types generated from `proto/`, Axon's error codes,
//! and the wire limits.
//! Everything above this crate speaks these types; nothing here does I/O.

mod error_code;
pub mod limits;
mod raw;

pub use error_code::ErrorCode;
pub use raw::{
    bool_instruction, number_instruction, text_instruction, Raw, RawCommand, RawCommandResponse,
    RawEvent, RawQuery, RawQueryResponse, RawSubscriptionResponse,
};

/// Typed messages and clients, laid out like Axon's protobuf packages (`io.axoniq.axonserver.grpc.*`).
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
    pub mod admin {
        tonic::include_proto!("io.axoniq.axonserver.grpc.admin");
    }
}

/// The server side of Axon's protocol: the same packages with servers, where `Event` is `RawEvent`.
#[allow(clippy::all, missing_docs)]
pub mod wire {
    include!(concat!(
        env!("OUT_DIR"),
        "/wire/io.axoniq.axonserver.grpc.rs"
    ));

    pub mod control {
        include!(concat!(
            env!("OUT_DIR"),
            "/wire/io.axoniq.axonserver.grpc.control.rs"
        ));
    }
    pub mod event {
        include!(concat!(
            env!("OUT_DIR"),
            "/wire/io.axoniq.axonserver.grpc.event.rs"
        ));
    }
    pub mod command {
        include!(concat!(
            env!("OUT_DIR"),
            "/wire/io.axoniq.axonserver.grpc.command.rs"
        ));
    }
    pub mod query {
        include!(concat!(
            env!("OUT_DIR"),
            "/wire/io.axoniq.axonserver.grpc.query.rs"
        ));
    }
    pub mod admin {
        include!(concat!(
            env!("OUT_DIR"),
            "/wire/io.axoniq.axonserver.grpc.admin.rs"
        ));
    }
}

/// Myelin's replication log entries (`proto/myelin/log.proto`).
#[allow(clippy::all, missing_docs)]
pub mod log {
    tonic::include_proto!("myelin.log");
}

/// The fields Myelin reads from pass-through messages (`proto/myelin/headers.proto`).
#[allow(clippy::all, missing_docs)]
pub mod headers {
    tonic::include_proto!("myelin.headers");
}

/// Myelin's node-to-node protocol on the internal port (servers and clients).
pub mod cluster {
    include!(concat!(env!("OUT_DIR"), "/cluster/myelin.cluster.rs"));
}
