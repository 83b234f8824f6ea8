//! `{Trait}Client::SERVICE`: the service's name and one `MethodInfo` per method, whose
//! argument and return schemas the compiler resolves (so a type without a schema is
//! refused at the trait, with a pointed message) and whose fingerprints it computes.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Path;
use syn::spanned::Spanned;

use crate::ast::{MethodDef, ServiceDef};
use crate::names;

/// The `ServiceInfo` expression.
pub fn service_info(service: &ServiceDef<'_>, krate: &Path) -> TokenStream {
    let name = names::plain(service.ident());
    let entries = service.methods.iter().map(|m| entry(m, krate));
    quote! {
        &#krate::ServiceInfo {
            name: #name,
            methods: &[#(#entries),*],
        }
    }
}

/// One method's `MethodInfo`; a method that `#[cfg]` leaves out keeps its place (the
/// method numbers after it stay) as an entry without a name, which no client matches.
fn entry(m: &MethodDef<'_>, krate: &Path) -> TokenStream {
    let name = names::plain(m.ident());
    let schema = |ty: &syn::Type| {
        quote_spanned! {ty.span()=> <#ty as #krate::Schema>::SCHEMA }
    };
    let args = m.args.iter().map(|a| {
        let arg = names::plain(a.ident);
        let schema = schema(a.ty);
        quote! { #krate::__private::Arg { name: #arg, schema: #schema } }
    });
    let output = m
        .output
        .map_or_else(|| schema(&syn::parse_quote!(())), schema);
    let present = quote! { #krate::__private::MethodInfo::new(#name, &[#(#args),*], #output) };
    let predicates: Vec<TokenStream> = m
        .cfgs()
        .filter_map(|attr| match &attr.meta {
            syn::Meta::List(list) => Some(list.tokens.clone()),
            _ => None,
        })
        .collect();
    if predicates.is_empty() {
        return present;
    }
    // Two entries, exactly one of which is compiled.
    quote! {
        #[cfg(all(#(#predicates),*))]
        #present,
        #[cfg(not(all(#(#predicates),*)))]
        #krate::__private::MethodInfo::ABSENT
    }
}
