//! The state machine of one rule for one series (for one device with `offline`): what
//! each event does to it, decided without I/O.
//!
//! `ok → pending → firing → ok`, where reaching `firing` and leaving it (`resolved`) are
//! events (docs/protocol.md §9). A [`Machine`] takes an [`Input`] and gives back [`Actions`]:
//! a [`Transition`] for the shell to store and announce ([`Action::Move`]; once done, it
//! is fed back as [`Input::Done`]), a deadline to queue ([`Action::Schedule`]), or a
//! question for storage ([`Action::LookUpNewest`], answered with [`Input::Newest`]).
//! An acknowledged firing alert sends no `repeat` ([`Input::Acknowledged`]); leaving
//! `firing` forgets the acknowledgement, so the next firing starts unacknowledged. When
//! a silence ends on a firing, unacknowledged alert, it is announced once more
//! ([`Input::SilenceEnded`]); whether an event is silenced the shell decides.
//! Changes nobody stores — an `offline` wait starting or ending, a `no_data` series
//! noting a reading — the machine makes itself.
//!
//! Times: thresholds hold for `for` by reading time; `no_data` and `offline` wait by the
//! hub clock (`now`, given with each input, never read here). A machine queues at most
//! one condition deadline (`no_data`) and one `repeat` deadline at a time; a deadline
//! that finds it moved on does nothing or is queued again.
//!
//! Owns [`Machine`]; its vocabulary — [`Input`], [`Action`], [`Transition`], [`Phase`],
//! [`Due`] — is in `events`. Uses the rule types of [`crate::alerts::rules`] and
//! `domain`; nothing of storage or tasks.

mod events;

pub use events::{Action, Actions, Due, Input, Phase, Stored, Transition};

use crate::alerts::rules::{Condition, Rule};
use crate::domain::{AlertState, Timestamp, Value};
use std::time::Duration;

/// One rule's state for one series (or device).
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub phase: Phase,
    /// When the condition began (pending start; kept while firing).
    pub since: Timestamp,
    pub value: Option<Value>,
    /// When the last notification went out (firing, or a `repeat`).
    pub notified: Option<Timestamp>,
    /// `no_data`: the last reading (hub clock, or the stored reading time after a load).
    pub last_seen: Timestamp,
    /// Firing and acknowledged: no `repeat`.
    pub acknowledged: bool,
    /// A condition deadline is queued.
    waiting: bool,
    /// A `repeat` deadline is queued.
    repeating: bool,
}

impl Machine {
    /// A machine in `ok`, made at `now`.
    pub fn new(now: Timestamp) -> Self {
        Self {
            phase: Phase::Ok,
            since: now,
            value: None,
            notified: None,
            last_seen: now,
            acknowledged: false,
            waiting: false,
            repeating: false,
        }
    }

    /// When the last notification went out after `t` is carried out at `now`.
    pub fn notified_after(&self, t: &Transition, now: Timestamp) -> Option<Timestamp> {
        match t.event {
            Some((AlertState::Firing, _)) => Some(now),
            _ if t.to == Phase::Firing => self.notified,
            _ => None,
        }
    }

    /// What `input` does to this machine of `rule`.
    pub fn handle(&mut self, rule: &Rule, input: Input<'_>) -> Actions {
        match input {
            Input::Resume(stored) => self.resume(rule, stored),
            Input::Start {
                last_seen,
                disconnected,
            } => self.start(rule, last_seen, disconnected),
            Input::Reading { value, ts, now } => self.reading(rule, value, ts, now),
            Input::Presence { online, ts } => self.presence(rule, online, ts),
            Input::Due {
                due: Due::Repeat,
                now,
            } => self.repeat_due(rule, now),
            Input::Due {
                due: Due::Condition,
                now,
            } => self.condition_due(rule, now),
            Input::Newest { ts, now } => self.newest(rule, ts, now),
            Input::Retry { at } => Actions::one(self.wait_until(at)),
            Input::Done { transition, now } => self.done(rule, transition, now),
            Input::Adopt(stored) => {
                match stored {
                    Some(s) => self.take(s),
                    None => {
                        self.phase = Phase::Ok;
                        self.acknowledged = false;
                    }
                }
                Actions::none()
            }
            Input::Acknowledged => {
                self.acknowledged = self.phase == Phase::Firing;
                Actions::none()
            }
            Input::SilenceEnded { now } => self.silence_ended(now),
        }
    }

