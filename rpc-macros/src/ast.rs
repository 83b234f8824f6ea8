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
