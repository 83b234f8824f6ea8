//! Pins the handshake fingerprints of sample services. A client and a server built by
//! different versions of the macro must still agree, so these values never change;
//! a failure here means the signature text or the hash changed, not the test.
// Only the generated `SERVICE` constants are read; nothing is implemented or called.
#![allow(dead_code)]
// The fingerprint covers types as written, so the nested types stay spelled out.
#![allow(clippy::type_complexity)]

use std::collections::HashMap;

use ipc_rpc::ipc_service;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Point {
    pub x: i32,
    pub y: i32,
}

#[derive(Serialize, Deserialize)]
struct NotFound;

#[ipc_service]
trait Calculator {
    /// Adds two numbers.
    fn add(&self, a: i64, b: i64) -> i64;
    fn div(&self, a: i64, b: i64) -> Result<i64, NotFound>;
    fn reset(&self);
}

#[ipc_service]
trait Sample {
    fn r#type(&self, r#match: u8, r#fn: String) -> u8;
    fn unit_return(&self, value: u32) -> ();
    fn bytes(&self, head: Vec<u8>, tail: ::std::vec::Vec<u8>) -> Vec<u8>;
    fn nested(&self, v: Vec<Option<(u8, String)>>) -> Option<Vec<Vec<(Point, [u8; 4])>>>;
    fn paths(&self, m: HashMap<String, Vec<u8>>, d: std::time::Duration) -> Result<(), NotFound>;
    fn with_default(&self, n: u32) -> u32 {
        n + 1
    }
    #[cfg(any())]
    fn cfg_disabled(&self, never: TypeThatDoesNotExist) -> AlsoMissing;
}

/// Values computed by the macro at 9239981, when it still hashed with its own FNV-1a.
#[test]
fn fingerprints_are_pinned() {
    assert_eq!(CalculatorClient::SERVICE.name, "Calculator");
    assert_eq!(CalculatorClient::SERVICE.fingerprint, 0x86b2_dcfe_b195_097c);
    assert_eq!(SampleClient::SERVICE.name, "Sample");
    assert_eq!(SampleClient::SERVICE.fingerprint, 0x8bea_92d0_e670_1172);
}

/// `rpc_core::fingerprint` is FNV-1a (64-bit), the hash every released macro used.
#[test]
fn fingerprint_is_fnv1a() {
    assert_eq!(rpc_core::fingerprint(""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(rpc_core::fingerprint("a"), 0xaf63_dc4c_8601_ec8c);
}

/// The fingerprint is `rpc_core::fingerprint` of the signature text: the service name,
/// then each method's name, argument types and return type, whitespace removed.
#[test]
fn fingerprint_is_rpc_core_fingerprint_of_the_signature_text() {
    assert_eq!(
        CalculatorClient::SERVICE.fingerprint,
        rpc_core::fingerprint(
            "Calculator{add(i64,i64)->i64;div(i64,i64)->Result<i64,NotFound>;reset()->();}"
        )
    );
}
