//! The fingerprint: FNV-1a over a method's name and its types' structure, computed
//! at compile time.

use super::model::{Arg, DataModelType, DataModelVariant, NamedType, NamedValue};

const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

const fn mix(mut state: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        state ^= bytes[i] as u64;
        state = state.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    state
}

/// A name, then its length: `ab` + `c` and `a` + `bc` hash apart.
const fn mix_name(state: u64, name: &str) -> u64 {
    let state = mix(state, name.as_bytes());
    mix(state, &(name.len() as u32).to_le_bytes())
}

/// FNV-1a over a method's name, then each argument's structure, then the output's:
/// what must agree for the two sides to read each other's bytes as the same values.
/// Argument names and type names do not count; field and variant names and their
/// order do.
///
/// # Examples
///
/// ```
/// use rpc_core::schema::{Arg, Schema, fingerprint};
/// let a = [Arg { name: "a", schema: i64::SCHEMA }];
/// let renamed = [Arg { name: "x", schema: i64::SCHEMA }];
/// let narrower = [Arg { name: "a", schema: i32::SCHEMA }];
/// assert_eq!(fingerprint("neg", &a, i64::SCHEMA), fingerprint("neg", &renamed, i64::SCHEMA));
/// assert_ne!(fingerprint("neg", &a, i64::SCHEMA), fingerprint("neg", &narrower, i64::SCHEMA));
/// ```
pub const fn fingerprint(name: &str, args: &[Arg], output: &NamedType) -> u64 {
    let mut state = mix_name(FNV_BASIS, name);
    state = mix(state, &(args.len() as u32).to_le_bytes());
    let mut i = 0;
    while i < args.len() {
        state = hash_type(state, args[i].schema);
        i += 1;
    }
    hash_type(mix(state, b"->"), output)
}

const fn hash_types(mut state: u64, types: &[&NamedType]) -> u64 {
    state = mix(state, &(types.len() as u32).to_le_bytes());
    let mut i = 0;
    while i < types.len() {
        state = hash_type(state, types[i]);
        i += 1;
    }
    state
}

const fn hash_fields(mut state: u64, fields: &[&NamedValue]) -> u64 {
    state = mix(state, &(fields.len() as u32).to_le_bytes());
    let mut i = 0;
    while i < fields.len() {
        state = mix_name(state, fields[i].name);
        state = hash_type(state, fields[i].ty);
        i += 1;
    }
    state
}

/// One byte per kind of value, then what it contains. The type's own name is left
/// out: it is not on the wire.
pub(super) const fn hash_type(state: u64, ty: &NamedType) -> u64 {
    use DataModelType as T;
    match ty.ty {
        T::Bool => mix(state, b"b"),
        T::I8 => mix(state, b"i1"),
        T::I16 => mix(state, b"i2"),
        T::I32 => mix(state, b"i4"),
        T::I64 => mix(state, b"i8"),
        T::I128 => mix(state, b"iG"),
        T::Isize => mix(state, b"iz"),
        T::U8 => mix(state, b"u1"),
        T::U16 => mix(state, b"u2"),
        T::U32 => mix(state, b"u4"),
        T::U64 => mix(state, b"u8"),
        T::U128 => mix(state, b"uG"),
        T::Usize => mix(state, b"uz"),
        T::F32 => mix(state, b"f4"),
        T::F64 => mix(state, b"f8"),
        T::Char => mix(state, b"c"),
        T::String => mix(state, b"s"),
        // The same bytes as a sequence of u8 in postcard: a length, then the bytes.
        T::ByteArray => mix(state, b"[u1"),
        T::Option(inner) => hash_type(mix(state, b"?"), inner),
        T::Events(inner) => hash_type(mix(state, b"~"), inner),
        T::Unit => mix(state, b"()"),
        T::UnitStruct => mix(state, b"U"),
        T::NewtypeStruct(inner) => hash_type(mix(state, b"N"), inner),
        T::Seq(inner) => hash_type(mix(state, b"["), inner),
        T::Tuple(items) => hash_types(mix(state, b"("), items),
        T::TupleStruct(items) => hash_types(mix(state, b"T"), items),
        T::Map { key, val } => hash_type(hash_type(mix(state, b"{"), key), val),
        T::Struct(fields) => hash_fields(mix(state, b"S"), fields),
        T::Enum(variants) => {
            let mut state = mix(state, b"E");
            state = mix(state, &(variants.len() as u32).to_le_bytes());
            let mut i = 0;
            while i < variants.len() {
                state = mix_name(state, variants[i].name);
                state = match variants[i].ty {
                    DataModelVariant::UnitVariant => mix(state, b"U"),
                    DataModelVariant::NewtypeVariant(inner) => hash_type(mix(state, b"N"), inner),
                    DataModelVariant::TupleVariant(items) => hash_types(mix(state, b"T"), items),
                    DataModelVariant::StructVariant(fields) => {
                        hash_fields(mix(state, b"S"), fields)
                    }
                };
                i += 1;
            }
            state
        }
        // What `#[derive(ipc_rpc::Schema)]` writes for a field that refers back
        // to its own type: the type as written, compared by that text.
        T::ByName => mix_name(mix(state, b"R"), ty.name),
    }
}
