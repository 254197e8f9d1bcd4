//! MQTT test helpers: hub settings for the shared broker (`TELEHUB_TEST_MQTT`, see
//! `helpers::mqtt_server`), a private mosquitto on a free port (for tests that stop it or
//! change its configuration), and a small client.

use crate::helpers::*;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, Publish, QoS};
use std::path::PathBuf;
use std::time::Duration;
use telehub::mqtt::{BrokerAddr, BrokerStatus, MqttSettings};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// A topic prefix no other test uses.
pub fn prefix() -> String {
    format!("t{}", rand_suffix())
}

/// Hub MQTT settings under `prefix`, with quick reconnects and presence for tests.
pub fn hub_mqtt(url: &str, prefix: &str) -> MqttSettings {
    MqttSettings {
        url: url.into(),
        publish_topic: format!("{prefix}/readings/{{device}}/{{sensor}}"),
        ingest_topic: format!("{prefix}/ingest/+"),
        shared_group: prefix.into(),
        cluster_topic: format!("{prefix}/cluster"),
        command_replies_topic: format!("{prefix}/command-replies/{{device}}"),
        config_topic: format!("{prefix}/config/{{device}}"),
        config_reported_topic: format!("{prefix}/config-reported/+"),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(500),
        presence_interval: Duration::from_secs(1),
        ..Default::default()
    }
}

/// Waits (within [`WAIT`]) until the hub's broker status satisfies `f`.
pub async fn broker_state(app: &TestApp, f: impl FnMut(&BrokerStatus) -> bool) {
    let m = app.hub().state.mqtt.as_ref().expect("[mqtt] configured");
    tokio::time::timeout(WAIT, m.wait_until(f))
        .await
        .unwrap_or_else(|_| panic!("broker status not reached: {:?}", m.broker()));
}

/// A mosquitto of the test's own, on a free loopback port; killed when dropped.
pub struct PrivateBroker {
    pub port: u16,
    dir: tempfile::TempDir,
    conf: PathBuf,
    child: Option<Child>,
}

impl PrivateBroker {
    pub async fn start() -> Self {
        Self::start_with(|port, _| format!("listener {port} 127.0.0.1\nallow_anonymous true\n"))
            .await
    }

    /// `conf(port, dir)` returns the configuration file's text.
    pub async fn start_with(conf: impl FnOnce(u16, &std::path::Path) -> String) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mosquitto.conf");
        std::fs::write(&path, conf(port, dir.path())).unwrap();
        let mut b = Self {
            port,
            dir,
            conf: path,
            child: None,
        };
        b.resume().await;
        b
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Kills the broker and waits until it is gone.
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.unwrap();
        }
    }

    /// Starts it (again) on the same port and waits until it accepts connections.
    pub async fn resume(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the mosquitto broker is installed (apt-get install mosquitto)");
        self.child = Some(child);
        let addr = ("127.0.0.1", self.port);
        let listen = || tokio::net::TcpStream::connect(addr);
        let what = "the private mosquitto to listen";
        let probe = eventually(WAIT, what, listen, Result::is_ok).await;
        drop(probe);
    }
}

/// A test's own MQTT client: what arrives on its subscriptions comes out of [`Self::next`].
pub struct TestClient {
    pub client: AsyncClient,
    publishes: mpsc::UnboundedReceiver<Publish>,
    subacks: mpsc::UnboundedReceiver<()>,
}

impl TestClient {
    pub async fn connect(url: &str) -> Self {
        let addr = BrokerAddr::parse(url).unwrap();
        let mut o = MqttOptions::new(format!("test-{}", rand_suffix()), addr.host, addr.port);
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(o, 1000);
        let (pub_tx, publishes) = mpsc::unbounded_channel();
        let (sub_tx, subacks) = mpsc::unbounded_channel();
        let (conn_tx, mut connected) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        let _ = conn_tx.send(());
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        if pub_tx.send(p).is_err() {
                            return;
                        }
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        let _ = sub_tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) if pub_tx.is_closed() => return,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(WAIT, connected.recv())
            .await
            .expect("test client connects to the broker");
        Self {
            client,
            publishes,
            subacks,
        }
    }

    /// Subscribes and waits for the broker's confirmation.
    pub async fn subscribe(&mut self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        tokio::time::timeout(WAIT, self.subacks.recv())
            .await
            .expect("SUBACK in time");
    }

    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }

    /// The next message on a subscription, within [`WAIT`].
    pub async fn next(&mut self) -> Publish {
        tokio::time::timeout(WAIT, self.publishes.recv())
            .await
            .expect("an MQTT message in time")
            .expect("client running")
    }
}
