//! A real HTTP receiver for webhook tests: an axum server on port 0 that records every
//! POST (body, headers) and answers 200 while up, 503 while "down", and `307` to another
//! URL while redirecting.

use super::WAIT;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use parking_lot::Mutex;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

/// One POST received.
#[derive(Debug, Clone)]
pub struct Post {
    pub body: Vec<u8>,
    pub json: Value,
    pub headers: HeaderMap,
    /// Whether it was answered 200 (the receiver was up).
    pub accepted: bool,
}

#[derive(Default)]
struct Shared {
    posts: Mutex<Vec<Post>>,
    arrived: Notify,
    down: AtomicBool,
    redirect_to: Mutex<Option<String>>,
}

pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(record))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, shared, task }
    }

    /// Down: every POST is answered 503 (and recorded as not accepted).
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// Redirecting: every POST is answered `307 Temporary Redirect` to `to` (and
    /// recorded as not accepted); `None` ends it.
    pub fn set_redirect(&self, to: Option<String>) {
        *self.shared.redirect_to.lock() = to;
    }

    pub fn posts(&self) -> Vec<Post> {
        self.shared.posts.lock().clone()
    }

    /// The accepted POSTs' bodies.
    pub fn accepted(&self) -> Vec<Value> {
        self.posts()
            .into_iter()
            .filter(|p| p.accepted)
            .map(|p| p.json)
            .collect()
    }

    /// Waits (within `limit`) until `done` holds for the POSTs received; returns them.
    pub async fn wait_until(
        &self,
        limit: std::time::Duration,
        what: &str,
        done: impl Fn(&[Post]) -> bool,
    ) -> Vec<Post> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let arrived = self.shared.arrived.notified();
            let posts = self.posts();
            if done(&posts) {
                return posts;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let bodies: Vec<_> = posts.iter().map(|p| (&p.json, p.accepted)).collect();
                panic!("timed out after {limit:?} waiting for {what}; POSTs: {bodies:?}");
            }
        }
    }

    /// Waits (within [`WAIT`]) for `n` accepted POSTs; returns their bodies.
    pub async fn wait_accepted(&self, n: usize) -> Vec<Value> {
        let what = format!("{n} accepted webhook POSTs");
        self.wait_until(WAIT, &what, |p| {
            p.iter().filter(|p| p.accepted).count() >= n
        })
        .await;
        self.accepted()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let redirect = s.redirect_to.lock().clone();
    let accepted = !s.down.load(Ordering::SeqCst) && redirect.is_none();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.posts.lock().push(Post {
        body: body.to_vec(),
        json,
        headers,
        accepted,
    });
    s.arrived.notify_waiters();
    match redirect {
        Some(to) => (StatusCode::TEMPORARY_REDIRECT, [("location", to)]).into_response(),
        None if accepted => StatusCode::OK.into_response(),
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}
