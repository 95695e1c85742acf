//! Typed access to a PKI mount: `client.pki("pki")`. Every method is one request through the
//! pipeline, so policy, audit and leases apply exactly as over HTTP.

use std::fmt;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::Client;
use crate::error::{Error, Result};
use crate::request::{Data, Request, Response};

/// A certificate as `issue` or `sign` returns it. The private key (from `issue` only) is
/// a secret: `Debug` never shows it.
#[derive(Clone)]
pub struct IssuedCertificate {
    /// The certificate, PEM.
    pub certificate: String,
    /// The issuing CA's certificate, PEM.
    pub issuing_ca: String,
    /// The chain above the certificate (the issuer first), PEM each.
    pub ca_chain: Vec<String>,
    /// The serial, `xx:xx:..`.
    pub serial_number: String,
    /// notAfter, unix seconds.
    pub expiration: i64,
    /// notBefore, unix seconds (0 when the answer does not carry it).
    pub not_before: i64,
    /// The private key, PEM (`issue` only).
    pub private_key: Option<SecretString>,
    /// `rsa`, `ec` or `ed25519` (`issue` only).
    pub private_key_type: String,
    /// The lease id when the role has `generate_lease`.
    pub lease_id: String,
    /// Warnings (a TTL capped by the role's or mount's maximum, ...).
    pub warnings: Vec<String>,
}

impl fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("serial_number", &self.serial_number)
            .field("expiration", &self.expiration)
            .field(
                "private_key",
                &self.private_key.as_ref().map(|_| "<redacted>"),
            )
            .field("lease_id", &self.lease_id)
            .finish_non_exhaustive()
    }
}

impl IssuedCertificate {
    /// From an `issue` / `sign` answer.
    pub(crate) fn from_response(resp: &Response) -> Result<IssuedCertificate> {
        let d = resp
            .data
            .as_ref()
            .ok_or_else(|| Error::internal("pki answer without data"))?;
        let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Ok(IssuedCertificate {
            certificate: s("certificate"),
            issuing_ca: s("issuing_ca"),
            ca_chain: d
                .get("ca_chain")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            serial_number: s("serial_number"),
            expiration: d.get("expiration").and_then(Value::as_i64).unwrap_or(0),
            not_before: d.get("not_before").and_then(Value::as_i64).unwrap_or(0),
            private_key: d
                .get("private_key")
                .and_then(Value::as_str)
                .map(|k| SecretString::from(k.to_string())),
            private_key_type: s("private_key_type"),
            lease_id: resp.lease_id.clone(),
            warnings: resp.warnings.clone(),
        })
    }

    /// The private key PEM, if any (look, don't log).
    pub fn private_key_pem(&self) -> Option<&str> {
        self.private_key.as_ref().map(|k| k.expose_secret())
    }
}

/// A stored certificate and its revocation state (`cert/:serial`).
#[derive(Debug, Clone)]
pub struct CertificateRecord {
    /// The certificate, PEM.
    pub certificate: String,
    /// When it was revoked (unix seconds), 0 when it is not.
    pub revocation_time: i64,
}

/// The PKI engine mounted at one path.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use serde_json::json;
/// use strongroom::{Config, Strongroom, data};
/// let sr = Strongroom::open(Config::dev()).await?;
/// let client = sr.client(sr.dev_root_token().unwrap_or_default());
/// client.sys().enable_mount("pki", "pki", &[]).await?;
/// let pki = client.pki("pki");
/// pki.generate_root(false, data(json!({"common_name": "Example Root", "key_type": "ec"}))).await?;
/// pki.write_role("web", data(json!({"allowed_domains": "example.com", "allow_subdomains": true, "key_type": "ec"}))).await?;
/// let cert = pki.issue("web", "api.example.com", data(json!({"ttl": "1h"}))).await?;
/// assert!(cert.certificate.starts_with("-----BEGIN CERTIFICATE-----"));
/// # Ok::<(), strongroom::Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Pki {
    client: Client,
    mount: String,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki").field("mount", &self.mount).finish()
    }
}

fn raw_body(resp: &Response) -> Result<Vec<u8>> {
    let body = resp
        .get("http_raw_body")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::internal("pki answer without a body"))?;
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| Error::internal("pki answer with a malformed body"))
}

