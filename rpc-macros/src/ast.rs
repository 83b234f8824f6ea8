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
    /// The arguments after `&self`, a subscription's sink included (the fingerprint
    /// hashes them all).
    pub args: Vec<ArgDef<'a>>,
    /// `None` for `-> ()` or no return type.
    pub output: Option<&'a Type>,
    /// A subscription's last argument, `events: Sink<T>`: its name and `T`.
    pub sink: Option<(&'a Ident, &'a Type)>,
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

    /// The arguments sent as values: all but a subscription's sink.
    pub fn value_args(&self) -> &[ArgDef<'a>] {
        match self.sink {
            Some(_) => &self.args[..self.args.len() - 1],
            None => &self.args,
        }
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
