//! The admission queue in front of one upstream: up to the concurrency limit requests go to
//! the origin at once; beyond it they wait, bounded in number and each with a deadline.
//! Clients holding a clearance come first, then clients with an established session, then
//! everyone else, first come first served within a class. When the queue is full, a request
//! of a better class takes the place of the newest waiter of the worst class.
//!
//! Pure: the queue holds whatever the driver gives it (a channel to wake the waiting request)
//! and takes `now` and the current limit as input.

use std::collections::VecDeque;
use std::time::Duration;

/// Who is asking, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Holds a valid clearance from the challenge ladder.
    Cleared,
    /// Carries one of the site's session cookies (a logged-in user).
    Session,
    /// Anyone else.
    Anonymous,
}

impl Priority {
    const ALL: [Priority; 3] = [Priority::Cleared, Priority::Session, Priority::Anonymous];

    fn index(self) -> usize {
        self as usize
    }
}

/// The answer to a request arriving.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry<T> {
    /// Go to the origin now (counted in flight; call [`Admission::leave`] when done).
    Admitted(T),
    /// Wait: the ticket identifies the waiter; `bumped` is a worse-class waiter that lost its
    /// place to this one and must be refused.
    Queued {
        /// The waiter's ticket, for [`Admission::remove`].
        ticket: u64,
        /// The waiter pushed out, if the queue was full.
        bumped: Option<T>,
    },
    /// The queue is full of waiters at least as good: refuse.
    Full(T),
}

#[derive(Debug)]
struct Waiter<T> {
    ticket: u64,
    deadline: Duration,
    item: T,
}

/// What a release or a new limit let through.
#[derive(Debug, PartialEq, Eq)]
pub struct Granted<T> {
    /// Waiters now in flight, best first.
    pub admitted: Vec<T>,
    /// Waiters found past their deadline: refuse them.
    pub expired: Vec<T>,
}

/// The queue and the in-flight count of one upstream.
#[derive(Debug)]
pub struct Admission<T> {
    capacity: usize,
    inflight: u32,
    queued: usize,
    classes: [VecDeque<Waiter<T>>; 3],
    next_ticket: u64,
}

impl<T> Admission<T> {
    /// A queue holding at most `capacity` waiters (0: none wait, beyond the limit is refused).
    pub fn new(capacity: usize) -> Admission<T> {
        Admission {
            capacity,
            inflight: 0,
            queued: 0,
            classes: [VecDeque::new(), VecDeque::new(), VecDeque::new()],
            next_ticket: 0,
        }
    }

    /// Requests at the origin now.
    pub fn inflight(&self) -> u32 {
        self.inflight
    }

