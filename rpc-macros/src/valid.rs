//! Checks a service trait and turns it into the model: every problem is reported in
//! one compile, each spanned on the offending token with a sentence saying what to
//! write instead; the model is returned only when there is none.

use quote::ToTokens;
use syn::{
    FnArg, GenericArgument, ItemTrait, Pat, PathArguments, ReturnType, TraitItem, TraitItemFn, Type,
};

use crate::ast::{ArgDef, MethodDef, ServiceDef};
use crate::names;

/// Collects errors so that all of them are shown at once.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    /// Records `message` at `tokens`; the whole of `tokens` is underlined, not only
    /// its first token.
    pub fn push(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        let e = syn::Error::new_spanned(tokens, message);
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    /// `value` if nothing was recorded, else every recorded error combined.
    pub fn finish<T>(self, value: T) -> Result<T, syn::Error> {
        self.0.map_or(Ok(value), Err)
    }
}

/// Checks `t` and builds its model, or returns every problem found.
pub fn check(t: &ItemTrait) -> Result<ServiceDef<'_>, syn::Error> {
    let mut errors = Errors::default();
    if let Some(unsafety) = &t.unsafety {
        errors.push(
            unsafety,
            "a service trait cannot be `unsafe`; remove `unsafe`",
        );
    }
    if let Some(auto) = &t.auto_token {
        errors.push(
            auto,
            "a service trait cannot be an auto trait; remove `auto`",
        );
    }
    if !t.generics.params.is_empty() || t.generics.where_clause.is_some() {
        errors.push(
            &t.generics,
            "a service trait cannot be generic: client and server must agree on concrete types; \
             write one trait per type, or take an enum",
        );
    }
    for item in &t.items {
        match item {
            TraitItem::Fn(_) => {}
            TraitItem::Type(ty) => errors.push(
                ty.type_token,
                "associated types are not supported in a service trait: the client must know \
                 every type; use a concrete type in the method signatures",
            ),
            TraitItem::Const(c) => errors.push(
                c.const_token,
                "associated consts are not supported in a service trait; move the constant out of \
                 the trait",
            ),
            other => errors.push(
                other,
                "only methods can appear in a service trait; move this item out of the trait",
            ),
        }
    }
    let fns = t.items.iter().filter_map(|item| match item {
        TraitItem::Fn(f) => Some(f),
        _ => None,
    });
    if fns.clone().count() > usize::from(u16::MAX) {
        errors.push(&t.ident, "a service trait can have at most 65535 methods");
    }
    // With too many methods the error above is reported and the model is never
    // returned, so stopping the numbering at `u16::MAX` loses nothing.
    let methods = fns
        .zip(0..=u16::MAX)
        .map(|(f, index)| check_method(f, index, &mut errors))
        .collect();
    errors.finish(ServiceDef {
        original: t,
        methods,
    })
}

