//! Event processor control, shared by `EventProcessorAdminService` (gRPC) and the REST API: finds
//! the application instances that run a processor (from their `EventProcessorInfo` reports),
//! sends them the platform-stream instruction for the action (pause, start, split, merge, release
//! a segment), and collects their answers. Split picks the largest claimed segment, merge the
//! smallest (every other instance first releases its sibling), and a move has every instance
//! but the target release the segment so the target claims it — as Axon Server does.

use std::collections::BTreeSet;
use std::time::Duration;

use myelin_protocol::wire::control::platform_outbound_instruction::Request as Outbound;
use myelin_protocol::wire::control::{EventProcessorReference, EventProcessorSegmentReference};
use serde::Serialize;

use crate::api_error::ApiError;
use crate::clients::{ConnectedClient, InstructionOutcome};
use crate::node::Shared;

/// How long an action waits for the instances' results before it answers ACCEPTED.
const INSTRUCTION_RESULT_WAIT_MS: u64 = 10_000;

/// Which processor an action is for.
#[derive(Debug, Clone)]
pub(crate) struct ProcessorRef {
    pub context: String,
    /// Only instances of this component (REST paths name one); `None` for any.
    pub component: Option<String>,
    pub name: String,
    /// Only instances with this token store; `None` or empty for any.
    pub token_store: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ProcessorAction {
    Pause,
    Start,
    Split,
    Merge,
    Move { segment: i32, target_client: String },
}

impl ProcessorAction {
    fn name(&self) -> &'static str {
        match self {
            ProcessorAction::Pause => "pause",
            ProcessorAction::Start => "start",
            ProcessorAction::Split => "split",
            ProcessorAction::Merge => "merge",
            ProcessorAction::Move { .. } => "move",
        }
    }
}

/// `SUCCESS` when every instance reported its result, `ACCEPTED` when some are still working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum ActionResult {
    Success,
    Accepted,
}

/// What one instance answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InstanceOutcome {
    pub client_id: String,
    pub instruction: &'static str,
    /// `None` while the instance has not answered.
    pub success: Option<bool>,
    pub error: Option<String>,
}

/// The answer to an action, in Axon's `{success, message}` plus what each instance said.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ActionReport {
    pub success: bool,
    pub message: String,
    pub result: ActionResult,
    pub instances: Vec<InstanceOutcome>,
}

/// One instruction to one instance.
struct Instruction {
    client: ConnectedClient,
    name: &'static str,
    request: Outbound,
}

/// Runs `action` on the instances of `processor` (here, or on the nodes where they are connected
/// when none is connected here) and reports their answers: an error when one failed.
pub(crate) async fn control(
    shared: &Shared,
    processor: &ProcessorRef,
    action: ProcessorAction,
) -> Result<ActionReport, ApiError> {
    let outcomes = if instances_of(shared, processor).is_empty() {
        crate::cluster::act_elsewhere(shared, processor, &action).await?
    } else {
        control_here(shared, processor, &action).await?
    };
    let failures: Vec<String> = outcomes
        .iter()
        .filter(|o| o.success == Some(false))
        .map(|o| {
            let error = o.error.as_deref().unwrap_or("failed");
            format!("{}: {error}", o.client_id)
        })
        .collect();
    if !failures.is_empty() {
        return Err(ApiError::InstructionFailed(failures.join("; ")));
    }
    let result = crate::cluster::result_of(&outcomes);
    let done = match &action {
        ProcessorAction::Pause => "paused".to_string(),
        ProcessorAction::Start => "started".to_string(),
        ProcessorAction::Split => "split".to_string(),
        ProcessorAction::Merge => "merged".to_string(),
        ProcessorAction::Move { segment, .. } => format!("segment {segment} moved"),
    };
    let message = match result {
        ActionResult::Success => format!("processor {} {done}", processor.name),
        ActionResult::Accepted => format!(
            "processor {}: {} instance(s) have not reported their result yet",
            processor.name,
            outcomes.iter().filter(|o| o.success.is_none()).count()
        ),
    };
    Ok(ActionReport {
        success: true,
        message,
        result,
        instances: outcomes,
    })
}

