//! WebSocket clients for tests: devices (`/v1/ingest`) and dashboards (`/v1/live`),
//! JSON frames, statuses and close codes, each awaited within [`WAIT`].

use super::WAIT;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket at `url`, with `token` as a bearer token.
pub async fn connect(url: &str, token: Option<&str>) -> Result<Ws, tungstenite::Error> {
    let mut req = url.into_client_request().unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// The HTTP status of a refused upgrade.
pub fn refused_status(r: Result<Ws, tungstenite::Error>) -> u16 {
    match r {
        Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected an HTTP refusal, got an upgraded socket"),
    }
}

pub async fn send_json(ws: &mut Ws, v: &Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The next text frame as JSON (skipping pings), within [`WAIT`].
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("ok");
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// A dashboard's next `{"status": ...}` frame (its inner object), skipping readings.
pub async fn next_status(ws: &mut Ws) -> Value {
    loop {
        let m = next_json(ws).await;
        if m.get("status").is_some() {
            return m["status"].clone();
        }
    }
}

/// Subscribes a dashboard to every device and sensor.
pub async fn subscribe_all(ws: &mut Ws) {
    send_json(ws, &json!({"subscribe": ["*"]})).await;
}

/// Waits for the close frame and returns its code.
pub async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(Some(f)))) => return u16::from(f.code),
            Some(Ok(Message::Close(None))) => return u16::from(CloseCode::Status),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("socket error before close frame: {e}"),
            None => panic!("socket ended without a close frame"),
        }
    }
}

/// One reading of a device message.
pub fn reading(sensor: &str, value: f64, ts: f64) -> Value {
    json!({"sensor": sensor, "value": value, "ts": ts})
}

/// A Unix time a few minutes ago, whole seconds, so tests never hit the skew limit.
pub fn base_ts() -> f64 {
    (chrono::Utc::now().timestamp() - 600) as f64
}
