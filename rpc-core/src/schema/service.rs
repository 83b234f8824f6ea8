//! What identifies a service and its methods.

use std::fmt;

use super::hash::fingerprint;
use super::model::{Arg, DataModelType, NamedType, Schema};
use super::text;

/// Identifies a service: its name and its methods, with their structure.
///
/// `#[ipc_service]` generates one per trait; the handshake compares the names, and the
/// client maps its methods to the server's by name and [`fingerprint`](super::fingerprint) (see the
/// [module docs](super)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceInfo {
    /// The trait's name.
    pub name: &'static str,
    /// The methods, indexed by method number.
    pub methods: &'static [MethodInfo],
}

impl ServiceInfo {
    /// The name of method `index`, or `"?"` for an unknown index.
    pub fn method_name(&self, index: u16) -> &'static str {
        self.methods.get(usize::from(index)).map_or("?", |m| m.name)
    }
}

impl fmt::Display for ServiceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` ({} methods)", self.name, self.methods.len())
    }
}

/// One method of a service: name, arguments, reply, and their [`fingerprint`](super::fingerprint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodInfo {
    /// The method's name.
    pub name: &'static str,
    /// Its arguments, in order.
    pub args: &'static [Arg],
    /// What it returns (`()` for nothing).
    pub output: &'static NamedType,
    /// [`fingerprint`](super::fingerprint) of the name, the arguments' and the output's structure.
    pub fingerprint: u64,
}

impl MethodInfo {
    /// The place of a method that `#[cfg]` left out of this build: the methods after it
    /// keep their numbers, and no client's method matches it (its name is empty).
    pub const ABSENT: MethodInfo = MethodInfo {
        name: "",
        args: &[],
        output: <() as Schema>::SCHEMA,
        fingerprint: 0,
    };

    /// A method, its fingerprint computed (at compile time in generated code).
    ///
    /// # Examples
    ///
    /// ```
    /// use rpc_core::schema::{Arg, MethodInfo, Schema};
    /// const ADD: MethodInfo = MethodInfo::new(
    ///     "add",
    ///     &[Arg { name: "a", schema: i64::SCHEMA }, Arg { name: "b", schema: i64::SCHEMA }],
    ///     i64::SCHEMA,
    /// );
    /// assert_eq!(ADD.signature(), "add(a: i64, b: i64) -> i64");
    /// ```
    pub const fn new(
        name: &'static str,
        args: &'static [Arg],
        output: &'static NamedType,
    ) -> MethodInfo {
        MethodInfo {
            name,
            args,
            output,
            fingerprint: fingerprint(name, args, output),
        }
    }

    /// The method as text, its types spelled out down to the primitives, e.g.
    /// `submit(spec: JobSpec { name: String, priority: u8 }) -> JobId(u64)`: what an
    /// error shows when the two sides' fingerprints differ.
    pub fn signature(&self) -> String {
        let mut text = format!("{}(", self.name);
        for (i, arg) in self.args.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            text.push_str(arg.name);
            text.push_str(": ");
            text::write_type(&mut text, arg.schema);
        }
        text.push(')');
        if !matches!(self.output.ty, DataModelType::Unit) {
            text.push_str(" -> ");
            text::write_type(&mut text, self.output);
        }
        text
    }
}
