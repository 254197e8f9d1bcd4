//! What goes into and comes out of an alert's state machine ([`super::Machine`]): its
//! inputs, its actions, the transitions it decides and the phases it moves between.
//!
//! Owns [`Input`], [`Action`], [`Actions`], [`Transition`], [`Stored`], [`Phase`] and
//! [`Due`]. Uses `domain` only.

use crate::domain::{AlertState, Timestamp, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Ok,
    Pending,
    Firing,
}

impl Phase {
    /// The stored (and metrics) name of the phase; `ok` is never stored.
    pub fn label(self) -> Option<&'static str> {
        match self {
            Phase::Ok => None,
            Phase::Pending => Some("pending"),
            Phase::Firing => Some("firing"),
        }
    }
}

/// Which deadline of a machine came due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Due {
    /// `no_data` silent for `for`, or `offline` disconnected for `for`.
    Condition,
    /// A firing alert's `repeat`.
    Repeat,
}

/// A change decided for a machine, to be stored (when it must be) and announced.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub to: Phase,
    pub since: Timestamp,
    pub value: Option<Value>,
    /// The event to announce and its time.
    pub event: Option<(AlertState, Timestamp)>,
}

/// What a machine asks of the shell.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Store (when it must be) and announce this transition, then give [`Input::Done`].
    Move(Transition),
    /// Give [`Input::Due`] at `at` (hub clock).
    Schedule { at: Timestamp, due: Due },
    /// A `no_data` alert is due: give [`Input::Newest`] with the newest stored reading's
    /// time (another hub may have stored one).
    LookUpNewest,
}

/// At most two actions (a deadline and a transition), in the order to carry them out.
#[derive(Debug, Default, PartialEq)]
pub struct Actions([Option<Action>; 2]);

impl Actions {
    pub(super) fn none() -> Self {
        Self::default()
    }

    pub(super) fn one(a: Action) -> Self {
        Self([Some(a), None])
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    pub(super) fn push(&mut self, a: Action) {
        let free = self.0.iter_mut().find(|s| s.is_none());
        *free.expect("a machine decides at most two actions") = Some(a);
    }
}

impl IntoIterator for Actions {
    type Item = Action;
    type IntoIter = std::iter::Flatten<std::array::IntoIter<Option<Action>, 2>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter().flatten()
    }
}

/// A state as stored (`alert_state`), for a machine resuming or adopting it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub firing: bool,
    pub since: Timestamp,
    pub value: Option<Value>,
    pub notified: Option<Timestamp>,
    /// An operator acknowledged the firing alert (contract §16).
    pub acknowledged: bool,
}

/// What happens to a machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Input<'a> {
    /// Made from its stored row (at load): a firing alert's `repeat` starts again from
    /// its last notification.
    Resume(Stored),
    /// Made (after `Resume`, if any): `last_seen` starts a `no_data` wait (the series'
    /// newest stored reading, or now); `disconnected` (since when the device is gone)
    /// starts an `offline` wait.
    Start {
        last_seen: Timestamp,
        disconnected: Option<Timestamp>,
    },
    /// A committed reading of the series, evaluated at `now`.
    Reading {
        value: &'a Value,
        ts: Timestamp,
        now: Timestamp,
    },
    /// The device connected (`online`) or disconnected at `ts`.
    Presence { online: bool, ts: Timestamp },
    /// A deadline queued by [`Action::Schedule`] came due.
    Due { due: Due, now: Timestamp },
    /// The answer to [`Action::LookUpNewest`].
    Newest {
        ts: Option<Timestamp>,
        now: Timestamp,
    },
    /// The look-up failed: try the condition again at `at`.
    Retry { at: Timestamp },
    /// A [`Action::Move`] was carried out (stored if it had to be) at `now`.
    Done {
        transition: Transition,
        now: Timestamp,
    },
    /// Another hub changed the stored row first: take what it stored (`None`: no row).
    Adopt(Option<Stored>),
    /// An operator acknowledged the alert (stored): its `repeat` notifications stop
    /// until it resolves.
    Acknowledged,
    /// A silence that covered the alert ended at `now` and none other covers it: a
    /// firing, unacknowledged alert is announced once more.
    SilenceEnded { now: Timestamp },
}
