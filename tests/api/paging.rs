//! Pages of the list endpoints (issue 28 item 7, docs/http-api.md "Pages"): `?limit=N`
//! answers at most N entries and a `Link: <…>; rel="next"` header while more follow; the
//! pages followed to the end give every entry once, in key order, even when entries are
//! added between two pages; a bad `limit` or `cursor` is a 400 naming it — `/v1/devices`
//! (with `?label=`), `/v1/alert-rules`, `/v1/alerts`, `/v1/alerts/events` and
//! `/v1/silences`, on both backends.

use crate::both_backends;
use crate::helpers::*;
use serde_json::{Value, json};
use telehub::auth::Role;

/// GET `path` with `token`: the status, the body as JSON and the `rel="next"` link.
async fn get_page(app: &TestApp, path: &str, token: &str) -> (u16, Value, Option<String>) {
    let resp = app.get_response(path, token).await;
    let status = resp.status().as_u16();
    let next = resp
        .headers()
        .get("link")
        .map(|v| v.to_str().unwrap().to_owned())
        .map(|l| {
            let url = l
                .strip_prefix('<')
                .and_then(|l| l.strip_suffix(">; rel=\"next\""))
                .unwrap_or_else(|| panic!("not a next link: {l}"));
            assert!(url.starts_with("/v1/"), "{url}");
            assert!(
                !url.contains("token="),
                "the link never carries a token: {url}"
            );
            url.to_owned()
        });
    (status, resp.json().await.unwrap_or(Value::Null), next)
}

/// Follows `path` (which asks for a `limit`) page by page; `between(i)` runs after page
/// `i`. Every entry of every page, in order.
async fn all_pages<F, Fut>(
    app: &TestApp,
    path: &str,
    token: &str,
    limit: usize,
    mut between: F,
) -> Vec<Value>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (mut seen, mut next, mut page) = (Vec::new(), Some(path.to_owned()), 0);
    while let Some(url) = next {
        let (status, body, link) = get_page(app, &url, token).await;
        assert_eq!(status, 200, "{url}: {body}");
        let items = body
            .as_array()
            .unwrap_or_else(|| panic!("an array: {body}"));
        assert!(items.len() <= limit, "{url}: {} entries", items.len());
        assert!(
            link.is_none() || items.len() == limit,
            "a short page is the last"
        );
        seen.extend(items.iter().cloned());
        between(page).await;
        page += 1;
        next = link;
        assert!(page < 100, "pages never end");
    }
    seen
}

fn names(items: &[Value], key: &str) -> Vec<String> {
    items
        .iter()
        .map(|d| d[key].as_str().unwrap().to_owned())
        .collect()
}

async fn device_pages_concatenate_even_when_devices_are_added_between_pages(backend: Backend) {
    let app = spawn_app(backend).await;
    let viewer = app.viewer().await;
    let admin = app.admin().await;
    let first: Vec<String> = (1..=7).map(|i| format!("d{i}")).collect();
    for n in &first {
        app.device(n).await;
    }
    // Without `limit`: the whole list, as before, and no link.
    let (status, whole, link) = get_page(&app, "/v1/devices", &viewer).await;
    assert_eq!((status, link), (200, None));
    assert_eq!(names(whole.as_array().unwrap(), "name"), first);

    // Between pages: one device sorts before the cursor (not expected), one after it.
    let added = std::sync::Mutex::new(Vec::new());
    let seen = all_pages(&app, "/v1/devices?limit=3", &viewer, 3, |page| {
        let (app, added) = (&app, &added);
        async move {
            if page < 2 {
                let (before, after) = (format!("d0{page}"), format!("d9{page}"));
                app.device(&before).await;
                app.device(&after).await;
                added.lock().unwrap().push(after);
            }
        }
    })
    .await;
    let seen = names(&seen, "name");
    let mut expected = first.clone();
    expected.extend(added.into_inner().unwrap());
    expected.sort();
    assert_eq!(seen, expected, "every device once, in name order");

    // With a label filter: pages of the matching devices only.
    for n in ["d2", "d5", "d6", "d91"] {
        let (status, body) = super::labels::put_labels(&app, &admin, n, json!({"site": "a"})).await;
        assert_eq!(status, 200, "{body}");
    }
    let seen = all_pages(
        &app,
        "/v1/devices?label=site:a&limit=1",
        &viewer,
        1,
        |_| async {},
    )
    .await;
    assert_eq!(names(&seen, "name"), ["d2", "d5", "d6", "d91"]);
}
both_backends!(device_pages_concatenate_even_when_devices_are_added_between_pages);

