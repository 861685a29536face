//! A test certificate authority and a server certificate signed by it.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A CA and one server certificate, in DER and PEM.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA certificate, DER.
    pub ca_der: Vec<u8>,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The server certificate, DER.
    pub cert_der: Vec<u8>,
    /// The server certificate, PEM.
    pub cert_pem: String,
    /// The server's private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// The server's private key, PEM.
    pub key_pem: String,
}

impl TestPki {
    /// A CA named `ca_name` and a server certificate for `names` (DNS
    /// names or IP addresses), made fresh (new keys every call).
    pub fn new(ca_name: &str, names: &[&str]) -> Result<TestPki, rcgen::Error> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate()?;
        let ca = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(TestPki {
            ca_der: ca.der().to_vec(),
            ca_pem: ca.pem(),
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            key_der: key.serialize_der(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A CA and a certificate for `localhost`, `127.0.0.1` and `::1`.
    pub fn loopback(ca_name: &str) -> Result<TestPki, rcgen::Error> {
        TestPki::new(ca_name, &["localhost", "127.0.0.1", "::1"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_pem_and_der() {
        let p = TestPki::loopback("test CA").unwrap();
        assert!(p.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(p.key_pem.contains("PRIVATE KEY"));
        assert!(!p.cert_der.is_empty() && !p.key_der.is_empty());
    }
}
