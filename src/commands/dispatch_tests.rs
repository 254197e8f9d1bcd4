//! The dispatch machine without I/O: events in, actions out, time passed by hand.

use super::*;

const SEC: i64 = 1_000_000;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_micros(1_800_000_000 * SEC + secs * SEC)
}

fn machine(window: usize) -> Dispatch {
    Dispatch::new(Limits {
        window,
        ack_timeout: Duration::from_secs(30),
        max_attempts: 3,
    })
}

fn open(id: &str, device: &str, seq: i64, expires: i64) -> Open {
    Open {
        id: id.into(),
        device: device.into(),
        seq,
        expires: t(expires),
        attempts: 0,
        stage: Stage::Queued,
    }
}

fn send(id: &str, device: &str, attempts: u32) -> Action {
    Action::Send {
        id: id.into(),
        device: device.into(),
        attempts,
    }
}

#[test]
fn a_device_that_is_not_connected_gets_nothing_until_it_connects_then_the_oldest_first() {
    let mut m = machine(1);
    assert!(m.add(open("b", "d1", 2, 3600), t(0)).is_empty());
    assert!(m.add(open("a", "d1", 1, 3600), t(0)).is_empty());
    assert_eq!(m.connect("d1", t(1)), [send("a", "d1", 0)]);
    assert_eq!(m.len(), 2);
}

#[test]
fn the_window_bounds_what_is_sent_and_not_answered_and_an_answer_moves_the_queue() {
    let mut m = machine(2);
    m.connect("d1", t(0));
    assert_eq!(m.add(open("a", "d1", 1, 3600), t(0)), [send("a", "d1", 0)]);
    assert_eq!(m.add(open("b", "d1", 2, 3600), t(0)), [send("b", "d1", 0)]);
    assert!(m.add(open("c", "d1", 3, 3600), t(0)).is_empty());
    m.acked("a");
    assert_eq!(
        m.tick(t(30)),
        [send("b", "d1", 1)],
        "only the unacknowledged one is resent"
    );
    assert_eq!(m.settled("a", t(31)), [send("c", "d1", 0)]);
}

#[test]
fn other_devices_queues_do_not_wait_for_each_other() {
    let mut m = machine(1);
    m.connect("d1", t(0));
    m.connect("d2", t(0));
    assert_eq!(m.add(open("a", "d1", 1, 3600), t(0)), [send("a", "d1", 0)]);
    assert_eq!(m.add(open("b", "d2", 2, 3600), t(0)), [send("b", "d2", 0)]);
}

#[test]
fn an_unacknowledged_command_is_resent_on_reconnect_with_the_same_id() {
    let mut m = machine(1);
    m.connect("d1", t(0));
    assert_eq!(m.add(open("a", "d1", 1, 3600), t(0)), [send("a", "d1", 0)]);
    m.disconnect("d1", t(5));
    assert!(m.tick(t(40)).is_empty(), "no resend while away");
    assert_eq!(m.connect("d1", t(50)), [send("a", "d1", 1)]);
}

#[test]
fn an_unacknowledged_command_is_resent_after_ack_timeout_then_given_up_after_max_attempts() {
    let mut m = machine(1);
    m.connect("d1", t(0));
    m.add(open("a", "d1", 1, 3600), t(0));
    m.add(open("b", "d1", 2, 3600), t(0));
    assert!(m.tick(t(29)).is_empty());
    assert_eq!(m.tick(t(30)), [send("a", "d1", 1)]);
    assert_eq!(m.tick(t(60)), [send("a", "d1", 2)]);
    assert_eq!(
        m.tick(t(90)),
        [
            Action::GiveUp {
                id: "a".into(),
                attempts: 3
            },
            send("b", "d1", 0)
        ]
    );
    assert!(!m.knows("a"));
}