/// Checks one method; the returned model is only used if `errors` stays empty.
fn check_method<'a>(original: &'a TraitItemFn, index: u16, errors: &mut Errors) -> MethodDef<'a> {
    let sig = &original.sig;
    if let Some(a) = &sig.asyncness {
        errors.push(
            a,
            "`async fn` is not supported: service methods are blocking and run on a server \
             thread; write `fn` and return the value",
        );
    }
    if let Some(u) = &sig.unsafety {
        errors.push(
            u,
            "service methods cannot be `unsafe`: a remote caller cannot uphold a safety \
             contract; remove `unsafe`",
        );
    }
    if let Some(c) = &sig.constness {
        errors.push(c, "service methods cannot be `const`; remove `const`");
    }
    if let Some(abi) = &sig.abi {
        errors.push(
            abi,
            "service methods cannot declare an ABI; remove `extern`",
        );
    }
    if let Some(v) = &sig.variadic {
        errors.push(v, "variadic methods are not supported; take a `Vec<T>`");
    }
    if !sig.generics.params.is_empty() {
        errors.push(
            &sig.generics,
            "generic methods cannot be called across processes: the server must know the \
             concrete type; use a concrete type (or an enum of the types you need)",
        );
    } else if let Some(w) = &sig.generics.where_clause {
        errors.push(
            w,
            "service methods cannot have `where` clauses; use concrete types",
        );
    }
    let name = names::plain(&sig.ident);
    if names::CLIENT_METHODS.contains(&name.as_str()) {
        errors.push(
            &sig.ident,
            format!(
                "a method named `{name}` would clash with the generated client's own `{name}`; \
                 rename the method"
            ),
        );
    }

    match sig.inputs.first() {
        Some(FnArg::Receiver(r)) => {
            if r.colon_token.is_some() {
                errors.push(r, "write the receiver as `&self`; typed receivers such as `self: Box<Self>` are not supported");
            } else if r.reference.is_none() {
                errors.push(
                    r,
                    "`self` by value is not supported: one service value serves every connection; \
                     take `&self`",
                );
            } else if let Some(m) = &r.mutability {
                errors.push(
                    m,
                    "`&mut self` is not supported: one service value serves every connection at \
                     once; take `&self` and keep mutable state behind a Mutex or an atomic",
                );
            }
        }
        _ => errors.push(
            &sig.ident,
            format!(
                "service methods take `&self` first, e.g. `fn {name}(&self, …)`; associated \
                 functions cannot be called remotely"
            ),
        ),
    }

    let mut args = Vec::new();
    for arg in &sig.inputs {
        let FnArg::Typed(arg) = arg else { continue };
        match &*arg.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => args.push(ArgDef {
                ident: &p.ident,
                ty: &arg.ty,
            }),
            pat => errors.push(
                pat,
                "patterns are not supported in a service method's arguments; name the \
                 argument, e.g. `value: Type`, and destructure it in the implementation",
            ),
        }
        check_type(&arg.ty, "argument", errors);
    }
    let output = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => {
            check_type(ty, "return type", errors);
            match &**ty {
                Type::Tuple(t) if t.elems.is_empty() => None,
                ty => Some(ty),
            }
        }
    };
    let sink = check_sinks(sig, &args, output, errors);
    MethodDef {
        original,
        index,
        args,
        output,
        sink,
    }
}

/// `T` if `ty` is written as a sink of events, `Sink<T>` (or `ipc_rpc::Sink<T>`).
fn sink_item(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Sink" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first() {
        Some(GenericArgument::Type(t)) if args.args.len() == 1 => Some(t),
        _ => None,
    }
}

/// A subscription takes one `Sink<T>`, last, and returns nothing: its name and `T`.
fn check_sinks<'a>(
    sig: &syn::Signature,
    args: &[ArgDef<'a>],
    output: Option<&Type>,
    errors: &mut Errors,
) -> Option<(&'a syn::Ident, &'a Type)> {
    let last = args.len().checked_sub(1)?;
    let sinks = args.iter().filter(|a| sink_item(a.ty).is_some()).count();
    for a in &args[..last] {
        if sink_item(a.ty).is_none() {
            continue;
        }
        let message = if sinks > 1 {
            "a subscription takes one `Sink`, as its last argument; to stream several kinds \
             of events, send one enum of them"
                .to_owned()
        } else {
            format!(
                "a `Sink` must be the last argument: it makes the method a subscription, \
                 whose other arguments come first; move `{}` to the end",
                names::plain(a.ident)
            )
        };
        errors.push(a.ty, message);
    }
    let item = sink_item(args[last].ty)?;
    if let ReturnType::Type(_, ty) = &sig.output
        && output.is_some()
    {
        errors.push(
            ty,
            "a subscription (a method taking a `Sink`) returns nothing: the client gets a \
             `Subscription` of the sink's events; remove the return type, and send what it \
             would carry as an event",
        );
    }
    Some((args[last].ident, item))
}

