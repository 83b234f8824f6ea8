//! `tls:` end to end (feature `tls`): mutual TLS with the client certificate's
//! subject seen by the handler, and every refusal the handshake makes, each with the
//! server still serving everyone else. Certificates are made per test (rcgen) in a
//! temp directory that is removed afterwards. Without the feature, a `tls:` endpoint
//! is refused as unsupported, never served as plain TCP.

mod common;

use ipc_rpc::{Endpoint, RpcError, ipc_service};

/// Tells a caller who the server thinks it is.
#[ipc_service]
pub trait Whoami {
    /// The caller's certificate subject, as `ipc_rpc::peer()` gives it.
    fn subject(&self) -> Option<String>;
}

struct Me;

impl Whoami for Me {
    fn subject(&self) -> Option<String> {
        ipc_rpc::peer()
            .expect("inside a handler")
            .subject
            .map(|s| s.to_string())
    }
}

/// An error and its sources on one line, as a user reads them.
fn chain(e: &RpcError) -> String {
    rpc_core::error::chain(e)
}

#[cfg(not(feature = "tls"))]
#[test]
fn without_the_feature_a_tls_endpoint_is_refused_not_served_as_tcp() {
    let ep: Endpoint = "tls:127.0.0.1:0?cert=/nonexistent.pem&key=/nonexistent.key"
        .parse()
        .unwrap();
    let e = ipc_rpc::serve(&ep, WhoamiServer::new(Me)).unwrap_err();
    assert!(
        e.to_string().contains("no TLS") || format!("{e:?}").contains("no TLS"),
        "{e:?}"
    );
    let e = WhoamiClient::connect(&"tls:127.0.0.1:1?ca=/x.pem".parse().unwrap()).unwrap_err();
    assert!(
        chain(&e).contains("enable the cargo feature `tls`"),
        "{}",
        chain(&e)
    );
}

#[cfg(feature = "tls")]
mod with_tls {
    use super::*;
    use common::certs::{CLIENT_SUBJECT, Certs};
    use common::watchdog;
    use std::time::Duration;

    const WATCHDOG: Duration = Duration::from_secs(60);

    /// A server at `tls:127.0.0.1:0` with `options`.
    fn serve(options: &str) -> ipc_rpc::ServerHandle {
        let ep: Endpoint = format!("tls:127.0.0.1:0?{options}").parse().unwrap();
        ipc_rpc::serve(&ep, WhoamiServer::new(Me)).expect("serve")
    }

    /// `server`'s address with a client's `options`.
    fn client_endpoint(server: &ipc_rpc::ServerHandle, host: &str, options: &str) -> Endpoint {
        let ipc_rpc::EndpointKind::Tls { port, .. } = server.endpoint().kind().clone() else {
            unreachable!("a tls server")
        };
        format!("tls:{host}:{port}?{options}").parse().unwrap()
    }

    /// A server that requires client certificates of `ca.pem`, and where a client
    /// with the good one connects.
    fn mutual(certs: &Certs) -> (ipc_rpc::ServerHandle, Endpoint) {
        let server = serve(&format!(
            "{}&{}",
            certs.identity("server"),
            certs.ca("ca.pem")
        ));
        let ep = client_endpoint(
            &server,
            "localhost",
            &format!("{}&{}", certs.ca("ca.pem"), certs.identity("client")),
        );
        (server, ep)
    }

    /// Connects with `options` and expects a refusal whose text contains `want`;
    /// prints it (the messages the README quotes).
    fn refused(case: &str, ep: &Endpoint, want: &str) {
        let e = match WhoamiClient::connect(ep) {
            Ok(client) => match client.subject() {
                Ok(s) => panic!("{case}: connected and called (subject {s:?})"),
                Err(e) => e,
            },
            Err(e) => e,
        };
        let text = chain(&e);
        eprintln!("{case}: {text}");
        assert!(text.contains(want), "{case}: {text}");
    }

    #[test]
    fn mutual_tls_gives_the_handler_the_client_certificate_subject() {
        watchdog(WATCHDOG, || {
            let certs = Certs::new();
            let (server, ep) = mutual(&certs);
            let client = WhoamiClient::connect(&ep).expect("connect with a client certificate");
            assert_eq!(client.subject().unwrap().as_deref(), Some(CLIENT_SUBJECT));
            // Without `ca` on the server, clients need no certificate, and show none.
            let open = serve(&certs.identity("server"));
            let ep = client_endpoint(&open, "127.0.0.1", &certs.ca("ca.pem"));
            let client = WhoamiClient::connect(&ep).expect("connect without a certificate");
            assert_eq!(client.subject().unwrap(), None);
            server.shutdown();
            open.shutdown();
        });
    }

