//! A Myelin node: the Axon Server gRPC services on 8124 (platform, event store, event scheduler),
//! HTTP on 8024, the gateway that checks tokens and contexts, configuration, and the lifecycle that
//! ties them to storage and replication. `api_error.rs` is the one place errors become statuses.

pub mod access;
mod admin;
pub mod api_error;
pub mod clients;
mod cluster;
mod commands;
pub mod config;
mod event_store;
mod gateway;
mod handler_stream;
mod handler_wait;
mod http;
mod metrics;
mod node;
mod platform;
mod processors;
mod queries;
mod scheduler;
mod security;
pub mod tls;
mod topology;

pub use cluster::LinkFilter;
pub use node::{start, start_with, Listeners, NodeHandle, StartError, StartOptions};
