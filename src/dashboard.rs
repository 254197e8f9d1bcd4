//! The operators' dashboard (`GET /`): static files from `dashboard/`, embedded in
//! the binary so the hub needs no build step or asset folder at run time.

use crate::server::HubState;
use axum::Router;
use axum::http::header;
use axum::routing::get;
use std::sync::Arc;

const INDEX: &str = include_str!("../dashboard/index.html");
const APP_JS: &str = include_str!("../dashboard/app.js");
const STYLE: &str = include_str!("../dashboard/style.css");

pub fn routes() -> Router<Arc<HubState>> {
    let page = |ct: &'static str, body: &'static str| {
        get(move || async move {
            (
                [
                    (header::CONTENT_TYPE, ct),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                body,
            )
        })
    };
    Router::new()
        .route("/", page("text/html; charset=utf-8", INDEX))
        .route("/app.js", page("text/javascript; charset=utf-8", APP_JS))
        .route("/style.css", page("text/css; charset=utf-8", STYLE))
}
