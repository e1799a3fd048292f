//! `EventProcessorAdminService` on 8124: the event processors of connected applications, as they
//! report them on their instruction streams (`ClientRegistry`), grouped per processor across
//! instances; pause, start, split, merge and move go to the instances as platform-stream
//! instructions (`processors.rs`). Load balancing strategies are not available (UNIMPLEMENTED).

use std::collections::BTreeMap;
use std::sync::Arc;

use myelin_protocol::wire::admin::event_processor_admin_service_server::EventProcessorAdminService;
use myelin_protocol::wire::admin::{
    self, AdminActionResult, EventProcessor, EventProcessorIdentifier, EventProcessorInstance,
    EventProcessorSegment, LoadBalanceRequest, LoadBalancingStrategy, MoveSegment,
};
use myelin_protocol::wire::Component;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::api_error::ApiError;
use crate::clients::ConnectedClient;
use crate::gateway::call_context;
use crate::node::Shared;
use crate::processors::{self, ActionResult, ProcessorAction, ProcessorRef};

pub struct ProcessorAdmin {
    shared: Arc<Shared>,
}

impl ProcessorAdmin {
    pub(crate) fn new(shared: Arc<Shared>) -> ProcessorAdmin {
        ProcessorAdmin { shared }
    }

    /// Runs a processor action for a gRPC caller.
    async fn act(
        &self,
        context: String,
        identifier: Option<EventProcessorIdentifier>,
        action: ProcessorAction,
    ) -> Result<Response<AdminActionResult>, Status> {
        let identifier = identifier.unwrap_or_default();
        let processor = ProcessorRef {
            context,
            component: None,
            name: identifier.processor_name,
            token_store: Some(identifier.token_store_identifier),
        };
        let report = processors::control(&self.shared, &processor, action).await?;
        let result = match report.result {
            ActionResult::Success => admin::Result::Success,
            ActionResult::Accepted => admin::Result::Accepted,
        };
        Ok(Response::new(AdminActionResult {
            result: result as i32,
        }))
    }

    fn processors(
        &self,
        context: &str,
        component: Option<&str>,
    ) -> ReceiverStream<Result<EventProcessor, Status>> {
        let clients: Vec<ConnectedClient> = self
            .shared
            .clients
            .list()
            .into_iter()
            .filter(|c| {
                c.context == context && component.is_none_or(|name| c.component_name == name)
            })
            .collect();
        let processors = group_processors(context, &clients);
        let (sender, receiver) = tokio::sync::mpsc::channel(processors.len().max(1));
        for processor in processors {
            // Capacity covers every processor, so this never waits.
            let _ = sender.try_send(Ok(processor));
        }
        ReceiverStream::new(receiver)
    }
}

/// One `EventProcessor` per (processor name, token store), with an instance per client.
fn group_processors(context: &str, clients: &[ConnectedClient]) -> Vec<EventProcessor> {
    let mut grouped: BTreeMap<(String, String), EventProcessor> = BTreeMap::new();
    for client in clients {
        for info in client.processors.values() {
            let key = (
                info.processor_name.clone(),
                info.token_store_identifier.clone(),
            );
            let processor = grouped.entry(key).or_insert_with(|| EventProcessor {
                identifier: Some(EventProcessorIdentifier {
                    processor_name: info.processor_name.clone(),
                    token_store_identifier: info.token_store_identifier.clone(),
                    context_name: context.to_string(),
                }),
                mode: info.mode.clone(),
                is_streaming: info.is_streaming_processor,
                client_instance: Vec::new(),
                load_balancing_strategy_name: info.load_balancing_strategy_name.clone(),
            });
            processor.client_instance.push(EventProcessorInstance {
                client_id: client.client_id.clone(),
                is_running: info.running,
                max_capacity: info.available_threads + info.active_threads,
                claimed_segment: info
                    .segment_status
                    .iter()
                    .map(|s| EventProcessorSegment {
                        id: s.segment_id,
                        one_part_of: s.one_part_of,
                        claimed_by: client.client_id.clone(),
                        is_caught_up: s.caught_up,
                        is_replaying: s.replaying,
                        token_position: s.token_position,
                        is_in_error: !s.error_state.is_empty(),
                        error: s.error_state.clone(),
                    })
                    .collect(),
            });
        }
    }
    grouped.into_values().collect()
}

