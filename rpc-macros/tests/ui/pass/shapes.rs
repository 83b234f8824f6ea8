//! Every shape of trait the macro accepts.
use std::collections::HashMap;

use ipc_rpc::ipc_service;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, ipc_rpc::Schema)]
pub struct Point {
    pub x: i32,
    pub y: i32,
}

#[derive(Serialize, Deserialize, ipc_rpc::Schema)]
pub enum Shape {
    Dot(Point),
    Line { from: Point, to: Point },
    Empty,
}

#[derive(Serialize, Deserialize, ipc_rpc::Schema)]
pub struct NotFound;

#[ipc_service]
pub trait Shapes {
    /// Raw identifiers as method and argument names.
    fn r#type(&self, r#match: u8, r#fn: String) -> u8;
    fn zero_args(&self) -> u64;
    fn no_return(&self, value: u32);
    fn unit_return(&self, value: u32) -> ();
    fn many_args(&self, a: u8, b: u16, c: u32, d: u64, e: i128, f: f64, g: bool, h: char, i: String, j: Vec<u8>);
    fn fallible(&self, key: String) -> Result<Vec<Shape>, NotFound>;
    fn nested(&self, v: Vec<Option<(u8, String)>>) -> Option<Vec<Vec<(Point, Shape)>>>;
    fn map(&self, m: HashMap<String, Vec<u8>>) -> HashMap<u32, Option<Shape>>;
    fn array(&self, bytes: [u8; 4], pair: (i8, (u8, [char; 2]))) -> [u16; 2];
    fn path_types(&self, s: std::string::String, d: std::time::Duration) -> std::collections::BTreeMap<u8, u8>;
    fn with_default(&self, n: u32) -> u32 {
        n + 1
    }
    #[cfg(any())]
    fn cfg_disabled(&self, never: TypeThatDoesNotExist) -> AlsoMissing;
    #[cfg(all())]
    fn cfg_enabled(&self) -> bool;
}

#[ipc_service]
trait PrivateService {
    fn ping(&self) -> u8;
}

fn main() {
    let _ = ShapesClient::SERVICE;
    let _ = PrivateServiceClient::SERVICE;
}
