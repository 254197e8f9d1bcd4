//! `no_data` and `offline` waits, and adopting another hub's row.

use super::*;

#[test]
fn no_data_waits_from_the_newest_stored_reading_and_fires_after_looking_again() {
    let r = silent();
    let mut m = Machine::new(t(1000));
    let start = Input::Start {
        last_seen: t(950),
        disconnected: None,
    };
    let started: Vec<Action> = m.handle(&r, start).into_iter().collect();
    assert_eq!(started, [schedule(1010, Due::Condition)]);
    assert_eq!(
        due(&mut m, &r, Due::Condition, 1010),
        [Action::LookUpNewest]
    );
    let none = Input::Newest {
        ts: None,
        now: t(1010),
    };
    let fire: Vec<Action> = m.handle(&r, none).into_iter().collect();
    let expected = moved(Phase::Firing, 950, None, Some((AlertState::Firing, 1010)));
    assert_eq!(
        fire,
        std::slice::from_ref(&expected),
        "since the last reading"
    );
    assert_eq!(done(&mut m, &r, &expected, 1010), []);
    assert_eq!(m.phase, Phase::Firing);
}

#[test]
fn a_reading_stored_by_another_hub_moves_the_no_data_wait() {
    let r = silent();
    let mut m = Machine::new(t(0));
    m.handle(
        &r,
        Input::Start {
            last_seen: t(0),
            disconnected: None,
        },
    );
    assert_eq!(due(&mut m, &r, Due::Condition, 60), [Action::LookUpNewest]);
    let newer = Input::Newest {
        ts: Some(t(30)),
        now: t(60),
    };
    let actions: Vec<Action> = m.handle(&r, newer).into_iter().collect();
    assert_eq!(actions, [schedule(90, Due::Condition)]);
    // A stored time ahead of the hub clock counts as now.
    assert_eq!(due(&mut m, &r, Due::Condition, 90), [Action::LookUpNewest]);
    let ahead = Input::Newest {
        ts: Some(t(500)),
        now: t(90),
    };
    let actions: Vec<Action> = m.handle(&r, ahead).into_iter().collect();
    assert_eq!(actions, [schedule(150, Due::Condition)]);
}

#[test]
fn a_reading_moves_the_no_data_wait_and_queues_only_one_deadline() {
    let r = silent();
    let mut m = Machine::new(t(0));
    assert_eq!(reading(&mut m, &r, 1.0, 10), [schedule(70, Due::Condition)]);
    assert_eq!(reading(&mut m, &r, 1.0, 20), [], "one is queued already");
    // The deadline at 70 finds the wait moved to 80.
    assert_eq!(
        due(&mut m, &r, Due::Condition, 70),
        [schedule(80, Due::Condition)]
    );
}

#[test]
fn a_reading_resolves_a_firing_no_data_alert() {
    let r = silent();
    let mut m = firing(&r, 100);
    let actions = reading(&mut m, &r, 4.0, 300);
    let resolve = moved(
        Phase::Ok,
        100,
        Some(n(4.0)),
        Some((AlertState::Resolved, 300)),
    );
    assert_eq!(
        actions,
        [schedule(360, Due::Condition), resolve.clone()],
        "the next wait is queued first"
    );
    assert_eq!(done(&mut m, &r, &resolve, 301), [], "already waiting");
    assert_eq!(m.phase, Phase::Ok);
}

#[test]
fn resolving_no_data_without_a_queued_wait_queues_one() {
    let r = silent();
    let mut m = firing(&r, 100);
    m.last_seen = t(300);
    let resolve = moved(Phase::Ok, 100, None, Some((AlertState::Resolved, 300)));
    assert_eq!(
        done(&mut m, &r, &resolve, 301),
        [schedule(360, Due::Condition)]
    );
}

#[test]
fn a_failed_look_up_is_retried_and_a_firing_no_data_ignores_its_deadline() {
    let r = silent();
    let mut m = Machine::new(t(0));
    let retry: Vec<Action> = m
        .handle(&r, Input::Retry { at: t(61) })
        .into_iter()
        .collect();
    assert_eq!(retry, [schedule(61, Due::Condition)]);
    assert_eq!(
        reading(&mut m, &r, 1.0, 5),
        [],
        "the retry counts as the wait"
    );
    let mut f = firing(&r, 100);
    assert_eq!(due(&mut f, &r, Due::Condition, 10_000), []);
}

