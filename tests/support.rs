//! Shared helpers of the black-box tests: appending transactions, reading aggregates, opening
//! tracking streams with explicit permits, and reading Axon's error code off a status.

use myelin_protocol::grpc::event::{
    Event, EventWithToken, GetAggregateEventsRequest, GetEventsRequest,
};
use myelin_testkit::AxonClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

pub use myelin_testkit::{domain_event, eventually, now_ms, plain_event, TestNode};

/// Appends one transaction.
pub async fn append(client: &AxonClient, events: Vec<Event>) -> Result<(), Status> {
    client
        .events
        .clone()
        .append_event(tokio_stream::iter(events))
        .await
        .map(|_| ())
}

/// The token of the last stored event, -1 when there is none.
pub async fn last_token(client: &AxonClient) -> i64 {
    client
        .events
        .clone()
        .get_last_token(myelin_protocol::grpc::event::GetLastTokenRequest {})
        .await
        .expect("last token")
        .into_inner()
        .token
}

/// The `axoniq-errorcode` trailer of a failed call.
pub fn axon_code(status: &Status) -> Option<String> {
    status
        .metadata()
        .get("axoniq-errorcode")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Every event `ListAggregateEvents` returns for this request.
pub async fn read_aggregate(
    client: &AxonClient,
    request: GetAggregateEventsRequest,
) -> Result<Vec<Event>, Status> {
    let mut stream = client
        .events
        .clone()
        .list_aggregate_events(request)
        .await?
        .into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream.message().await? {
        events.push(event);
    }
    Ok(events)
}

pub fn aggregate_request(aggregate: &str) -> GetAggregateEventsRequest {
    GetAggregateEventsRequest {
        aggregate_id: aggregate.to_string(),
        ..Default::default()
    }
}

/// An open tracking stream: send more requests (permits), read events.
pub struct Tracking {
    pub requests: mpsc::Sender<GetEventsRequest>,
    pub events: Streaming<EventWithToken>,
}

impl Tracking {
    pub async fn open(client: &AxonClient, first: GetEventsRequest) -> Result<Tracking, Status> {
        let (requests, receiver) = mpsc::channel(16);
        requests
            .send(first)
            .await
            .map_err(|_| Status::internal("request channel closed"))?;
        let events = client
            .events
            .clone()
            .list_events(ReceiverStream::new(receiver))
            .await?
            .into_inner();
        Ok(Tracking { requests, events })
    }

    pub async fn grant(&self, permits: i64) {
        let request = GetEventsRequest {
            number_of_permits: permits,
            ..Default::default()
        };
        self.requests
            .send(request)
            .await
            .expect("tracking stream open");
    }

    /// The next event, or `None` if none arrives within `wait`.
    pub async fn next_within(&mut self, wait: std::time::Duration) -> Option<EventWithToken> {
        match tokio::time::timeout(wait, self.events.message()).await {
            Ok(Ok(Some(event))) => Some(event),
            Ok(Ok(None)) => None,
            Ok(Err(status)) => panic!("tracking stream failed: {status}"),
            Err(_) => None,
        }
    }
}

pub fn from_token(token: i64, permits: i64) -> GetEventsRequest {
    GetEventsRequest {
        tracking_token: token,
        number_of_permits: permits,
        client_id: "test-client".to_string(),
        component_name: "tests".to_string(),
        processor: "test-processor".to_string(),
        ..Default::default()
    }
}

/// Every test runs under this bound.
pub const TEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