/// Refuses types that cannot cross a process boundary, anywhere inside `ty`.
fn check_type(ty: &Type, role: &str, errors: &mut Errors) {
    let article = if role.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    let as_role = format!("as {article} {role}");
    match ty {
        Type::Reference(r) => errors.push(
            r,
            format!(
                "a borrowed {role} cannot cross a process boundary; use an owned type (`String` \
                 for `&str`, `Vec<T>` for `&[T]`, `T` for `&T`)"
            ),
        ),
        Type::ImplTrait(i) => errors.push(
            i,
            format!("`impl Trait` is not supported {as_role}: the other process needs a concrete type; name one"),
        ),
        Type::TraitObject(o) => errors.push(
            o,
            format!("a trait object cannot be sent {as_role}; use a concrete type or an enum"),
        ),
        Type::BareFn(f) => errors.push(f, format!("a function pointer cannot be sent {as_role}; send data and match on it")),
        Type::Ptr(p) => errors.push(p, format!("a raw pointer cannot be sent {as_role}; send the data it points to")),
        Type::Infer(i) => errors.push(i, format!("write the {role} out in full; `_` is not allowed here")),
        Type::Macro(m) => errors.push(m, format!("a type macro is not supported {as_role}; write the type out")),
        Type::Never(n) => errors.push(n, format!("`!` is not supported {as_role}; use `()`")),
        Type::Paren(p) => check_type(&p.elem, role, errors),
        Type::Group(g) => check_type(&g.elem, role, errors),
        Type::Array(a) => check_type(&a.elem, role, errors),
        Type::Slice(s) => check_type(&s.elem, role, errors),
        Type::Tuple(t) => t.elems.iter().for_each(|e| check_type(e, role, errors)),
        Type::Path(p) => {
            if p.qself.is_some() {
                errors.push(p, format!("qualified paths are not supported {as_role}; name the type directly"));
                return;
            }
            if p.path.segments.first().is_some_and(|s| s.ident == "Self") {
                errors.push(
                    &p.path,
                    format!("`Self` is the service itself and cannot be sent {as_role}; use a concrete type"),
                );
                return;
            }
            for seg in &p.path.segments {
                match &seg.arguments {
                    PathArguments::AngleBracketed(args) => {
                        for a in &args.args {
                            match a {
                                GenericArgument::Type(t) => check_type(t, role, errors),
                                GenericArgument::Lifetime(l) => errors.push(
                                    l,
                                    format!("a {role} that borrows (`{l}`) cannot cross a process boundary; use an owned type"),
                                ),
                                _ => {}
                            }
                        }
                    }
                    PathArguments::Parenthesized(p) => errors.push(
                        p,
                        format!("a closure type cannot be sent {as_role}; send data and match on it"),
                    ),
                    PathArguments::None => {}
                }
            }
        }
        _ => errors.push(ty, format!("this {role} type is not supported; use an owned, serde-serialisable type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(t: &ItemTrait) -> Vec<String> {
        match check(t) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let t: ItemTrait = syn::parse_quote! {
            trait Bad {
                async fn a(&self, (x, y): (u8, u8));
                fn b(&mut self, s: &str) -> impl Clone;
                fn connect(&self);
            }
        };
        let m = messages(&t);
        assert_eq!(m.len(), 6, "{m:#?}");
        assert!(m[0].starts_with("`async fn` is not supported"), "{}", m[0]);
        assert!(m[1].starts_with("patterns are not supported"), "{}", m[1]);
        assert!(m[2].starts_with("`&mut self` is not supported"), "{}", m[2]);
        assert!(m[3].starts_with("a borrowed argument"), "{}", m[3]);
        assert!(
            m[4].starts_with("`impl Trait` is not supported as a return type"),
            "{}",
            m[4]
        );
        assert!(m[5].starts_with("a method named `connect`"), "{}", m[5]);
    }

    #[test]
    fn a_valid_trait_becomes_the_model() {
        let t: ItemTrait = syn::parse_quote! {
            trait Good {
                fn a(&self, r#x: u8, y: Vec<u8>) -> ();
                type Ignored;
                fn b(&self) -> u8;
            }
        };
        assert_eq!(messages(&t).len(), 1, "the associated type is refused");
        let t: ItemTrait = syn::parse_quote! {
            trait Good {
                fn a(&self, r#x: u8, y: Vec<u8>) -> ();
                fn b(&self) -> u8;
            }
        };
        let Ok(s) = check(&t) else {
            panic!("refused a valid trait")
        };
        let [a, b] = &s.methods[..] else {
            panic!("two methods expected")
        };
        assert_eq!((a.index, b.index), (0, 1));
        let names: Vec<String> = a.arg_idents().map(names::plain).collect();
        assert_eq!(names, ["x", "y"]);
        assert!(a.output.is_none() && b.output.is_some());
    }
}