    /// A firing, unacknowledged alert is announced again (like a `repeat`).
    fn silence_ended(&mut self, now: Timestamp) -> Actions {
        if self.phase != Phase::Firing || self.acknowledged {
            return Actions::none();
        }
        Actions::one(Action::Move(Transition {
            to: Phase::Firing,
            since: self.since,
            value: self.value.clone(),
            event: Some((AlertState::Firing, now)),
        }))
    }

    fn take(&mut self, s: Stored) {
        self.phase = if s.firing {
            Phase::Firing
        } else {
            Phase::Pending
        };
        self.since = s.since;
        self.value = s.value;
        self.notified = s.notified;
        self.acknowledged = s.firing && s.acknowledged;
    }

    fn resume(&mut self, rule: &Rule, stored: Stored) -> Actions {
        self.take(stored);
        match (self.phase, rule.repeat, self.notified) {
            (Phase::Firing, Some(every), Some(last)) => {
                self.repeating = true;
                Actions::one(Action::Schedule {
                    at: last.saturating_add(every),
                    due: Due::Repeat,
                })
            }
            _ => Actions::none(),
        }
    }

    fn start(
        &mut self,
        rule: &Rule,
        last_seen: Timestamp,
        disconnected: Option<Timestamp>,
    ) -> Actions {
        match rule.condition {
            Condition::NoData { after } => {
                self.last_seen = last_seen;
                if self.phase != Phase::Ok {
                    return Actions::none();
                }
                Actions::one(self.wait_until(last_seen.saturating_add(after)))
            }
            Condition::Offline { after } => match disconnected {
                Some(since) if self.phase == Phase::Ok => {
                    self.phase = Phase::Pending;
                    self.since = since;
                    Actions::one(self.wait_until(since.saturating_add(after)))
                }
                _ => Actions::none(),
            },
            Condition::Threshold { .. } => Actions::none(),
        }
    }

    /// Queues the condition deadline at `at`.
    fn wait_until(&mut self, at: Timestamp) -> Action {
        self.waiting = true;
        Action::Schedule {
            at,
            due: Due::Condition,
        }
    }

    /// A no_data machine notes the reading (and resolves); a threshold machine moves per
    /// protocol.md §9. Readings of another type than the rule's value are ignored.
    fn reading(&mut self, rule: &Rule, value: &Value, ts: Timestamp, now: Timestamp) -> Actions {
        match &rule.condition {
            Condition::NoData { after } => {
                self.last_seen = now;
                let mut out = Actions::none();
                if !self.waiting {
                    out.push(self.wait_until(now.saturating_add(*after)));
                }
                if self.phase == Phase::Firing {
                    out.push(Action::Move(Transition {
                        to: Phase::Ok,
                        since: self.since,
                        value: Some(value.clone()),
                        event: Some((AlertState::Resolved, ts)),
                    }));
                }
                out
            }
            Condition::Threshold {
                op,
                value: limit,
                hold,
                clear,
            } => {
                let Some(meets) = op.test(value, limit) else {
                    return Actions::none();
                };
                let to = |to, since, event| {
                    Actions::one(Action::Move(Transition {
                        to,
                        since,
                        value: Some(value.clone()),
                        event,
                    }))
                };
                match self.phase {
                    Phase::Ok if meets && hold.is_zero() => {
                        to(Phase::Firing, ts, Some((AlertState::Firing, ts)))
                    }
                    Phase::Ok if meets => to(Phase::Pending, ts, None),
                    Phase::Pending if !meets => to(Phase::Ok, ts, None),
                    Phase::Pending if ts >= self.since.saturating_add(*hold) => {
                        to(Phase::Firing, self.since, Some((AlertState::Firing, ts)))
                    }
                    Phase::Firing => {
                        let still = match clear {
                            Some(c) => op.test(value, c),
                            None => Some(meets),
                        };
                        match still {
                            Some(false) => {
                                to(Phase::Ok, self.since, Some((AlertState::Resolved, ts)))
                            }
                            _ => Actions::none(),
                        }
                    }
                    _ => Actions::none(),
                }
            }
            Condition::Offline { .. } => Actions::none(),
        }
    }

