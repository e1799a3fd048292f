//! `RemoteNodes`: what other nodes of a cluster announced about their handlers, and which local
//! handler ids stand for them. A node announces its whole list again and again; an unchanged list
//! only refreshes when it was heard, a changed one replaces the old ids, and a node not heard from
//! for a while loses its handlers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::registry::{HandlerId, HandlerRegistry};

#[derive(Debug)]
struct RemoteNode<A> {
    announced: Vec<A>,
    handlers: Vec<HandlerId>,
    last_seen: Instant,
}

#[derive(Debug)]
pub struct RemoteNodes<A> {
    nodes: HashMap<u64, RemoteNode<A>>,
}

impl<A> Default for RemoteNodes<A> {
    fn default() -> Self {
        RemoteNodes {
            nodes: HashMap::new(),
        }
    }
}

impl<A: PartialEq> RemoteNodes<A> {
    /// When `announced` is what `node` said last, notes that it was heard and returns `None`;
    /// otherwise forgets the node and returns the handler ids that stood for its old list.
    pub fn replace(&mut self, node: u64, announced: &[A], now: Instant) -> Option<Vec<HandlerId>> {
        if let Some(known) = self.nodes.get_mut(&node) {
            if known.announced == announced {
                known.last_seen = now;
                return None;
            }
        }
        Some(
            self.nodes
                .remove(&node)
                .map(|n| n.handlers)
                .unwrap_or_default(),
        )
    }

    /// Records a node's list and the local ids standing for its handlers.
    pub fn insert(&mut self, node: u64, announced: Vec<A>, handlers: Vec<HandlerId>, now: Instant) {
        self.nodes.insert(
            node,
            RemoteNode {
                announced,
                handlers,
                last_seen: now,
            },
        );
    }

    /// The handlers that stand for application `client_id` on other nodes (an application that
    /// shows up somewhere else has moved: these copies are out of date).
    pub fn handlers_of(&self, client_id: &str, registry: &HandlerRegistry) -> Vec<HandlerId> {
        self.nodes
            .values()
            .flat_map(|n| n.handlers.iter().copied())
            .filter(|id| registry.info(*id).is_some_and(|i| i.client_id == client_id))
            .collect()
    }

    /// Forgets a node (it cannot be reached); returns its handler ids.
    pub fn remove(&mut self, node: u64) -> Vec<HandlerId> {
        self.nodes
            .remove(&node)
            .map(|n| n.handlers)
            .unwrap_or_default()
    }

    /// Forgets the nodes not heard from for longer than `max_age`; returns their handler ids.
    pub fn remove_stale(&mut self, now: Instant, max_age: Duration) -> Vec<(u64, Vec<HandlerId>)> {
        let stale: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(_, n)| now.saturating_duration_since(n.last_seen) > max_age)
            .map(|(id, _)| *id)
            .collect();
        stale
            .into_iter()
            .filter_map(|id| self.nodes.remove(&id).map(|n| (id, n.handlers)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_list_is_kept_a_changed_one_replaced_a_silent_node_forgotten() {
        let start = Instant::now();
        let mut nodes = RemoteNodes::default();
        assert_eq!(nodes.replace(7, &["a"], start), Some(vec![]), "new node");
        nodes.insert(7, vec!["a"], vec![HandlerId(1)], start);
        let later = start + Duration::from_secs(3);
        assert_eq!(
            nodes.replace(7, &["a"], later),
            None,
            "same list: nothing to do"
        );
        assert!(nodes.remove_stale(later, Duration::from_secs(4)).is_empty());
        assert_eq!(
            nodes.replace(7, &["a", "b"], later),
            Some(vec![HandlerId(1)]),
            "a new list replaces the old ids"
        );
        nodes.insert(7, vec!["a", "b"], vec![HandlerId(2), HandlerId(3)], later);
        let silent = later + Duration::from_secs(5);
        assert_eq!(
            nodes.remove_stale(silent, Duration::from_secs(4)),
            vec![(7, vec![HandlerId(2), HandlerId(3)])]
        );
    }

    #[test]
    fn the_copies_of_an_application_are_found_by_client_id_on_every_node() {
        let mut registry = HandlerRegistry::default();
        let info = |client: &str| crate::HandlerInfo {
            context: "default".into(),
            client_id: client.into(),
            component: "c".into(),
            client_stream_id: format!("{client}.1"),
        };
        let on_one = registry.add_handler(info("app-1"));
        let other = registry.add_handler(info("app-2"));
        let on_two = registry.add_handler(info("app-1"));
        let now = Instant::now();
        let mut nodes = RemoteNodes::default();
        nodes.insert(1, vec!["x"], vec![on_one, other], now);
        nodes.insert(2, vec!["y"], vec![on_two], now);
        let mut found = nodes.handlers_of("app-1", &registry);
        found.sort();
        assert_eq!(found, vec![on_one, on_two]);
        registry.remove_handler(on_one);
        assert_eq!(
            nodes.handlers_of("app-1", &registry),
            vec![on_two],
            "removed ids are skipped"
        );
    }
}
