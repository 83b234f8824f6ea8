//! On invalid input: our errors plus the user's item, so that the user's `impl`
//! blocks still compile and only our messages show.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{FnArg, Pat, PatWild, TraitItem};

pub fn with_errors(item: &syn::Item, errors: syn::Error) -> TokenStream {
    let errors = errors.to_compile_error();
    let mut item = item.clone();
    if let syn::Item::Trait(t) = &mut item {
        unpattern_bodiless_args(t);
    }
    quote! {
        #errors
        #item
    }
}

/// Replaces argument patterns such as `(a, b): (i32, i32)` by `_` in methods without
/// a body: `valid` has refused them already, and rustc would add its own E0642 at the
/// same place. Methods with a body keep their patterns, which the body uses.
fn unpattern_bodiless_args(item: &mut syn::ItemTrait) {
    for item in &mut item.items {
        let TraitItem::Fn(f) = item else { continue };
        if f.default.is_some() {
            continue;
        }
        for arg in &mut f.sig.inputs {
            let FnArg::Typed(arg) = arg else { continue };
            if !matches!(&*arg.pat, Pat::Ident(_) | Pat::Wild(_)) {
                let underscore_token = syn::Token![_](arg.pat.span());
                *arg.pat = Pat::Wild(PatWild {
                    attrs: Vec::new(),
                    underscore_token,
                });
            }
        }
    }
}
