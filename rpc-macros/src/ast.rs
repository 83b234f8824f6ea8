//! The model of a valid service trait. Only `valid::check` builds it, and its types
//! hold nothing that check refuses (every argument has a plain name, the method
//! indices fit the wire's `u16`), so generating code from it needs no further checks.
//! Every node keeps a reference to the user's tokens so code can be spanned on them.

use syn::{Attribute, Ident, ItemTrait, TraitItemFn, Type};

/// A trait under `#[ipc_service]` that passed `valid::check`.
pub struct ServiceDef<'a> {
    pub original: &'a ItemTrait,
    pub methods: Vec<MethodDef<'a>>,
}

/// One trait method.
pub struct MethodDef<'a> {
    pub original: &'a TraitItemFn,
    /// Position in the trait: the method number on the wire.
    pub index: u16,
    /// The arguments after `&self`.
    pub args: Vec<ArgDef<'a>>,
    /// `None` for `-> ()` or no return type.
    pub output: Option<&'a Type>,
}

/// One argument after `&self`: `ident: ty`.
pub struct ArgDef<'a> {
    pub ident: &'a Ident,
    pub ty: &'a Type,
}

impl<'a> ServiceDef<'a> {
    pub fn ident(&self) -> &'a Ident {
        &self.original.ident
    }
}

impl<'a> MethodDef<'a> {
    pub fn ident(&self) -> &'a Ident {
        &self.original.sig.ident
    }

    /// The arguments' names, in order.
    pub fn arg_idents(&self) -> impl Iterator<Item = &'a Ident> {
        self.args.iter().map(|a| a.ident)
    }

    /// `#[doc]` attributes, carried over to the client method.
    pub fn docs(&self) -> impl Iterator<Item = &'a Attribute> {
        self.original
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
    }

    /// `#[cfg]` attributes, carried over to the client method and the dispatch arm.
    pub fn cfgs(&self) -> impl Iterator<Item = &'a Attribute> {
        self.original
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg"))
    }
}

/// Whether `ty` is written as `Vec<u8>` (optionally `std::vec::Vec<u8>`,
/// `alloc::vec::Vec<u8>`, with or without a leading `::`). Such values take the bulk
/// byte path (one copy instead of a call per byte); the generated code still names
/// `::std::vec::Vec<u8>`, so a user type that merely shadows the name fails to compile
/// rather than misbehaving.
pub fn is_byte_vec(ty: &Type) -> bool {
    let Type::Path(p) = ty else {
        return false;
    };
    if p.qself.is_some() {
        return false;
    }
    let segments: Vec<String> = p
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    let prefix_ok = match segments.as_slice() {
        [_] => p.path.leading_colon.is_none(),
        [a, b, _] => (a == "std" || a == "alloc") && b == "vec",
        _ => false,
    };
    let Some(last) = p.path.segments.last() else {
        return false;
    };
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return false;
    };
    prefix_ok
        && last.ident == "Vec"
        && args.args.len() == 1
        && matches!(args.args.first(), Some(syn::GenericArgument::Type(Type::Path(t)))
            if t.qself.is_none() && t.path.is_ident("u8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_vecs_are_recognised_by_their_written_form() {
        for yes in [
            "Vec<u8>",
            "std::vec::Vec<u8>",
            "::std::vec::Vec<u8>",
            "alloc::vec::Vec<u8>",
        ] {
            assert!(is_byte_vec(&syn::parse_str(yes).unwrap()), "{yes}");
        }
        for no in [
            "Vec<i8>",
            "Vec<Vec<u8>>",
            "my::Vec<u8>",
            "::Vec<u8>",
            "[u8; 4]",
            "Option<Vec<u8>>",
            "Vec<u8, A>",
        ] {
            assert!(!is_byte_vec(&syn::parse_str(no).unwrap()), "{no}");
        }
    }
}
