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

pub mod handlers {
    //! Test stand-ins for handler applications: open a command or query stream, subscribe, grant
    //! permits, and see what the server sends.

    use std::time::Duration;

    use myelin_protocol::grpc::command::command_provider_inbound::Request as CommandIn;
    use myelin_protocol::grpc::command::command_provider_outbound::Request as CommandOut;
    use myelin_protocol::grpc::command::{
        Command, CommandProviderInbound, CommandProviderOutbound, CommandResponse,
        CommandSubscription,
    };
    use myelin_protocol::grpc::query::query_provider_inbound::Request as QueryIn;
    use myelin_protocol::grpc::query::query_provider_outbound::Request as QueryOut;
    use myelin_protocol::grpc::query::{
        QueryComplete, QueryProviderInbound, QueryProviderOutbound, QueryRequest, QueryResponse,
        QuerySubscription,
    };
    use myelin_protocol::grpc::{
        meta_data_value, FlowControl, MetaDataValue, ProcessingInstruction, ProcessingKey,
        SerializedObject,
    };
    use myelin_testkit::AxonClient;
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::ReceiverStream;
    use tonic::Streaming;

    pub fn instruction(key: ProcessingKey, value: meta_data_value::Data) -> ProcessingInstruction {
        ProcessingInstruction {
            key: key as i32,
            value: Some(MetaDataValue { data: Some(value) }),
        }
    }

    pub fn payload(text: &str) -> Option<SerializedObject> {
        Some(SerializedObject {
            r#type: "java.lang.String".into(),
            revision: String::new(),
            data: text.as_bytes().to_vec(),
        })
    }

    pub fn text(payload: &Option<SerializedObject>) -> String {
        payload
            .as_ref()
            .map(|p| String::from_utf8_lossy(&p.data).into_owned())
            .unwrap_or_default()
    }

    /// A command with a routing key (and optional priority / timeout in ms).
    pub fn command(
        name: &str,
        routing_key: &str,
        priority: Option<i64>,
        timeout_ms: Option<i64>,
    ) -> Command {
        let mut instructions = vec![instruction(
            ProcessingKey::RoutingKey,
            meta_data_value::Data::TextValue(routing_key.into()),
        )];
        if let Some(p) = priority {
            instructions.push(instruction(
                ProcessingKey::Priority,
                meta_data_value::Data::NumberValue(p),
            ));
        }
        if let Some(t) = timeout_ms {
            instructions.push(instruction(
                ProcessingKey::Timeout,
                meta_data_value::Data::NumberValue(t),
            ));
        }
        Command {
            message_identifier: uuid::Uuid::new_v4().to_string(),
            name: name.into(),
            timestamp: super::now_ms(),
            payload: payload(routing_key),
            processing_instructions: instructions,
            client_id: "caller".into(),
            component_name: "callers".into(),
            ..Default::default()
        }
    }

    /// A command handler application instance.
    pub struct CommandHandler {
        pub client_id: String,
        requests: mpsc::Sender<CommandProviderOutbound>,
        inbound: Streaming<CommandProviderInbound>,
    }

    impl CommandHandler {
        /// Opens a stream, grants `permits`, subscribes `names` and waits for the acks.
        pub async fn connect(
            client: &AxonClient,
            client_id: &str,
            names: &[&str],
            permits: i64,
        ) -> CommandHandler {
            let (requests, receiver) = mpsc::channel(64);
            let inbound = client
                .commands
                .clone()
                .open_stream(ReceiverStream::new(receiver))
                .await
                .expect("command stream")
                .into_inner();
            let mut handler = CommandHandler {
                client_id: client_id.into(),
                requests,
                inbound,
            };
            handler.grant(permits).await;
            for name in names {
                handler.subscribe(name, 100).await;
            }
            handler
        }

        pub async fn send(&self, request: CommandOut, instruction_id: &str) {
            let message = CommandProviderOutbound {
                request: Some(request),
                instruction_id: instruction_id.into(),
            };
            self.requests
                .send(message)
                .await
                .expect("command stream open");
        }

        pub async fn grant(&self, permits: i64) {
            let flow = FlowControl {
                client_id: self.client_id.clone(),
                permits,
            };
            self.send(CommandOut::FlowControl(flow), "").await;
        }

