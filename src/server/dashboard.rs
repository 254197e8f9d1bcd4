//! The operators' dashboard (`GET /`): static files from `dashboard/`, embedded in
//! the binary so the hub needs no build step or asset folder at run time.
//!
//! The page is hand-written ES modules: `app.js` (token, API, live socket with
//! reconnection) → `view.js` (once-per-frame rendering, the address) → `device-list.js`
//! (the virtualised list), `alerts.js` (the alert strip), `picker.js` + `range.js` (the
//! one time range every chart shows) and `chart-card.js` (history at the width's
//! resolution, stats, CSV) → `chart.js` (uPlot, vendored unmodified under `vendor/`)
//! and `series.js` (the points), or, for booleans and strings, `timeline-card.js` →
//! `timeline.js` (state bands over the same range); `units.js`, `values.js`, `time.js`, `csv.js`,
//! `address.js`, `dom.js` and `remember.js` (the token kept on a wall screen) are small helpers.
//! What an operator does goes through `operate.js` (`role.js`: whether the token may act,
//! learned from a 403 probe) → `device-ops.js` (labels, `commands-panel.js` over
//! `commands.js`, `config-panel.js`), `label-filter.js`, `alert-actions.js` and
//! `silences.js`; `hub.js` is the HTTP API. See `dashboard/README.md`.

use super::HubState;
use axum::Router;
use axum::http::header;
use axum::routing::get;
use std::sync::Arc;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// A script of the page: served at `/NAME` from `dashboard/NAME`.
macro_rules! js {
    ($name:literal) => {
        (
            concat!("/", $name),
            JS,
            include_str!(concat!("../../dashboard/", $name)),
        )
    };
}

/// Every file of the page: (URL path, content type, body).
const FILES: [(&str, &str, &str); 33] = [
    ("/", HTML, include_str!("../../dashboard/index.html")),
    ("/style.css", CSS, include_str!("../../dashboard/style.css")),
    js!("app.js"),
    js!("view.js"),
    js!("device-list.js"),
    js!("alerts.js"),
    js!("picker.js"),
    js!("range.js"),
    js!("address.js"),
    js!("chart-card.js"),
    js!("chart.js"),
    js!("timeline-card.js"),
    js!("timeline.js"),
    js!("series.js"),
    js!("csv.js"),
    js!("units.js"),
    js!("values.js"),
    js!("time.js"),
    js!("dom.js"),
    js!("remember.js"),
    js!("hub.js"),
    js!("role.js"),
    js!("operate.js"),
    js!("device-ops.js"),
    js!("commands.js"),
    js!("commands-panel.js"),
    js!("config-panel.js"),
    js!("label-filter.js"),
    js!("alert-actions.js"),
    js!("silences.js"),
    js!("vendor/uPlot.esm.js"),
    (
        "/vendor/uPlot.min.css",
        CSS,
        include_str!("../../dashboard/vendor/uPlot.min.css"),
    ),
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
