//! Building certificates, CSRs and their extensions with rcgen, shaped as OpenBao makes them:
//! a SHA-1 subject key identifier, the authority key identifier, a backdated notBefore,
//! key usages marked critical, AIA and CRL distribution points from `config/urls`.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, CustomExtension, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PublicKeyData, SanType, SerialNumber,
};
use time::OffsetDateTime;

use super::crypto::{self, PrivateKey};
use super::store::UrlsConfig;
use crate::error::{Error, Result};

/// A subject name value: PrintableString when Go would pick it, UTF8String otherwise.
pub(crate) fn dn_value(s: &str) -> DnValue {
    let printable = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c));
    if printable {
        if let Ok(p) = rcgen::string::PrintableString::try_from(s) {
            return DnValue::PrintableString(p);
        }
    }
    DnValue::Utf8String(s.to_string())
}

/// The subject fields a request or role may set.
#[derive(Default, Debug, Clone)]
pub(crate) struct Subject {
    pub common_name: String,
    pub organization: Vec<String>,
    pub ou: Vec<String>,
    pub country: Vec<String>,
    pub locality: Vec<String>,
    pub province: Vec<String>,
    pub street_address: Vec<String>,
    pub postal_code: Vec<String>,
    pub serial_number: String,
    /// A subject taken as it is (`sign-verbatim`): used instead of the fields above.
    pub verbatim: Option<DistinguishedName>,
}

impl Subject {
    pub(crate) fn dn(&self) -> DistinguishedName {
        if let Some(dn) = &self.verbatim {
            return dn.clone();
        }
        let mut dn = DistinguishedName::new();
        for c in &self.country {
            dn.push(DnType::CountryName, dn_value(c));
        }
        for p in &self.province {
            dn.push(DnType::StateOrProvinceName, dn_value(p));
        }
        for l in &self.locality {
            dn.push(DnType::LocalityName, dn_value(l));
        }
        for s in &self.street_address {
            dn.push(DnType::CustomDnType(vec![2, 5, 4, 9]), dn_value(s));
        }
        for p in &self.postal_code {
            dn.push(DnType::CustomDnType(vec![2, 5, 4, 17]), dn_value(p));
        }
        for o in &self.organization {
            dn.push(DnType::OrganizationName, dn_value(o));
        }
        for u in &self.ou {
            dn.push(DnType::OrganizationalUnitName, dn_value(u));
        }
        if !self.common_name.is_empty() {
            dn.push(DnType::CommonName, dn_value(&self.common_name));
        }
        if !self.serial_number.is_empty() {
            dn.push(
                DnType::CustomDnType(vec![2, 5, 4, 5]),
                dn_value(&self.serial_number),
            );
        }
        dn
    }
}

/// The alternative names of a certificate.
#[derive(Default, Debug, Clone)]
pub(crate) struct Sans {
    pub dns: Vec<String>,
    pub emails: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub uris: Vec<String>,
    /// `other_sans`: (OID, UTF-8 value).
    pub other: Vec<(Vec<u64>, String)>,
}

impl Sans {
    fn to_rcgen(&self) -> Result<Vec<SanType>> {
        let ia5 = |s: &str| {
            rcgen::string::Ia5String::try_from(s)
                .map_err(|_| Error::invalid_input(format!("invalid name `{s}`")))
        };
        let mut out = Vec::new();
        // Other names first, as OpenBao writes them.
        for (oid, v) in &self.other {
            out.push(SanType::OtherName((
                oid.clone(),
                rcgen::OtherNameValue::Utf8String(v.clone()),
            )));
        }
        for d in &self.dns {
            out.push(SanType::DnsName(ia5(d)?));
        }
        for e in &self.emails {
            out.push(SanType::Rfc822Name(ia5(e)?));
        }
        for ip in &self.ips {
            out.push(SanType::IpAddress(*ip));
        }
        for u in &self.uris {
            out.push(SanType::URI(ia5(u)?));
        }
        Ok(out)
    }
}