        /// Subscribes and waits for the server's ack of it.
        pub async fn subscribe(&mut self, name: &str, load_factor: i32) {
            let id = uuid::Uuid::new_v4().to_string();
            let subscription = CommandSubscription {
                message_id: id.clone(),
                command: name.into(),
                component_name: "handlers".into(),
                client_id: self.client_id.clone(),
                load_factor,
            };
            self.send(CommandOut::Subscribe(subscription), &id).await;
            match self.next(Duration::from_secs(5)).await {
                Some(CommandIn::Ack(ack)) => assert_eq!(ack.instruction_id, id),
                other => panic!("expected the subscription's ack, got {other:?}"),
            }
        }

        /// The next message from the server within `wait`.
        pub async fn next(&mut self, wait: Duration) -> Option<CommandIn> {
            match tokio::time::timeout(wait, self.inbound.message()).await {
                Ok(Ok(Some(message))) => message.request,
                Ok(Ok(None)) | Err(_) => None,
                Ok(Err(status)) => panic!("command stream failed: {status}"),
            }
        }

        /// The next command within `wait`.
        pub async fn next_command(&mut self, wait: Duration) -> Option<Command> {
            match self.next(wait).await {
                Some(CommandIn::Command(command)) => Some(command),
                Some(other) => panic!("expected a command, got {other:?}"),
                None => None,
            }
        }

        pub async fn respond(&self, command: &Command, response: CommandResponse) {
            let response = CommandResponse {
                request_identifier: command.message_identifier.clone(),
                message_identifier: uuid::Uuid::new_v4().to_string(),
                ..response
            };
            self.send(CommandOut::CommandResponse(response), "").await;
        }
    }

    /// A query handler application instance.
    pub struct QueryHandler {
        pub client_id: String,
        pub component: String,
        requests: mpsc::Sender<QueryProviderOutbound>,
        inbound: Streaming<QueryProviderInbound>,
    }

    impl QueryHandler {
        pub async fn connect(
            client: &AxonClient,
            client_id: &str,
            component: &str,
            names: &[&str],
            permits: i64,
        ) -> QueryHandler {
            let (requests, receiver) = mpsc::channel(64);
            let inbound = client
                .queries
                .clone()
                .open_stream(ReceiverStream::new(receiver))
                .await
                .expect("query stream")
                .into_inner();
            let mut handler = QueryHandler {
                client_id: client_id.into(),
                component: component.into(),
                requests,
                inbound,
            };
            handler
                .send(
                    QueryOut::FlowControl(FlowControl {
                        client_id: client_id.into(),
                        permits,
                    }),
                    "",
                )
                .await;
            for name in names {
                let id = uuid::Uuid::new_v4().to_string();
                let subscription = QuerySubscription {
                    message_id: id.clone(),
                    query: name.to_string(),
                    result_name: "java.lang.String".into(),
                    component_name: component.into(),
                    client_id: client_id.into(),
                };
                handler.send(QueryOut::Subscribe(subscription), &id).await;
                match handler.next(Duration::from_secs(5)).await {
                    Some(QueryIn::Ack(ack)) => assert_eq!(ack.instruction_id, id),
                    other => panic!("expected the subscription's ack, got {other:?}"),
                }
            }
            handler
        }

        pub async fn send(&self, request: QueryOut, instruction_id: &str) {
            let message = QueryProviderOutbound {
                request: Some(request),
                instruction_id: instruction_id.into(),
            };
            self.requests
                .send(message)
                .await
                .expect("query stream open");
        }

        pub async fn next(&mut self, wait: Duration) -> Option<QueryIn> {
            match tokio::time::timeout(wait, self.inbound.message()).await {
                Ok(Ok(Some(message))) => message.request,
                Ok(Ok(None)) | Err(_) => None,
                Ok(Err(status)) => panic!("query stream failed: {status}"),
            }
        }
    }

