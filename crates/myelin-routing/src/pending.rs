//! `PendingRequests`: requests waiting for an answer, by request id, each with the handler working
//! on it and a deadline. Answers remove them; a handler that goes away fails its own; a periodic
//! sweep expires the overdue ones.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::registry::HandlerId;

#[derive(Debug)]
pub struct PendingRequests<V> {
    entries: HashMap<String, Pending<V>>,
    /// (deadline, request id), earliest first.
    deadlines: BTreeSet<(Instant, String)>,
}

#[derive(Debug)]
struct Pending<V> {
    handler: Option<HandlerId>,
    deadline: Instant,
    value: V,
}

impl<V> Default for PendingRequests<V> {
    fn default() -> Self {
        PendingRequests {
            entries: HashMap::new(),
            deadlines: BTreeSet::new(),
        }
    }
}

impl<V> PendingRequests<V> {
    /// Registers a request; a request id already waiting is refused and the value handed back.
    pub fn insert(
        &mut self,
        id: &str,
        handler: Option<HandlerId>,
        deadline: Instant,
        value: V,
    ) -> Result<(), V> {
        if self.entries.contains_key(id) {
            return Err(value);
        }
        self.deadlines.insert((deadline, id.to_string()));
        self.entries.insert(
            id.to_string(),
            Pending {
                handler,
                deadline,
                value,
            },
        );
        Ok(())
    }

    /// Takes a request out (it was answered or given up).
    pub fn remove(&mut self, id: &str) -> Option<V> {
        let pending = self.entries.remove(id)?;
        self.deadlines.remove(&(pending.deadline, id.to_string()));
        Some(pending.value)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut V> {
        self.entries.get_mut(id).map(|p| &mut p.value)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    /// Moves a request to another handler (it was re-routed), or to none while it waits for one;
    /// its deadline stays.
    pub fn reassign(&mut self, id: &str, handler: Option<HandlerId>) {
        if let Some(p) = self.entries.get_mut(id) {
            p.handler = handler;
        }
    }

    /// Takes out every request assigned to `handler`.
    pub fn remove_handler(&mut self, handler: HandlerId) -> Vec<(String, V)> {
        let ids: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, p)| p.handler == Some(handler))
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| self.remove(&id).map(|v| (id, v)))
            .collect()
    }

    /// Takes out every request whose deadline is at or before `now`, earliest first.
    pub fn expire(&mut self, now: Instant) -> Vec<(String, V)> {
        let mut expired = Vec::new();
        while let Some((deadline, id)) = self.deadlines.first().cloned() {
            if deadline > now {
                break;
            }
            if let Some(value) = self.remove(&id) {
                expired.push((id, value));
            } else {
                self.deadlines.remove(&(deadline, id));
            }
        }
        expired
    }

    /// Visits every waiting request.
    pub fn for_each(&self, mut visit: impl FnMut(&str, &V)) {
        for (id, pending) in &self.entries {
            visit(id, &pending.value);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn answers_remove_and_duplicates_are_refused() {
        let now = Instant::now();
        let mut p = PendingRequests::default();
        assert!(p
            .insert("q1", Some(HandlerId(1)), now + Duration::from_secs(1), "a")
            .is_ok());
        assert_eq!(p.insert("q1", None, now, "b"), Err("b"));
        assert_eq!(p.remove("q1"), Some("a"));
        assert_eq!(p.remove("q1"), None);
        assert!(
            p.expire(now + Duration::from_secs(5)).is_empty(),
            "answered requests never expire"
        );
    }

    #[test]
    fn the_sweep_expires_overdue_requests_in_deadline_order() {
        let start = Instant::now();
        let mut p = PendingRequests::default();
        for (id, secs) in [("late", 30), ("soon", 1), ("middle", 10)] {
            p.insert(id, None, start + Duration::from_secs(secs), id)
                .expect("insert");
        }
        assert!(p.expire(start).is_empty());
        let expired: Vec<_> = p
            .expire(start + Duration::from_secs(10))
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(expired, ["soon", "middle"]);
        assert_eq!(p.len(), 1);
        assert!(p.contains("late"));
    }

    #[test]
    fn a_lost_handler_takes_only_its_own_requests() {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut p = PendingRequests::default();
        p.insert("c1", Some(HandlerId(1)), deadline, 1)
            .expect("insert");
        p.insert("c2", Some(HandlerId(2)), deadline, 2)
            .expect("insert");
        p.insert("c3", Some(HandlerId(1)), deadline, 3)
            .expect("insert");
        let mut failed: Vec<_> = p
            .remove_handler(HandlerId(1))
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        failed.sort();
        assert_eq!(failed, [1, 3]);
        p.reassign("c2", Some(HandlerId(1)));
        assert_eq!(p.remove_handler(HandlerId(1)).len(), 1);
        assert!(p.is_empty());
    }
}
