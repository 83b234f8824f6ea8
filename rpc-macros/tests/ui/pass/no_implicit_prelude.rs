//! Hygiene: every path the expansion writes is absolute, so nothing depends on the
//! prelude; the facade can also be reached through a re-export or under another
//! name with `#[ipc_service(crate = "...")]`.
#![no_implicit_prelude]

extern crate ipc_rpc as renamed_rpc;

mod deps {
    pub use ::ipc_rpc as rpc;
}

mod direct {
    #[::ipc_rpc::ipc_service]
    pub trait Store {
        fn get(&self, key: ::std::string::String) -> ::core::option::Option<::std::vec::Vec<u8>>;
        fn put(&self, key: ::std::string::String, value: ::std::vec::Vec<u8>) -> ::core::result::Result<(), ::std::string::String>;
        fn clear(&self);
        fn len(&self) -> usize;
    }
}

mod reexported {
    #[crate::deps::rpc::ipc_service(crate = "crate::deps::rpc")]
    pub trait Store {
        fn get(&self, key: ::std::string::String) -> ::core::option::Option<::std::vec::Vec<u8>>;
        fn put(&self, key: ::std::string::String, value: ::std::vec::Vec<u8>) -> ::core::result::Result<(), ::std::string::String>;
        fn clear(&self);
    }
}

mod renamed {
    #[::renamed_rpc::ipc_service(crate = "::renamed_rpc")]
    pub trait Store {
        fn get(&self, key: ::std::string::String) -> ::core::option::Option<::std::vec::Vec<u8>>;
    }
}

fn main() {
    let _: &::ipc_rpc::ServiceInfo = direct::StoreClient::SERVICE;
    let _: &::ipc_rpc::ServiceInfo = reexported::StoreClient::SERVICE;
    let _: &::ipc_rpc::ServiceInfo = renamed::StoreClient::SERVICE;
}