    pub fn query(
        name: &str,
        results: i64,
        streaming: bool,
        timeout_ms: Option<i64>,
    ) -> QueryRequest {
        let mut instructions = vec![instruction(
            ProcessingKey::NrOfResults,
            meta_data_value::Data::NumberValue(results),
        )];
        if streaming {
            instructions.push(instruction(
                ProcessingKey::ClientSupportsStreaming,
                meta_data_value::Data::BooleanValue(true),
            ));
        }
        if let Some(t) = timeout_ms {
            instructions.push(instruction(
                ProcessingKey::Timeout,
                meta_data_value::Data::NumberValue(t),
            ));
        }
        QueryRequest {
            message_identifier: uuid::Uuid::new_v4().to_string(),
            query: name.into(),
            timestamp: super::now_ms(),
            payload: payload("question"),
            processing_instructions: instructions,
            client_id: "asker".into(),
            component_name: "askers".into(),
            ..Default::default()
        }
    }

    /// Answers every query with "<component>/<client>" and completes it, until the stream ends.
    pub fn answer_all(mut handler: QueryHandler) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            while let Some(message) = handler.next(Duration::from_secs(30)).await {
                if let QueryIn::Query(query) = message {
                    let response = QueryResponse {
                        message_identifier: uuid::Uuid::new_v4().to_string(),
                        request_identifier: query.message_identifier.clone(),
                        payload: payload(&format!("{}/{}", handler.component, handler.client_id)),
                        ..Default::default()
                    };
                    handler.send(QueryOut::QueryResponse(response), "").await;
                    let complete = QueryComplete {
                        message_id: uuid::Uuid::new_v4().to_string(),
                        request_id: query.message_identifier,
                    };
                    handler.send(QueryOut::QueryComplete(complete), "").await;
                }
            }
        })
    }

    pub async fn ask(
        client: &myelin_testkit::AxonClient,
        request: QueryRequest,
    ) -> Vec<QueryResponse> {
        let mut stream = client
            .queries
            .clone()
            .query(request)
            .await
            .expect("query")
            .into_inner();
        let mut responses = Vec::new();
        while let Some(response) = stream.message().await.expect("response") {
            responses.push(response);
        }
        responses
    }
}

pub mod http {
    //! A small HTTP/1.1 client for the REST tests, without a client library: one request per
    //! connection, chunked bodies decoded, server-sent events split into their `data:` lines.

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// What came back.
    #[derive(Debug)]
    pub struct Reply {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: String,
    }

    impl Reply {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        /// The `AxonIQ-ErrorCode` header.
        pub fn error_code(&self) -> Option<&str> {
            self.header("AxonIQ-ErrorCode")
        }

        pub fn json(&self) -> serde_json::Value {
            match serde_json::from_str(&self.body) {
                Ok(value) => value,
                Err(e) => panic!("not JSON ({e}): {}", self.body),
            }
        }

        /// The JSON of every server-sent event, in order.
        pub fn events(&self) -> Vec<serde_json::Value> {
            self.body
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|data| match serde_json::from_str(data.trim_start()) {
                    Ok(value) => value,
                    Err(e) => panic!("event is not JSON ({e}): {data}"),
                })
                .collect()
        }

        /// The SSE ids, in order.
        pub fn event_ids(&self) -> Vec<String> {
            self.body
                .lines()
                .filter_map(|line| line.strip_prefix("id:"))
                .map(|id| id.trim().to_string())
                .collect()
        }
    }

    /// Sends `method path` to `address` with the given extra headers and JSON body.
    pub async fn request(
        address: std::net::SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Reply {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        exchange(stream, method, path, headers, body).await
    }

    /// `request` over HTTPS, trusting the CA certificates in `ca`; `Err` when the TLS handshake
    /// fails (the server is not trusted, or does not speak TLS).
    pub async fn request_tls(
        address: std::net::SocketAddr,
        ca: &std::path::Path,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> std::io::Result<Reply> {
        let config = myelin_server::tls::client_config(Some(ca), myelin_server::tls::ALPN_HTTP)
            .expect("CA file");
        let tcp = tokio::net::TcpStream::connect(address).await?;
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        Ok(exchange(stream, method, path, headers, body).await)
    }

    /// POSTs `body` as `content_type` (e.g. a login form) to `address`.
    pub async fn post(
        address: std::net::SocketAddr,
        path: &str,
        content_type: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let mut all = headers.to_vec();
        all.push(("Content-Type", content_type));
        send(stream, "POST", path, &all, body).await
    }

    async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        stream: S,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Reply {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut all = headers.to_vec();
        if !body.is_empty() {
            all.push(("Content-Type", "application/json"));
        }
        send(stream, method, path, &all, &body).await
    }

    async fn send<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        mut stream: S,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(head.as_bytes()).await.expect("write");
        stream.write_all(body.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        // A TLS peer may close without close_notify; what arrived until then is the reply.
        let _ = stream.read_to_end(&mut raw).await;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let chunked = headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
        });
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_string()
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    fn dechunk(mut rest: &str) -> String {
        let mut body = String::new();
        while let Some((size, after)) = rest.split_once("\r\n") {
            let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
                break;
            };
            if size == 0 || after.len() < size {
                break;
            }
            body.push_str(&after[..size]);
            rest = after[size..].strip_prefix("\r\n").unwrap_or(&after[size..]);
        }
        body
    }
}

