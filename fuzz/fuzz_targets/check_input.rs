//! Arbitrary bytes parsed as a `KernelInput` (`contract::decode_input`), checked
//! (`contract::check_input`), and, when they pass, decided (`kernel::decide`): nothing panics,
//! the decision is deterministic, and the kernel never reports INTERNAL_ERROR (its own output
//! rules or guardrail check refusing what it produced, i.e. a kernel bug).
//!
//! The clock is set five minutes after the input's own `trigger.triggered_at` when that parses,
//! so the trigger-age rule does not turn away nearly every input before the rest is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revenue_os::contract::{
    Catalog, ErrorCode, Levers, check_input, decode_input, parse_timestamp,
};
use revenue_os::kernel;
use std::sync::LazyLock;

static CATALOG: LazyLock<Catalog> =
    LazyLock::new(|| Catalog::embedded().expect("the embedded catalog loads"));

fuzz_target!(|body: &[u8]| {
    let Ok(input) = decode_input(body) else {
        return;
    };
    let fallback = parse_timestamp("2026-11-26T06:05:00Z").expect("a fixed timestamp");
    let now = parse_timestamp(&input.trigger.triggered_at)
        .and_then(|t| t.checked_add_signed(chrono::TimeDelta::minutes(5)))
        .unwrap_or(fallback);
    let Ok(checked) = check_input(input, &CATALOG, now) else {
        return;
    };
    let levers = Levers::default();
    let first = kernel::decide(&checked, &levers, &CATALOG, now, uuid::Uuid::nil());
    if let Err(e) = &first {
        assert_ne!(e.code, ErrorCode::InternalError, "{e:?}");
    }
    let second = kernel::decide(&checked, &levers, &CATALOG, now, uuid::Uuid::nil());
    assert_eq!(first, second, "the kernel is deterministic");
});
