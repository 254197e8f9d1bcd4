//! Thresholds (`for`, `clear`, value types) and `repeat`.

use super::*;

#[test]
fn a_threshold_without_for_fires_at_the_first_reading_that_meets_it() {
    let (r, mut m) = (hot(), Machine::new(t(0)));
    assert_eq!(reading(&mut m, &r, 10.0, 1), [], "10 is not > 10");
    let fire = reading(&mut m, &r, 10.5, 2);
    let expected = moved(
        Phase::Firing,
        2,
        Some(n(10.5)),
        Some((AlertState::Firing, 2)),
    );
    assert_eq!(fire, std::slice::from_ref(&expected));
    assert_eq!(m.phase, Phase::Ok, "nothing changes until the move is done");
    assert_eq!(
        done(&mut m, &r, &expected, 3),
        [],
        "no repeat: nothing to queue"
    );
    assert_eq!(
        (m.phase, m.since, m.notified),
        (Phase::Firing, t(2), Some(t(3)))
    );
    assert_eq!(m.value, Some(n(10.5)));
}

#[test]
fn a_threshold_with_for_is_pending_then_fires_once_reading_time_reaches_for() {
    let (r, mut m) = (warm(), Machine::new(t(0)));
    let pending = reading(&mut m, &r, 11.0, 100);
    assert_eq!(pending, [moved(Phase::Pending, 100, Some(n(11.0)), None)]);
    assert_eq!(done(&mut m, &r, &pending[0], 100), []);
    assert_eq!((m.phase, m.notified), (Phase::Pending, None));
    assert_eq!(reading(&mut m, &r, 12.0, 159), [], "59 s is not yet `for`");
    // Exactly `for` after the first reading that met it: fires, since that reading.
    let fire = reading(&mut m, &r, 13.0, 160);
    let expected = moved(
        Phase::Firing,
        100,
        Some(n(13.0)),
        Some((AlertState::Firing, 160)),
    );
    assert_eq!(fire, [expected]);
}

#[test]
fn for_counts_reading_time_not_the_hub_clock() {
    let (r, mut m) = (warm(), Machine::new(t(0)));
    let pending = reading(&mut m, &r, 11.0, 100);
    done(&mut m, &r, &pending[0], 100);
    // Evaluated an hour later by the hub clock, but read 30 s after the first.
    let v = n(11.0);
    let late = Input::Reading {
        value: &v,
        ts: t(130),
        now: t(3700),
    };
    assert!(m.handle(&r, late).is_empty());
}

#[test]
fn a_pending_threshold_returns_to_ok_when_a_reading_stops_meeting_it() {
    let (r, mut m) = (warm(), Machine::new(t(0)));
    let pending = reading(&mut m, &r, 11.0, 100);
    done(&mut m, &r, &pending[0], 100);
    let ok = reading(&mut m, &r, 9.0, 120);
    assert_eq!(ok, [moved(Phase::Ok, 120, Some(n(9.0)), None)], "no event");
    done(&mut m, &r, &ok[0], 120);
    // Meeting it again starts `for` over.
    let again = reading(&mut m, &r, 11.0, 130);
    assert_eq!(again, [moved(Phase::Pending, 130, Some(n(11.0)), None)]);
}

#[test]
fn a_firing_threshold_with_clear_resolves_only_past_clear() {
    let r = warm();
    let mut m = firing(&r, 100);
    assert_eq!(
        reading(&mut m, &r, 9.0, 200),
        [],
        "below value, above clear"
    );
    assert_eq!(reading(&mut m, &r, 12.0, 210), []);
    let resolved = reading(&mut m, &r, 8.0, 220);
    let expected = moved(
        Phase::Ok,
        100,
        Some(n(8.0)),
        Some((AlertState::Resolved, 220)),
    );
    assert_eq!(
        resolved,
        std::slice::from_ref(&expected),
        "8 is no longer > 8"
    );
    assert_eq!(done(&mut m, &r, &expected, 221), []);
    assert_eq!((m.phase, m.notified), (Phase::Ok, None));
}

#[test]
fn a_firing_threshold_without_clear_resolves_when_no_longer_met() {
    let r = hot();
    let mut m = firing(&r, 100);
    assert_eq!(reading(&mut m, &r, 10.1, 200), []);
    let resolved = reading(&mut m, &r, 10.0, 210);
    let expected = moved(
        Phase::Ok,
        100,
        Some(n(10.0)),
        Some((AlertState::Resolved, 210)),
    );
    assert_eq!(resolved, [expected]);
}

