//! What a service's methods look like on the wire, and whether two builds agree on them.
//!
//! Every argument and return type of an `#[ipc_service]` trait has a compile-time
//! schema, the [`Schema`] trait: std types implement it here, user types get it from
//! `#[derive(ipc_rpc::Schema)]`. Its data model is postcard's (the serde data model),
//! as in postcard-schema, whose hashes postcard-rpc keys its endpoints by. From the
//! schemas the macro bakes one [`MethodInfo`] per method into the service's
//! [`ServiceInfo`]: its name, its arguments' and reply's structure, and a
//! [`fingerprint`] of them.
//!
//! The fingerprint hashes *structure*: every field's and variant's name, order and
//! type, down to the primitives, but not the names of types (renaming a struct, or
//! writing `u64` through an alias, changes nothing on the wire, and nothing here).
//! `Vec<u8>`, `ipc_rpc::Bytes` and serde's byte arrays hash alike: postcard writes
//! them alike. A schema is a constant, so it cannot contain itself: a field whose
//! type refers back to the type being derived (a tree's children) is described by its
//! type as written ([`DataModelType::ByName`]), and so is a field marked
//! `#[schema(recursive)]`, which closes a cycle through several types.
//!
//! The server's welcome lists its methods with their fingerprints and signatures;
//! the client maps each of its methods to the server's by name ([`MethodRoutes`]), so a
//! server may have more methods, or have them in another order. A method the server
//! lacks, or whose fingerprint differs, fails that call only, with
//! [`RpcError::MethodMismatch`](crate::RpcError::MethodMismatch) showing both
//! signatures.

use std::fmt;

mod hash;
mod impls;
mod routes;
mod text;

pub use hash::fingerprint;
pub use routes::{MethodRoutes, ServerMethod};

/// A type's structure on the wire, known at compile time.
///
/// Implemented here for std's types; `#[derive(ipc_rpc::Schema)]` implements it for
/// structs and enums (it follows serde's attributes). By hand, a type that serializes
/// as another type takes that type's schema:
///
/// ```
/// use rpc_core::schema::{NamedType, Schema};
/// /// Sent as its text.
/// pub struct Version(pub u16, pub u16);
/// impl Schema for Version {
///     const SCHEMA: &'static NamedType = String::SCHEMA;
/// }
/// assert_eq!(Version::SCHEMA, String::SCHEMA);
/// # let v = Version(1, 2);
/// # assert_eq!(v.0 + v.1, 3);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no `ipc_rpc::Schema`, which every argument and return type of an #[ipc_service] needs",
    label = "no schema",
    note = "add `#[derive(ipc_rpc::Schema)]` beside `Serialize, Deserialize` on your types (std types have one): client and server compare schemas at connect"
)]
pub trait Schema {
    /// The structure.
    const SCHEMA: &'static NamedType;
}

/// A type: its name (shown in signatures, left out of fingerprints) and its structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NamedType {
    /// The type's name.
    pub name: &'static str,
    /// What postcard writes for it.
    pub ty: &'static DataModelType,
}

/// The serde data model, as postcard writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataModelType {
    /// `bool`.
    Bool,
    /// `i8`.
    I8,
    /// `u8`.
    U8,
    /// `i16`.
    I16,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `i128`.
    I128,
    /// `u16`.
    U16,
    /// `u32`.
    U32,
    /// `u64`.
    U64,
    /// `u128`.
    U128,
    /// `usize` (a varint, like `u64`).
    Usize,
    /// `isize`.
    Isize,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// `char`.
    Char,
    /// A string.
    String,
    /// A byte string (serde's bytes): the same bytes as a sequence of `u8`.
    ByteArray,
    /// `Option<T>`.
    Option(&'static NamedType),
    /// `()`.
    Unit,
    /// `struct Unit;`.
    UnitStruct,
    /// `struct Meters(f64);`.
    NewtypeStruct(&'static NamedType),
    /// A sequence with its length: `Vec<T>`, sets.
    Seq(&'static NamedType),
    /// A tuple or a fixed-size array: no length.
    Tuple(&'static [&'static NamedType]),
    /// `struct Point(i32, i32);`.
    TupleStruct(&'static [&'static NamedType]),
    /// A map.
    Map {
        /// The keys' type.
        key: &'static NamedType,
        /// The values' type.
        val: &'static NamedType,
    },
    /// A struct with named fields, in order.
    Struct(&'static [&'static NamedValue]),
    /// An enum's variants, in order (postcard writes the index).
    Enum(&'static [&'static NamedVariant]),
    /// A type known by its name as written only (a field that refers back to its own
    /// type, or marked `#[schema(recursive)]`).
    ByName,
}

