//! Acknowledgements (no `repeat` until resolved) and silences ending (one announcement).

use super::*;

#[test]
fn an_acknowledged_alert_stops_repeating_and_its_next_firing_starts_unacknowledged() {
    let r = warm();
    let mut m = firing(&r, 100);
    assert!(m.handle(&r, Input::Acknowledged).is_empty());
    assert!(m.acknowledged);
    assert!(
        due(&mut m, &r, Due::Repeat, 700).is_empty(),
        "no repeat, and nothing queued again"
    );
    // Resolves below `clear`, fires again: unacknowledged, repeating again.
    let resolve = reading(&mut m, &r, 7.0, 800);
    assert_eq!(
        resolve,
        [moved(
            Phase::Ok,
            100,
            Some(n(7.0)),
            Some((AlertState::Resolved, 800))
        )]
    );
    done(&mut m, &r, &resolve[0], 800);
    assert!(!m.acknowledged);
    let pending = reading(&mut m, &r, 11.0, 900);
    done(&mut m, &r, &pending[0], 900);
    let fire = reading(&mut m, &r, 12.0, 960);
    assert_eq!(
        done(&mut m, &r, &fire[0], 960),
        [schedule(1560, Due::Repeat)]
    );
    assert!(!m.acknowledged);
    assert_eq!(due(&mut m, &r, Due::Repeat, 1560).len(), 1, "repeats again");
}

#[test]
fn only_a_firing_alert_takes_an_acknowledgement_and_a_resumed_one_keeps_it() {
    let r = warm();
    let mut ok = Machine::new(t(0));
    ok.handle(&r, Input::Acknowledged);
    assert!(!ok.acknowledged);
    let mut m = Machine::new(t(0));
    let input = Input::Resume(Stored {
        firing: true,
        since: t(100),
        value: Some(n(11.0)),
        notified: Some(t(100)),
        acknowledged: true,
    });
    assert_eq!(
        m.handle(&r, input).into_iter().collect::<Vec<_>>(),
        [schedule(700, Due::Repeat)]
    );
    assert!(
        due(&mut m, &r, Due::Repeat, 700).is_empty(),
        "acknowledged before the restart"
    );
    // Another hub's row without the acknowledgement: the machine forgets it.
    let theirs = Stored {
        firing: true,
        since: t(100),
        value: None,
        notified: Some(t(100)),
        acknowledged: false,
    };
    m.handle(&r, Input::Adopt(Some(theirs)));
    assert!(!m.acknowledged);
}

#[test]
fn a_silence_ending_announces_a_firing_unacknowledged_alert_once_more() {
    let r = warm();
    let mut m = firing(&r, 100);
    let again = m.handle(&r, Input::SilenceEnded { now: t(300) });
    let expected = moved(
        Phase::Firing,
        100,
        Some(n(11.0)),
        Some((AlertState::Firing, 300)),
    );
    assert_eq!(
        again.into_iter().collect::<Vec<_>>(),
        std::slice::from_ref(&expected)
    );
    done(&mut m, &r, &expected, 300);
    assert_eq!(m.notified, Some(t(300)), "the repeat counts from it");
    m.handle(&r, Input::Acknowledged);
    assert!(m.handle(&r, Input::SilenceEnded { now: t(400) }).is_empty());
    let mut ok = Machine::new(t(0));
    assert!(
        ok.handle(&r, Input::SilenceEnded { now: t(400) })
            .is_empty()
    );
}
