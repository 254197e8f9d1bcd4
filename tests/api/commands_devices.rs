//! Commands carried out by real device software (docs/commands.md): the client library
//! (its dedupe of executed ids across a lost acknowledgement), `firmware-sim run
//! --commands` (a real process), a hub killed with SIGKILL before it confirmed a
//! result, and two hubs sharing one PostgreSQL database.

use super::commands::{call, create};
use crate::helpers::*;
use crate::procs::*;
use crate::{both_backends, need_pg};
use futures_util::FutureExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use telehub::auth::Role;
use telehub::client::{BackoffConfig, ClientConfig, CommandsConfig, DeviceClient};
use telehub::protocol::commands::{CommandAnswer, CommandStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

async fn operator(app: &TestApp) -> String {
    app.store.add_token("op", Role::Operator).await.unwrap()
}

async fn wait_state(base: &str, token: &str, id: &str, state: &str) -> Value {
    eventually(
        WAIT,
        &format!("command {id} {state}"),
        || get_command(base, token, id),
        |c| c["state"] == state,
    )
    .await
}

async fn get_command(base: &str, token: &str, id: &str) -> Value {
    let resp = reqwest::Client::new()
        .get(format!("{base}/v1/commands/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    resp.json().await.unwrap()
}

/// A TCP proxy in front of the hub that can lose, or hold back, what devices send.
/// Armed, the first hub → device bytes carrying a `command` frame start dropping
/// everything the device sends, until [`Proxy::cut`] closes every connection; the next
/// connection then holds the device's frames back (after its handshake) until the hub
/// has sent it a command again, so the hub's resend comes before the device's answer.
struct Proxy {
    addr: std::net::SocketAddr,
    /// 0: pass; 1: lose after a command; 2: hold the next connection until a command.
    mode: Arc<AtomicUsize>,
    cut: watch::Sender<u64>,
}

const PASS: usize = 0;
const LOSE: usize = 1;
const HOLD: usize = 2;

impl Proxy {
    async fn start(hub: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicUsize::new(PASS));
        let (cut, _) = watch::channel(0u64);
        let (mode2, cut2) = (mode.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((device, _)) = listener.accept().await {
                let hub = TcpStream::connect(hub).await.unwrap();
                tokio::spawn(pump(device, hub, mode2.clone(), cut2.subscribe()));
            }
        });
        Self { addr, mode, cut }
    }

    fn arm(&self) {
        self.mode.store(LOSE, Ordering::SeqCst);
    }

    /// Closes every connection; the next one holds the device back until a command.
    fn cut(&self) {
        self.mode.store(HOLD, Ordering::SeqCst);
        self.cut.send_modify(|g| *g += 1);
    }
}

async fn pump(
    device: TcpStream,
    hub: TcpStream,
    mode: Arc<AtomicUsize>,
    mut cut: watch::Receiver<u64>,
) {
    let (mut dr, mut dw) = device.into_split();
    let (mut hr, mut hw) = hub.into_split();
    let holding = AtomicBool::new(mode.load(Ordering::SeqCst) == HOLD);
    let (losing, released) = (AtomicBool::new(false), tokio::sync::Notify::new());
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = hr.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            let chunk = &buf[..n];
            if chunk.windows(10).any(|w| w == b"{\"command\"") {
                match mode.load(Ordering::SeqCst) {
                    LOSE => losing.store(true, Ordering::SeqCst),
                    HOLD if holding.load(Ordering::SeqCst) => {
                        mode.store(PASS, Ordering::SeqCst);
                        holding.store(false, Ordering::SeqCst);
                        released.notify_one();
                    }
                    _ => {}
                }
            }
            if dw.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut first = true;
        loop {
            let n = dr.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            // The handshake always passes; what follows waits while holding.
            if !first && holding.load(Ordering::SeqCst) {
                released.notified().await;
            }
            first = false;
            if !losing.load(Ordering::SeqCst) && hw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = down => {}
        _ = up => {}
        _ = cut.changed() => {}
    }
}

async fn a_command_sent_again_after_a_lost_acknowledgement_runs_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.device("d1").await;
    let op = operator(&app).await;
    let proxy = Proxy::start(app.hub().addr).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let (ran_tx, mut ran) = mpsc::channel(4);
    let counter = runs.clone();
    let handler = Arc::new(move |c: telehub::protocol::commands::DeviceCommand| {
        counter.fetch_add(1, Ordering::SeqCst);
        let ran_tx = ran_tx.clone();
        async move {
            let _ = ran_tx.send(c.id.to_string()).await;
            CommandAnswer {
                status: CommandStatus::Ok,
                result: Some(json!({"ran": true}).as_object().unwrap().clone()),
                error: None,
            }
        }
        .boxed()
    });
    let mut cfg = ClientConfig::new(format!("ws://{}", proxy.addr), token);
    cfg.backoff = BackoffConfig {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    cfg.commands = Some(CommandsConfig::new(handler));
    let client = DeviceClient::start(cfg).unwrap();
    eventually(
        WAIT,
        "the client connected",
        || async { client.stats() },
        |s| s.connected,
    )
    .await;
    proxy.arm();
    let c = create(&app, &op, "d1", json!({"name": "reboot"})).await;
    let id = c["id"].as_str().unwrap();
    let ran_id = tokio::time::timeout(WAIT, ran.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ran_id, id);
    // The device ran it, but its `command_ack` and answer were lost on the way.
    assert_eq!(get_command(&app.http(), &op, id).await["state"], "sent");
    proxy.cut();
    let done = wait_state(&app.http(), &op, id, "succeeded").await;
    assert_eq!(done["attempts"], 2, "sent again with the same id: {done}");
    assert_eq!(done["result"], json!({"ran": true}));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "executed once");
    client.shutdown(Duration::from_secs(1)).await;
}
both_backends!(a_command_sent_again_after_a_lost_acknowledgement_runs_once);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_sim_devices_carry_out_commands() {
    let app = spawn_app(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.txt");
    std::fs::write(&tokens, format!("sim-1 {}\n", app.device("sim-1").await)).unwrap();
    let op = operator(&app).await;
    let log = dir.path().join("sim.log");
    let args = [
        "--commands",
        "--rate",
        "1",
        "--backoff-initial",
        "50ms",
        "--backoff-max",
        "200ms",
    ];
    let sim = spawn_sim(&app.hub().addr.to_string(), &tokens, &args, Some(&log));
    let run = |body: Value| {
        let (app, op) = (&app, &op);
        async move {
            let (status, c) = call(app, "POST", "/v1/devices/sim-1/commands", op, Some(body)).await;
            assert_eq!(status, 201, "{c}");
            c
        }
    };
    let c = run(json!({"name": "set_interval", "params": {"seconds": 0.2}, "wait": "20s"})).await;
    assert_eq!(
        (&c["state"], &c["result"]),
        (&json!("succeeded"), &json!({"seconds": 0.2})),
        "{c}"
    );
    // Five samples a second now (of two or three sensors): 20 readings take at most
    // 2 s, where the old interval needed at least 7 s.
    let before = app.stored("sim-1").await.len();
    let started = Instant::now();
    eventually(
        WAIT,
        "readings at the new interval",
        || app.stored("sim-1"),
        |r| r.len() >= before + 20,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let c = run(json!({"name": "fail", "wait": "20s"})).await;
    assert_eq!(c["state"], "failed", "{c}");
    assert!(c["error"].as_str().unwrap().contains("fail"), "{c}");
    let c = run(json!({"name": "defrost", "wait": "20s"})).await;
    assert_eq!(c["state"], "rejected", "{c}");
    let viewer = app.viewer().await;
    let mut live = app.connect_dashboard(&viewer).await;
    send_json(&mut live, &json!({"subscribe": ["sim-1/*"]})).await;
    assert_eq!(next_status(&mut live).await["online"], true);
    let c = run(json!({"name": "reboot", "wait": "20s"})).await;
    assert_eq!(c["state"], "succeeded", "{c}");
    // It drops its connection and comes back.
    assert_eq!(next_status(&mut live).await["online"], false);
    assert_eq!(next_status(&mut live).await["online"], true);
    // After the reboot it reconnects and still takes commands.
    let c = run(json!({"name": "set_interval", "params": {"seconds": 1}, "wait": "20s"})).await;
    assert_eq!(c["state"], "succeeded", "{c}");
    let summary = sim_summary(sim).await;
    assert!(summary["reconnects"].as_u64().unwrap() >= 1, "{summary}");
}

/// `firmware-sim --transport http --commands`: the client library long-polls its
/// commands and its desired configuration over HTTP, beside its readings.
async fn http_devices_take_commands_and_configuration_by_long_poll(backend: Backend) {
    let app = spawn_app(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.txt");
    std::fs::write(&tokens, format!("sim-1 {}\n", app.device("sim-1").await)).unwrap();
    let op = operator(&app).await;
    let args = ["--commands", "--transport", "http", "--rate", "1"];
    let sim = spawn_sim(&app.hub().addr.to_string(), &tokens, &args, None);
    let run = |body: Value| {
        let (app, op) = (&app, &op);
        async move {
            let (status, c) = call(app, "POST", "/v1/devices/sim-1/commands", op, Some(body)).await;
            assert_eq!(status, 201, "{c}");
            c
        }
    };
    let c = run(json!({"name": "set_interval", "params": {"seconds": 0.5}, "wait": "20s"})).await;
    assert_eq!(
        (&c["state"], &c["result"], &c["attempts"]),
        (&json!("succeeded"), &json!({"seconds": 0.5}), &json!(1)),
        "{c}"
    );
    let c = run(json!({"name": "defrost", "wait": "20s"})).await;
    assert_eq!(c["state"], "rejected", "{c}");

    let (status, c) = call(
        &app,
        "PUT",
        "/v1/devices/sim-1/config",
        &op,
        Some(json!({"desired": {"interval_s": 0.25}})),
    )
    .await;
    assert_eq!(status, 200, "{c}");
    let synced = eventually(
        WAIT,
        "the HTTP device reported its configuration",
        || async {
            call(&app, "GET", "/v1/devices/sim-1/config", &op, None)
                .await
                .1
        },
        |c| c["in_sync"] == true,
    )
    .await;
    assert_eq!(synced["reported"]["interval_s"], 0.25, "{synced}");
    // Its readings flow beside: a few at the new interval.
    app.wait_stored("sim-1", 4).await;
    let summary = sim_summary(sim).await;
    assert_eq!(summary["nacked"], 0, "{summary}");
}
both_backends!(http_devices_take_commands_and_configuration_by_long_poll);

/// The device answered and the hub was killed (SIGKILL) before the device saw
/// `result_stored`: after the restart the device sends the answer again; it is
/// confirmed, and the command ends once, as first answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_sent_again_after_the_hub_was_killed_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("hub.db").display());
    let tokens = dir.path().join("tokens.txt");
    add_devices(&db, 1, "k-", &tokens);
    let text = std::fs::read_to_string(&tokens).unwrap();
    let device_token = text.split_whitespace().nth(1).unwrap().to_owned();
    let out = telehub_cli(&db, &["token", "add", "ops", "--role", "operator"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let op = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let hub = HubProcess::start(&db, "127.0.0.1:0", dir.path(), &[]).await;
    let (addr, base) = (hub.addr.clone(), format!("http://{}", hub.addr));
    let url = format!("ws://{addr}/v1/ingest?commands=1");
    let mut ws = connect(&url, Some(&device_token)).await.unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/devices/k-1/commands"))
        .bearer_auth(&op)
        .body(json!({"name": "set_interval", "params": {"seconds": 5}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(next_json(&mut ws).await["command"]["id"], id);
    send_json(&mut ws, &json!({"command_ack": id})).await;
    wait_state(&base, &op, &id, "received").await;
    let answer = json!({"command_result": id, "status": "ok", "result": {"seconds": 5}});
    send_json(&mut ws, &answer).await;
    hub.kill().await;

    let hub = HubProcess::start(&db, &addr, dir.path(), &[]).await;
    let mut ws = connect(&url, Some(&device_token)).await.unwrap();
    send_json(&mut ws, &answer).await;
    assert_eq!(next_json(&mut ws).await, json!({"result_stored": id}));
    let c = get_command(&base, &op, &id).await;
    assert_eq!(
        (&c["state"], &c["result"]),
        (&json!("succeeded"), &json!({"seconds": 5})),
        "{c}"
    );
    send_json(
        &mut ws,
        &json!({"command_result": id, "status": "error", "error": "again"}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await, json!({"result_stored": id}));
    assert_eq!(get_command(&base, &op, &id).await, c, "stored once");
    hub.kill().await;
}

/// Two hubs on one PostgreSQL database: a command created on hub A for a device
/// connected to hub B reaches it (within a second), once, and ends in one state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_created_on_one_hub_reaches_a_device_on_another() {
    need_pg!();
    let mut a = spawn_app(Backend::Postgres).await;
    let b = telehub::hub::start(a.settings.clone()).await.unwrap();
    let device = a.device("d1").await;
    let op = operator(&a).await;
    let url = format!(
        "{}/v1/ingest?commands=1",
        b.base_url().replacen("http", "ws", 1)
    );
    let mut ws = connect(&url, Some(&device)).await.unwrap();
    // Connected: hub B answers a message only after it attached the socket.
    let msg = json!({"id": 1, "readings": [reading("t", 1.0, base_ts())]});
    send_json(&mut ws, &msg).await;
    assert_eq!(next_json(&mut ws).await["ack"], 1);
    let started = Instant::now();
    let id = create(&a, &op, "d1", json!({"name": "reboot"})).await["id"].clone();
    let frame = next_json(&mut ws).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(frame["command"]["id"], id);
    let id = id.as_str().unwrap();
    send_json(&mut ws, &json!({"command_ack": id})).await;
    send_json(&mut ws, &json!({"command_result": id, "status": "ok"})).await;
    assert_eq!(next_json(&mut ws).await, json!({"result_stored": id}));
    let c = wait_state(&a.http(), &op, id, "succeeded").await;
    assert_eq!(c["attempts"], 1, "{c}");
    // Nothing more arrives: the next frame answers the next message.
    let msg = json!({"id": 2, "readings": [reading("t", 2.0, base_ts() + 1.0)]});
    send_json(&mut ws, &msg).await;
    assert_eq!(next_json(&mut ws).await["ack"], 2);
    assert_eq!(get_command(&b.base_url(), &op, id).await, c);
    b.stop().await;
    a.stop().await;
}
