#![no_main]

#[path = "../../tests/support/fuzz_harness.rs"]
mod fuzz_harness;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_harness::verify_assertion(data));
