//! A gateway's configurations (docs/device-config.md): a gateway connection that takes
//! commands takes the desired configurations of every device it acts for (its own
//! included), each delivered as for a device of its own ([`super::device::ConfigFeed`])
//! and merged into one feed that names the device of each. The serial bridge hands them
//! to its port as `!cfg` lines.

use super::ConfigHandle;
use super::device::{ConfigFeed, Known};
use crate::domain::DeviceName;
use crate::protocol::commands::ConfigDocument;
use futures_util::StreamExt;
use futures_util::stream::{BoxStream, SelectAll};
use std::sync::Arc;

/// One device's configuration, and the device it is for.
type Named = (DeviceName, Arc<ConfigDocument>);

/// A connection's configurations: its device's alone, or those of every device a
/// gateway acts for.
pub enum Feeds {
    Device(ConfigFeed),
    Gateway(SelectAll<BoxStream<'static, Named>>),
}

impl Feeds {
    /// The next configuration, with the device it is for when the connection is a
    /// gateway's; never, once the hub shuts down.
    pub async fn next(&mut self) -> (Option<DeviceName>, Arc<ConfigDocument>) {
        match self {
            Self::Device(feed) => (None, feed.next().await),
            Self::Gateway(all) => match all.next().await {
                Some((device, doc)) => (Some(device), doc),
                None => std::future::pending().await,
            },
        }
    }
}

impl ConfigHandle {
    /// Attaches each of `devices` (a gateway's, its own first) as [`Self::attach`] does.
    pub async fn attach_gateway(&self, devices: &[DeviceName]) -> Feeds {
        let mut all = SelectAll::new();
        for device in devices {
            let feed = self.attach(device, Known::Reported).await;
            let device = device.clone();
            let stream = futures_util::stream::unfold(feed, move |mut feed| {
                let device = device.clone();
                async move {
                    let doc = feed.next().await;
                    Some(((device, doc), feed))
                }
            });
            all.push(stream.boxed());
        }
        Feeds::Gateway(all)
    }
}
