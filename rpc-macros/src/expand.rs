//! Orchestration: parse the attribute and the item, check, then generate or fall back.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;

use crate::attr::ServiceArgs;
use crate::{fallback, valid};

mod async_client;
mod client;
mod info;
mod server;

pub fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let item: syn::Item = syn::parse2(item)?;
    let args = syn::parse2::<ServiceArgs>(attr);
    let syn::Item::Trait(item_trait) = &item else {
        let mut errors = syn::Error::new(
            item_keyword_span(&item),
            "#[ipc_service] goes on a trait, e.g. `#[ipc_service] pub trait Calculator { fn add(&self, a: i64, b: i64) -> i64; }`",
        );
        if let Err(e) = args {
            errors.combine(e);
        }
        return Ok(fallback::with_errors(&item, errors));
    };
    let (args, service) = match (args, valid::check(item_trait)) {
        (Ok(args), Ok(service)) => (args, service),
        (Err(mut errors), Err(more)) => {
            errors.combine(more);
            return Ok(fallback::with_errors(&item, errors));
        }
        (Err(errors), Ok(_)) | (Ok(_), Err(errors)) => {
            return Ok(fallback::with_errors(&item, errors));
        }
    };
    let client = client::generate(&service, &args.krate);
    let async_client = async_client::generate(&service, &args.krate);
    let server = server::generate(&service, &args.krate);
    Ok(quote! {
        #item_trait
        #client
        #async_client
        #server
    })
}

/// The token to underline when the attribute is on something that is not a trait.
/// An expression choosing the path of values of type `ty`: `ByteKind` for a byte string
/// (`Vec<u8>`, `ipc_rpc::Bytes`, any alias of them), `SerdeKind` otherwise. The choice
/// is made by the compiler on the type, not on how it is written (see
/// `__private::Tag`).
pub fn wire_kind(krate: &syn::Path, ty: &syn::Type) -> TokenStream {
    quote! {
        {
            use #krate::__private::{ViaBytes as _, ViaSerde as _};
            (&#krate::__private::Tag::<#ty>::NEW).wire_kind()
        }
    }
}

fn item_keyword_span(item: &syn::Item) -> proc_macro2::Span {
    match item {
        syn::Item::Struct(s) => s.struct_token.span,
        syn::Item::Enum(e) => e.enum_token.span,
        syn::Item::Fn(f) => f.sig.fn_token.span,
        syn::Item::Impl(i) => i.impl_token.span,
        syn::Item::Mod(m) => m.mod_token.span,
        syn::Item::Union(u) => u.union_token.span,
        syn::Item::Type(t) => t.type_token.span,
        other => other.span(),
    }
}
