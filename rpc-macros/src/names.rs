//! Names the macro derives from the user's.

use syn::Ident;
use syn::ext::IdentExt;

/// `Calculator` → `CalculatorClient`.
pub fn client(service: &Ident) -> Ident {
    suffixed(service, "Client")
}

/// `Calculator` → `CalculatorAsyncClient`.
pub fn async_client(service: &Ident) -> Ident {
    suffixed(service, "AsyncClient")
}

/// `Calculator` → `CalculatorServer`.
pub fn server(service: &Ident) -> Ident {
    suffixed(service, "Server")
}

fn suffixed(service: &Ident, suffix: &str) -> Ident {
    Ident::new(&format!("{}{suffix}", service.unraw()), service.span())
}

/// Inherent methods of the generated client; a trait method of the same name would clash.
pub const CLIENT_METHODS: &[&str] = &["connect", "from_client", "with_timeout", "timeout", "peer"];

/// A method's name as written, without `r#`.
pub fn plain(ident: &Ident) -> String {
    ident.unraw().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proc_macro2::Span;

    #[test]
    fn derived_names_drop_raw_prefix() {
        let raw = Ident::new_raw("match", Span::call_site());
        assert_eq!(plain(&raw), "match");
        let svc = Ident::new("Calculator", Span::call_site());
        assert_eq!(client(&svc).to_string(), "CalculatorClient");
        assert_eq!(server(&svc).to_string(), "CalculatorServer");
        assert_eq!(async_client(&svc).to_string(), "CalculatorAsyncClient");
    }
}