/// Everything a new certificate needs besides its keys.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub subject: Subject,
    pub sans: Sans,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// `Some(max_path_len)` for a CA (`-1` = unconstrained).
    pub ca: Option<i64>,
    pub key_usage: Vec<KeyUsagePurpose>,
    pub ext_key_usage: Vec<ExtendedKeyUsagePurpose>,
    pub urls: UrlsConfig,
    pub serial: Vec<u8>,
}

fn aia_extension(urls: &UrlsConfig) -> Option<CustomExtension> {
    if urls.issuing_certificates.is_empty() && urls.ocsp_servers.is_empty() {
        return None;
    }
    // AuthorityInfoAccessSyntax ::= SEQUENCE OF AccessDescription (RFC 5280 §4.2.2.1);
    // rcgen has no builder for it, so yasna encodes it.
    const OCSP: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1];
    const CA_ISSUERS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 2];
    let der = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for (oid, list) in [
                (OCSP, &urls.ocsp_servers),
                (CA_ISSUERS, &urls.issuing_certificates),
            ] {
                for url in list {
                    w.next().write_sequence(|w| {
                        w.next()
                            .write_oid(&yasna::models::ObjectIdentifier::from_slice(oid));
                        // GeneralName uniformResourceIdentifier [6] IA5String, implicit.
                        w.next().write_tagged_implicit(yasna::Tag::context(6), |w| {
                            w.write_ia5_string(url)
                        });
                    });
                }
            }
        })
    });
    Some(CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 5, 5, 7, 1, 1],
        der,
    ))
}

impl Template {
    fn params(&self, subject_public_key: &[u8]) -> Result<CertificateParams> {
        let mut p = CertificateParams::default();
        p.serial_number = Some(SerialNumber::from_slice(&self.serial));
        p.not_before = self.not_before;
        p.not_after = self.not_after;
        p.distinguished_name = self.subject.dn();
        p.subject_alt_names = self.sans.to_rcgen()?;
        p.is_ca = match self.ca {
            None => IsCa::NoCa,
            Some(n) if n < 0 => IsCa::Ca(BasicConstraints::Unconstrained),
            Some(n) => IsCa::Ca(BasicConstraints::Constrained(
                u8::try_from(n).unwrap_or(u8::MAX),
            )),
        };
        p.key_usages = self.key_usage.clone();
        p.extended_key_usages = self.ext_key_usage.clone();
        p.use_authority_key_identifier_extension = true;
        p.key_identifier_method = KeyIdMethod::PreSpecified(crypto::key_id(subject_public_key));
        if !self.urls.crl_distribution_points.is_empty() {
            p.crl_distribution_points = vec![CrlDistributionPoint {
                uris: self.urls.crl_distribution_points.clone(),
            }];
        }
        if self.ca.is_none() {
            // rcgen writes the subject key identifier for CAs only; OpenBao's leaves carry
            // one too (an OCTET STRING of the SHA-1 key id).
            let id = crypto::key_id(subject_public_key);
            p.custom_extensions.push(CustomExtension::from_oid_content(
                &[2, 5, 29, 14],
                yasna::construct_der(|w| w.write_bytes(&id)),
            ));
        }
        if let Some(ext) = aia_extension(&self.urls) {
            p.custom_extensions.push(ext);
        }
        Ok(p)
    }

    /// A self-signed certificate (a root).
    pub(crate) fn self_signed(&self, key: &PrivateKey) -> Result<Vec<u8>> {
        let p = self.params(key.pair.der_bytes())?;
        let cert = p
            .self_signed(&key.pair)
            .map_err(|e| Error::internal(format!("unable to create certificate: {e}")))?;
        Ok(cert.der().to_vec())
    }

    /// A certificate for `public_key` signed by `issuer`.
    pub(crate) fn signed_by(
        &self,
        public_key: &impl PublicKeyData,
        issuer: &rcgen::Issuer<'_, KeyPair>,
    ) -> Result<Vec<u8>> {
        let p = self.params(public_key.der_bytes())?;
        let cert = p
            .signed_by(public_key, issuer)
            .map_err(|e| Error::internal(format!("unable to sign certificate: {e}")))?;
        Ok(cert.der().to_vec())
    }
}

