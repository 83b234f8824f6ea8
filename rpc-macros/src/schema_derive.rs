//! `#[derive(Schema)]`: a type's wire structure as postcard-schema's `Schema`, through
//! the facade's path, so users need no other dependency.
//!
//! It follows what serde writes for the type: fields and variants in order, by name
//! (`#[serde(rename = "...")]` honoured), `#[serde(skip)]` fields left out,
//! `#[serde(transparent)]` as its one field. Attributes that make serde write
//! something this derive cannot see (`with`, `flatten`, `untagged`, ...) are refused:
//! such a type implements `ipc_rpc::Schema` by hand.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, LitStr, Path};

use crate::attr::ServiceArgs;

/// serde attributes whose effect on the bytes a derived schema cannot describe.
const OPAQUE: &[&str] = &[
    "with",
    "serialize_with",
    "deserialize_with",
    "flatten",
    "untagged",
    "tag",
    "content",
    "remote",
    "into",
    "from",
    "try_from",
    "skip_serializing_if",
    "skip_serializing",
    "skip_deserializing",
];

pub fn derive(input: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    let krate = krate(&input.attrs)?;
    let serde = SerdeAttrs::read(&input.attrs)?;
    let name = LitStr::new(&input.ident.to_string(), input.ident.span());
    let s = quote!(#krate::schema);
    let ty = match &input.data {
        Data::Struct(data) if serde.transparent => {
            let kept = kept_fields(&data.fields)?;
            let [(_, field)] = kept.as_slice() else {
                return Err(syn::Error::new(
                    input.ident.span(),
                    "#[serde(transparent)] needs exactly one field that is not skipped",
                ));
            };
            let ty = &field.ty;
            let generics = with_bounds(&input, &krate);
            let ident = &input.ident;
            let (imp, tys, wher) = generics.split_for_impl();
            return Ok(quote! {
                impl #imp #s::Schema for #ident #tys #wher {
                    const SCHEMA: &'static #s::NamedType = <#ty as #s::Schema>::SCHEMA;
                }
            });
        }
        Data::Struct(data) => {
            let kind = quote!(#s::DataModelType);
            let names = ["UnitStruct", "Struct", "NewtypeStruct", "TupleStruct"];
            contents(&data.fields, &input.ident, &s, &kind, names)?
        }
        Data::Enum(data) => {
            let mut variants = Vec::new();
            for v in &data.variants {
                // A skipped variant keeps its place: serde numbers variants as declared.
                let attrs = SerdeAttrs::read(&v.attrs)?;
                let vname = attrs
                    .rename
                    .unwrap_or_else(|| LitStr::new(&v.ident.to_string(), v.ident.span()));
                let kind = quote!(#s::DataModelVariant);
                let names = [
                    "UnitVariant",
                    "StructVariant",
                    "NewtypeVariant",
                    "TupleVariant",
                ];
                let vty = contents(&v.fields, &input.ident, &s, &kind, names)?;
                variants.push(quote!(&#s::NamedVariant { name: #vname, ty: &#vty }));
            }
            quote!(#s::DataModelType::Enum(&[#(#variants),*]))
        }
        Data::Union(u) => {
            return Err(syn::Error::new(
                u.union_token.span,
                "#[derive(ipc_rpc::Schema)] takes structs and enums; serde does not derive unions either",
            ));
        }
    };
    let generics = with_bounds(&input, &krate);
    let ident = &input.ident;
    let (imp, tys, wher) = generics.split_for_impl();
    Ok(quote! {
        impl #imp #s::Schema for #ident #tys #wher {
            const SCHEMA: &'static #s::NamedType = &#s::NamedType {
                name: #name,
                ty: &#ty,
            };
        }
    })
}

/// A struct's or a variant's contents: `kind::{unit, named, newtype, tuple}` (the
/// four constructors of `DataModelType` or `DataModelVariant`, by name) of its fields.
fn contents(
    fields: &Fields,
    me: &syn::Ident,
    s: &TokenStream,
    kind: &TokenStream,
    [unit, named, newtype, tuple]: [&str; 4],
) -> syn::Result<TokenStream> {
    let ctor = |name: &str| syn::Ident::new(name, proc_macro2::Span::call_site());
    Ok(match fields {
        Fields::Unit => {
            let unit = ctor(unit);
            quote!(#kind::#unit)
        }
        Fields::Named(_) => {
            let named = ctor(named);
            let fields = named_values(fields, me, s)?;
            quote!(#kind::#named(&[#(#fields),*]))
        }
        Fields::Unnamed(_) => {
            let kept = kept_fields(fields)?;
            let tys = kept
                .iter()
                .map(|(_, f)| field_schema(f, me, s))
                .collect::<syn::Result<Vec<_>>>()?;
            if kept.len() == 1 {
                let newtype = ctor(newtype);
                quote!(#kind::#newtype(#(#tys)*))
            } else {
                let tuple = ctor(tuple);
                quote!(#kind::#tuple(&[#(#tys),*]))
            }
        }
    })
}

/// `#[schema(crate = "path")]`, else `::ipc_rpc`.
fn krate(attrs: &[Attribute]) -> syn::Result<Path> {
    match attrs.iter().find(|a| a.path().is_ident("schema")) {
        Some(attr) => Ok(attr.parse_args::<ServiceArgs>()?.krate),
        None => Ok(syn::parse_quote!(::ipc_rpc)),
    }
}

/// The type's generics, each type parameter bound by `Schema`.
fn with_bounds(input: &DeriveInput, krate: &Path) -> syn::Generics {
    let mut generics = input.generics.clone();
    for param in generics.type_params_mut() {
        param.bounds.push(syn::parse_quote!(#krate::schema::Schema));
    }
    generics
}

/// The fields serde writes, each with its serde name.
fn kept_fields(fields: &Fields) -> syn::Result<Vec<(Option<LitStr>, &syn::Field)>> {
    let mut kept = Vec::new();
    for f in fields {
        let attrs = SerdeAttrs::read(&f.attrs)?;
        if attrs.skip {
            continue;
        }
        let name = attrs.rename.or_else(|| {
            f.ident
                .as_ref()
                .map(|i| LitStr::new(&syn::ext::IdentExt::unraw(i).to_string(), i.span()))
        });
        kept.push((name, f));
    }
    Ok(kept)
}

fn named_values(
    fields: &Fields,
    me: &syn::Ident,
    s: &TokenStream,
) -> syn::Result<Vec<TokenStream>> {
    kept_fields(fields)?
        .into_iter()
        .map(|(name, f)| {
            let schema = field_schema(f, me, s)?;
            Ok(quote! { &#s::NamedValue { name: #name, ty: #schema } })
        })
        .collect()
}

/// A field's schema: its type's, or, where the type refers back to the one being
/// derived (`Option<Box<Self>>`, `Vec<Tree>`) or the field says
/// `#[schema(recursive)]` (a cycle through other types), its type as written, compared
/// by that text: a schema is a constant, and cannot contain itself.
fn field_schema(f: &syn::Field, me: &syn::Ident, s: &TokenStream) -> syn::Result<TokenStream> {
    let ty = &f.ty;
    let mut marked = false;
    for attr in f.attrs.iter().filter(|a| a.path().is_ident("schema")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("recursive") {
                marked = true;
                Ok(())
            } else {
                Err(meta.error("a field takes `#[schema(recursive)]` only"))
            }
        })?;
    }
    if marked || mentions(ty, me) {
        let text = quote!(#ty).to_string().replace(' ', "");
        return Ok(quote_spanned! {ty.span()=>
            &#s::NamedType { name: #text, ty: &#s::DataModelType::ByName }
        });
    }
    Ok(quote_spanned!(ty.span()=> <#ty as #s::Schema>::SCHEMA))
}

/// Whether `ty` names `me` or `Self` anywhere.
fn mentions(ty: &syn::Type, me: &syn::Ident) -> bool {
    quote!(#ty).into_iter().any(|t| is_ident(&t, me))
}

fn is_ident(t: &proc_macro2::TokenTree, me: &syn::Ident) -> bool {
    match t {
        proc_macro2::TokenTree::Ident(i) => i == me || i == "Self",
        proc_macro2::TokenTree::Group(g) => g.stream().into_iter().any(|t| is_ident(&t, me)),
        _ => false,
    }
}

/// The serde attributes that change what is written.
#[derive(Default)]
struct SerdeAttrs {
    skip: bool,
    transparent: bool,
    rename: Option<LitStr>,
}

impl SerdeAttrs {
    fn read(attrs: &[Attribute]) -> syn::Result<SerdeAttrs> {
        let mut out = SerdeAttrs::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
            attr.parse_nested_meta(|meta| {
                let key = meta
                    .path
                    .get_ident()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                match key.as_str() {
                    "skip" => out.skip = true,
                    "transparent" => out.transparent = true,
                    "rename" => {
                        if meta.input.peek(syn::Token![=]) {
                            out.rename = Some(meta.value()?.parse()?);
                        } else {
                            return Err(meta.error(
                                "#[derive(ipc_rpc::Schema)] takes `rename = \"name\"`, not \
                                 separate serialize/deserialize names",
                            ));
                        }
                    }
                    k if OPAQUE.contains(&k) => {
                        return Err(meta.error(format!(
                            "#[derive(ipc_rpc::Schema)] cannot see what `#[serde({k})]` writes; \
                             implement `ipc_rpc::Schema` for this type by hand"
                        )));
                    }
                    _ => {
                        // Other keys (`default`, `bound`, `rename_all`, ...) do not
                        // change postcard's bytes; their values are skipped.
                        if meta.input.peek(syn::Token![=]) {
                            meta.value()?.parse::<syn::Expr>()?;
                        } else if meta.input.peek(syn::token::Paren) {
                            let _ = meta.parse_nested_meta(|inner| {
                                if inner.input.peek(syn::Token![=]) {
                                    inner.value()?.parse::<syn::Expr>()?;
                                }
                                Ok(())
                            });
                        }
                    }
                }
                Ok(())
            })?;
        }
        Ok(out)
    }
}
