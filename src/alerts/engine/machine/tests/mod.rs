//! Every transition of the alert state machine, driven by hand: inputs in, actions out,
//! no storage, no clock, no tasks. [`threshold`]: thresholds and `repeat`; [`waits`]:
//! `no_data`, `offline` and another hub's rows; [`operator`]: acknowledgements and
//! silences ending. Here: the rules and helpers they share.

mod operator;
mod threshold;
mod waits;

use super::*;
use crate::alerts::rules::Rule;

/// Seconds since the epoch, as a timestamp.
fn t(s: i64) -> Timestamp {
    Timestamp::from_micros(s * 1_000_000)
}

fn rule(json: &str) -> Rule {
    Rule::from_json(json).expect("a valid rule")
}

/// `value > 10`, held for 60 s, cleared below 8, repeated every 600 s.
fn warm() -> Rule {
    rule(
        r#"{"name": "warm", "pattern": "*/t", "kind": "threshold", "op": ">", "value": 10,
            "for": "60s", "clear": 8, "repeat": "600s"}"#,
    )
}

/// `value > 10` at once, resolved when no longer above.
fn hot() -> Rule {
    rule(r#"{"name": "hot", "pattern": "*/t", "kind": "threshold", "op": ">", "value": 10}"#)
}

fn silent() -> Rule {
    rule(r#"{"name": "silent", "pattern": "*/t", "kind": "no_data", "for": "60s"}"#)
}

fn gone() -> Rule {
    rule(r#"{"name": "gone", "pattern": "*", "kind": "offline", "for": "60s"}"#)
}

fn n(x: f64) -> Value {
    Value::Number(x)
}

fn reading(m: &mut Machine, r: &Rule, x: f64, ts: i64) -> Vec<Action> {
    let v = n(x);
    let input = Input::Reading {
        value: &v,
        ts: t(ts),
        now: t(ts),
    };
    m.handle(r, input).into_iter().collect()
}

fn moved(to: Phase, since: i64, value: Option<Value>, event: Option<(AlertState, i64)>) -> Action {
    Action::Move(Transition {
        to,
        since: t(since),
        value,
        event: event.map(|(s, at)| (s, t(at))),
    })
}

fn schedule(at: i64, due: Due) -> Action {
    Action::Schedule { at: t(at), due }
}

/// Carries out `action` (a move) at `now` as the shell would, and returns what follows.
fn done(m: &mut Machine, r: &Rule, action: &Action, now: i64) -> Vec<Action> {
    let Action::Move(transition) = action.clone() else {
        panic!("not a move: {action:?}");
    };
    let input = Input::Done {
        transition,
        now: t(now),
    };
    m.handle(r, input).into_iter().collect()
}

fn due(m: &mut Machine, r: &Rule, due: Due, now: i64) -> Vec<Action> {
    m.handle(r, Input::Due { due, now: t(now) })
        .into_iter()
        .collect()
}

fn presence(m: &mut Machine, r: &Rule, online: bool, ts: i64) -> Vec<Action> {
    m.handle(r, Input::Presence { online, ts: t(ts) })
        .into_iter()
        .collect()
}

/// A machine of `r` firing since `since`, notified at `since`.
fn firing(r: &Rule, since: i64) -> Machine {
    let mut m = Machine::new(t(0));
    let input = Input::Resume(Stored {
        firing: true,
        since: t(since),
        value: Some(n(11.0)),
        notified: Some(t(since)),
        acknowledged: false,
    });
    m.handle(r, input);
    m
}
