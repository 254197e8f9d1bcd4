use super::*;
use crate::protocol::commands::CommandStatus;
use futures_util::FutureExt;

fn cfg() -> CommandsConfig {
    let mut c = CommandsConfig::new(Arc::new(|_| {
        async {
            CommandAnswer {
                status: CommandStatus::Ok,
                result: None,
                error: None,
            }
        }
        .boxed()
    }));
    c.resend_after = Duration::from_secs(5);
    c.max_sends = 3;
    c.max_running = 2;
    c.remember = 2;
    c
}

fn id(s: &str) -> CommandId {
    CommandId::parse(s).unwrap()
}

fn ok() -> CommandAnswer {
    CommandAnswer {
        status: CommandStatus::Ok,
        result: None,
        error: None,
    }
}

fn ids(frames: &[DeviceFrame]) -> Vec<String> {
    let mut v: Vec<String> = frames
        .iter()
        .map(|f| match f {
            DeviceFrame::CommandResult { id, .. } => id.to_string(),
            other => panic!("not a result: {other:?}"),
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_command_runs_once_however_often_it_is_sent() {
    let (c, mut b, now) = (cfg(), Book::default(), Instant::now());
    assert_eq!(b.on_command(&id("c_1"), 2), Decision::Execute);
    assert_eq!(
        b.on_command(&id("c_1"), 2),
        Decision::Known,
        "still running"
    );
    b.finished(id("c_1"), ok(), c.remember);
    assert_eq!(ids(&b.due(now, &c)), ["c_1"]);
    b.stored(&id("c_1"));
    assert!(b.due(now, &c).is_empty());
    // Sent again (its acknowledgement was lost): answered again, not run again.
    assert_eq!(b.on_command(&id("c_1"), 2), Decision::Known);
    assert_eq!(ids(&b.due(now, &c)), ["c_1"]);
}

#[test]
fn answers_are_resent_until_stored_and_on_every_connection_then_given_up() {
    let (c, mut b, t0) = (cfg(), Book::default(), Instant::now());
    b.on_command(&id("c_1"), 2);
    b.finished(id("c_1"), ok(), c.remember);
    assert_eq!(b.due(t0, &c).len(), 1);
    assert!(b.due(t0 + Duration::from_secs(1), &c).is_empty());
    assert_eq!(b.next_due(&c), Some(t0 + c.resend_after));
    b.connected();
    assert_eq!(
        b.due(t0 + Duration::from_secs(1), &c).len(),
        1,
        "a new connection resends"
    );
    assert_eq!(b.due(t0 + Duration::from_secs(7), &c).len(), 1);
    assert!(
        b.due(t0 + Duration::from_secs(20), &c).is_empty(),
        "given up after max_sends"
    );
    assert_eq!(b.next_due(&c), None);
}

#[test]
fn running_commands_are_bounded_and_executed_ids_remembered_up_to_the_bound() {
    let (c, mut b) = (cfg(), Book::default());
    assert_eq!(b.on_command(&id("a"), 2), Decision::Execute);
    assert_eq!(b.on_command(&id("b"), 2), Decision::Execute);
    assert_eq!(b.on_command(&id("c"), 2), Decision::Busy);
    for x in ["a", "b"] {
        b.finished(id(x), ok(), c.remember);
    }
    assert_eq!(b.on_command(&id("c"), 2), Decision::Execute);
    b.finished(id("c"), ok(), c.remember);
    assert_eq!(
        b.on_command(&id("a"), 2),
        Decision::Execute,
        "a was forgotten (remember = 2)"
    );
    assert_eq!(b.on_command(&id("c"), 2), Decision::Known);
}

#[test]
fn the_book_survives_a_restart() {
    let (c, mut b) = (cfg(), Book::default());
    b.on_command(&id("c_1"), 2);
    b.finished(id("c_1"), ok(), c.remember);
    b.on_command(&id("c_2"), 2);
    let mut failed = ok();
    failed.status = CommandStatus::Error;
    failed.error = Some("no".into());
    b.finished(id("c_2"), failed.clone(), c.remember);
    b.stored(&id("c_1"));
    let text = b.snapshot() + "garbage\n";
    let (mut back, skipped) = Book::restore(&text, c.remember);
    assert_eq!(skipped, 1);
    assert_eq!(back.on_command(&id("c_1"), 2), Decision::Known);
    let due = back.due(Instant::now(), &c);
    assert!(due.iter().any(|f| matches!(f, DeviceFrame::CommandResult { id: i, answer } if i.as_str() == "c_2" && *answer == failed)));
}
