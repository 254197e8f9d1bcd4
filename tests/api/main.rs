//! Integration tests: the real hub, on port 0, with a fresh database per test,
//! driven through its real interfaces (WebSocket, HTTP, the CLI binary).

mod helpers;
mod procs;

mod bad_input;
mod cli;
mod client;
mod crash;
mod dashboard;
mod demo;
mod export;
mod faults;
mod history;
mod http;
mod ingest;
mod limits;
mod live;
mod mqtt;
mod retention;
mod shutdown;
mod tail;
mod tls;