// --- offline -------------------------------------------------------------------------

#[test]
fn offline_is_pending_from_the_disconnect_and_fires_after_for() {
    let r = gone();
    let mut m = Machine::new(t(0));
    assert_eq!(
        presence(&mut m, &r, false, 100),
        [schedule(160, Due::Condition)]
    );
    assert_eq!((m.phase, m.since), (Phase::Pending, t(100)));
    assert_eq!(
        due(&mut m, &r, Due::Condition, 150),
        [schedule(160, Due::Condition)],
        "early: queued again"
    );
    let fire = due(&mut m, &r, Due::Condition, 161);
    let expected = moved(Phase::Firing, 100, None, Some((AlertState::Firing, 161)));
    assert_eq!(fire, std::slice::from_ref(&expected));
    assert_eq!(done(&mut m, &r, &expected, 161), []);
    assert_eq!(
        presence(&mut m, &r, false, 170),
        [],
        "already firing: nothing new"
    );
    let back = presence(&mut m, &r, true, 200);
    let resolve = moved(Phase::Ok, 100, None, Some((AlertState::Resolved, 200)));
    assert_eq!(back, [resolve]);
}

#[test]
fn a_device_back_before_for_never_fires() {
    let r = gone();
    let mut m = Machine::new(t(0));
    presence(&mut m, &r, false, 100);
    assert_eq!(presence(&mut m, &r, true, 130), [], "no event for a wait");
    assert_eq!(m.phase, Phase::Ok);
    assert_eq!(
        due(&mut m, &r, Due::Condition, 160),
        [],
        "the old deadline finds it ok"
    );
    assert_eq!(presence(&mut m, &r, true, 170), [], "online while ok");
}

#[test]
fn a_device_gone_at_start_waits_from_then_and_one_online_stays_ok() {
    let r = gone();
    let mut m = Machine::new(t(0));
    let start = Input::Start {
        last_seen: t(0),
        disconnected: Some(t(40)),
    };
    let started: Vec<Action> = m.handle(&r, start).into_iter().collect();
    assert_eq!(started, [schedule(100, Due::Condition)]);
    assert_eq!((m.phase, m.since), (Phase::Pending, t(40)));
    let mut online = Machine::new(t(0));
    let start = Input::Start {
        last_seen: t(0),
        disconnected: None,
    };
    assert!(online.handle(&r, start).is_empty());
    assert_eq!(online.phase, Phase::Ok);
}

#[test]
fn presence_and_readings_move_only_the_rules_they_concern() {
    let mut m = Machine::new(t(0));
    assert_eq!(presence(&mut m, &warm(), false, 10), []);
    assert_eq!(presence(&mut m, &silent(), false, 10), []);
    assert_eq!(reading(&mut m, &gone(), 99.0, 10), []);
    assert_eq!(m, Machine::new(t(0)));
}

// --- cluster -------------------------------------------------------------------------

#[test]
fn adopting_another_hubs_row_takes_its_state_and_queues_nothing() {
    let r = warm();
    let mut m = Machine::new(t(0));
    let theirs = Stored {
        firing: true,
        since: t(100),
        value: Some(n(12.0)),
        notified: Some(t(160)),
        acknowledged: false,
    };
    assert!(m.handle(&r, Input::Adopt(Some(theirs))).is_empty());
    assert_eq!(
        (m.phase, m.since, m.notified),
        (Phase::Firing, t(100), Some(t(160)))
    );
    assert!(m.handle(&r, Input::Adopt(None)).is_empty());
    assert_eq!(m.phase, Phase::Ok, "no row: ok");
}

#[test]
fn notified_is_now_for_a_firing_event_kept_without_one_and_cleared_otherwise() {
    let m = Machine {
        notified: Some(t(5)),
        ..Machine::new(t(0))
    };
    let fire = Transition {
        to: Phase::Firing,
        since: t(1),
        value: None,
        event: Some((AlertState::Firing, t(9))),
    };
    assert_eq!(m.notified_after(&fire, t(10)), Some(t(10)));
    let quiet = Transition {
        event: None,
        ..fire
    };
    assert_eq!(m.notified_after(&quiet, t(10)), Some(t(5)));
    let ok = Transition {
        to: Phase::Ok,
        ..quiet
    };
    assert_eq!(m.notified_after(&ok, t(10)), None);
}