/// Runs `action` on the instances connected to this node and collects what each answered
/// (within `INSTRUCTION_RESULT_WAIT_MS`); the cluster service runs forwarded actions here.
pub(crate) async fn control_here(
    shared: &Shared,
    processor: &ProcessorRef,
    action: &ProcessorAction,
) -> Result<Vec<InstanceOutcome>, ApiError> {
    let instances = instances_of(shared, processor);
    if instances.is_empty() {
        return Err(ApiError::ProcessorNotFound(processor.name.clone()));
    }
    let instructions = plan(&processor.name, &instances, action)?;
    tracing::info!(processor = %processor.name, context = %processor.context, action = action.name(), instances = instructions.len(), "processor action");
    let mut waiting = Vec::new();
    for instruction in instructions {
        let client_id = instruction.client.client_id.clone();
        match shared
            .clients
            .send_instruction(&instruction.client.stream_id, instruction.request)
        {
            Some(answer) => waiting.push((client_id, instruction.name, answer)),
            None => {
                return Err(ApiError::InstructionFailed(format!(
                    "{client_id} is no longer connected"
                )))
            }
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(INSTRUCTION_RESULT_WAIT_MS);
    let mut outcomes = Vec::new();
    for (client_id, instruction, answer) in waiting {
        let outcome = match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(InstructionOutcome { success, error })) => (Some(success), error),
            Ok(Err(_)) => (Some(false), Some("the client disconnected".to_string())),
            Err(_) => (None, None),
        };
        outcomes.push(InstanceOutcome {
            client_id,
            instruction,
            success: outcome.0,
            error: outcome.1,
        });
    }
    Ok(outcomes)
}

/// Whether `client` reports `processor` (in its context, component and token store).
pub(crate) fn runs(client: &ConnectedClient, processor: &ProcessorRef) -> bool {
    let token_store = processor.token_store.as_deref().filter(|t| !t.is_empty());
    client.context == processor.context
        && processor
            .component
            .as_deref()
            .is_none_or(|name| client.component_name == name)
        && client
            .processors
            .get(&processor.name)
            .is_some_and(|info| token_store.is_none_or(|t| info.token_store_identifier == t))
}

/// The instances connected to this node that report `processor`.
pub(crate) fn instances_of(shared: &Shared, processor: &ProcessorRef) -> Vec<ConnectedClient> {
    shared
        .clients
        .list()
        .into_iter()
        .filter(|c| runs(c, processor))
        .collect()
}

/// A claimed segment: its id, how many parts the processor's stream is split into at its level,
/// and the instance holding it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Claim {
    one_part_of: i32,
    segment: i32,
    owner: usize,
}

