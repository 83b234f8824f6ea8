//! Arguments of the attribute itself: `#[ipc_service(crate = "path")]`.

use syn::parse::{Parse, ParseStream};
use syn::{LitStr, Path, Token};

/// Key that names the path of the `ipc-rpc` crate, for re-exports.
const CRATE_KEY: &str = "crate";

/// Parsed attribute arguments.
pub struct ServiceArgs {
    /// Path to the facade crate; `::ipc_rpc` unless overridden.
    pub krate: Path,
}

impl Parse for ServiceArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut krate: Option<Path> = None;
        while !input.is_empty() {
            let key = if input.peek(Token![crate]) {
                let kw: Token![crate] = input.parse()?;
                syn::Ident::new(CRATE_KEY, kw.span)
            } else {
                input.parse::<syn::Ident>()?
            };
            if key != CRATE_KEY {
                return Err(syn::Error::new(
                    key.span(),
                    format!(
                        "unknown argument `{key}`; #[ipc_service] takes only `crate = \"path::to::ipc_rpc\"`"
                    ),
                ));
            }
            if krate.is_some() {
                return Err(syn::Error::new(
                    key.span(),
                    "`crate` is given twice; keep one",
                ));
            }
            input.parse::<Token![=]>()?;
            let path = if input.peek(LitStr) {
                input.parse::<LitStr>()?.parse::<Path>()?
            } else {
                input.parse::<Path>()?
            };
            krate = Some(path);
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(ServiceArgs {
            krate: krate.unwrap_or_else(|| syn::parse_quote!(::ipc_rpc)),
        })
    }
}
