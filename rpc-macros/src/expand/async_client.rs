//! `{Trait}AsyncClient`: one `async fn` per trait method, each returning
//! `Result<_, RpcError>`. Emitted inside `__private::if_tokio!`, so it exists only when
//! the `ipc-rpc` crate is built with its `tokio` feature.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Path;

use crate::ast::ServiceDef;
use crate::expand::client::{Stub, stub};
use crate::names;

pub fn generate(service: &ServiceDef<'_>, krate: &Path) -> TokenStream {
    let vis = &service.original.vis;
    let trait_ident = service.ident();
    let name = names::plain(trait_ident);
    let client = names::client(trait_ident);
    let async_client = names::async_client(trait_ident);
    let methods = service
        .methods
        .iter()
        .map(|m| stub(m, krate, trait_ident, Stub::Async));
    let doc = format!(
        "Async client of the [`{name}`] service (feature `tokio` of ipc-rpc): one `async fn` \
         per trait method, each returning `Result<_, RpcError>`.\n\nCheap to clone; clones \
         share one connection, and any number of tasks may call at once without blocking \
         the runtime. Dropping a call's future abandons the call (the server's handler sees \
         `ipc_rpc::cancelled()`). Make one with `connect(&endpoint).await` or \
         `ipc_rpc::spawn_child_async`."
    );
    quote! {
        #krate::__private::if_tokio! {
            #[doc = #doc]
            #vis struct #async_client {
                __client: #krate::AsyncClient,
            }

            const _: () = {
                impl #krate::AsyncServiceClient for #async_client {
                    const SERVICE: &'static #krate::ServiceInfo = #client::SERVICE;

                    fn from_async_client(client: #krate::AsyncClient) -> Self {
                        #async_client { __client: client }
                    }
                }

                impl ::core::clone::Clone for #async_client {
                    fn clone(&self) -> Self {
                        #async_client { __client: ::core::clone::Clone::clone(&self.__client) }
                    }
                }

                impl ::core::fmt::Debug for #async_client {
                    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                        ::core::fmt::Debug::fmt(&self.__client, f)
                    }
                }
            };

            impl #async_client {
                /// Connects to a server of this service at `endpoint`, without blocking the
                /// runtime (the connection is made on tokio's blocking pool).
                ///
                /// # Errors
                ///
                /// `RpcError::Connect` if nothing can be reached there, `RpcError::Incompatible`
                /// if the server runs another service or signature.
                pub async fn connect(endpoint: &#krate::Endpoint) -> ::core::result::Result<Self, #krate::RpcError> {
                    ::core::result::Result::Ok(#async_client {
                        __client: #krate::__private::connect_async(endpoint, #client::SERVICE).await?,
                    })
                }

                /// A client on the same connection whose calls fail with
                /// `RpcError::Timeout` after `timeout` (the server is told); the connection
                /// stays usable.
                pub fn with_timeout(&self, timeout: ::core::time::Duration) -> Self {
                    #async_client { __client: self.__client.with_timeout(timeout) }
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
}
