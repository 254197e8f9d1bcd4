//! Fuzzes the frames of a device's connection (docs/commands.md): any bytes must give a
//! typed frame or a refusal, never a panic; an accepted frame written back must parse to
//! the same frame; and the hub-side frame decoder must never panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telehub_fuzz::protocol::commands::{MAX_CONFIG_BYTES, MAX_ERROR_CHARS, MAX_RESULT_BYTES};
use telehub_fuzz::protocol::frames::{DeviceFrame, HubFrame};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let limits = telehub_fuzz::limits();
    if let Ok(frame) = DeviceFrame::parse(text, &limits) {
        match &frame {
            DeviceFrame::CommandResult { answer, .. } => {
                let size = answer.result.as_ref().map_or(0, |r| serde_json::to_string(r).unwrap().len());
                assert!(size <= MAX_RESULT_BYTES);
                assert!(answer.error.as_ref().map_or(0, |e| e.chars().count()) <= MAX_ERROR_CHARS);
            }
            DeviceFrame::ConfigReported { doc, .. } => {
                assert!(serde_json::to_string(&doc.document).unwrap().len() <= MAX_CONFIG_BYTES);
            }
            _ => {}
        }
        // A message written back keeps its readings, not its SenML shape or top-level
        // `device`, so only the command frames must come back exactly.
        if !matches!(frame, DeviceFrame::Message(_)) {
            assert_eq!(DeviceFrame::parse(&frame.to_json(), &limits).unwrap(), frame);
        }
    }
    if let Ok(frame) = HubFrame::parse(text) {
        assert_eq!(HubFrame::parse(&frame.to_json()).unwrap(), frame);
    }
});