#[test]
fn readings_of_another_type_than_the_rule_are_ignored_in_every_phase() {
    let r = warm();
    let text = Value::Text(crate::domain::Text::parse("on").expect("a text"));
    for mut m in [Machine::new(t(0)), firing(&r, 100)] {
        for v in [Value::Bool(true), text.clone()] {
            let input = Input::Reading {
                value: &v,
                ts: t(500),
                now: t(500),
            };
            assert!(m.handle(&r, input).is_empty(), "{v:?}");
        }
    }
}

#[test]
fn equality_works_on_strings_and_booleans() {
    let r = rule(
        r#"{"name": "door", "pattern": "*/door", "kind": "threshold", "op": "==", "value": "open"}"#,
    );
    let mut m = Machine::new(t(0));
    let open = Value::Text(crate::domain::Text::parse("open").expect("a text"));
    let input = Input::Reading {
        value: &open,
        ts: t(5),
        now: t(5),
    };
    let fire = m.handle(&r, input).into_iter().collect::<Vec<_>>();
    let expected = moved(Phase::Firing, 5, Some(open), Some((AlertState::Firing, 5)));
    assert_eq!(fire, [expected]);
    let b = rule(
        r#"{"name": "on", "pattern": "*/on", "kind": "threshold", "op": "!=", "value": true}"#,
    );
    let mut m = Machine::new(t(0));
    let off = Value::Bool(false);
    let input = Input::Reading {
        value: &off,
        ts: t(6),
        now: t(6),
    };
    assert_eq!(m.handle(&b, input).into_iter().count(), 1);
}

// --- repeat --------------------------------------------------------------------------

#[test]
fn a_firing_alert_repeats_every_repeat_from_its_last_notification() {
    let r = warm();
    let mut m = Machine::new(t(0));
    let fire = moved(
        Phase::Firing,
        100,
        Some(n(11.0)),
        Some((AlertState::Firing, 160)),
    );
    // The move is done at 161 by the hub clock: the repeat counts from there.
    assert_eq!(done(&mut m, &r, &fire, 161), [schedule(761, Due::Repeat)]);
    assert_eq!(
        due(&mut m, &r, Due::Repeat, 700),
        [schedule(761, Due::Repeat)]
    );
    let again = due(&mut m, &r, Due::Repeat, 761);
    let expected = moved(
        Phase::Firing,
        100,
        Some(n(11.0)),
        Some((AlertState::Firing, 761)),
    );
    assert_eq!(
        again,
        std::slice::from_ref(&expected),
        "same since and value, a new event"
    );
    assert_eq!(
        done(&mut m, &r, &expected, 762),
        [schedule(1362, Due::Repeat)]
    );
    assert_eq!(m.notified, Some(t(762)));
}

#[test]
fn a_repeat_deadline_after_the_alert_resolved_does_nothing() {
    let r = warm();
    let mut m = firing(&r, 100);
    let resolved = reading(&mut m, &r, 5.0, 200);
    done(&mut m, &r, &resolved[0], 200);
    assert_eq!(due(&mut m, &r, Due::Repeat, 10_000), []);
}

#[test]
fn only_one_repeat_deadline_is_queued_at_a_time() {
    let r = warm();
    let fire = moved(Phase::Firing, 1, None, Some((AlertState::Firing, 1)));
    let mut m = Machine::new(t(0));
    assert_eq!(done(&mut m, &r, &fire, 1).len(), 1);
    // Firing again (another hub's row adopted, then fired) while one is queued.
    assert_eq!(done(&mut m, &r, &fire, 2), [], "one is queued already");
}

#[test]
fn without_repeat_nothing_is_queued_and_a_stray_deadline_does_nothing() {
    let r = hot();
    let mut m = firing(&r, 100);
    assert_eq!(due(&mut m, &r, Due::Repeat, 10_000), []);
}

#[test]
fn a_resumed_firing_alert_repeats_from_its_stored_notification() {
    let r = warm();
    let mut m = Machine::new(t(0));
    let input = Input::Resume(Stored {
        firing: true,
        since: t(100),
        value: Some(n(11.0)),
        notified: Some(t(500)),
        acknowledged: false,
    });
    let actions: Vec<Action> = m.handle(&r, input).into_iter().collect();
    assert_eq!(actions, [schedule(1100, Due::Repeat)]);
    assert_eq!((m.phase, m.since), (Phase::Firing, t(100)));
    // A pending row resumes pending, with nothing to queue.
    let mut p = Machine::new(t(0));
    let input = Input::Resume(Stored {
        firing: false,
        since: t(100),
        value: Some(n(11.0)),
        notified: None,
        acknowledged: false,
    });
    assert!(p.handle(&r, input).is_empty());
    assert_eq!(p.phase, Phase::Pending);
}
