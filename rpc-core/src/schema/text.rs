//! A method's signature as text, for error messages.

use std::fmt::Write as _;

use super::model::{DataModelType, DataModelVariant, NamedType, NamedValue};

/// Writes `ty` as Rust-like text: primitives and std containers by their Rust names,
/// structs and enums by name with their contents.
pub(super) fn write_type(out: &mut String, ty: &NamedType) {
    use DataModelType as T;
    let list = |out: &mut String, items: &[&NamedType]| {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            write_type(out, item);
        }
    };
    let fields = |out: &mut String, fields: &[&NamedValue]| {
        out.push_str(" {");
        for (i, field) in fields.iter().enumerate() {
            out.push_str(if i > 0 { ", " } else { " " });
            out.push_str(field.name);
            out.push_str(": ");
            write_type(out, field.ty);
        }
        out.push_str(if fields.is_empty() { "}" } else { " }" });
    };
    let simple = match ty.ty {
        T::Bool => "bool",
        T::I8 => "i8",
        T::I16 => "i16",
        T::I32 => "i32",
        T::I64 => "i64",
        T::I128 => "i128",
        T::Isize => "isize",
        T::U8 => "u8",
        T::U16 => "u16",
        T::U32 => "u32",
        T::U64 => "u64",
        T::U128 => "u128",
        T::Usize => "usize",
        T::F32 => "f32",
        T::F64 => "f64",
        T::Char => "char",
        T::String => "String",
        T::ByteArray => "bytes",
        T::Unit => "()",
        T::ByName => ty.name,
        _ => "",
    };
    if !simple.is_empty() {
        out.push_str(simple);
        return;
    }
    match ty.ty {
        T::Option(inner) => {
            out.push_str("Option<");
            write_type(out, inner);
            out.push('>');
        }
        T::Events(inner) => {
            out.push_str("Sink<");
            write_type(out, inner);
            out.push('>');
        }
        T::Seq(inner) => {
            out.push_str("Vec<");
            write_type(out, inner);
            out.push('>');
        }
        T::Map { key, val } => {
            out.push_str("Map<");
            write_type(out, key);
            out.push_str(", ");
            write_type(out, val);
            out.push('>');
        }
        T::Tuple(items) => {
            out.push('(');
            list(out, items);
            if items.len() == 1 {
                out.push(',');
            }
            out.push(')');
        }
        T::UnitStruct => out.push_str(ty.name),
        T::NewtypeStruct(inner) => {
            out.push_str(ty.name);
            out.push('(');
            write_type(out, inner);
            out.push(')');
        }
        T::TupleStruct(items) => {
            out.push_str(ty.name);
            out.push('(');
            list(out, items);
            out.push(')');
        }
        T::Struct(f) => {
            out.push_str(ty.name);
            fields(out, f);
        }
        T::Enum(variants) if ty.name == "Result" && variants.len() == 2 => {
            out.push_str("Result<");
            for (i, v) in variants.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                match v.ty {
                    DataModelVariant::TupleVariant([one])
                    | DataModelVariant::NewtypeVariant(one) => write_type(out, one),
                    _ => out.push('?'),
                }
            }
            out.push('>');
        }
        T::Enum(variants) => {
            let _ = write!(out, "enum {} {{", ty.name);
            for (i, v) in variants.iter().enumerate() {
                out.push_str(if i > 0 { ", " } else { " " });
                out.push_str(v.name);
                match v.ty {
                    DataModelVariant::UnitVariant => {}
                    DataModelVariant::NewtypeVariant(inner) => {
                        out.push('(');
                        write_type(out, inner);
                        out.push(')');
                    }
                    DataModelVariant::TupleVariant(items) => {
                        out.push('(');
                        list(out, items);
                        out.push(')');
                    }
                    DataModelVariant::StructVariant(f) => fields(out, f),
                }
            }
            out.push_str(if variants.is_empty() { "}" } else { " }" });
        }
        _ => out.push_str(ty.name),
    }
}
