//! Compile-time tests of `#[ipc_service]`, run with trybuild.
//!
//! - `ui/pass/*.rs` must compile: hygiene (`no_implicit_prelude`, a renamed crate),
//!   lint cleanliness and the shapes of trait the macro accepts.
//! - `ui/fail/<topic>/*.rs` must fail to compile. Each case holds one mistake and has
//!   the expected compiler output beside it as `<case>.stderr`.
//!
//! Workflow after adding a case or changing a message:
//!
//! ```text
//! TRYBUILD=overwrite cargo test -p rpc-macros --test ui
//! git diff -- rpc-macros/tests/ui
//! ```
//!
//! Review every changed `.stderr` before committing it: the carets must sit under
//! the token the user has to change, and the message must say what to write instead.
//! A snapshot that is mostly rustc's output (trait-bound notes naming serde
//! internals) means the generated code should point at the user's token more
//! precisely. After a toolchain upgrade, regenerate every snapshot in one commit.

#[test]
fn ui_pass() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
}

#[test]
fn ui_fail() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/**/*.rs");
}
