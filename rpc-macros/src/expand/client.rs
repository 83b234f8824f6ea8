//! `{Trait}Client`: one method per trait method, each returning `Result<_, RpcError>`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::Path;
use syn::spanned::Spanned;

use crate::ast::{MethodDef, ServiceDef};
use crate::expand::info::service_info;
use crate::expand::wire_kind;
use crate::names;

pub fn generate(service: &ServiceDef<'_>, krate: &Path) -> TokenStream {
    let vis = &service.original.vis;
    let trait_ident = service.ident();
    let name = names::plain(trait_ident);
    let client = names::client(trait_ident);
    let info = service_info(service, krate);
    let methods = service
        .methods
        .iter()
        .map(|m| stub(m, krate, trait_ident, Stub::Blocking));
    let doc = format!(
        "Client of the [`{name}`] service: one method per trait method, each returning \
         `Result<_, RpcError>`.\n\nCheap to clone; clones share one connection (or one \
         worker pool), and any number of threads may call at once. Make one with \
         `connect`, `ipc_rpc::spawn_child` or a `ipc_rpc::pool::Pool`."
    );
    quote! {
        #[doc = #doc]
        #vis struct #client {
            __client: #krate::Client,
        }

        const _: () = {
            impl #krate::ServiceClient for #client {
                const SERVICE: &'static #krate::ServiceInfo = #client::SERVICE;

                fn from_client(client: #krate::Client) -> Self {
                    #client { __client: client }
                }
            }

            impl ::core::clone::Clone for #client {
                fn clone(&self) -> Self {
                    #client { __client: ::core::clone::Clone::clone(&self.__client) }
                }
            }

            impl ::core::fmt::Debug for #client {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    ::core::fmt::Debug::fmt(&self.__client, f)
                }
            }
        };

        impl #client {
            /// Name and methods of this service, each with the structure of its
            /// arguments and reply and their fingerprint: the client maps its methods to
            /// the server's by them at connect.
            pub const SERVICE: &'static #krate::ServiceInfo = #info;

            /// Connects to a server of this service at `endpoint`.
            ///
            /// # Errors
            ///
            /// `RpcError::Connect` if nothing can be reached there, `RpcError::Incompatible`
            /// if the server runs another service or signature.
            pub fn connect(endpoint: &#krate::Endpoint) -> ::core::result::Result<Self, #krate::RpcError> {
                ::core::result::Result::Ok(#client {
                    __client: #krate::__private::connect(endpoint, Self::SERVICE)?,
                })
            }

            /// Wraps a connected, handshaken core client (as made by a worker pool).
            pub fn from_client(client: #krate::Client) -> Self {
                #client { __client: client }
            }

            /// A client on the same connection (or pool) whose calls fail with
            /// `RpcError::Timeout` after `timeout`; the connection stays usable.
            pub fn with_timeout(&self, timeout: ::core::time::Duration) -> Self {
                #client { __client: self.__client.with_timeout(timeout) }
            }

            /// Closes the connection for this client and every clone of it: waiting and
            /// later calls fail with `Disconnected`, the server sees it end at once.
            pub fn close(&self) {
                self.__client.close()
            }

            /// This client's per-call deadline, if any.
            pub fn timeout(&self) -> ::core::option::Option<::core::time::Duration> {
                self.__client.timeout()
            }

            /// The server's endpoint.
            pub fn peer(&self) -> &str {
                self.__client.peer()
            }

            #(#methods)*
        }
    }
}

/// Which client a method stub is for.
#[derive(Clone, Copy)]
pub(super) enum Stub {
    /// `{Trait}Client`: `fn`, over `ipc_rpc::Client`.
    Blocking,
    /// `{Trait}AsyncClient`: `async fn`, over `ipc_rpc::AsyncClient`.
    Async,
}

/// A client's method for trait method `m`: it encodes the arguments (a trailing byte
/// string apart) and calls through `self.__client`.
pub(super) fn stub(
    m: &MethodDef<'_>,
    krate: &Path,
    trait_ident: &syn::Ident,
    kind: Stub,
) -> TokenStream {
    if let Some((_, item)) = m.sink {
        return subscription_stub(m, krate, trait_ident, kind, item);
    }
    let ident = m.ident();
    let docs = m.docs();
    let cfgs = m.cfgs();
    let see = format!(
        "\n\nRuns [`{trait_ident}::{}`] on the server.",
        names::plain(ident)
    );
    let ret = m.output.map_or_else(|| quote!(()), |t| quote!(#t));
    let arg_idents = m.arg_idents();
    let arg_tys = m.args.iter().map(|a| a.ty);
    let (split, bulk) = split_bulk(m, krate);
    let buf = if m.args.is_empty() {
        format_ident!("_")
    } else {
        format_ident!("__ipc_buf")
    };
    let encodes = encode_args(m, krate);
    let (asyncness, call) = match kind {
        Stub::Blocking => (quote!(), blocking_call(m, krate, &bulk)),
        Stub::Async => (quote!(async), async_call(m, krate, &bulk)),
    };
    quote! {
        #(#cfgs)*
        #(#docs)*
        #[doc = #see]
        pub #asyncness fn #ident(&self #(, #arg_idents: #arg_tys)*) -> ::core::result::Result<#ret, #krate::RpcError> {
            #split
            let __ipc_encode = move |#buf: &mut #krate::__private::FrameBuf<'_>| -> ::core::result::Result<(), #krate::CodecError> {
                #(#encodes)*
                ::core::result::Result::Ok(())
            };
            #call
        }
    }
}