/// A variant's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataModelVariant {
    /// `A`.
    UnitVariant,
    /// `A(T)`.
    NewtypeVariant(&'static NamedType),
    /// `A(T, U)`.
    TupleVariant(&'static [&'static NamedType]),
    /// `A { x: T }`.
    StructVariant(&'static [&'static NamedValue]),
}

/// A field: its name and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NamedValue {
    /// The field's name (serde's, after `rename`).
    pub name: &'static str,
    /// Its type.
    pub ty: &'static NamedType,
}

/// A variant: its name and contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NamedVariant {
    /// The variant's name.
    pub name: &'static str,
    /// Its contents.
    pub ty: &'static DataModelVariant,
}

/// Identifies a service: its name and its methods, with their structure.
///
/// `#[ipc_service]` generates one per trait; the handshake compares the names, and the
/// client maps its methods to the server's by name and [`fingerprint`] (see the
/// [module docs](self)).
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

/// One argument of a method: its name (for the signature text only; renaming an
/// argument is compatible) and its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arg {
    /// The argument's name as written in the trait.
    pub name: &'static str,
    /// Its type's structure.
    pub schema: &'static NamedType,
}

/// One method of a service: name, arguments, reply, and their [`fingerprint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodInfo {
    /// The method's name.
    pub name: &'static str,
    /// Its arguments, in order.
    pub args: &'static [Arg],
    /// What it returns (`()` for nothing).
    pub output: &'static NamedType,
    /// [`fingerprint`] of the name, the arguments' and the output's structure.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[allow(dead_code)]
    struct Spec {
        name: String,
        priority: u8,
    }
    impl Schema for Spec {
        const SCHEMA: &'static NamedType = &NamedType {
            name: "Spec",
            ty: &DataModelType::Struct(&[
                &NamedValue {
                    name: "name",
                    ty: String::SCHEMA,
                },
                &NamedValue {
                    name: "priority",
                    ty: u8::SCHEMA,
                },
            ]),
        };
    }
    struct Reordered;
    impl Schema for Reordered {
        const SCHEMA: &'static NamedType = &NamedType {
            name: "Spec",
            ty: &DataModelType::Struct(&[
                &NamedValue {
                    name: "priority",
                    ty: u8::SCHEMA,
                },
                &NamedValue {
                    name: "name",
                    ty: String::SCHEMA,
                },
            ]),
        };
    }

    const SUBMIT: MethodInfo = MethodInfo::new(
        "submit",
        &[Arg {
            name: "spec",
            schema: Spec::SCHEMA,
        }],
        <Result<u64, String>>::SCHEMA,
    );

    #[test]
    fn signatures_spell_out_structure() {
        assert_eq!(
            SUBMIT.signature(),
            "submit(spec: Spec { name: String, priority: u8 }) -> Result<u64, String>"
        );
        let m = MethodInfo::new("f", &[], <Vec<(u8, Option<bool>)>>::SCHEMA);
        assert_eq!(m.signature(), "f() -> Vec<(u8, Option<bool>)>");
    }

    #[test]
    fn reordered_fields_and_byte_strings() {
        let reordered = MethodInfo::new(
            "submit",
            &[Arg {
                name: "spec",
                schema: Reordered::SCHEMA,
            }],
            <Result<u64, String>>::SCHEMA,
        );
        assert_ne!(SUBMIT.fingerprint, reordered.fingerprint);
        static BYTES: NamedType = NamedType {
            name: "Bytes",
            ty: &DataModelType::ByteArray,
        };
        assert_eq!(
            fingerprint("f", &[], &BYTES),
            fingerprint("f", &[], <Vec<u8>>::SCHEMA)
        );
    }

    #[test]
    fn routes_follow_names_and_fingerprints() {
        static MINE: ServiceInfo = ServiceInfo {
            name: "Jobs",
            methods: &[SUBMIT, MethodInfo::new("cancel", &[], bool::SCHEMA)],
        };
        let server = [
            ServerMethod {
                name: "status",
                fingerprint: 1,
                signature: "status() -> u8",
            },
            ServerMethod {
                name: "submit",
                fingerprint: SUBMIT.fingerprint,
                signature: "",
            },
        ];
        let routes = MethodRoutes::new(&MINE, server);
        let peer: Arc<str> = "unix:/x".into();
        assert_eq!(routes.wire_method(0, &peer).ok(), Some(1));
        let missing = routes.wire_method(1, &peer).unwrap_err().to_string();
        assert!(
            missing.contains("has no method `Jobs::cancel`"),
            "{missing}"
        );
        assert_eq!(routes.callable(), 1);
    }
}
