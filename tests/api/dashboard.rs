//! The dashboard page (`GET /`): every file it loads is served from the binary, with
//! the right type and a Content-Security-Policy, without a token.

use crate::helpers::*;

#[tokio::test]
async fn the_page_and_every_module_it_imports_are_served() {
    let app = spawn_app(Backend::Sqlite).await;
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{}{path}", app.http());
        async move {
            let resp = http.get(&url).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{url}");
            let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
            assert!(
                resp.headers().contains_key("content-security-policy"),
                "{url}"
            );
            (ct, resp.text().await.unwrap())
        }
    };
    let (ct, html) = get("/".into()).await;
    assert!(ct.starts_with("text/html"), "{ct}");
    let mut todo: Vec<String> = references(&html, &["src=\"", "href=\""]);
    assert!(todo.contains(&"app.js".to_owned()) && todo.contains(&"style.css".to_owned()));
    let mut seen = std::collections::HashSet::new();
    while let Some(file) = todo.pop() {
        if !seen.insert(file.clone()) {
            continue;
        }
        let (ct, body) = get(format!("/{file}")).await;
        if file.ends_with(".js") {
            assert!(ct.starts_with("text/javascript"), "{file}: {ct}");
            todo.extend(references(&body, &["from './"]));
        } else {
            assert!(ct.starts_with("text/css"), "{file}: {ct}");
        }
    }
    assert!(seen.len() >= 5, "{seen:?}");
}

/// Relative file names that follow any of `prefixes`, up to the closing quote.
fn references(text: &str, prefixes: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for p in prefixes {
        for (i, _) in text.match_indices(p) {
            let rest = &text[i + p.len()..];
            let end = rest.find(['"', '\'']).unwrap_or(rest.len());
            out.push(rest[..end].to_owned());
        }
    }
    out
}
