//! `FlowQueue`: the permits a handler has granted and the messages waiting for more. A message goes
//! out at once while permits last; otherwise it waits, highest priority first (then oldest first),
//! up to a capacity. Granting permits releases waiting messages.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// What happened to an offered message.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer<T> {
    /// Send it now (a permit was spent).
    SendNow(T),
    /// It waits for permits.
    Queued,
    /// The queue is full: the message is handed back.
    Full(T),
}

#[derive(Debug)]
pub struct FlowQueue<T> {
    permits: u64,
    capacity: usize,
    next_seq: u64,
    waiting: BinaryHeap<Waiting<T>>,
}

#[derive(Debug)]
struct Waiting<T> {
    priority: i64,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Waiting<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<T> Eq for Waiting<T> {}
impl<T> PartialOrd for Waiting<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Waiting<T> {
    /// Higher priority first; among equals, the older (lower seq) first.
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl<T> FlowQueue<T> {
    pub fn new(capacity: usize) -> FlowQueue<T> {
        FlowQueue {
            permits: 0,
            capacity,
            next_seq: 0,
            waiting: BinaryHeap::new(),
        }
    }

    /// Offers a message with a priority (higher goes first when messages wait).
    pub fn offer(&mut self, item: T, priority: i64) -> Offer<T> {
        if self.permits > 0 && self.waiting.is_empty() {
            self.permits -= 1;
            return Offer::SendNow(item);
        }
        if self.waiting.len() >= self.capacity {
            return Offer::Full(item);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.waiting.push(Waiting {
            priority,
            seq,
            item,
        });
        Offer::Queued
    }

    /// Adds permits; returns the waiting messages they release, in sending order.
    pub fn grant(&mut self, permits: u64) -> Vec<T> {
        self.permits = self.permits.saturating_add(permits);
        let mut released = Vec::new();
        while self.permits > 0 {
            let Some(next) = self.waiting.pop() else {
                break;
            };
            self.permits -= 1;
            released.push(next.item);
        }
        released
    }

    /// Spends a permit for a message that must be sent regardless of the queue (e.g. a cancel);
    /// saturates at zero, since the client counts everything it receives.
    pub fn spend(&mut self) {
        self.permits = self.permits.saturating_sub(1);
    }

    /// Removes and returns every waiting message (the handler is gone), highest priority first.
    pub fn drain(&mut self) -> Vec<T> {
        let mut all = Vec::with_capacity(self.waiting.len());
        while let Some(next) = self.waiting.pop() {
            all.push(next.item);
        }
        all
    }

    /// Removes waiting messages for which `matches` is true.
    pub fn remove_where(&mut self, mut matches: impl FnMut(&T) -> bool) -> Vec<T> {
        let (removed, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_vec()
            .into_iter()
            .partition(|w| matches(&w.item));
        self.waiting = kept.into();
        removed.into_iter().map(|w| w.item).collect()
    }

    pub fn permits(&self) -> u64 {
        self.permits
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_out_than_permits() {
        let mut q = FlowQueue::new(100);
        assert_eq!(q.offer("a", 0), Offer::Queued, "no permits yet");
        assert_eq!(q.grant(2), vec!["a"]);
        assert_eq!(q.offer("b", 0), Offer::SendNow("b"));
        assert_eq!(q.offer("c", 0), Offer::Queued);
        assert_eq!(q.permits(), 0);
        assert_eq!(q.grant(5), vec!["c"]);
        assert_eq!(q.permits(), 4);
    }

    #[test]
    fn waiting_messages_go_highest_priority_first_then_oldest() {
        let mut q = FlowQueue::new(100);
        for (item, priority) in [
            ("low-1", 0),
            ("high-1", 5),
            ("low-2", 0),
            ("high-2", 5),
            ("mid", 2),
        ] {
            assert_eq!(q.offer(item, priority), Offer::Queued);
        }
        assert_eq!(
            q.grant(10),
            vec!["high-1", "high-2", "mid", "low-1", "low-2"]
        );
    }

    #[test]
    fn a_waiting_queue_keeps_order_even_with_permits() {
        let mut q = FlowQueue::new(100);
        q.offer("first", 0);
        q.offer("second", 0);
        assert_eq!(q.grant(1), vec!["first"]);
        assert_eq!(
            q.offer("third", 9),
            Offer::Queued,
            "others are waiting, so it waits too"
        );
        assert_eq!(q.grant(2), vec!["third", "second"]);
    }

    #[test]
    fn capacity_bounds_the_queue() {
        let mut q = FlowQueue::new(2);
        q.offer(1, 0);
        q.offer(2, 0);
        assert_eq!(q.offer(3, 0), Offer::Full(3));
        assert_eq!(q.drain(), vec![1, 2]);
        assert_eq!(q.waiting(), 0);
    }

    #[test]
    fn remove_where_takes_matching_messages_out() {
        let mut q = FlowQueue::new(10);
        for i in 0..6 {
            q.offer(i, 0);
        }
        assert_eq!(q.remove_where(|i| i % 2 == 0).len(), 3);
        assert_eq!(q.grant(10), vec![1, 3, 5]);
    }
}
