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

mod hash;
mod impls;
mod model;
mod routes;
mod service;
mod text;

pub use hash::fingerprint;
pub use model::{
    Arg, DataModelType, DataModelVariant, NamedType, NamedValue, NamedVariant, Schema,
};
pub use routes::{MethodRoutes, ServerMethod};
pub use service::{MethodInfo, ServiceInfo};

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
