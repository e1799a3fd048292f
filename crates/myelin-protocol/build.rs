//! Generates Rust types for Axon's protocol (`proto/*.proto`) and Myelin's log format with a
//! vendored protoc, so no system protoc is needed. Two views of Axon's protocol come out:
//! `grpc` — typed messages and clients, for tests, tools and benchmarks; and `wire` — servers (and
//! clients, for byte-exact tests) where every `Event` is a `RawEvent` (the bytes as received).

use std::path::PathBuf;

/// Messages kept as received bytes (`Raw<Header>`) in the `wire` view and in the cluster service.
const RAW_TYPES: [(&str, &str); 6] = [
    (".io.axoniq.axonserver.grpc.event.Event", "crate::RawEvent"),
    (
        ".io.axoniq.axonserver.grpc.command.Command",
        "crate::RawCommand",
    ),
    (
        ".io.axoniq.axonserver.grpc.command.CommandResponse",
        "crate::RawCommandResponse",
    ),
    (
        ".io.axoniq.axonserver.grpc.query.QueryRequest",
        "crate::RawQuery",
    ),
    (
        ".io.axoniq.axonserver.grpc.query.QueryResponse",
        "crate::RawQueryResponse",
    ),
    (
        ".io.axoniq.axonserver.grpc.query.SubscriptionQueryResponse",
        "crate::RawSubscriptionResponse",
    ),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    let well_known = protoc_bin_vendored::include_path()?;
    let proto_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let axon = [
        "common.proto",
        "control.proto",
        "event.proto",
        "command.proto",
        "query.proto",
        "admin.proto",
    ]
    .map(|f| proto_root.join(f));
    let includes = [proto_root.clone(), well_known];
    // Every file, not only the directory: a change inside `myelin/` must rebuild too.
    for file in axon.iter().chain(
        [
            "myelin/log.proto",
            "myelin/headers.proto",
            "myelin/cluster.proto",
        ]
        .map(|f| proto_root.join(f))
        .iter(),
    ) {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .compile_protos(&axon, &includes)?;

    let wire_dir = out_dir.join("wire");
    std::fs::create_dir_all(&wire_dir)?;
    let mut wire = tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .out_dir(&wire_dir);
    for (proto, rust) in RAW_TYPES {
        wire = wire.extern_path(proto, rust);
    }
    wire.compile_protos(&axon, &includes)?;

    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .extern_path(".io.axoniq.axonserver.grpc", "crate::grpc")
        .compile_protos(
            &[
                proto_root.join("myelin/log.proto"),
                proto_root.join("myelin/headers.proto"),
            ],
            &includes,
        )?;

    // Myelin's node-to-node service, over the raw (byte-preserving) command and query types. Its
    // own directory: prost also writes the imported Axon packages, which must not replace `grpc`.
    let cluster_dir = out_dir.join("cluster");
    std::fs::create_dir_all(&cluster_dir)?;
    let mut cluster = tonic_prost_build::configure()
        .out_dir(&cluster_dir)
        .build_client(true)
        .build_server(true)
        .extern_path(".io.axoniq.axonserver.grpc", "crate::wire");
    for (proto, rust) in RAW_TYPES {
        cluster = cluster.extern_path(proto, rust);
    }
    cluster.compile_protos(&[proto_root.join("myelin/cluster.proto")], &includes)?;
    Ok(())
}
