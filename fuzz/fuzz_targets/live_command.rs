//! Fuzzes the live-feed command parser (`{"subscribe": [...]}`): never a panic, and never
//! more patterns than allowed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telehub_fuzz::protocol::live::{ClientCommand, parse_command};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(ClientCommand::Subscribe { patterns: p, .. } | ClientCommand::Unsubscribe(p)) =
        parse_command(text, 16)
    {
        assert!(p.len() <= 16);
    }
});
