//! Certificates for a Vault cluster's TLS, as pure functions: a CA, a server certificate per
//! member carrying the names it is reached by, and what a certificate on disk says (its
//! names, its expiry, whether the cluster's CA signed it). Private keys exist only as
//! [`Secret`]s in memory; where they rest is the callers' business.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use super::secret::Secret;

/// A CA lasts ten years: vaultform does not rotate it (a new CA is `--replace vault.<v>.tls.ca`).
const CA_VALIDITY: Duration = Duration::days(3650);
/// Certificates start an hour in the past, for clocks a little behind.
const BACKDATE: Duration = Duration::hours(1);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("not a PEM certificate: {0}")]
    Parse(String),
}

/// A certificate authority: its certificate, and its private key (PEM).
pub struct Authority {
    pub cert_pem: String,
    pub key_pem: Secret,
}

/// A server certificate and its private key.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: Secret,
    pub not_after: OffsetDateTime,
}

/// What a certificate says.
#[derive(Debug, Clone, PartialEq)]
pub struct CertInfo {
    /// Subject alternative names: IP addresses and DNS names, sorted.
    pub names: Vec<String>,
    pub not_after: OffsetDateTime,
    /// Whether the CA given to [`inspect`] signed it.
    pub signed_by_ca: bool,
}

/// A new CA named `common_name`.
pub fn new_authority(common_name: &str, now: OffsetDateTime) -> Result<Authority, TlsError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_VALIDITY;
    let cert = params.self_signed(&key)?;
    Ok(Authority {
        cert_pem: cert.pem(),
        key_pem: Secret::new(key.serialize_pem()),
    })
}

/// A server certificate for `names` (IP addresses and DNS names), signed by `ca`, valid for
/// `validity_secs` from `now`.
pub fn issue(
    ca: &Authority,
    common_name: &str,
    names: &[String],
    now: OffsetDateTime,
    validity_secs: u64,
) -> Result<Issued, TlsError> {
    let ca_key = KeyPair::from_pem(ca.key_pem.expose())?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name = name(common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - BACKDATE;
    let not_after = now + Duration::seconds(validity_secs.min(i64::MAX as u64) as i64);
    params.not_after = not_after;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: Secret::new(key.serialize_pem()),
        not_after,
    })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "vaultform");
    dn
}

/// The DER bytes of the first certificate of a PEM text.
pub fn der(pem_text: &str) -> Result<Vec<u8>, TlsError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes())
        .map_err(|e| TlsError::Parse(e.to_string()))?;
    Ok(pem.contents)
}

/// The names and expiry of `cert_pem`, and whether `ca_pem`'s key signed it.
pub fn inspect(cert_pem: &str, ca_pem: &str) -> Result<CertInfo, TlsError> {
    use x509_parser::extensions::GeneralName;
    let cert_der = der(cert_pem)?;
    let ca_der = der(ca_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der)
        .map_err(|e| TlsError::Parse(e.to_string()))?;
    let (_, ca) =
        x509_parser::parse_x509_certificate(&ca_der).map_err(|e| TlsError::Parse(e.to_string()))?;
    let mut names: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    GeneralName::IPAddress(b) => ip_text(b),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.dedup();
    let signed_by_ca =
        cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok();
    Ok(CertInfo {
        names,
        not_after: cert.validity().not_after.to_datetime(),
        signed_by_ca,
    })
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()),
        _ => None,
    }
}

/// A CA from the user's certificate and key (PEM texts): checked to be a CA whose key matches.
pub fn user_authority(cert_pem: &str, key_pem: Zeroizing<String>) -> Result<Authority, TlsError> {
    let key = KeyPair::from_pem(&key_pem)?;
    let cert_der = der(cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der)
        .map_err(|e| TlsError::Parse(e.to_string()))?;
    if !cert.is_ca() {
        return Err(TlsError::Parse(
            "the certificate is not a CA (no basic constraints CA:TRUE)".into(),
        ));
    }
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(TlsError::Parse(
            "the private key does not belong to the CA certificate".into(),
        ));
    }
    Ok(Authority {
        cert_pem: cert_pem.to_string(),
        key_pem: Secret::new(key_pem.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_certificate_names_its_addresses_and_chains_to_its_ca() {
        let now = OffsetDateTime::now_utc();
        let ca = new_authority("test CA", now).unwrap();
        let names = vec!["127.0.10.11".to_string(), "vault-0".to_string()];
        let leaf = issue(&ca, "vault-0", &names, now, 86400).unwrap();
        let info = inspect(&leaf.cert_pem, &ca.cert_pem).unwrap();
        assert_eq!(info.names, names);
        assert!(info.signed_by_ca);
        assert!((info.not_after - (now + Duration::days(1))).abs() < Duration::seconds(2));
        let other = new_authority("another CA", now).unwrap();
        assert!(
            !inspect(&leaf.cert_pem, &other.cert_pem)
                .unwrap()
                .signed_by_ca
        );
    }

    #[test]
    fn a_user_ca_must_be_a_ca_with_its_own_key() {
        let now = OffsetDateTime::now_utc();
        let ca = new_authority("user CA", now).unwrap();
        let back = user_authority(
            &ca.cert_pem,
            Zeroizing::new(ca.key_pem.expose().to_string()),
        )
        .unwrap();
        assert_eq!(back.cert_pem, ca.cert_pem);
        let other = new_authority("other", now).unwrap();
        let wrong_key = Zeroizing::new(other.key_pem.expose().to_string());
        assert!(user_authority(&ca.cert_pem, wrong_key).is_err());
        let leaf = issue(&ca, "x", &["x".into()], now, 60).unwrap();
        let leaf_key = Zeroizing::new(leaf.key_pem.expose().to_string());
        assert!(user_authority(&leaf.cert_pem, leaf_key).is_err());
    }
}
