//! The operators' dashboard (`GET /`): static files from `dashboard/`, embedded in
//! the binary so the hub needs no build step or asset folder at run time.
//!
//! The page is hand-written ES modules: `app.js` (token, API, live socket with
//! reconnection) → `view.js` (device list, sensors, once-per-frame rendering) →
//! `chart-card.js` (history loading) → `chart.js` (numbers: ring buffer and canvas
//! drawing) or `timeline.js` (booleans and strings: state bands); `values.js` (how a
//! value reads) and `time.js` (clock text, axis ticks) serve them all.

use super::HubState;
use axum::Router;
use axum::http::header;
use axum::routing::get;
use std::sync::Arc;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every file of the page: (URL path, content type, body).
const FILES: [(&str, &str, &str); 11] = [
    ("/", HTML, include_str!("../../dashboard/index.html")),
    ("/style.css", CSS, include_str!("../../dashboard/style.css")),
    ("/app.js", JS, include_str!("../../dashboard/app.js")),
    ("/dom.js", JS, include_str!("../../dashboard/dom.js")),
    ("/view.js", JS, include_str!("../../dashboard/view.js")),
    (
        "/chart-card.js",
        JS,
        include_str!("../../dashboard/chart-card.js"),
    ),
    ("/chart.js", JS, include_str!("../../dashboard/chart.js")),
    (
        "/timeline.js",
        JS,
        include_str!("../../dashboard/timeline.js"),
    ),
    ("/values.js", JS, include_str!("../../dashboard/values.js")),
    ("/time.js", JS, include_str!("../../dashboard/time.js")),
    ("/favicon.ico", "image/svg+xml", FAVICON),
];

/// A small square in the accent colour, so browsers do not log a 404 for the icon.
const FAVICON: &str = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><rect x='3' y='3' width='10' height='10' rx='2' fill='#4cb3ff'/></svg>";

/// Only the hub's own scripts, styles and sockets; no inline code, no framing.
const CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn routes() -> Router<Arc<HubState>> {
    FILES
        .iter()
        .fold(Router::new(), |router, &(path, content_type, body)| {
            router.route(
                path,
                get(move || async move {
                    (
                        [
                            (header::CONTENT_TYPE, content_type),
                            (header::CACHE_CONTROL, "no-cache"),
                            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                            (header::REFERRER_POLICY, "no-referrer"),
                            (header::CONTENT_SECURITY_POLICY, CSP),
                        ],
                        body,
                    )
                }),
            )
        })
}