pub mod platform {
    //! A test stand-in for an application's platform stream: it registers, reports an event
    //! processor (`card-summary`, token store `ts-1`) and answers the instructions it gets.

    use std::time::Duration;

    use myelin_protocol::grpc::control::event_processor_info::SegmentStatus;
    use myelin_protocol::grpc::control::platform_inbound_instruction::Request as PlatformIn;
    use myelin_protocol::grpc::control::platform_outbound_instruction::Request as PlatformOut;
    use myelin_protocol::grpc::control::{
        ClientIdentification, EventProcessorInfo, PlatformInboundInstruction,
        PlatformOutboundInstruction,
    };
    use myelin_protocol::grpc::{ErrorMessage, InstructionResult};
    use myelin_testkit::AxonClient;
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::ReceiverStream;
    use tonic::Streaming;

    const WAIT: Duration = Duration::from_secs(5);

    /// An application's platform stream: registers, reports a processor, and answers instructions.
    pub struct Application {
        inbound: mpsc::Sender<PlatformInboundInstruction>,
        outbound: Streaming<PlatformOutboundInstruction>,
    }

    impl Application {
        pub async fn connect(
            client: &AxonClient,
            client_id: &str,
            segments: &[(i32, i32)],
        ) -> Application {
            let (inbound, receiver) = mpsc::channel(16);
            let outbound = client
                .platform
                .clone()
                .open_stream(ReceiverStream::new(receiver))
                .await
                .expect("open stream")
                .into_inner();
            let app = Application { inbound, outbound };
            let identification = ClientIdentification {
                client_id: client_id.into(),
                component_name: "cards".into(),
                version: "4.13.0".into(),
                ..Default::default()
            };
            app.send(PlatformIn::Register(identification), "").await;
            app.report(segments, true).await;
            app
        }

        pub async fn send(&self, request: PlatformIn, instruction_id: &str) {
            let message = PlatformInboundInstruction {
                request: Some(request),
                instruction_id: instruction_id.into(),
            };
            self.inbound.send(message).await.expect("send");
        }

        pub async fn report(&self, segments: &[(i32, i32)], running: bool) {
            let info = EventProcessorInfo {
                processor_name: "card-summary".into(),
                mode: "Pooled Streaming".into(),
                running,
                is_streaming_processor: true,
                token_store_identifier: "ts-1".into(),
                available_threads: 2,
                segment_status: segments
                    .iter()
                    .map(|(id, parts)| SegmentStatus {
                        segment_id: *id,
                        one_part_of: *parts,
                        token_position: 1,
                        caught_up: true,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            };
            self.send(PlatformIn::EventProcessorInfo(info), "").await;
        }

        /// The next instruction (not an ack), with its id.
        pub async fn instruction(&mut self) -> (String, PlatformOut) {
            loop {
                let message = tokio::time::timeout(WAIT, self.outbound.message())
                    .await
                    .expect("an instruction in time")
                    .expect("stream open")
                    .expect("a message");
                match message.request {
                    Some(PlatformOut::Ack(_)) | None => continue,
                    Some(request) => return (message.instruction_id, request),
                }
            }
        }

        pub async fn answer(&self, instruction_id: &str, error: Option<&str>) {
            let result = InstructionResult {
                instruction_id: instruction_id.into(),
                success: error.is_none(),
                error: error.map(|message| ErrorMessage {
                    message: message.into(),
                    error_code: "AXONIQ-1004".into(),
                    ..Default::default()
                }),
            };
            self.send(PlatformIn::Result(result), "").await;
        }
    }
}
