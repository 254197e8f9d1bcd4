//! A corpus of malformed frames: each gets the right error on a socket that stays usable,
//! and the hub's memory stays flat while it answers them over and over.

use crate::helpers::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// (frame, expected error code, whether the id can be echoed)
fn corpus(t: f64) -> Vec<(String, &'static str, bool)> {
    let mut c: Vec<(String, &'static str, bool)> = Vec::new();
    let good = |extra: &str| {
        format!(r#"{{"id":7,"readings":[{{"sensor":"t","value":1,"ts":{t}{extra}}}]}}"#)
    };
    // Not JSON at all, or broken JSON.
    for s in [
        "",
        " ",
        "{",
        "}",
        "[",
        "nul",
        "{'id':1}",
        r#"{"id":1,}"#,
        r#"{"id":1 "readings":[]}"#,
        "\u{0}",
        "<xml/>",
        "42",
        "\"text\"",
        "true",
        "null",
    ] {
        c.push((s.to_owned(), "invalid_json", false));
    }
    // Every truncation of a good message.
    let whole = r#"{"id":7,"readings":[{"sensor":"t","value":1.5,"unit":"Cel"}]}"#;
    for end in 1..whole.len() {
        c.push((whole[..end].to_owned(), "invalid_json", false));
    }
    // Deep nesting: beyond the JSON parser's recursion limit.
    for depth in [200, 1000, 5000] {
        c.push((
            format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
            "invalid_json",
            false,
        ));
        c.push((
            format!(
                r#"{{"id":1,"readings":{}{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            ),
            "invalid_json",
            false,
        ));
    }
    // Numbers JSON cannot hold or a reading cannot be.
    for v in [
        "1e400",
        "-1e400",
        "NaN",
        "Infinity",
        "-Infinity",
        "nan",
        "inf",
        "0x10",
        "01",
        "1.",
        ".5",
        "+1",
    ] {
        c.push((
            format!(r#"{{"id":7,"readings":[{{"sensor":"t","value":{v}}}]}}"#),
            "invalid_json",
            false,
        ));
    }
    // Wrong types and spellings of non-finite values as strings.
    for v in [
        r#""NaN""#,
        r#""Infinity""#,
        r#""1.5""#,
        "null",
        "true",
        "[]",
        "{}",
        r#"[1]"#,
    ] {
        c.push((
            format!(r#"{{"id":7,"readings":[{{"sensor":"t","value":{v}}}]}}"#),
            "invalid_reading",
            true,
        ));
    }
    for r in [
        r#"7"#,
        r#""reading""#,
        "null",
        "[]",
        r#"{"sensor":1,"value":1}"#,
        r#"{"sensor":null,"value":1}"#,
        r#"{"value":1}"#,
        r#"{"sensor":"t"}"#,
    ] {
        c.push((
            format!(r#"{{"id":7,"readings":[{r}]}}"#),
            "invalid_reading",
            true,
        ));
    }
    for bad_id in [r#""7""#, "-1", "1.5", "18446744073709551616", "[]", "true"] {
        c.push((
            format!(r#"{{"id":{bad_id},"readings":[{{"sensor":"t","value":1}}]}}"#),
            "invalid_json",
            false,
        ));
    }
    c.push((r#"{"id":7,"readings":{}}"#.into(), "invalid_json", true));
    c.push((r#"{"id":7,"readings":"x"}"#.into(), "invalid_json", true));
    c.push((r#"{"id":7}"#.into(), "invalid_json", true));
    c.push((r#"{"id":7,"readings":[]}"#.into(), "invalid_reading", true));
    // Bad names.
    let long = "x".repeat(65);
    for n in [
        "",
        " ",
        "-t",
        ".t",
        "t t",
        "t/t",
        "t\\u0000",
        "tempé",
        r#"t\""#,
        "<b>",
        long.as_str(),
        "t\\nx",
    ] {
        c.push((
            format!(r#"{{"id":7,"readings":[{{"sensor":"{n}","value":1}}]}}"#),
            "invalid_reading",
            true,
        ));
        c.push((
            format!(r#"{{"id":7,"device":"{n}","readings":[{{"sensor":"t","value":1}}]}}"#),
            "invalid_reading",
            true,
        ));
    }
    // Bad units.
    for u in ["\"abcdefghijklmnopq\"", "\"a\\u0007\"", "1", "[]"] {
        c.push((
            format!(r#"{{"id":7,"readings":[{{"sensor":"t","value":1,"unit":{u}}}]}}"#),
            "invalid_reading",
            true,
        ));
    }
    // Bad timestamps.
    for ts in [
        r#""yesterday""#,
        r#""2026-13-01T00:00:00Z""#,
        r#""2026-11-21 10:00""#,
        r#""2026-11-21T10:00:00""#,
        r#""""#,
        "0",
        "-1",
        "946684799",
        "1e300",
        "99999999999",
        r#""2999-01-01T00:00:00Z""#,
        r#""1999-12-31T23:59:59Z""#,
        "true",
        "[]",
        "{}",
    ] {
        c.push((
            format!(r#"{{"id":7,"readings":[{{"sensor":"t","value":1,"ts":{ts}}}]}}"#),
            "invalid_reading",
            true,
        ));
    }
    // Unknown fields.
    c.push((
        r#"{"id":7,"readings":[{"sensor":"t","value":1}],"extra":1}"#.into(),
        "invalid_json",
        true,
    ));
    c.push((good(r#","extra":1"#), "invalid_reading", true));
    c.push((good(r#","Value":1"#), "invalid_reading", true));
    // Forbidden devices (not a gateway for them).
    c.push((
        r#"{"id":7,"device":"other-1","readings":[{"sensor":"t","value":1}]}"#.into(),
        "forbidden_device",
        true,
    ));
    c.push((good(r#","device":"other-1""#), "forbidden_device", true));
    // Too many readings.
    let many: Vec<String> = (0..1001)
        .map(|i| format!(r#"{{"sensor":"t","value":{i}}}"#))
        .collect();
    c.push((
        format!(r#"{{"id":7,"readings":[{}]}}"#, many.join(",")),
        "too_many_readings",
        true,
    ));
    // SenML mistakes.
    for p in [
        r#"[]"#,
        r#"[1]"#,
        r#"[{"n":"t"}]"#,
        r#"[{"n":"t","v":"1"}]"#,
        r#"[{"n":"t","vb":true}]"#,
        r#"[{"n":"a b","v":1}]"#,
        r#"[{"x":1,"n":"t","v":1}]"#,
        r#"[{"bn":5,"n":"t","v":1}]"#,
    ] {
        c.push((p.to_owned(), "invalid_reading", false));
    }
    // The same reading-level mistakes in the third reading of a message.
    let third: Vec<(String, &'static str, bool)> = c
        .iter()
        .filter(|(f, code, _)| {
            *code == "invalid_reading"
                && f.starts_with(r#"{"id":7,"readings":[{"#)
                && f.ends_with("]}")
        })
        .map(|(f, code, e)| {
            let bad = &f[r#"{"id":7,"readings":["#.len()..f.len() - 2];
            let ok = format!(r#"{{"sensor":"t","value":1,"ts":{t}}}"#);
            (
                format!(r#"{{"id":7,"readings":[{ok},{ok},{bad}]}}"#),
                *code,
                *e,
            )
        })
        .collect();
    c.extend(third);
    c
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_frame_gets_its_error_and_the_socket_stays_usable() {
    let app = spawn_app(Backend::Sqlite).await;
    app.device("other-1").await;
    let mut ws = app.connect_device(&app.device("d1").await).await;
    let t = base_ts();
    let cases = corpus(t);
    assert!(cases.len() >= 200, "corpus has {} frames", cases.len());
    let mut rss_after_first = 0;
    for pass in 0..8 {
        for (i, (frame, code, echoes_id)) in cases.iter().enumerate() {
            ws.send(Message::Text(frame.clone().into())).await.unwrap();
            let r = next_json(&mut ws).await;
            assert_eq!(r["error"], *code, "case {i} {frame:.120}: {r}");
            assert!(r.get("nack").is_some(), "case {i}: {r}");
            if *echoes_id {
                assert_eq!(r["nack"], 7, "case {i} {frame:.120}: {r}");
            }
            assert!(r["detail"].as_str().is_some_and(|d| !d.is_empty()));
        }
        // Still usable: a good message is stored.
        let ts = t + pass as f64;
        send_json(
            &mut ws,
            &json!({"id": 1000 + pass, "readings": [reading("t", pass as f64, ts)]}),
        )
        .await;
        assert_eq!(
            next_json(&mut ws).await,
            json!({"ack": 1000 + pass, "stored": 1})
        );
        if pass == 0 {
            rss_after_first = rss_kib();
        }
    }
    let growth = rss_kib().saturating_sub(rss_after_first);
    assert!(
        growth < 16 * 1024,
        "memory grew {growth} KiB over 7 more passes of the corpus"
    );
    assert_eq!(app.stored("d1").await.len(), 8);
    assert!(app.stored("other-1").await.is_empty());
    let health = reqwest::get(format!("{}/healthz", app.http()))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}
