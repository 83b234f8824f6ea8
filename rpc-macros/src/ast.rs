//! The model of a service trait, built from syn's tree; every node keeps a reference
//! to the user's tokens so errors can point at them.

use syn::{Attribute, FnArg, Ident, ItemTrait, Pat, ReturnType, TraitItem, TraitItemFn, Type};

/// A trait under `#[ipc_service]`.
pub struct ServiceDef<'a> {
    pub original: &'a ItemTrait,
    pub methods: Vec<MethodDef<'a>>,
}

/// One trait method.
pub struct MethodDef<'a> {
    pub original: &'a TraitItemFn,
    /// Position in the trait: the method number on the wire.
    pub index: u16,
    pub args: Vec<ArgDef<'a>>,
    /// `None` for `-> ()` or no return type.
    pub output: Option<&'a Type>,
}

/// One argument after `&self`.
pub struct ArgDef<'a> {
    /// `None` when the pattern is not a plain name (an error reported by `valid`).
    pub ident: Option<&'a Ident>,
    pub ty: &'a Type,
    pub pat: &'a Pat,
}

impl<'a> ServiceDef<'a> {
    /// Builds the model; methods past `u16::MAX` are left out (and refused by `valid`).
    pub fn from_trait(original: &'a ItemTrait) -> Self {
        let methods = original
            .items
            .iter()
            .filter_map(|item| match item {
                TraitItem::Fn(f) => Some(f),
                _ => None,
            })
            .zip(0u16..)
            .map(|(f, index)| MethodDef::from_fn(f, index))
            .collect();
        ServiceDef { original, methods }
    }

    pub fn ident(&self) -> &'a Ident {
        &self.original.ident
    }
}

impl<'a> MethodDef<'a> {
    fn from_fn(original: &'a TraitItemFn, index: u16) -> Self {
        let args = original
            .sig
            .inputs
            .iter()
            .filter_map(|arg| match arg {
                FnArg::Typed(t) => Some(ArgDef {
                    ident: match &*t.pat {
                        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => Some(&p.ident),
                        _ => None,
                    },
                    ty: &t.ty,
                    pat: &t.pat,
                }),
                FnArg::Receiver(_) => None,
            })
            .collect();
        let output = match &original.sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => match &**ty {
                Type::Tuple(t) if t.elems.is_empty() => None,
                ty => Some(ty),
            },
        };
        MethodDef {
            original,
            index,
            args,
            output,
        }
    }

    pub fn ident(&self) -> &'a Ident {
        &self.original.sig.ident
    }

    /// The arguments' names (every argument has one once `valid` has checked them).
    pub fn arg_idents(&self) -> Vec<&'a Ident> {
        self.args
            .iter()
            .map(|a| a.ident.expect("checked by valid"))
            .collect()
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
