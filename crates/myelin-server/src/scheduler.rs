//! `EventScheduler` on 8124 and the task that publishes due events. Schedules are log entries, so
//! they are durable and survive restarts; publishing one is a log entry too (`PublishScheduled`),
//! which appends the event with its publication time and removes the schedule in one step.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use myelin_protocol::log::{log_command::Command, CancelSchedule, PublishScheduled, ScheduleEvent};
use myelin_protocol::wire::event::event_scheduler_server::EventScheduler;
use myelin_protocol::wire::event::{
    CancelScheduledEventRequest, RescheduleEventRequest, ScheduleEventRequest, ScheduleToken,
};
use myelin_protocol::wire::InstructionAck;
use myelin_protocol::RawEvent;
use myelin_storage::ApplyOutcome;
use tonic::{Request, Response, Status};

use crate::api_error::ApiError;
use crate::event_store::validate_event;
use crate::gateway::call_context;
use crate::node::Shared;

/// Longest the publisher sleeps before it looks at the schedule again.
const PUBLISHER_IDLE_MS: u64 = 1000;
/// Due events published per round.
const PUBLISH_BATCH_MAX: usize = 256;

pub struct SchedulerService {
    shared: Arc<Shared>,
}

impl SchedulerService {
    pub(crate) fn new(shared: Arc<Shared>) -> SchedulerService {
        SchedulerService { shared }
    }

    async fn schedule(
        &self,
        context: String,
        instant_ms: i64,
        event: Option<RawEvent>,
    ) -> Result<ScheduleToken, ApiError> {
        let event =
            event.ok_or_else(|| ApiError::InvalidRequest("no event to schedule".to_string()))?;
        validate_event(&event, self.shared.max_message_size_bytes)?;
        let schedule_token = uuid::Uuid::new_v4().to_string();
        let command = Command::ScheduleEvent(ScheduleEvent {
            context,
            schedule_token: schedule_token.clone(),
            instant_ms,
            event: event.into_vec(),
        });
        match self.shared.propose(command).await? {
            ApplyOutcome::Scheduled => {
                self.shared.scheduler_wake.notify_one();
                Ok(ScheduleToken {
                    token: schedule_token,
                })
            }
            ApplyOutcome::Rejected(rejection) => Err(ApiError::Rejected(rejection)),
            other => Err(ApiError::InvalidRequest(format!(
                "unexpected outcome of a schedule: {other:?}"
            ))),
        }
    }

    async fn cancel(&self, context: String, schedule_token: String) -> Result<(), ApiError> {
        let command = Command::CancelSchedule(CancelSchedule {
            context,
            schedule_token,
        });
        match self.shared.propose(command).await? {
            ApplyOutcome::Cancelled { .. } => Ok(()),
            ApplyOutcome::Rejected(rejection) => Err(ApiError::Rejected(rejection)),
            other => Err(ApiError::InvalidRequest(format!(
                "unexpected outcome of a cancel: {other:?}"
            ))),
        }
    }
}

#[tonic::async_trait]
impl EventScheduler for SchedulerService {
    async fn schedule_event(
        &self,
        request: Request<ScheduleEventRequest>,
    ) -> Result<Response<ScheduleToken>, Status> {
        let context = call_context(&request)?.context;
        let request = request.into_inner();
        Ok(Response::new(
            self.schedule(context, request.instant, request.event)
                .await?,
        ))
    }

    async fn reschedule_event(
        &self,
        request: Request<RescheduleEventRequest>,
    ) -> Result<Response<ScheduleToken>, Status> {
        let context = call_context(&request)?.context;
        let request = request.into_inner();
        if !request.token.is_empty() {
            self.cancel(context.clone(), request.token).await?;
        }
        Ok(Response::new(
            self.schedule(context, request.instant, request.event)
                .await?,
        ))
    }

    async fn cancel_scheduled_event(
        &self,
        request: Request<CancelScheduledEventRequest>,
    ) -> Result<Response<InstructionAck>, Status> {
        let context = call_context(&request)?.context;
        let token = request.into_inner().token;
        // Cancelling a schedule that already fired (or never was) is not an error in Axon.
        self.cancel(context, token.clone()).await?;
        Ok(Response::new(InstructionAck {
            instruction_id: token,
            success: true,
            error: None,
        }))
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Publishes due scheduled events while this node leads, until shutdown.
pub(crate) async fn run_publisher(shared: Arc<Shared>) {
    let mut status = shared.group.status();
    loop {
        let mut sleep_ms = PUBLISHER_IDLE_MS;
        let leading = status.borrow_and_update().is_leader();
        if leading {
            match publish_due(&shared).await {
                Ok(next_due) => {
                    if let Some(next) = next_due {
                        sleep_ms = sleep_ms.min((next - now_ms()).max(0) as u64);
                    }
                }
                Err(e) => tracing::warn!("publishing scheduled events failed, retrying: {e}"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {}
            _ = shared.scheduler_wake.notified() => {}
            _ = status.wait_for(|s| s.is_leader() != leading) => {}
            _ = shared.shutdown.cancelled() => return,
        }
    }
}

/// Publishes every due event; returns the instant of the next one not yet due.
async fn publish_due(shared: &Shared) -> Result<Option<i64>, ApiError> {
    let mut earliest: Option<i64> = None;
    for name in shared.store.context_names() {
        let context = shared.context(&name)?;
        loop {
            let now = now_ms();
            let (due, next) = shared
                .store
                .due_schedules(&context, now, PUBLISH_BATCH_MAX)?;
            if due.is_empty() {
                earliest = match (earliest, next) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                break;
            }
            for schedule in due {
                let command = Command::PublishScheduled(PublishScheduled {
                    context: name.clone(),
                    schedule_token: schedule.schedule_token.clone(),
                    publication_time_ms: now,
                });
                match shared.propose(command).await? {
                    ApplyOutcome::Published {
                        token: Some(token), ..
                    } => {
                        tracing::debug!(schedule = %schedule.schedule_token, token, "scheduled event published")
                    }
                    ApplyOutcome::Rejected(rejection) => {
                        tracing::warn!(schedule = %schedule.schedule_token, "scheduled event dropped: {rejection}")
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(earliest)
}
