//! Lint hygiene: a documented service compiles under strict lints, so the generated
//! items add no warning of their own.
#![deny(warnings, missing_docs, unused_qualifications)]
#![deny(rust_2018_idioms, unused_lifetimes, unused_results, trivial_casts, trivial_numeric_casts)]

use ipc_rpc::ipc_service;

/// A calculator.
#[ipc_service]
pub trait Calculator {
    /// Adds two numbers.
    fn add(&self, a: i64, b: i64) -> i64;
    /// Divides, refusing zero.
    fn div(&self, a: i64, b: i64) -> Result<i64, String>;
    /// Forgets everything.
    fn reset(&self) {}
}

struct Calc;

impl Calculator for Calc {
    fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
    fn div(&self, a: i64, b: i64) -> Result<i64, String> {
        a.checked_div(b).ok_or_else(|| "division by zero".to_owned())
    }
}

fn main() {
    let server = CalculatorServer::new(Calc);
    assert_eq!(server.service().add(1, 2), 3);
    assert_eq!(CalculatorClient::SERVICE.name, "Calculator");
}
