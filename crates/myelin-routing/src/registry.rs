//! `HandlerRegistry`: the handler streams of every context and what each one handles. Commands
//! are indexed by (context, name) and picked by consistent hashing on the routing key; queries are
//! indexed by (context, name) and grouped by component, so a query reaches one instance of each
//! component (round robin) while a subscription query reaches every instance. Every change is
//! reported as a `TopologyChange` for the clients that watch the topology.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::ring::HashRing;

/// One handler stream (a command or query `OpenStream` call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandlerId(pub u64);

/// Who is behind a handler stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerInfo {
    pub context: String,
    pub client_id: String,
    pub component: String,
    /// Unique per stream: client id + `.` + a random part.
    pub client_stream_id: String,
}

/// Something a handler handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    Command { name: String, load_factor: u32 },
    Query { name: String },
}

/// A handler registered or dropped a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyChange {
    pub added: bool,
    pub handler: HandlerInfo,
    pub subscription: Subscription,
}

#[derive(Debug)]
struct HandlerState {
    info: HandlerInfo,
    /// Command name → load factor.
    commands: BTreeMap<String, u32>,
    queries: BTreeSet<String>,
}

type Key = (String, String);

#[derive(Debug, Default)]
pub struct HandlerRegistry {
    next_id: u64,
    handlers: HashMap<HandlerId, HandlerState>,
    commands: HashMap<Key, BTreeSet<HandlerId>>,
    /// (context, query) → component → instances.
    queries: HashMap<Key, BTreeMap<String, Vec<HandlerId>>>,
    rings: HashMap<Key, HashRing<HandlerId>>,
    round_robin: HashMap<(String, String, String), usize>,
}

impl HandlerRegistry {
    pub fn add_handler(&mut self, info: HandlerInfo) -> HandlerId {
        self.next_id += 1;
        let id = HandlerId(self.next_id);
        self.handlers.insert(
            id,
            HandlerState {
                info,
                commands: BTreeMap::new(),
                queries: BTreeSet::new(),
            },
        );
        id
    }

    /// Registers a new handler stream of `context`; who is behind it is filled in by `identify`.
    pub fn add_stream(&mut self, context: &str) -> HandlerId {
        let stream_number = self.next_id + 1;
        self.add_handler(HandlerInfo {
            context: context.to_string(),
            client_id: String::new(),
            component: String::new(),
            client_stream_id: format!("stream-{stream_number}"),
        })
    }

    /// Fills in who is behind a stream, from the first message that says so (its client id and
    /// component); later calls change nothing, so ring positions stay put.
    pub fn identify(&mut self, id: HandlerId, client_id: &str, component: &str) {
        if let Some(state) = self.handlers.get_mut(&id) {
            if state.info.client_id.is_empty() && !client_id.is_empty() {
                state.info.client_stream_id =
                    format!("{client_id}.{}", state.info.client_stream_id);
                state.info.client_id = client_id.to_string();
            }
            if state.info.component.is_empty() && !component.is_empty() {
                state.info.component = component.to_string();
            }
        }
    }

    /// The commands a handler subscribed, with their load factors.
    pub fn commands_of(&self, id: HandlerId) -> Vec<(String, u32)> {
        self.handlers.get(&id).map_or_else(Vec::new, |h| {
            h.commands.iter().map(|(n, lf)| (n.clone(), *lf)).collect()
        })
    }

    /// The queries a handler subscribed.
    pub fn queries_of(&self, id: HandlerId) -> Vec<String> {
        self.handlers
            .get(&id)
            .map_or_else(Vec::new, |h| h.queries.iter().cloned().collect())
    }

    pub fn info(&self, id: HandlerId) -> Option<&HandlerInfo> {
        self.handlers.get(&id).map(|h| &h.info)
    }

    /// Forgets a handler and everything it handled.
    pub fn remove_handler(&mut self, id: HandlerId) -> Vec<TopologyChange> {
        let Some(state) = self.handlers.get(&id) else {
            return Vec::new();
        };
        let commands: Vec<String> = state.commands.keys().cloned().collect();
        let queries: Vec<String> = state.queries.iter().cloned().collect();
        let mut changes: Vec<TopologyChange> = commands
            .iter()
            .filter_map(|name| self.unsubscribe_command(id, name))
            .collect();
        changes.extend(
            queries
                .iter()
                .filter_map(|name| self.unsubscribe_query(id, name)),
        );
        self.handlers.remove(&id);
        changes
    }