impl Pki {
    pub(crate) fn new(client: Client, mount: &str) -> Pki {
        Pki {
            client,
            mount: mount.trim_matches('/').to_string(),
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("{}/{rest}", self.mount)
    }

    /// Now, by the engine's clock (unix seconds).
    pub(crate) fn now_unix(&self) -> i64 {
        self.client.engine().inner.clock.now().unix_timestamp()
    }

    /// The mount path.
    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// `root/generate/{internal,exported}`: a new root CA (`exported` returns its key).
    pub async fn generate_root(&self, exported: bool, params: Data) -> Result<Response> {
        let kind = if exported { "exported" } else { "internal" };
        self.client
            .write(&self.path(&format!("root/generate/{kind}")), params)
            .await
    }

    /// `intermediate/generate/{internal,exported}`: a key and its CSR (`data.csr`).
    pub async fn generate_intermediate(&self, exported: bool, params: Data) -> Result<Response> {
        let kind = if exported { "exported" } else { "internal" };
        self.client
            .write(&self.path(&format!("intermediate/generate/{kind}")), params)
            .await
    }

    /// `root/sign-intermediate` (or `issuer/:ref/sign-intermediate` when `issuer` is set).
    pub async fn sign_intermediate(
        &self,
        issuer: Option<&str>,
        csr: &str,
        mut params: Data,
    ) -> Result<IssuedCertificate> {
        params.insert("csr".into(), json!(csr));
        let path = match issuer {
            Some(i) => self.path(&format!("issuer/{i}/sign-intermediate")),
            None => self.path("root/sign-intermediate"),
        };
        IssuedCertificate::from_response(&self.client.write(&path, params).await?)
    }

    /// `intermediate/set-signed`: import a signed certificate (or a bundle: every issuer in it).
    pub async fn set_signed(&self, certificate: &str) -> Result<Response> {
        self.client
            .write(
                &self.path("intermediate/set-signed"),
                crate::data(json!({ "certificate": certificate })),
            )
            .await
    }

    /// `issuer/:ref/revoke`: revoke an issuer (`default`, an id or a name). It can no longer
    /// issue (its `issuing-certificates` usage is gone for good) and, where its parent issuer
    /// lives in this mount, its certificate goes on the parent's CRL. The answer is the
    /// issuer's entry, with OpenBao's warnings (self-signed, no parent here, the default).
    pub async fn revoke_issuer(&self, reference: &str) -> Result<Response> {
        if !crate::util::names::is_generic_name(reference) {
            return Err(crate::Error::invalid_input(
                "issuer reference contained invalid characters",
            ));
        }
        self.client
            .write(
                &self.path(&format!("issuer/{reference}/revoke")),
                crate::Data::new(),
            )
            .await
    }

    /// `roles/:name`: create or replace a role.
    pub async fn write_role(&self, name: &str, params: Data) -> Result<Response> {
        self.client
            .write(&self.path(&format!("roles/{name}")), params)
            .await
    }

    /// `roles/:name` read.
    pub async fn read_role(&self, name: &str) -> Result<Option<Data>> {
        Ok(self
            .client
            .read(&self.path(&format!("roles/{name}")))
            .await?
            .and_then(|r| r.data))
    }

    /// `issue/:role`: a new key and certificate for `common_name`.
    pub async fn issue(
        &self,
        role: &str,
        common_name: &str,
        mut params: Data,
    ) -> Result<IssuedCertificate> {
        params.insert("common_name".into(), json!(common_name));
        let resp = self
            .client
            .write(&self.path(&format!("issue/{role}")), params)
            .await?;
        IssuedCertificate::from_response(&resp)
    }

    /// `sign/:role`: a certificate for the key in a PEM CSR.
    pub async fn sign(&self, role: &str, csr: &str, mut params: Data) -> Result<IssuedCertificate> {
        params.insert("csr".into(), json!(csr));
        let resp = self
            .client
            .write(&self.path(&format!("sign/{role}")), params)
            .await?;
        IssuedCertificate::from_response(&resp)
    }

    /// `revoke` by serial (colon or dash form); returns the revocation time (unix seconds).
    pub async fn revoke(&self, serial: &str) -> Result<i64> {
        let resp = self
            .client
            .write(
                &self.path("revoke"),
                crate::data(json!({ "serial_number": serial })),
            )
            .await?;
        Ok(resp
            .get("revocation_time")
            .and_then(Value::as_i64)
            .unwrap_or(0))
    }

    /// `cert/:serial`; `None` when the mount has no such certificate.
    pub async fn read_cert(&self, serial: &str) -> Result<Option<CertificateRecord>> {
        let Some(resp) = self
            .client
            .read(&self.path(&format!("cert/{serial}")))
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(CertificateRecord {
            certificate: resp
                .get("certificate")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            revocation_time: resp
                .get("revocation_time")
                .and_then(Value::as_i64)
                .unwrap_or(0),
        }))
    }

    /// `certs`: the serials of stored certificates.
    pub async fn list_certs(&self) -> Result<Vec<String>> {
        self.client.list(&self.path("certs")).await
    }

    /// `certs/revoked`: the serials of revoked certificates.
    pub async fn list_revoked(&self) -> Result<Vec<String>> {
        self.client.list(&self.path("certs/revoked")).await
    }

    /// `ca/pem`: the default issuer's certificate.
    pub async fn ca_pem(&self) -> Result<String> {
        let resp = self
            .client
            .handle(Request::read(self.path("ca/pem")))
            .await?;
        String::from_utf8(raw_body(&resp)?).map_err(|_| Error::internal("CA is not PEM text"))
    }

    /// `crl`: the default issuer's CRL, DER.
    pub async fn crl_der(&self) -> Result<Vec<u8>> {
        raw_body(&self.client.handle(Request::read(self.path("crl"))).await?)
    }

    /// `crl/pem`: the default issuer's CRL, PEM.
    pub async fn crl_pem(&self) -> Result<String> {
        let resp = self
            .client
            .handle(Request::read(self.path("crl/pem")))
            .await?;
        String::from_utf8(raw_body(&resp)?).map_err(|_| Error::internal("CRL is not PEM text"))
    }

    /// `crl/rotate`: rebuild the CRL now.
    pub async fn rotate_crl(&self) -> Result<()> {
        self.client
            .handle(Request::read(self.path("crl/rotate")))
            .await
            .map(|_| ())
    }

    /// `config/urls`: the AIA and CRL distribution point URLs put in new certificates.
    pub async fn set_urls(&self, params: Data) -> Result<()> {
        self.client
            .write(&self.path("config/urls"), params)
            .await
            .map(|_| ())
    }
}