async fn a_bad_limit_or_cursor_is_refused_on_every_list(backend: Backend) {
    let app = spawn_app(backend).await;
    let viewer = app.viewer().await;
    let admin = app.admin().await;
    let max = app.settings.limits.max_page_size;
    for path in [
        "/v1/devices",
        "/v1/alert-rules",
        "/v1/alerts",
        "/v1/alerts/events",
        "/v1/silences",
    ] {
        let token = if path == "/v1/alert-rules" {
            &admin
        } else {
            &viewer
        };
        for (query, says) in [
            ("limit=0".to_owned(), "limit"),
            (format!("limit={}", max + 1), "limits.max_page_size"),
            ("limit=ten".to_owned(), "limit"),
            ("limit=3&cursor=not-a-cursor".to_owned(), "cursor"),
            // Valid base64 of a JSON value that is no key of any list.
            ("cursor=e30".to_owned(), "cursor"),
            (format!("cursor={}", "A".repeat(5000)), "cursor"),
        ] {
            let (status, body, _) = get_page(&app, &format!("{path}?{query}"), token).await;
            assert_eq!(status, 400, "{path}?{query}: {body}");
            assert_eq!(body["error"], "bad_request", "{body}");
            assert!(
                body["detail"].as_str().unwrap().contains(says),
                "{path}?{query}: {body}"
            );
        }
    }
}
both_backends!(a_bad_limit_or_cursor_is_refused_on_every_list);

async fn rules_alerts_events_and_silences_page_to_their_whole_lists(backend: Backend) {
    let rx = Receiver::start().await;
    let app = spawn_app_with(backend, |s| super::alerts::alert_settings(s, &rx)).await;
    let viewer = app.viewer().await;
    let admin = app.admin().await;
    let operator = app.store.add_token("op", Role::Operator).await.unwrap();

    // Rules: five, paged by name, one added between pages.
    for name in ["r1", "r3", "r5", "r7", "r9"] {
        let body = json!({"name": name, "pattern": format!("*/{name}"), "kind": "threshold", "op": ">", "value": 10});
        let (status, text) = app.post("/v1/alert-rules", &admin, &body).await;
        assert_eq!(status, 201, "{text}");
    }
    let seen = all_pages(&app, "/v1/alert-rules?limit=2", &admin, 2, |page| {
        let (app, admin) = (&app, &admin);
        async move {
            if page == 0 {
                let body = json!({"name": "r8", "pattern": "*/r8", "kind": "threshold", "op": ">", "value": 10});
                assert_eq!(app.post("/v1/alert-rules", admin, &body).await.0, 201);
            }
        }
    })
    .await;
    assert_eq!(names(&seen, "name"), ["r1", "r3", "r5", "r7", "r8", "r9"]);

    // Alerts and events: five devices over r1's threshold fire five alerts.
    let devices = ["f1", "f2", "f3", "f4", "f5"];
    for d in devices {
        let token = app.device(d).await;
        let mut ws = app.connect_device(&token).await;
        send_json(
            &mut ws,
            &json!({"id": 1, "readings": [reading("r1", 20.0, base_ts())]}),
        )
        .await;
        assert_eq!(next_json(&mut ws).await["ack"], 1);
    }
    let events = eventually(
        WAIT,
        "five firing events",
        || async { app.get("/v1/alerts/events", Some(&viewer)).await.1 },
        |e| e.as_array().is_some_and(|a| a.len() == 5),
    )
    .await;
    let seen = all_pages(&app, "/v1/alerts/events?limit=2", &viewer, 2, |_| async {}).await;
    assert_eq!(seen, events.as_array().unwrap().clone(), "events by id");
    let seen = all_pages(&app, "/v1/alerts?limit=2", &viewer, 2, |_| async {}).await;
    assert_eq!(names(&seen, "device"), devices);

    // Silences: three, paged by id, one added between pages.
    let silence =
        |n: usize| json!({"pattern": format!("s{n}/*"), "for": "1h", "comment": "paging"});
    for n in 0..3 {
        assert_eq!(
            app.post("/v1/silences", &operator, &silence(n)).await.0,
            201
        );
    }
    let seen = all_pages(&app, "/v1/silences?limit=2", &viewer, 2, |page| {
        let (app, operator, body) = (&app, &operator, silence(3));
        async move {
            if page == 0 {
                assert_eq!(app.post("/v1/silences", operator, &body).await.0, 201);
            }
        }
    })
    .await;
    assert_eq!(
        names(&seen, "pattern"),
        ["s0/*", "s1/*", "s2/*", "s3/*"],
        "{seen:?}"
    );
}
both_backends!(rules_alerts_events_and_silences_page_to_their_whole_lists);

async fn the_cli_lists_at_most_limit_devices_in_name_order(backend: Backend) {
    let app = spawn_app(backend).await;
    for n in ["sim-10", "sim-2", "sim-1", "other"] {
        app.device(n).await;
    }
    let db = app.db.url.clone();
    let list = |args: &[&str]| {
        let out = crate::procs::telehub_cli(&db, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
        names(rows.as_array().unwrap(), "name")
    };
    let all = ["device", "list", "--format", "json"];
    assert_eq!(list(&all), ["other", "sim-1", "sim-2", "sim-10"]);
    assert_eq!(
        list(&[&all[..], &["--limit", "2"]].concat()),
        ["other", "sim-1"]
    );
    assert_eq!(list(&[&all[..], &["--limit", "9"]].concat()).len(), 4);
    let out = crate::procs::telehub_cli(&db, &["device", "list", "--limit", "0"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
both_backends!(the_cli_lists_at_most_limit_devices_in_name_order);