#[test]
fn expiry_is_checked_before_every_send_and_an_expired_command_never_goes_out() {
    let mut m = machine(1);
    m.add(open("a", "d1", 1, 10), t(0));
    m.add(open("b", "d1", 2, 3600), t(0));
    // The device comes back after `a` expired but before the heap said so.
    assert_eq!(
        m.connect("d1", t(11)),
        [Action::Expire { id: "a".into() }, send("b", "d1", 0)]
    );
    assert!(m.tick(t(20)).is_empty(), "its stale deadline does nothing");
}

#[test]
fn a_command_expires_at_its_deadline_while_the_device_is_away() {
    let mut m = machine(1);
    m.add(open("a", "d1", 1, 10), t(0));
    assert_eq!(m.next_due(), Some(t(10)));
    assert!(m.tick(t(9)).is_empty());
    assert_eq!(m.tick(t(10)), [Action::Expire { id: "a".into() }]);
    assert!(m.is_empty());
    assert!(m.connect("d1", t(11)).is_empty());
}

#[test]
fn a_canceled_command_is_never_sent_and_frees_its_place() {
    let mut m = machine(1);
    m.add(open("a", "d1", 1, 3600), t(0));
    m.add(open("b", "d1", 2, 3600), t(0));
    assert!(m.settled("a", t(1)).is_empty(), "nobody connected");
    assert_eq!(m.connect("d1", t(2)), [send("b", "d1", 0)]);
}

#[test]
fn a_command_found_sent_in_storage_after_a_restart_is_resent_when_its_device_connects() {
    let mut m = machine(1);
    let mut c = open("a", "d1", 1, 3600);
    c.attempts = 1;
    c.stage = Stage::Sent;
    m.add(c, t(0));
    assert_eq!(m.connect("d1", t(1)), [send("a", "d1", 1)]);
}

#[test]
fn a_known_command_added_again_changes_nothing() {
    let mut m = machine(1);
    m.connect("d1", t(0));
    assert_eq!(m.add(open("a", "d1", 1, 3600), t(0)).len(), 1);
    assert!(m.add(open("a", "d1", 1, 3600), t(0)).is_empty());
    assert_eq!(m.len(), 1);
}

#[test]
fn stale_deadlines_do_not_pile_up() {
    let mut m = machine(1);
    for i in 0..5000 {
        m.add(open(&format!("c{i}"), "d1", i, 3600), t(0));
        m.settled(&format!("c{i}"), t(0));
    }
    m.tick(t(1));
    assert!(m.deadlines.len() <= 1024, "{}", m.deadlines.len());
    assert!(m.devices.is_empty());
}

#[test]
fn with_a_relay_a_device_without_connection_gets_its_commands_there_and_a_connection_takes_over() {
    let mut m = machine(1);
    assert!(m.add(open("a", "d1", 1, 3600), t(0)).is_empty());
    assert_eq!(m.set_relay(true, t(1)), [send("a", "d1", 0)]);
    assert!(m.add(open("b", "d1", 2, 3600), t(1)).is_empty(), "window 1");
    // The device connects before acknowledging: the connection gets it again.
    assert_eq!(m.connect("d1", t(2)), [send("a", "d1", 1)]);
    m.acked("a");
    assert!(
        m.disconnect("d1", t(3)).is_empty(),
        "a is received: window full"
    );
    assert_eq!(
        m.settled("a", t(4)),
        [send("b", "d1", 0)],
        "b goes to the relay"
    );
}

#[test]
fn a_send_the_relay_could_not_hand_over_is_tried_again_after_ack_timeout_with_its_count() {
    let mut m = machine(1);
    m.set_relay(true, t(0));
    assert_eq!(m.add(open("a", "d1", 1, 3600), t(0)), [send("a", "d1", 0)]);
    assert!(m.add(open("b", "d1", 2, 3600), t(0)).is_empty());
    m.unsent("a", 0, t(1));
    assert!(
        m.tick(t(30)).is_empty(),
        "the first send's deadline is stale"
    );
    assert_eq!(
        m.tick(t(31)),
        [send("a", "d1", 0)],
        "same count: it was never sent"
    );
    m.unsent("a", 5, t(32));
    assert_eq!(
        m.tick(t(61)),
        [send("a", "d1", 1)],
        "a stale report changes nothing"
    );
}