/// A CSR for an intermediate CA (`intermediate/generate`).
pub(crate) fn csr(subject: &Subject, sans: &Sans, key: &PrivateKey) -> Result<String> {
    let mut p = CertificateParams::default();
    p.distinguished_name = subject.dn();
    p.subject_alt_names = sans.to_rcgen()?;
    let csr = p
        .serialize_request(&key.pair)
        .map_err(|e| Error::internal(format!("unable to create CSR: {e}")))?;
    let pem = csr
        .pem()
        .map_err(|e| Error::internal(format!("unable to encode CSR: {e}")))?;
    Ok(pem.trim_end().replace("\r\n", "\n"))
}

/// What the engine reads from a CSR: its subject and names, and the public key to certify.
/// The signature is checked; any extension is accepted (OpenBao takes only what the role
/// allows from it).
pub(crate) struct ParsedCsr {
    pub common_name: String,
    /// The whole subject (for `sign-verbatim`).
    pub subject: Subject,
    pub sans: Sans,
    pub spki_der: Vec<u8>,
}

/// Parse a PEM CSR with OpenBao's refusals.
pub(crate) fn parse_csr(pem_text: &str) -> Result<ParsedCsr> {
    use x509_parser::prelude::*;
    let der = match ::pem::parse(pem_text.trim()) {
        Ok(p) if p.tag() == "CERTIFICATE REQUEST" || p.tag() == "NEW CERTIFICATE REQUEST" => {
            p.into_contents()
        }
        _ => return Err(Error::invalid_input("csr contains no data")),
    };
    let (_, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|_| Error::invalid_input("certificate request could not be parsed: malformed"))?;
    csr.verify_signature().map_err(|_| {
        Error::invalid_input("request signature invalid: x509: ECDSA verification failure")
    })?;
    let info = &csr.certification_request_info;
    let common_name = info
        .subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or("")
        .to_string();
    let mut sans = Sans::default();
    if let Some(exts) = csr.requested_extensions() {
        for ext in exts {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(d) => sans.dns.push((*d).to_string()),
                        GeneralName::RFC822Name(e) => sans.emails.push((*e).to_string()),
                        GeneralName::URI(u) => sans.uris.push((*u).to_string()),
                        GeneralName::IPAddress(b) => {
                            if let Ok(a) = <[u8; 4]>::try_from(*b) {
                                sans.ips.push(IpAddr::from(a));
                            } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                                sans.ips.push(IpAddr::from(a));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(ParsedCsr {
        subject: subject_of(&info.subject),
        common_name,
        sans,
        spki_der: info.subject_pki.raw.to_vec(),
    })
}

/// The subject fields of an X.509 name that [`Subject`] carries (the rest are dropped).
pub(crate) fn subject_of(name: &x509_parser::x509::X509Name<'_>) -> Subject {
    use x509_parser::oid_registry as oids;
    let mut s = Subject::default();
    let mut dn = DistinguishedName::new();
    for attr in name.iter_attributes() {
        let Ok(v) = attr.as_str() else { continue };
        let v = v.to_string();
        let oid = attr.attr_type();
        if let Some(parts) = oid.iter() {
            dn.push(DnType::from_oid(&parts.collect::<Vec<u64>>()), dn_value(&v));
        }
        if *oid == oids::OID_X509_COMMON_NAME {
            s.common_name = v;
        } else if *oid == oids::OID_X509_ORGANIZATION_NAME {
            s.organization.push(v);
        } else if *oid == oids::OID_X509_ORGANIZATIONAL_UNIT {
            s.ou.push(v);
        } else if *oid == oids::OID_X509_COUNTRY_NAME {
            s.country.push(v);
        } else if *oid == oids::OID_X509_LOCALITY_NAME {
            s.locality.push(v);
        } else if *oid == oids::OID_X509_STATE_OR_PROVINCE_NAME {
            s.province.push(v);
        } else if *oid == oids::OID_X509_STREET_ADDRESS {
            s.street_address.push(v);
        } else if *oid == oids::OID_X509_POSTAL_CODE {
            s.postal_code.push(v);
        } else if *oid == oids::OID_X509_SERIALNUMBER {
            s.serial_number = v;
        }
    }
    s.verbatim = Some(dn);
    s
}
