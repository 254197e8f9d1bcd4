use super::*;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_micros(secs * 1_000_000)
}

fn dev(n: &str) -> DeviceName {
    DeviceName::parse(n).unwrap()
}

fn table() -> Table {
    Table::new(Duration::from_secs(10), 100)
}

fn states(changes: &[StatusEvent]) -> Vec<(String, bool)> {
    changes
        .iter()
        .map(|c| (c.device.to_string(), c.online))
        .collect()
}

#[test]
fn a_reading_over_http_makes_a_device_online_until_the_timeout() {
    let mut p = table();
    let d = dev("pump-1");
    let on = p
        .heard(&d, Transport::Http, t(0))
        .expect("an online change");
    assert!(on.online);
    assert!(p.is_online("pump-1"));
    assert_eq!(p.transport("pump-1"), Some(Transport::Http));
    assert_eq!(p.next_expiry(), Some(t(10)));
    assert!(p.expire(t(9)).is_empty());
    assert_eq!(states(&p.expire(t(10))), [("pump-1".into(), false)]);
    assert!(!p.is_online("pump-1"));
    assert_eq!(
        p.transport("pump-1"),
        Some(Transport::Http),
        "the last one used"
    );
    assert_eq!(p.next_expiry(), None);
}

#[test]
fn each_reading_moves_the_expiry_on_without_a_second_announcement() {
    let mut p = table();
    let d = dev("pump-1");
    assert!(p.heard(&d, Transport::Mqtt, t(0)).is_some());
    assert!(p.heard(&d, Transport::Mqtt, t(8)).is_none());
    assert!(p.expire(t(10)).is_empty(), "heard at 8: online until 18");
    assert!(p.is_online("pump-1"));
    assert_eq!(p.next_expiry(), Some(t(18)));
    assert_eq!(states(&p.expire(t(18))), [("pump-1".into(), false)]);
}

#[test]
fn a_socket_keeps_a_device_online_and_closing_it_ends_that() {
    let mut p = table();
    let d = dev("boiler-1");
    assert!(p.connected(&d, t(0)).is_some_and(|c| c.online));
    assert!(
        p.connected(&d, t(1)).is_none(),
        "a second socket changes nothing"
    );
    assert!(p.heard(&d, Transport::Ws, t(2)).is_none());
    assert_eq!(p.next_expiry(), None, "no timer for a connected device");
    assert!(p.disconnected(&d, t(3)).is_none());
    assert!(p.disconnected(&d, t(4)).is_some_and(|c| !c.online));
    assert_eq!(p.transport("boiler-1"), Some(Transport::Ws));
}

#[test]
fn a_device_heard_over_http_stays_online_after_its_socket_closes_until_the_timeout() {
    let mut p = table();
    let d = dev("boiler-1");
    p.connected(&d, t(0));
    assert!(p.heard(&d, Transport::Http, t(1)).is_none());
    assert!(
        p.disconnected(&d, t(2)).is_none(),
        "heard at 1: online until 11"
    );
    assert_eq!(states(&p.expire(t(11))), [("boiler-1".into(), false)]);
}

#[test]
fn an_expiry_while_a_socket_is_open_announces_nothing() {
    let mut p = table();
    let d = dev("boiler-1");
    p.heard(&d, Transport::Gateway, t(0));
    assert!(p.connected(&d, t(1)).is_none());
    assert!(p.expire(t(10)).is_empty());
    assert!(p.is_online("boiler-1"));
    assert!(p.disconnected(&d, t(12)).is_some_and(|c| !c.online));
}

#[test]
fn past_max_devices_offline_devices_are_forgotten_first() {
    let mut p = Table::new(Duration::from_secs(10), 2);
    p.heard(&dev("a"), Transport::Http, t(0));
    p.expire(t(10));
    p.connected(&dev("b"), t(11));
    assert!(p.heard(&dev("c"), Transport::Line, t(11)).is_some());
    assert_eq!(p.transport("a"), None, "the offline one was forgotten");
    assert!(p.heard(&dev("d"), Transport::Line, t(11)).is_none(), "full");
    assert!(!p.is_online("d"));
    let mut online = p.online_devices();
    online.sort();
    assert_eq!(online, [dev("b"), dev("c")]);
}

#[test]
fn a_device_with_its_own_timeout_expires_after_it() {
    let mut p = table();
    p.set_timeouts([(dev("slow-1"), Duration::from_secs(60))].into());
    assert!(p.heard(&dev("slow-1"), Transport::Line, t(0)).is_some());
    assert!(p.heard(&dev("fast-1"), Transport::Line, t(0)).is_some());
    assert_eq!(states(&p.expire(t(10))), [("fast-1".into(), false)]);
    assert!(p.expire(t(59)).is_empty());
    assert_eq!(states(&p.expire(t(60))), [("slow-1".into(), false)]);
}

#[test]
fn a_shorter_timeout_given_while_waiting_moves_the_expiry_forward() {
    let mut p = table();
    let d = dev("pump-1");
    assert!(p.heard(&d, Transport::Http, t(0)).is_some());
    assert_eq!(p.next_expiry(), Some(t(10)));
    p.set_timeouts([(d.clone(), Duration::from_secs(3))].into());
    assert_eq!(p.next_expiry(), Some(t(3)));
    assert_eq!(states(&p.expire(t(3))), [("pump-1".into(), false)]);
    assert_eq!(
        p.next_expiry(),
        None,
        "one entry a device, removed when due"
    );
}

#[test]
fn a_longer_timeout_given_while_waiting_keeps_the_device_online_past_the_old_one() {
    let mut p = table();
    let d = dev("pump-1");
    assert!(p.heard(&d, Transport::Http, t(0)).is_some());
    p.set_timeouts([(d.clone(), Duration::from_secs(30))].into());
    assert!(p.expire(t(10)).is_empty(), "put back at its new deadline");
    assert_eq!(p.next_expiry(), Some(t(30)));
    assert_eq!(states(&p.expire(t(30))), [("pump-1".into(), false)]);
}

#[test]
fn a_closed_socket_leaves_a_device_online_within_its_own_timeout() {
    let mut p = table();
    let d = dev("gw-1");
    p.set_timeouts([(d.clone(), Duration::from_secs(60))].into());
    assert!(p.connected(&d, t(0)).is_some());
    assert!(p.heard(&d, Transport::Gateway, t(1)).is_none());
    assert!(
        p.disconnected(&d, t(20)).is_none(),
        "heard at 1: online until 61"
    );
    assert_eq!(states(&p.expire(t(61))), [("gw-1".into(), false)]);
}