    #[test]
    fn a_mutual_tls_server_refuses_bad_clients_and_serves_the_others() {
        watchdog(WATCHDOG, || {
            let certs = Certs::new();
            let (server, good) = mutual(&certs);
            let serves = || {
                let c = WhoamiClient::connect(&good).expect("a good client connects");
                assert_eq!(c.subject().unwrap().as_deref(), Some(CLIENT_SUBJECT));
            };
            let cases = [
                (
                    "no client certificate",
                    certs.ca("ca.pem"),
                    "the server requires a client certificate (mutual TLS)",
                ),
                (
                    "a client certificate of another authority",
                    format!("{}&{}", certs.ca("ca.pem"), certs.identity("other-client")),
                    "the server refused this client's certificate",
                ),
                (
                    "an expired client certificate",
                    format!(
                        "{}&{}",
                        certs.ca("ca.pem"),
                        certs.identity("expired-client")
                    ),
                    "the server refused this client's certificate: it has expired or is not valid yet",
                ),
                (
                    "the wrong CA on the client",
                    format!("{}&{}", certs.ca("other-ca.pem"), certs.identity("client")),
                    "the server's certificate is not signed by the authority in `ca`",
                ),
            ];
            for (case, options, want) in cases {
                refused(case, &client_endpoint(&server, "localhost", &options), want);
                serves();
            }
            // A plain tcp: client: refused with a reason it can read.
            let ipc_rpc::EndpointKind::Tls { port, .. } = server.endpoint().kind().clone() else {
                unreachable!()
            };
            let plain: Endpoint = format!("tcp:127.0.0.1:{port}").parse().unwrap();
            let e = WhoamiClient::connect(&plain).unwrap_err();
            eprintln!("a plain tcp: client at a tls: server: {}", chain(&e));
            assert!(matches!(e, RpcError::Refused { .. }), "{e:?}");
            assert!(
                chain(&e).contains("this endpoint speaks TLS"),
                "{}",
                chain(&e)
            );
            serves();
            server.shutdown();
        });
    }

    #[test]
    fn a_client_refuses_servers_it_cannot_trust() {
        watchdog(WATCHDOG, || {
            let certs = Certs::new();
            let ca = certs.ca("ca.pem");
            for (case, identity, want) in [
                (
                    "a server certificate of another authority",
                    "other-server",
                    "the server's certificate is not signed by the authority in `ca`",
                ),
                (
                    "an expired server certificate",
                    "expired",
                    "the server's certificate has expired",
                ),
                (
                    "a server certificate not valid yet",
                    "future",
                    "the server's certificate is not valid yet",
                ),
                (
                    "a server certificate for another name",
                    "elsewhere",
                    "the server's certificate is not valid for the host name",
                ),
            ] {
                let server = serve(&certs.identity(identity));
                refused(case, &client_endpoint(&server, "localhost", &ca), want);
                server.shutdown();
            }
        });
    }

    #[test]
    fn a_tls_client_at_a_plain_tcp_server_is_refused_at_the_handshake() {
        watchdog(WATCHDOG, || {
            let certs = Certs::new();
            let server =
                ipc_rpc::serve(&"tcp:127.0.0.1:0".parse().unwrap(), WhoamiServer::new(Me)).unwrap();
            let ipc_rpc::EndpointKind::Tcp { port, .. } = server.endpoint().kind().clone() else {
                unreachable!()
            };
            let ep: Endpoint = format!("tls:127.0.0.1:{port}?{}", certs.ca("ca.pem"))
                .parse()
                .unwrap();
            refused(
                "a tls: client at a plain tcp: server",
                &ep,
                "closed the connection during the TLS handshake: is it a plain `tcp:` endpoint",
            );
            // The server still serves plain clients.
            let c = WhoamiClient::connect(&server.endpoint()).unwrap();
            assert_eq!(c.subject().unwrap(), None);
            server.shutdown();
        });
    }

    #[test]
    fn missing_or_mismatched_files_are_named_at_bind_and_connect() {
        let certs = Certs::new();
        let no_key = format!(
            "tls:127.0.0.1:0?cert={}&key={}",
            certs.path("server.pem"),
            certs.path("missing.key")
        );
        let e = ipc_rpc::serve(&no_key.parse().unwrap(), WhoamiServer::new(Me)).unwrap_err();
        let text = rpc_core::error::chain(&e);
        assert!(text.contains("missing.key"), "{text}");
        let wrong_key = format!(
            "tls:127.0.0.1:0?cert={}&key={}",
            certs.path("server.pem"),
            certs.path("client.key")
        );
        let e = ipc_rpc::serve(&wrong_key.parse().unwrap(), WhoamiServer::new(Me)).unwrap_err();
        let text = rpc_core::error::chain(&e);
        assert!(text.contains("does the key match"), "{text}");
        let e =
            ipc_rpc::serve(&"tls:127.0.0.1:0".parse().unwrap(), WhoamiServer::new(Me)).unwrap_err();
        assert!(rpc_core::error::chain(&e).contains("needs `cert="), "{e:?}");
        let e = WhoamiClient::connect(&"tls:127.0.0.1:1".parse().unwrap()).unwrap_err();
        assert!(chain(&e).contains("needs `ca="), "{}", chain(&e));
    }
}
