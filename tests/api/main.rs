//! Integration tests: the real hub, on port 0, with a fresh database per test,
//! driven through its real interfaces (WebSocket, HTTP, the CLI binary).

mod helpers;

mod cli;
mod export;
mod history;
mod http;
mod ingest;
mod live;
mod retention;
mod shutdown;
mod tls;
