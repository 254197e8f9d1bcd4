//! The engine's deadlines: one min-heap for every machine's `no_data`, `offline` and
//! `repeat` deadline (hub clock), never a scan of every series.
//!
//! A deadline names its machine (rule index, device, sensor) and carries the generation
//! of the rules it was queued under: a reload starts a new generation, so deadlines of
//! the replaced rules are never delivered. A popped deadline is given to its machine,
//! which checks it against its state (it may have moved on).
//!
//! Owns [`Deadlines`] and [`Deadline`]. Uses [`super::machine::Due`] and `domain`.

use super::machine::Due;
use crate::domain::{DeviceName, SensorName, Timestamp};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

/// One queued deadline of the machine of rule `rule` for `device` (and `sensor`; `None`
/// for an `offline` machine).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline {
    pub at: Timestamp,
    generation: u64,
    pub rule: usize,
    pub device: DeviceName,
    pub sensor: Option<SensorName>,
    pub due: Due,
}

#[derive(Debug, Default)]
pub struct Deadlines {
    heap: BinaryHeap<Reverse<Deadline>>,
    generation: u64,
}

impl Deadlines {
    /// Queues `due` of a machine at `at`.
    pub fn push(
        &mut self,
        at: Timestamp,
        rule: usize,
        device: &DeviceName,
        sensor: Option<&SensorName>,
        due: Due,
    ) {
        self.heap.push(Reverse(Deadline {
            at,
            generation: self.generation,
            rule,
            device: device.clone(),
            sensor: sensor.cloned(),
            due,
        }));
    }

    /// Forgets every deadline: the rules are being replaced.
    pub fn clear(&mut self) {
        self.generation += 1;
        self.heap.clear();
    }

    /// How long from `now` until the earliest deadline (zero when past); `None`: none.
    pub fn wait(&self, now: Timestamp) -> Option<Duration> {
        let Reverse(d) = self.heap.peek()?;
        let us = d.at.as_micros().saturating_sub(now.as_micros());
        Some(Duration::from_micros(us.max(0) as u64))
    }

    /// The earliest deadline due at `now` (of the current rules), taken off the queue.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<Deadline> {
        while let Some(Reverse(d)) = self.heap.peek() {
            if d.at > now {
                return None;
            }
            let Reverse(d) = self.heap.pop().expect("peeked");
            if d.generation == self.generation {
                return Some(d);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_micros(s * 1_000_000)
    }

    fn device(name: &str) -> DeviceName {
        DeviceName::parse(name).expect("a valid name")
    }

    #[test]
    fn deadlines_come_due_in_time_order_and_not_before() {
        let mut q = Deadlines::default();
        let (a, b) = (device("a"), device("b"));
        q.push(at(30), 0, &a, None, Due::Condition);
        q.push(at(10), 1, &b, None, Due::Repeat);
        q.push(at(20), 2, &a, None, Due::Condition);
        assert_eq!(q.wait(at(5)), Some(Duration::from_secs(5)));
        assert_eq!(q.pop_due(at(5)), None);
        let first = q.pop_due(at(25)).expect("due");
        assert_eq!((first.at, first.rule, first.due), (at(10), 1, Due::Repeat));
        assert_eq!(q.pop_due(at(25)).map(|d| d.rule), Some(2));
        assert_eq!(q.pop_due(at(25)), None, "the third is not due yet");
        assert_eq!(q.wait(at(40)), Some(Duration::ZERO), "past: no wait");
        assert_eq!(q.pop_due(at(40)).map(|d| d.rule), Some(0));
        assert_eq!(q.wait(at(40)), None);
    }

    #[test]
    fn a_cleared_queue_delivers_nothing_it_held() {
        let mut q = Deadlines::default();
        q.push(at(10), 0, &device("a"), None, Due::Condition);
        q.clear();
        assert_eq!(q.wait(at(0)), None);
        assert_eq!(q.pop_due(at(100)), None);
        q.push(at(10), 3, &device("a"), None, Due::Condition);
        assert_eq!(q.pop_due(at(100)).map(|d| d.rule), Some(3));
    }
}
