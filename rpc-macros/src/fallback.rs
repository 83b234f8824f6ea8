//! On invalid input: our errors plus the user's trait unchanged, so that the user's
//! `impl` blocks still compile and only our messages show.

use proc_macro2::TokenStream;
use quote::quote;

pub fn with_errors(item: &syn::ItemTrait, errors: syn::Error) -> TokenStream {
    let errors = errors.to_compile_error();
    quote! {
        #errors
        #item
    }
}
