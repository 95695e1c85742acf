//! TLS to PostgreSQL with libpq's connection parameters, so a Vault `connection_url` such as
//! `postgresql://{{username}}:{{password}}@db:5432/app?sslmode=verify-full&sslrootcert=/etc/ca.pem`
//! works unchanged (tokio-postgres itself knows only `disable` / `prefer` / `require` and no
//! certificate files).
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (libpq's default) | when the server offers it | not checked |
//! | `require` | always | not checked, unless `sslrootcert` is given: then as `verify-ca` |
//! | `verify-ca` | always | chain to `sslrootcert` |
//! | `verify-full` | always | chain to `sslrootcert`, and the host name or IP address |
//!
//! `sslrootcert` is a PEM file of CA certificates, or `system` for the operating system's
//! roots. `sslcert` / `sslkey` (PEM) present a client certificate. As in libpq, `prefer` and
//! `require` without a root certificate encrypt but do not authenticate the server: use
//! `verify-full` against a server you do not control the network path to.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};

/// libpq's TLS parameters, taken out of a connection string.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct TlsParams {
    mode: Option<String>,
    root_cert: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

const KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

impl TlsParams {
    fn set(&mut self, key: &str, value: String) {
        match key {
            "sslmode" => self.mode = Some(value),
            "sslrootcert" => self.root_cert = Some(value),
            "sslcert" => self.cert = Some(value),
            _ => self.key = Some(value),
        }
    }
}

/// `url` without its TLS parameters (what tokio-postgres parses), and those parameters. Both
/// forms: `postgresql://…?sslmode=…&…` and `host=… sslmode=…` (values quoted with `'` as libpq
/// allows).
pub(crate) fn split(url: &str) -> (String, TlsParams) {
    let mut tls = TlsParams::default();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_string(), tls);
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if KEYS.contains(&k) {
                tls.set(k, percent_decode(v));
            } else if !pair.is_empty() {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (rest, tls);
    }
    // key=value pairs: a value may be 'quoted', with \' and \\ inside.
    let mut kept = Vec::new();
    let mut chars = url.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut key = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek().is_some_and(|(_, c)| *c == '=') {
            chars.next();
            while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek().is_some_and(|(_, c)| *c == '\'') {
                chars.next();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\'' => break,
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                value.push(n);
                            }
                        }
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        let end = chars.peek().map_or(url.len(), |&(i, _)| i);
        if KEYS.contains(&key.as_str()) {
            tls.set(&key, value);
        } else if let Some(pair) = url.get(start..end) {
            kept.push(pair.trim_end().to_string());
        }
    }
    (kept.join(" "), tls)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b == b'+' { b' ' } else { b });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What tokio-postgres needs: its `SslMode` and a connector that checks the server as the
/// parameters say. Certificate files are read here, so a missing or bad file is an error when
/// the connection is configured, not at the first connection.
pub(crate) fn connector(tls: &TlsParams) -> Result<(SslMode, MakeRustlsConnect)> {
    let mode = tls.mode.as_deref().unwrap_or("prefer");
    let (ssl_mode, verify) = match mode {
        "disable" => (SslMode::Disable, Verify::Nothing),
        "allow" | "prefer" => (SslMode::Prefer, Verify::Nothing),
        "require" if tls.root_cert.is_some() => (SslMode::Require, Verify::Chain),
        "require" => (SslMode::Require, Verify::Nothing),
        "verify-ca" => (SslMode::Require, Verify::Chain),
        "verify-full" => (SslMode::Require, Verify::Full),
        other => {
            return Err(Error::invalid_input(format!(
                "invalid sslmode \"{other}\": expected disable, allow, prefer, require, \
                 verify-ca or verify-full"
            )));
        }
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal(format!("TLS setup: {e}")))?;
    let builder = match verify {
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider))),
        Verify::Chain | Verify::Full => {
            let Some(root) = tls.root_cert.as_deref() else {
                return Err(Error::invalid_input(format!(
                    "sslmode={mode} needs sslrootcert: the path of a PEM file of the CA \
                     certificates that sign the server's, or sslrootcert=system"
                )));
            };
            let roots = Arc::new(roots(root)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| Error::invalid_input(format!("sslrootcert: {e}")))?;
            if matches!(verify, Verify::Full) {
                builder.with_webpki_verifier(webpki)
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyName(webpki)))
            }
        }
    };
    let config = match (&tls.cert, &tls.key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = read_certs("sslcert", cert)?;
            let key = PrivateKeyDer::from_pem_file(Path::new(key))
                .map_err(|e| Error::invalid_input(format!("sslkey {key}: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::invalid_input(format!("sslcert/sslkey: {e}")))?
        }
        _ => {
            return Err(Error::invalid_input(
                "sslcert and sslkey go together: give both or neither",
            ));
        }
    };
    Ok((ssl_mode, MakeRustlsConnect::new(config)))
}

enum Verify {
    Nothing,
    Chain,
    Full,
}

fn read_certs(what: &str, path: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(Path::new(path))
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::invalid_input(format!("{what} {path}: {e}")))?;
    if certs.is_empty() {
        return Err(Error::invalid_input(format!(
            "{what} {path}: no PEM certificate in it"
        )));
    }
    Ok(certs)
}