/// Which instructions `action` takes, to which instances.
fn plan(
    processor: &str,
    instances: &[ConnectedClient],
    action: &ProcessorAction,
) -> Result<Vec<Instruction>, ApiError> {
    let reference = || EventProcessorReference {
        processor_name: processor.to_string(),
    };
    let segment_ref = |segment: i32| EventProcessorSegmentReference {
        processor_name: processor.to_string(),
        segment_identifier: segment,
    };
    let to = |owner: usize, name: &'static str, request: Outbound| Instruction {
        client: instances[owner].clone(),
        name,
        request,
    };
    let claims: BTreeSet<Claim> = instances
        .iter()
        .enumerate()
        .flat_map(|(owner, client)| {
            client
                .processors
                .get(processor)
                .into_iter()
                .flat_map(|info| &info.segment_status)
                .map(move |s| Claim {
                    one_part_of: s.one_part_of.max(1),
                    segment: s.segment_id,
                    owner,
                })
        })
        .collect();
    let nothing_claimed = || {
        ApiError::InvalidRequest(format!(
            "no instance of {processor} claims a segment right now"
        ))
    };
    Ok(match action {
        ProcessorAction::Pause => (0..instances.len())
            .map(|i| to(i, "pause", Outbound::PauseEventProcessor(reference())))
            .collect(),
        ProcessorAction::Start => (0..instances.len())
            .map(|i| to(i, "start", Outbound::StartEventProcessor(reference())))
            .collect(),
        ProcessorAction::Split => {
            // The largest segment is the one whose stream is split into the fewest parts.
            let largest = claims.iter().next().ok_or_else(nothing_claimed)?;
            vec![to(
                largest.owner,
                "split",
                Outbound::SplitEventProcessorSegment(segment_ref(largest.segment)),
            )]
        }
        ProcessorAction::Merge => {
            let smallest = claims.iter().next_back().ok_or_else(nothing_claimed)?;
            if smallest.one_part_of < 2 {
                return Err(ApiError::InvalidRequest(format!(
                    "{processor} has a single segment; there is nothing to merge"
                )));
            }
            // Every other instance lets go of the sibling (and leaves it alone a while), so the
            // owner of the smallest segment can claim it and merge the two.
            let sibling = smallest.segment ^ (smallest.one_part_of / 2);
            let mut instructions: Vec<Instruction> = (0..instances.len())
                .filter(|i| *i != smallest.owner)
                .map(|i| to(i, "release", Outbound::ReleaseSegment(segment_ref(sibling))))
                .collect();
            instructions.push(to(
                smallest.owner,
                "merge",
                Outbound::MergeEventProcessorSegment(segment_ref(smallest.segment)),
            ));
            instructions
        }
        ProcessorAction::Move {
            segment,
            target_client,
        } => {
            if !instances.iter().any(|c| &c.client_id == target_client) {
                return Err(ApiError::UnknownMoveTarget {
                    processor: processor.to_string(),
                    target: target_client.clone(),
                });
            }
            // Every instance but the target releases the segment (and leaves it alone a while),
            // so the target is the one to claim it; nothing to do when it holds it already.
            let held_by_target = claims
                .iter()
                .any(|c| c.segment == *segment && &instances[c.owner].client_id == target_client);
            if held_by_target {
                return Ok(Vec::new());
            }
            (0..instances.len())
                .filter(|i| &instances[*i].client_id != target_client)
                .map(|i| {
                    to(
                        i,
                        "release",
                        Outbound::ReleaseSegment(segment_ref(*segment)),
                    )
                })
                .collect()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use myelin_protocol::wire::control::event_processor_info::SegmentStatus;
    use myelin_protocol::wire::control::EventProcessorInfo;

    fn instance(client: &str, segments: &[(i32, i32)]) -> ConnectedClient {
        let info = EventProcessorInfo {
            processor_name: "p".into(),
            segment_status: segments
                .iter()
                .map(|(id, parts)| SegmentStatus {
                    segment_id: *id,
                    one_part_of: *parts,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        ConnectedClient {
            stream_id: format!("{client}.s"),
            context: "default".into(),
            client_id: client.into(),
            component_name: "c".into(),
            version: String::new(),
            tags: Default::default(),
            processors: [("p".to_string(), info)].into(),
        }
    }

    fn targets(instructions: &[Instruction]) -> Vec<(String, &'static str, i32)> {
        instructions
            .iter()
            .map(|i| {
                let segment = match &i.request {
                    Outbound::SplitEventProcessorSegment(r)
                    | Outbound::MergeEventProcessorSegment(r)
                    | Outbound::ReleaseSegment(r) => r.segment_identifier,
                    _ => -1,
                };
                (i.client.client_id.clone(), i.name, segment)
            })
            .collect()
    }

    #[test]
    fn split_takes_the_largest_segment_and_merge_the_smallest() {
        let instances = [instance("a", &[(0, 2)]), instance("b", &[(1, 4), (3, 4)])];
        let split = plan("p", &instances, &ProcessorAction::Split).expect("split");
        assert_eq!(targets(&split), vec![("a".into(), "split", 0)]);
        let merge = plan("p", &instances, &ProcessorAction::Merge).expect("merge");
        // Segment 3 of 4 merges with its sibling 1: the other instance lets go of 1 first.
        assert_eq!(
            targets(&merge),
            vec![("a".into(), "release", 1), ("b".into(), "merge", 3)]
        );
    }

    #[test]
    fn merge_has_the_other_instances_release_the_sibling() {
        let instances = [instance("a", &[(0, 2)]), instance("b", &[(1, 2)])];
        let merge = plan("p", &instances, &ProcessorAction::Merge).expect("merge");
        assert_eq!(
            targets(&merge),
            vec![("a".into(), "release", 0), ("b".into(), "merge", 1)]
        );
        let single = [instance("a", &[(0, 1)])];
        assert!(plan("p", &single, &ProcessorAction::Merge).is_err());
    }

    #[test]
    fn move_releases_everywhere_but_the_target_and_checks_the_target() {
        let instances = [
            instance("a", &[(0, 2), (1, 2)]),
            instance("b", &[]),
            instance("c", &[]),
        ];
        let action = ProcessorAction::Move {
            segment: 1,
            target_client: "b".into(),
        };
        let moved = plan("p", &instances, &action).expect("move");
        assert_eq!(
            targets(&moved),
            vec![("a".into(), "release", 1), ("c".into(), "release", 1)]
        );
        let already = ProcessorAction::Move {
            segment: 0,
            target_client: "a".into(),
        };
        assert!(plan("p", &instances, &already).expect("no-op").is_empty());
        let unknown = ProcessorAction::Move {
            segment: 1,
            target_client: "z".into(),
        };
        assert!(matches!(
            plan("p", &instances, &unknown),
            Err(ApiError::UnknownMoveTarget { .. })
        ));
    }
}