/// The blocking call of method `m`, its reply decoded by its return type's path.
fn blocking_call(m: &MethodDef<'_>, krate: &Path, bulk: &TokenStream) -> TokenStream {
    let index = m.index;
    match m.output {
        Some(t) => {
            let kind = wire_kind(krate, t);
            quote_spanned! {t.span()=>
                #kind.call(&self.__client, #index, __ipc_encode, #bulk, |__ipc_c, __ipc_m, __ipc_e, __ipc_b| {
                    <#t as #krate::__private::Wire<_>>::call(__ipc_c, __ipc_m, __ipc_e, __ipc_b)
                })
            }
        }
        None => {
            quote! { <() as #krate::__private::Wire<_>>::call(&self.__client, #index, __ipc_encode, #bulk) }
        }
    }
}

/// The async call of method `m`, awaited, its reply decoded by its return type's path.
fn async_call(m: &MethodDef<'_>, krate: &Path, bulk: &TokenStream) -> TokenStream {
    let index = m.index;
    let decode = match m.output {
        Some(t) => {
            let kind = wire_kind(krate, t);
            quote_spanned! {t.span()=>
                |__ipc_p| #kind.decode_reply(__ipc_p, |__ipc_p| {
                    <#t as #krate::__private::Wire<_>>::decode_reply(__ipc_p)
                })
            }
        }
        None => quote! { <() as #krate::__private::Wire<_>>::decode_reply },
    };
    quote! { self.__client.call_with(#index, __ipc_encode, #bulk, #decode).await }
}

/// A trailing byte string is sent from where it is, after the other arguments: the
/// statement that splits it off (or keeps any other type, in `Some`, with the others),
/// and the expression of the split-off bytes.
fn split_bulk(m: &MethodDef<'_>, krate: &Path) -> (TokenStream, TokenStream) {
    match m.args.split_last() {
        Some((last, _)) => {
            let ident = last.ident;
            let kind = wire_kind(krate, last.ty);
            (
                quote! { let (__ipc_bulk, #ident) = #kind.bulk(#ident); },
                quote! { __ipc_bulk },
            )
        }
        None => (quote!(), quote! { ::core::option::Option::None }),
    }
}

/// The statements that encode a method's arguments into `__ipc_buf` (the last one
/// only if `split_bulk` kept it).
fn encode_args(m: &MethodDef<'_>, krate: &Path) -> Vec<TokenStream> {
    let last = m.args.len().saturating_sub(1);
    m.args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let ident = a.ident;
            let ty = a.ty;
            if i == last {
                return quote_spanned! {ty.span()=>
                    if let ::core::option::Option::Some(#ident) = &#ident {
                        <#ty as #krate::__private::Wire<_>>::encode_arg(#ident, __ipc_buf)?;
                    }
                };
            }
            let kind = wire_kind(krate, ty);
            quote_spanned! {ty.span()=>
                #kind.encode_arg(&#ident, __ipc_buf, |__ipc_v, __ipc_b| {
                    <#ty as #krate::__private::Wire<_>>::encode_arg(__ipc_v, __ipc_b)
                })?;
            }
        })
        .collect()
}

/// A client's method for subscription method `m`: it encodes the arguments but the
/// sink and returns the subscription to the sink's events (`item`).
fn subscription_stub(
    m: &MethodDef<'_>,
    krate: &Path,
    trait_ident: &syn::Ident,
    kind: Stub,
    item: &syn::Type,
) -> TokenStream {
    let ident = m.ident();
    let docs = m.docs();
    let cfgs = m.cfgs();
    let index = m.index;
    let see = format!(
        "\n\nSubscribes to [`{trait_ident}::{}`] on the server: its events, in order, until \
         the server drops the sink.",
        names::plain(ident)
    );
    let args = m.value_args();
    let arg_idents: Vec<_> = args.iter().map(|a| a.ident).collect();
    let arg_tys = args.iter().map(|a| a.ty);
    let buf = if args.is_empty() {
        format_ident!("_")
    } else {
        format_ident!("__ipc_buf")
    };
    let encodes = args.iter().map(|a| {
        let ident = a.ident;
        let ty = a.ty;
        let kind = wire_kind(krate, ty);
        quote_spanned! {ty.span()=>
            #kind.encode_arg(&#ident, __ipc_buf, |__ipc_v, __ipc_b| {
                <#ty as #krate::__private::Wire<_>>::encode_arg(__ipc_v, __ipc_b)
            })?;
        }
    });
    let (asyncness, ret, call) = match kind {
        Stub::Blocking => (
            quote!(),
            quote!(#krate::Subscription<#item>),
            quote! { self.__client.subscribe::<#item>(#index, __ipc_encode) },
        ),
        Stub::Async => (
            quote!(async),
            quote!(#krate::AsyncSubscription<#item>),
            quote! { self.__client.subscribe::<#item>(#index, __ipc_encode).await },
        ),
    };
    quote! {
        #(#cfgs)*
        #(#docs)*
        #[doc = #see]
        pub #asyncness fn #ident(&self #(, #arg_idents: #arg_tys)*) -> ::core::result::Result<#ret, #krate::RpcError> {
            let __ipc_encode = move |#buf: &mut #krate::__private::FrameBuf<'_>| -> ::core::result::Result<(), #krate::CodecError> {
                #(#encodes)*
                ::core::result::Result::Ok(())
            };
            #call
        }
    }
}
