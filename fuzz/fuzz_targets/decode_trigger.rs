//! `contract::decode_trigger` on arbitrary bytes: never panics, and a trigger it accepts comes
//! back the same after its wire form (`to_message`) is decoded again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revenue_os::contract::decode_trigger;

fuzz_target!(|body: &[u8]| {
    let Ok(t) = decode_trigger(body) else { return };
    let wire = serde_json::to_vec(&t.to_message()).expect("a TriggerMessage serializes");
    let again = decode_trigger(&wire).expect("the wire form of a decoded trigger decodes");
    assert_eq!(again, t);
    // The default window is computed from the trigger time; it must not panic at the ends of
    // chrono's range.
    let w = t.window_or_default();
    assert!(w.start() <= w.end());
});
