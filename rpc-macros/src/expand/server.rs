//! `{Trait}Server<S>`: decodes arguments, calls `S`'s method, encodes the reply.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Path;
use syn::spanned::Spanned;

use crate::ast::{ArgDef, MethodDef, ServiceDef};
use crate::expand::wire_kind;
use crate::names;

pub fn generate(service: &ServiceDef<'_>, krate: &Path) -> TokenStream {
    let vis = &service.original.vis;
    let trait_ident = service.ident();
    let client = names::client(trait_ident);
    let server = names::server(trait_ident);
    let arms = service.methods.iter().map(|m| arm(m, krate, trait_ident));
    let doc = format!(
        "Serves an implementation of [`{}`]: pass `{server}::new(service)` to `ipc_rpc::serve`.",
        names::plain(trait_ident)
    );
    quote! {
        #[doc = #doc]
        #vis struct #server<__S> {
            __service: __S,
        }

        impl<__S> #server<__S>
        where
            __S: #trait_ident + ::core::marker::Send + ::core::marker::Sync + 'static,
        {
            /// Wraps the implementation that will answer every call.
            pub fn new(service: __S) -> Self {
                #server { __service: service }
            }

            /// The wrapped implementation.
            pub fn service(&self) -> &__S {
                &self.__service
            }
        }

        impl<__S> #krate::dispatch::Dispatch for #server<__S>
        where
            __S: #trait_ident + ::core::marker::Send + ::core::marker::Sync + 'static,
        {
            fn info(&self) -> &'static #krate::ServiceInfo {
                #client::SERVICE
            }

            fn dispatch(
                &self,
                __ipc_method: u16,
                __ipc_args: #krate::dispatch::Payload<'_>,
                __ipc_reply: &mut #krate::dispatch::Reply<'_>,
            ) -> ::core::result::Result<(), #krate::dispatch::DispatchError> {
                match __ipc_method {
                    #(#arms)*
                    _ => ::core::result::Result::Err(#krate::dispatch::DispatchError::UnknownMethod),
                }
            }
        }
    }
}

fn arm(m: &MethodDef<'_>, krate: &Path, trait_ident: &syn::Ident) -> TokenStream {
    if let Some((sink, item)) = m.sink {
        return subscription_arm(m, krate, trait_ident, sink, item);
    }
    let ident = m.ident();
    let index = m.index;
    let cfgs = m.cfgs();
    let ret = m.output.map_or_else(|| quote!(()), |t| quote!(#t));
    let arg_idents = m.arg_idents();
    let mutability = if m.args.is_empty() {
        quote!()
    } else {
        quote!(mut)
    };
    let decodes = decode_args(&m.args, krate);
    let encode = match m.output {
        Some(t) => {
            let kind = wire_kind(krate, t);
            quote_spanned! {t.span()=>
                #kind.encode_reply(&__ipc_ret, __ipc_reply, |__ipc_v, __ipc_r| {
                    <#t as #krate::__private::Wire<_>>::encode_reply(__ipc_v, __ipc_r)
                })
            }
        }
        None => {
            quote! { <() as #krate::__private::Wire<_>>::encode_reply(&__ipc_ret, __ipc_reply) }
        }
    };
    quote! {
        #(#cfgs)*
        #index => {
            let #mutability __ipc_rest: #krate::dispatch::Payload<'_> = __ipc_args;
            #(#decodes)*
            #krate::__private::finish_args(__ipc_rest)?;
            let __ipc_ret: #ret = <__S as #trait_ident>::#ident(&self.__service #(, #arg_idents)*);
            #encode
        }
    }
}

/// The statements that take `args` off the front of `__ipc_rest`, each into a local of
/// its name, by its type's path (byte string or serde).
fn decode_args(args: &[ArgDef<'_>], krate: &Path) -> Vec<TokenStream> {
    args.iter()
        .map(|a| {
            let name = a.ident;
            let ty = a.ty;
            let kind = wire_kind(krate, ty);
            quote_spanned! {ty.span()=>
                let #name: #ty = #kind.decode_arg(&mut __ipc_rest, |__ipc_r| {
                    <#ty as #krate::__private::Wire<_>>::decode_arg(__ipc_r)
                })?;
            }
        })
        .collect()
}

/// The dispatch arm of subscription method `m`: decodes the arguments and the
/// subscriber's window (sent in the sink's place), opens the sink and hands it to the
/// handler. The stream's final reply goes when the last clone of the sink is dropped.
fn subscription_arm(
    m: &MethodDef<'_>,
    krate: &Path,
    trait_ident: &syn::Ident,
    sink: &syn::Ident,
    item: &syn::Type,
) -> TokenStream {
    let ident = m.ident();
    let index = m.index;
    let cfgs = m.cfgs();
    let args = m.value_args();
    let arg_idents = args.iter().map(|a| a.ident);
    let decodes = decode_args(args, krate);
    quote! {
        #(#cfgs)*
        #index => {
            let mut __ipc_rest: #krate::dispatch::Payload<'_> = __ipc_args;
            #(#decodes)*
            let __ipc_window: u32 = <u32 as #krate::__private::Wire<_>>::decode_arg(&mut __ipc_rest)?;
            #krate::__private::finish_args(__ipc_rest)?;
            let #sink = #krate::Sink::<#item>::open(__ipc_reply, __ipc_window)?;
            <__S as #trait_ident>::#ident(&self.__service #(, #arg_idents)*, #sink);
            ::core::result::Result::Ok(())
        }
    }
}