fn not_yet(what: &str) -> Status {
    ApiError::Unimplemented(format!("{what} is not available in Myelin yet")).into()
}

#[tonic::async_trait]
impl EventProcessorAdminService for ProcessorAdmin {
    async fn pause_event_processor(
        &self,
        request: Request<EventProcessorIdentifier>,
    ) -> Result<Response<AdminActionResult>, Status> {
        let context = call_context(&request)?.context;
        self.act(context, Some(request.into_inner()), ProcessorAction::Pause)
            .await
    }

    async fn start_event_processor(
        &self,
        request: Request<EventProcessorIdentifier>,
    ) -> Result<Response<AdminActionResult>, Status> {
        let context = call_context(&request)?.context;
        self.act(context, Some(request.into_inner()), ProcessorAction::Start)
            .await
    }

    async fn split_event_processor(
        &self,
        request: Request<EventProcessorIdentifier>,
    ) -> Result<Response<AdminActionResult>, Status> {
        let context = call_context(&request)?.context;
        self.act(context, Some(request.into_inner()), ProcessorAction::Split)
            .await
    }

    async fn merge_event_processor(
        &self,
        request: Request<EventProcessorIdentifier>,
    ) -> Result<Response<AdminActionResult>, Status> {
        let context = call_context(&request)?.context;
        self.act(context, Some(request.into_inner()), ProcessorAction::Merge)
            .await
    }

    async fn move_event_processor_segment(
        &self,
        request: Request<MoveSegment>,
    ) -> Result<Response<AdminActionResult>, Status> {
        let context = call_context(&request)?.context;
        let request = request.into_inner();
        let action = ProcessorAction::Move {
            segment: request.segment,
            target_client: request.target_client_id,
        };
        self.act(context, request.event_processor, action).await
    }

    type GetAllEventProcessorsStream = ReceiverStream<Result<EventProcessor, Status>>;

    async fn get_all_event_processors(
        &self,
        request: Request<()>,
    ) -> Result<Response<Self::GetAllEventProcessorsStream>, Status> {
        let context = call_context(&request)?.context;
        Ok(Response::new(self.processors(&context, None)))
    }

    type GetEventProcessorsByComponentStream = ReceiverStream<Result<EventProcessor, Status>>;

    async fn get_event_processors_by_component(
        &self,
        request: Request<Component>,
    ) -> Result<Response<Self::GetEventProcessorsByComponentStream>, Status> {
        let context = call_context(&request)?.context;
        let component = request.into_inner().component;
        Ok(Response::new(self.processors(&context, Some(&component))))
    }

    type LoadBalanceProcessorStream = ReceiverStream<Result<(), Status>>;

    async fn load_balance_processor(
        &self,
        _: Request<LoadBalanceRequest>,
    ) -> Result<Response<Self::LoadBalanceProcessorStream>, Status> {
        Err(not_yet("Processor load balancing"))
    }

    type SetAutoLoadBalanceStrategyStream = ReceiverStream<Result<(), Status>>;

    async fn set_auto_load_balance_strategy(
        &self,
        _: Request<LoadBalanceRequest>,
    ) -> Result<Response<Self::SetAutoLoadBalanceStrategyStream>, Status> {
        Err(not_yet("Automatic processor load balancing"))
    }

    type GetBalancingStrategiesStream = ReceiverStream<Result<LoadBalancingStrategy, Status>>;

    async fn get_balancing_strategies(
        &self,
        _: Request<()>,
    ) -> Result<Response<Self::GetBalancingStrategiesStream>, Status> {
        Err(not_yet("Processor load balancing"))
    }
}
