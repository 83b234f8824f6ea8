//! The [`Schema`] trait and its data model: postcard's, the serde data model.

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
    /// A subscription's `Sink<T>`: the events the server pushes, each a `T` (in the
    /// request, the sink's place holds the client's buffer size).
    Events(&'static NamedType),
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

/// One argument of a method: its name (for the signature text only; renaming an
/// argument is compatible) and its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arg {
    /// The argument's name as written in the trait.
    pub name: &'static str,
    /// Its type's structure.
    pub schema: &'static NamedType,
}