    /// Registers a command; a new load factor for a known command replaces the old one.
    pub fn subscribe_command(
        &mut self,
        id: HandlerId,
        name: &str,
        load_factor: u32,
    ) -> Option<TopologyChange> {
        let state = self.handlers.get_mut(&id)?;
        if state.commands.insert(name.to_string(), load_factor) == Some(load_factor) {
            return None;
        }
        let key = (state.info.context.clone(), name.to_string());
        let info = state.info.clone();
        self.commands.entry(key.clone()).or_default().insert(id);
        self.rebuild_ring(&key);
        Some(TopologyChange {
            added: true,
            handler: info,
            subscription: Subscription::Command {
                name: name.to_string(),
                load_factor,
            },
        })
    }

    pub fn unsubscribe_command(&mut self, id: HandlerId, name: &str) -> Option<TopologyChange> {
        let state = self.handlers.get_mut(&id)?;
        let load_factor = state.commands.remove(name)?;
        let key = (state.info.context.clone(), name.to_string());
        let info = state.info.clone();
        if let Some(set) = self.commands.get_mut(&key) {
            set.remove(&id);
            if set.is_empty() {
                self.commands.remove(&key);
            }
        }
        self.rebuild_ring(&key);
        Some(TopologyChange {
            added: false,
            handler: info,
            subscription: Subscription::Command {
                name: name.to_string(),
                load_factor,
            },
        })
    }

    fn rebuild_ring(&mut self, key: &Key) {
        let Some(members) = self.commands.get(key) else {
            self.rings.remove(key);
            return;
        };
        let handlers = &self.handlers;
        let ring = HashRing::new(members.iter().filter_map(|id| {
            let state = handlers.get(id)?;
            let load_factor = *state.commands.get(&key.1)?;
            Some((*id, state.info.client_id.as_str(), load_factor))
        }));
        self.rings.insert(key.clone(), ring);
    }

    /// The handler for a command with this routing key, if any handler is subscribed.
    pub fn command_handler(
        &self,
        context: &str,
        name: &str,
        routing_key: &str,
    ) -> Option<HandlerId> {
        self.rings
            .get(&(context.to_string(), name.to_string()))
            .and_then(|ring| ring.pick(routing_key))
            .copied()
    }

    pub fn subscribe_query(&mut self, id: HandlerId, name: &str) -> Option<TopologyChange> {
        let state = self.handlers.get_mut(&id)?;
        if !state.queries.insert(name.to_string()) {
            return None;
        }
        let info = state.info.clone();
        let key = (info.context.clone(), name.to_string());
        self.queries
            .entry(key)
            .or_default()
            .entry(info.component.clone())
            .or_default()
            .push(id);
        Some(TopologyChange {
            added: true,
            handler: info,
            subscription: Subscription::Query {
                name: name.to_string(),
            },
        })
    }

    pub fn unsubscribe_query(&mut self, id: HandlerId, name: &str) -> Option<TopologyChange> {
        let state = self.handlers.get_mut(&id)?;
        if !state.queries.remove(name) {
            return None;
        }
        let info = state.info.clone();
        let key = (info.context.clone(), name.to_string());
        if let Some(components) = self.queries.get_mut(&key) {
            if let Some(instances) = components.get_mut(&info.component) {
                instances.retain(|h| *h != id);
                if instances.is_empty() {
                    components.remove(&info.component);
                }
            }
            if components.is_empty() {
                self.queries.remove(&key);
            }
        }
        Some(TopologyChange {
            added: false,
            handler: info,
            subscription: Subscription::Query {
                name: name.to_string(),
            },
        })
    }

    /// One instance of every component that handles the query, taking instances in turn.
    pub fn query_targets(&mut self, context: &str, name: &str) -> Vec<HandlerId> {
        let Some(components) = self.queries.get(&(context.to_string(), name.to_string())) else {
            return Vec::new();
        };
        let mut targets = Vec::with_capacity(components.len());
        for (component, instances) in components {
            let turn = self
                .round_robin
                .entry((context.to_string(), name.to_string(), component.clone()))
                .or_default();
            targets.push(instances[*turn % instances.len()]);
            *turn = turn.wrapping_add(1);
        }
        targets
    }

