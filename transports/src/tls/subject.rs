//! A certificate's subject as text (`CN=client-7,O=Example`): what a handler sees of
//! a client that showed a certificate.

use rustls::pki_types::CertificateDer;

/// The subject of `cert`, its attributes in certificate order, `None` if the
/// certificate cannot be parsed (it was verified already, so that does not happen).
pub(super) fn subject(cert: &CertificateDer<'_>) -> Option<String> {
    let cert = webpki::EndEntityCert::try_from(cert).ok()?;
    name(cert.subject())
}

/// One DER element: its tag, its contents and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The contents of an X.509 `Name` (a sequence of sets of attribute–value pairs).
fn name(mut input: &[u8]) -> Option<String> {
    const SET: u8 = 0x31;
    const SEQUENCE: u8 = 0x30;
    const OID: u8 = 0x06;
    let mut parts = Vec::new();
    while !input.is_empty() {
        let (tag, mut set, rest) = element(input)?;
        input = rest;
        if tag != SET {
            return None;
        }
        while !set.is_empty() {
            let (tag, pair, rest) = element(set)?;
            set = rest;
            if tag != SEQUENCE {
                return None;
            }
            let (tag, oid, value) = element(pair)?;
            if tag != OID {
                return None;
            }
            let (kind, value, _) = element(value)?;
            parts.push(format!("{}={}", label(oid), text(kind, value)));
        }
    }
    Some(parts.join(","))
}

/// The short name of a well-known attribute, else its dotted OID.
fn label(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        _ => dotted(oid),
    }
}

fn dotted(oid: &[u8]) -> String {
    let mut arcs = Vec::new();
    let mut value: u64 = 0;
    for &b in oid {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// A directory string as text: UTF-16 for `BMPString`, else the bytes as UTF-8.
fn text(kind: u8, value: &[u8]) -> String {
    const BMP_STRING: u8 = 0x1e;
    if kind == BMP_STRING {
        let units: Vec<u16> = value
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16_lossy(&units);
    }
    String::from_utf8_lossy(value).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_reads_as_its_attributes_in_order() {
        // SET { SEQ { OID 2.5.4.3, UTF8 "client-7" } }, SET { SEQ { OID 2.5.4.10, PrintableString "Ex" } }
        let der = [
            0x31, 0x11, 0x30, 0x0f, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x08, b'c', b'l', b'i',
            b'e', b'n', b't', b'-', b'7', 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x0a,
            0x13, 0x02, b'E', b'x',
        ];
        assert_eq!(name(&der).as_deref(), Some("CN=client-7,O=Ex"));
        assert_eq!(name(&der[..5]), None, "truncated");
        assert_eq!(
            dotted(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]),
            "1.2.840.113549"
        );
    }
}