    fn presence(&mut self, rule: &Rule, online: bool, ts: Timestamp) -> Actions {
        let Condition::Offline { after } = rule.condition else {
            return Actions::none();
        };
        match (online, self.phase) {
            (true, Phase::Firing) => Actions::one(Action::Move(Transition {
                to: Phase::Ok,
                since: self.since,
                value: None,
                event: Some((AlertState::Resolved, ts)),
            })),
            (true, Phase::Pending) => {
                self.phase = Phase::Ok;
                Actions::none()
            }
            (false, Phase::Ok) => {
                self.phase = Phase::Pending;
                self.since = ts;
                Actions::one(Action::Schedule {
                    at: ts.saturating_add(after),
                    due: Due::Condition,
                })
            }
            _ => Actions::none(),
        }
    }

    fn repeat_due(&mut self, rule: &Rule, now: Timestamp) -> Actions {
        self.repeating = false;
        let (Some(every), Some(last), Phase::Firing, false) =
            (rule.repeat, self.notified, self.phase, self.acknowledged)
        else {
            return Actions::none();
        };
        let at = last.saturating_add(every);
        if at > now {
            self.repeating = true;
            return Actions::one(Action::Schedule {
                at,
                due: Due::Repeat,
            });
        }
        Actions::one(Action::Move(Transition {
            to: Phase::Firing,
            since: self.since,
            value: self.value.clone(),
            event: Some((AlertState::Firing, now)),
        }))
    }

    fn condition_due(&mut self, rule: &Rule, now: Timestamp) -> Actions {
        self.waiting = false;
        match rule.condition {
            Condition::NoData { after } if self.phase == Phase::Ok => {
                let at = self.last_seen.saturating_add(after);
                if at <= now {
                    Actions::one(Action::LookUpNewest)
                } else {
                    Actions::one(self.wait_until(at))
                }
            }
            Condition::Offline { after } if self.phase == Phase::Pending => {
                self.fire_or_wait(self.since, after, now)
            }
            _ => Actions::none(),
        }
    }

    fn newest(&mut self, rule: &Rule, ts: Option<Timestamp>, now: Timestamp) -> Actions {
        let Condition::NoData { after } = rule.condition else {
            return Actions::none();
        };
        if self.phase != Phase::Ok {
            return Actions::none();
        }
        if let Some(ts) = ts.filter(|ts| *ts > self.last_seen) {
            self.last_seen = ts.min(now);
        }
        self.fire_or_wait(self.last_seen, after, now)
    }

    /// A wait that began at `since` fires once `after` has passed by `now`, or waits on.
    fn fire_or_wait(&mut self, since: Timestamp, after: Duration, now: Timestamp) -> Actions {
        let at = since.saturating_add(after);
        if at > now {
            return Actions::one(self.wait_until(at));
        }
        Actions::one(Action::Move(Transition {
            to: Phase::Firing,
            since,
            value: None,
            event: Some((AlertState::Firing, now)),
        }))
    }

    fn done(&mut self, rule: &Rule, t: Transition, now: Timestamp) -> Actions {
        self.notified = self.notified_after(&t, now);
        if t.to != Phase::Firing || self.phase != Phase::Firing {
            self.acknowledged = false;
        }
        self.phase = t.to;
        self.since = t.since;
        self.value = t.value;
        let mut out = Actions::none();
        if let (Phase::Firing, Some(every), false) = (t.to, rule.repeat, self.repeating) {
            self.repeating = true;
            out.push(Action::Schedule {
                at: now.saturating_add(every),
                due: Due::Repeat,
            });
        }
        if t.to == Phase::Ok
            && let Condition::NoData { after } = rule.condition
            && !self.waiting
        {
            out.push(self.wait_until(self.last_seen.saturating_add(after)));
        }
        out
    }
}

#[cfg(test)]
mod tests;
