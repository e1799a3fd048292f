//! Myelin's routing logic, with no I/O: who handles which command or query in each context
//! (`HandlerRegistry`), which handler a routing key goes to (`HashRing`: consistent hashing weighted
//! by load factor), how many messages a handler may still receive (`FlowQueue`: permits and a
//! priority queue), which requests wait for an answer until when (`PendingRequests`), and what
//! handlers other nodes of a cluster announced (`RemoteNodes`). The
//! server wires these to gRPC streams; everything here is tested without a network.

mod flow;
mod pending;
mod registry;
mod remote;
mod ring;

pub use flow::{FlowQueue, Offer};
pub use pending::PendingRequests;
pub use registry::{HandlerId, HandlerInfo, HandlerRegistry, Subscription, TopologyChange};
pub use remote::RemoteNodes;
pub use ring::HashRing;