    /// Every instance that handles the query (subscription queries go to all of them).
    pub fn query_handlers(&self, context: &str, name: &str) -> Vec<HandlerId> {
        self.queries
            .get(&(context.to_string(), name.to_string()))
            .map(|components| components.values().flatten().copied().collect())
            .unwrap_or_default()
    }

    /// Everything registered in a context, as additions (for a new topology watcher).
    pub fn snapshot(&self, context: &str) -> Vec<TopologyChange> {
        let mut handlers: Vec<_> = self
            .handlers
            .iter()
            .filter(|(_, h)| h.info.context == context)
            .collect();
        handlers.sort_by_key(|(id, _)| **id);
        let mut changes = Vec::new();
        for (_, state) in handlers {
            for (name, load_factor) in &state.commands {
                changes.push(TopologyChange {
                    added: true,
                    handler: state.info.clone(),
                    subscription: Subscription::Command {
                        name: name.clone(),
                        load_factor: *load_factor,
                    },
                });
            }
            for name in &state.queries {
                changes.push(TopologyChange {
                    added: true,
                    handler: state.info.clone(),
                    subscription: Subscription::Query { name: name.clone() },
                });
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(client: &str, component: &str) -> HandlerInfo {
        HandlerInfo {
            context: "default".into(),
            client_id: client.into(),
            component: component.into(),
            client_stream_id: format!("{client}.stream"),
        }
    }

    #[test]
    fn commands_route_only_to_subscribed_handlers_of_the_context() {
        let mut r = HandlerRegistry::default();
        let a = r.add_handler(info("a", "orders"));
        let other = r.add_handler(HandlerInfo {
            context: "elsewhere".into(),
            ..info("b", "orders")
        });
        assert!(r.subscribe_command(a, "Place", 100).is_some());
        assert!(
            r.subscribe_command(a, "Place", 100).is_none(),
            "the same subscription twice is no change"
        );
        r.subscribe_command(other, "Place", 100);
        for key in ["k1", "k2", "k3"] {
            assert_eq!(r.command_handler("default", "Place", key), Some(a));
        }
        assert_eq!(r.command_handler("default", "Cancel", "k1"), None);
        let removed = r.unsubscribe_command(a, "Place").expect("change");
        assert!(!removed.added);
        assert_eq!(r.command_handler("default", "Place", "k1"), None);
    }

    #[test]
    fn removing_a_handler_reports_every_subscription_it_had() {
        let mut r = HandlerRegistry::default();
        let a = r.add_handler(info("a", "orders"));
        r.subscribe_command(a, "Place", 100);
        r.subscribe_query(a, "FindOrder");
        let changes = r.remove_handler(a);
        assert_eq!(changes.len(), 2);
        assert!(changes.iter().all(|c| !c.added));
        assert!(r.info(a).is_none());
        assert!(r.query_handlers("default", "FindOrder").is_empty());
        assert!(r.snapshot("default").is_empty());
    }

    #[test]
    fn queries_reach_one_instance_per_component_in_turn() {
        let mut r = HandlerRegistry::default();
        let a1 = r.add_handler(info("a1", "orders"));
        let a2 = r.add_handler(info("a2", "orders"));
        let b = r.add_handler(info("b", "billing"));
        for id in [a1, a2, b] {
            r.subscribe_query(id, "Find");
        }
        let first = r.query_targets("default", "Find");
        let second = r.query_targets("default", "Find");
        assert_eq!(first.len(), 2, "one per component");
        assert!(first.contains(&b) && second.contains(&b));
        let orders = |targets: &[HandlerId]| targets.iter().copied().find(|t| *t != b);
        assert_ne!(
            orders(&first),
            orders(&second),
            "instances of a component take turns"
        );
        let mut all = r.query_handlers("default", "Find");
        all.sort();
        assert_eq!(
            all,
            [a1, a2, b],
            "subscription queries reach every instance"
        );
    }

    #[test]
    fn snapshot_lists_a_contexts_subscriptions() {
        let mut r = HandlerRegistry::default();
        let a = r.add_handler(info("a", "orders"));
        r.subscribe_command(a, "Place", 50);
        r.subscribe_query(a, "Find");
        let snapshot = r.snapshot("default");
        assert_eq!(snapshot.len(), 2);
        assert!(snapshot.iter().all(|c| c.added));
        assert!(r.snapshot("elsewhere").is_empty());
    }
}