    /// Requests waiting now.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// A request of class `priority` arrives; `deadline` is when it gives up waiting.
    pub fn enter(&mut self, limit: u32, priority: Priority, deadline: Duration, item: T) -> Entry<T> {
        // Nobody waiting ahead of it and room at the origin: go.
        let ahead: usize = self.classes[..=priority.index()].iter().map(VecDeque::len).sum();
        if self.inflight < limit && ahead == 0 {
            self.inflight += 1;
            return Entry::Admitted(item);
        }
        let mut bumped = None;
        if self.queued >= self.capacity {
            let worst = Priority::ALL.iter().rev().find(|p| !self.classes[p.index()].is_empty());
            match worst {
                Some(&worst) if worst > priority => {
                    bumped = self.classes[worst.index()].pop_back().map(|w| w.item);
                    self.queued -= 1;
                }
                _ => return Entry::Full(item),
            }
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.classes[priority.index()].push_back(Waiter { ticket, deadline, item });
        self.queued += 1;
        Entry::Queued { ticket, bumped }
    }

    /// A waiter gives up (deadline, client gone): its item, if it was still waiting.
    pub fn remove(&mut self, ticket: u64) -> Option<T> {
        for class in &mut self.classes {
            if let Some(at) = class.iter().position(|w| w.ticket == ticket) {
                self.queued -= 1;
                return class.remove(at).map(|w| w.item);
            }
        }
        None
    }

    /// A request in flight is done: let waiters in up to `limit`.
    pub fn leave(&mut self, limit: u32, now: Duration) -> Granted<T> {
        self.inflight = self.inflight.saturating_sub(1);
        self.grant(limit, now)
    }

    /// Let waiters in while fewer than `limit` are in flight, best class first; waiters past
    /// their deadline come out as expired.
    pub fn grant(&mut self, limit: u32, now: Duration) -> Granted<T> {
        let mut granted = Granted { admitted: Vec::new(), expired: Vec::new() };
        for class in &mut self.classes {
            while self.inflight < limit {
                let Some(waiter) = class.pop_front() else { break };
                self.queued -= 1;
                if waiter.deadline <= now {
                    granted.expired.push(waiter.item);
                } else {
                    self.inflight += 1;
                    granted.admitted.push(waiter.item);
                }
            }
        }
        granted
    }

    /// Take out every waiter past its deadline.
    pub fn expire(&mut self, now: Duration) -> Vec<T> {
        let mut expired = Vec::new();
        for class in &mut self.classes {
            let mut kept = VecDeque::with_capacity(class.len());
            for waiter in class.drain(..) {
                if waiter.deadline <= now { expired.push(waiter.item) } else { kept.push_back(waiter) }
            }
            *class = kept;
        }
        self.queued -= expired.len();
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn beyond_the_limit_waits_and_better_classes_go_first() {
        let mut q = Admission::new(10);
        assert_eq!(q.enter(2, Priority::Anonymous, S, "a1"), Entry::Admitted("a1"));
        assert_eq!(q.enter(2, Priority::Anonymous, S, "a2"), Entry::Admitted("a2"));
        assert!(matches!(q.enter(2, Priority::Anonymous, S, "a3"), Entry::Queued { bumped: None, .. }));
        assert!(matches!(q.enter(2, Priority::Session, S, "s1"), Entry::Queued { .. }));
        assert!(matches!(q.enter(2, Priority::Cleared, S, "c1"), Entry::Queued { .. }));
        assert!(matches!(q.enter(2, Priority::Anonymous, S, "a4"), Entry::Queued { .. }));
        assert_eq!(q.inflight(), 2);
        let order: Vec<_> = (0..4).flat_map(|_| q.leave(2, Duration::ZERO).admitted).collect();
        assert_eq!(order, ["c1", "s1", "a3", "a4"]);
        assert_eq!((q.inflight(), q.queued()), (2, 0));
    }

    #[test]
    fn a_waiting_class_is_not_overtaken_by_a_newcomer_of_the_same_class() {
        let mut q = Admission::new(10);
        q.enter(1, Priority::Anonymous, S, 1);
        assert!(matches!(q.enter(1, Priority::Anonymous, S, 2), Entry::Queued { .. }));
        // The limit rose but 2 has not been granted yet: 3 must not go before it.
        assert!(matches!(q.enter(2, Priority::Anonymous, S, 3), Entry::Queued { .. }));
        assert_eq!(q.grant(3, Duration::ZERO).admitted, [2, 3]);
        // A better class does not wait behind worse ones.
        let mut q = Admission::new(10);
        q.enter(1, Priority::Anonymous, S, 1);
        q.enter(1, Priority::Anonymous, S, 2);
        assert_eq!(q.enter(2, Priority::Cleared, S, 3), Entry::Admitted(3));
    }

    #[test]
    fn full_queue_refuses_or_bumps_the_newest_of_a_worse_class() {
        let mut q = Admission::new(2);
        q.enter(1, Priority::Anonymous, S, "busy");
        q.enter(1, Priority::Anonymous, S, "a1");
        q.enter(1, Priority::Anonymous, S, "a2");
        assert_eq!(q.enter(1, Priority::Anonymous, S, "a3"), Entry::Full("a3"));
        assert!(matches!(q.enter(1, Priority::Cleared, S, "c1"), Entry::Queued { bumped: Some("a2"), .. }));
        assert!(matches!(q.enter(1, Priority::Session, S, "s1"), Entry::Queued { bumped: Some("a1"), .. }));
        assert_eq!(q.enter(1, Priority::Session, S, "s2"), Entry::Full("s2"));
        assert_eq!(q.queued(), 2);
    }

    #[test]
    fn deadlines_and_removal() {
        let mut q = Admission::new(10);
        q.enter(1, Priority::Anonymous, S, 0);
        let Entry::Queued { ticket, .. } = q.enter(1, Priority::Anonymous, S, 1) else { panic!() };
        q.enter(1, Priority::Anonymous, 3 * S, 2);
        q.enter(1, Priority::Anonymous, 5 * S, 3);
        assert_eq!(q.remove(ticket), Some(1));
        assert_eq!(q.remove(ticket), None);
        assert_eq!(q.expire(4 * S), [2]);
        assert_eq!(q.queued(), 1);
        let granted = q.leave(1, 6 * S);
        assert_eq!((granted.admitted, granted.expired), (vec![], vec![3]));
        assert_eq!((q.inflight(), q.queued()), (0, 0));
    }

    proptest! {
        /// Any sequence of arrivals, departures and limit changes: never more in flight than
        /// the limit allows, never more waiting than the capacity, and every item comes out
        /// exactly once.
        #[test]
        fn bounded_and_conserving(ops in proptest::collection::vec((0u8..4, 0u32..8, 0u8..3), 0..300)) {
            let mut q = Admission::new(5);
            let mut inflight = Vec::new();
            let mut out = 0usize;
            let mut next = 0u32;
            let mut tickets = Vec::new();
            for (op, limit, class) in ops {
                let now = Duration::from_millis(u64::from(next));
                match op {
                    0 | 1 => {
                        let priority = Priority::ALL[usize::from(class)];
                        let deadline = now + Duration::from_millis(u64::from(limit) * 3);
                        match q.enter(limit, priority, deadline, next) {
                            Entry::Admitted(item) => inflight.push(item),
                            Entry::Queued { ticket, bumped } => {
                                tickets.push(ticket);
                                out += usize::from(bumped.is_some());
                            }
                            Entry::Full(_) => out += 1,
                        }
                        next += 1;
                    }
                    2 => {
                        if inflight.pop().is_some() {
                            out += 1;
                            let granted = q.leave(limit, now);
                            out += granted.expired.len();
                            inflight.extend(granted.admitted);
                        }
                    }
                    _ => {
                        if let Some(ticket) = tickets.pop() {
                            out += usize::from(q.remove(ticket).is_some());
                        }
                        out += q.expire(now).len();
                    }
                }
                prop_assert!(q.queued() <= 5);
                prop_assert_eq!(q.inflight() as usize, inflight.len());
                prop_assert_eq!(inflight.len() + q.queued() + out, next as usize);
            }
        }
    }
}
