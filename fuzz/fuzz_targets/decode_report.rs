//! `contract::report::decode_report` on arbitrary bytes: never panics, and a report it accepts
//! decodes to the same report from its stored form (`raw`), which is what the store keeps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revenue_os::contract::decode_report;

fuzz_target!(|body: &[u8]| {
    let Ok(r) = decode_report(body) else { return };
    let stored = serde_json::to_vec(&r.raw).expect("a JSON value serializes");
    let again = decode_report(&stored).expect("the stored form of a decoded report decodes");
    assert_eq!(again, r);
});