fn roots(root: &str) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    if root == "system" {
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = store.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err(Error::invalid_input(
                "sslrootcert=system: the operating system has no CA certificates to load",
            ));
        }
        return Ok(store);
    }
    for cert in read_certs("sslrootcert", root)? {
        store
            .add(cert)
            .map_err(|e| Error::invalid_input(format!("sslrootcert {root}: {e}")))?;
    }
    Ok(store)
}

/// `prefer` / `require` without a root certificate, as libpq: the session is encrypted, the
/// server is not authenticated (its handshake signature is still checked).
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name in it is not compared with the
/// host.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(mode: &str, root: Option<&str>) -> TlsParams {
        TlsParams {
            mode: Some(mode.to_string()),
            root_cert: root.map(str::to_string),
            ..TlsParams::default()
        }
    }

    #[test]
    fn tls_parameters_are_taken_out_of_both_forms() {
        let (rest, tls) = split(
            "postgresql://{{username}}:{{password}}@db:5432/app?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca%20x.pem",
        );
        assert_eq!(
            rest,
            "postgresql://{{username}}:{{password}}@db:5432/app?application_name=x"
        );
        assert_eq!(tls, {
            let mut t = params("verify-full", Some("/etc/ca x.pem"));
            t.cert = None;
            t
        });
        let (rest, tls) = split("postgres://u@h/d?sslmode=require");
        assert_eq!(
            (rest.as_str(), tls.mode.as_deref()),
            ("postgres://u@h/d", Some("require"))
        );
        let (rest, tls) = split(
            "host=db user={{username}} sslmode = verify-ca sslrootcert='/etc/my ca.pem' dbname=app sslcert=/c.pem sslkey=/k.pem",
        );
        assert_eq!(rest, "host=db user={{username}} dbname=app");
        assert_eq!(tls.mode.as_deref(), Some("verify-ca"));
        assert_eq!(tls.root_cert.as_deref(), Some("/etc/my ca.pem"));
        assert_eq!(
            (tls.cert.as_deref(), tls.key.as_deref()),
            (Some("/c.pem"), Some("/k.pem"))
        );
        // Nothing to take out: the string is kept as it was.
        assert_eq!(split("postgresql://u@h/d").0, "postgresql://u@h/d");
    }

    #[test]
    fn bad_tls_parameters_are_clear_errors() {
        let msg = |t: &TlsParams| {
            connector(t)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(msg(&params("verify-everything", None)).contains("invalid sslmode"));
        assert!(msg(&params("verify-full", None)).contains("needs sslrootcert"));
        assert!(
            msg(&params("verify-ca", Some("/nonexistent/ca.pem")))
                .contains("sslrootcert /nonexistent/ca.pem")
        );
        let only_cert = TlsParams {
            cert: Some("/c.pem".into()),
            ..params("require", None)
        };
        assert!(msg(&only_cert).contains("go together"));
        for mode in ["disable", "allow", "prefer", "require"] {
            assert!(connector(&params(mode, None)).is_ok(), "{mode}");
        }
    }
}
