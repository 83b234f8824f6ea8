//! Certificates for the `tls:` tests, made fresh by each test (rcgen) in a temp
//! directory of its own that drop removes: no key is ever committed.
//!
//! Two authorities: `ca` signs the good certificates; `other-ca` signs a server and a
//! client certificate that `ca` does not vouch for. The server certificates are for
//! `localhost`, `127.0.0.1` and the test link's `169.254.77.1`; `expired`,
//! `future` (not valid yet) and `elsewhere` (another name) are the bad ones, and
//! `expired-client` among the client certificates; `peer`
//! is valid both as a server and as a client (one endpoint string for both sides).

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, date_time_ymd,
};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The names the good server certificates are valid for.
pub const SERVER_NAMES: &[&str] = &["localhost", "127.0.0.1", "169.254.77.1"];

/// The subject of the good client certificate, as a handler sees it.
pub const CLIENT_SUBJECT: &str = "CN=client-1,O=ipc-rpc tests";

/// A directory of PEM files; removed on drop.
pub struct Certs {
    dir: PathBuf,
}

struct Authority {
    cert: Certificate,
    key: KeyPair,
}

fn authority(name: &str) -> Authority {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("CA certificate");
    Authority { cert, key }
}

impl Certs {
    /// Makes every file.
    pub fn new() -> Certs {
        let dir = std::env::temp_dir().join(format!(
            "ipc-rpc-test-certs-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("certificate directory");
        let certs = Certs { dir };
        let ca = authority("ipc-rpc test CA");
        let other = authority("another CA");
        certs.write("ca.pem", &ca.cert.pem());
        certs.write("other-ca.pem", &other.cert.pem());
        let server = |names: &[&str]| {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let mut p = CertificateParams::new(names).expect("server params");
            p.distinguished_name.push(DnType::CommonName, "server");
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            p
        };
        certs.leaf("server", server(SERVER_NAMES), &ca);
        certs.leaf("other-server", server(SERVER_NAMES), &other);
        certs.leaf("elsewhere", server(&["elsewhere.test"]), &ca);
        let mut expired = server(SERVER_NAMES);
        expired.not_before = date_time_ymd(2020, 1, 1);
        expired.not_after = date_time_ymd(2021, 1, 1);
        certs.leaf("expired", expired, &ca);
        let mut future = server(SERVER_NAMES);
        future.not_before = date_time_ymd(2090, 1, 1);
        future.not_after = date_time_ymd(2091, 1, 1);
        certs.leaf("future", future, &ca);
        let client = || {
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("client params");
            p.distinguished_name.push(DnType::CommonName, "client-1");
            p.distinguished_name
                .push(DnType::OrganizationName, "ipc-rpc tests");
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            p
        };
        certs.leaf("client", client(), &ca);
        let mut peer = server(SERVER_NAMES);
        peer.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        certs.leaf("peer", peer, &ca);
        certs.leaf("other-client", client(), &other);
        let mut expired_client = client();
        expired_client.not_before = date_time_ymd(2020, 1, 1);
        expired_client.not_after = date_time_ymd(2021, 1, 1);
        certs.leaf("expired-client", expired_client, &ca);
        certs
    }

    fn write(&self, file: &str, pem: &str) {
        std::fs::write(self.dir.join(file), pem).expect("write a PEM file");
    }

    /// `<name>.pem` and `<name>.key`, signed by `by`.
    fn leaf(&self, name: &str, params: CertificateParams, by: &Authority) {
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &by.cert, &by.key).expect("sign");
        self.write(&format!("{name}.pem"), &cert.pem());
        self.write(&format!("{name}.key"), &key.serialize_pem());
    }

    /// The directory, which the caller now removes (drop no longer does).
    pub fn keep(self) -> PathBuf {
        let me = std::mem::ManuallyDrop::new(self);
        me.dir.clone()
    }

    /// The path of `file` (`ca.pem`, `server.key`, …).
    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// `cert=…&key=…` for the pair `<name>.pem`/`<name>.key`.
    pub fn identity(&self, name: &str) -> String {
        format!(
            "cert={}&key={}",
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key"))
        )
    }

    /// `ca=…` for `<file>`.
    pub fn ca(&self, file: &str) -> String {
        format!("ca={}", self.path(file))
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
