//! The PKI engine mounted as type `pki`: OpenBao's paths, fields, answers and error texts
//! (checked side by side with `bao server -dev`, OpenBao 2.7.2).
//!
//! Issuers and their signing keys, once read, stay decoded in memory, so an `issue` reads
//! only its role; the CRL of each issuer is kept in memory and rebuilt from that copy when a
//! revocation marks it stale (see [`super::crl`]). Writes are serialised by one lock per
//! mount. Another process's writes reach these caches because the pipeline rebuilds the
//! mount's engine when the store's change marker moves.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use rcgen::{ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::build::{self, Sans, Subject, Template};
use super::crl::CrlCache;
use super::crypto::{self, KeyKind, PrivateKey};
use super::fields;
use super::role::{self, Role};
use super::store::{
    self, CertEntry, DefaultConfig, IssuerEntry, KeyEntry, RevokedEntry, UrlsConfig,
};
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::request::{Data, LeaseInfo, Operation, Request, Response};
use crate::secrets::{Engine, EngineContext, LeasedSecret};
use crate::storage::{Backend, Page};
use crate::util::names::NameRule;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// OpenBao's warning when a new issuer has no AIA URLs.
const AIA_WARNING: &str = "This mount hasn't configured any authority information access (AIA) fields; this may make it harder for systems to find missing certificates in the chain or to validate revocation status of certificates. Consider updating /config/urls or the newly generated issuer with this information.";

/// Longest request TTL accepted (Go's `time.Duration` limit is about 292 years).
const MAX_TTL: u64 = 100 * 365 * 24 * 3600;

/// An issuer with its decoded certificate and, when the mount holds it, its signing key.
pub(crate) struct LoadedIssuer {
    pub entry: IssuerEntry,
    pub der: Vec<u8>,
    pub info: crypto::CertInfo,
    pub signer: Option<rcgen::Issuer<'static, KeyPair>>,
    pub kind: Option<KeyKind>,
}

/// The usages an issuer has unless it was given others (OpenBao's default, sorted).
const ALL_USAGES: &str = "crl-signing,issuing-certificates,ocsp-signing,read-only";

impl LoadedIssuer {
    /// The usages this issuer has (`usage` on the issuer; all of them by default).
    fn usage(&self) -> &str {
        self.entry.usage.as_deref().unwrap_or(ALL_USAGES)
    }

    /// The signing key, when this issuer may issue: it holds its key and has the
    /// `issuing-certificates` usage (a revoked issuer has lost it). OpenBao's 500 and text.
    fn signer_for_issuing(&self) -> Result<&rcgen::Issuer<'static, KeyPair>> {
        if !self.usage().split(',').any(|u| u == "issuing-certificates") {
            return Err(multierror(&format!(
                "error fetching CA certificate: error while attempting to use issuer {id}: requested usage issuing-certificates for issuer [id:{id}{name}] but only had usage {usage}",
                id = self.entry.id,
                name = if self.entry.name.is_empty() {
                    String::new()
                } else {
                    format!(" / name:{}", self.entry.name)
                },
                usage = self.usage(),
            )));
        }
        self.signer
            .as_ref()
            .ok_or_else(|| Error::invalid_input("issuer has no key to sign with"))
    }
}

/// `usage` as given on an issuer update: known names only (`read-only` is always kept),
/// sorted and without duplicates as OpenBao stores them.
fn parse_usages(given: &[String]) -> Result<String> {
    let items: Vec<&str> = given.iter().flat_map(|u| u.split(',')).collect();
    let mut out = vec!["read-only"];
    for u in items.iter().map(|u| u.trim()) {
        match u {
            "crl-signing" | "issuing-certificates" | "ocsp-signing" | "read-only" => {
                if !out.contains(&u) {
                    out.push(u);
                }
            }
            // A lone empty value (`usage=""`) leaves `read-only`.
            "" if items.len() == 1 => {}
            _ => {
                return Err(Error::invalid_input(format!(
                    "Unable to parse specified usages: [{}] - valid values are {ALL_USAGES}",
                    items.join(" ")
                )));
            }
        }
    }
    out.sort_unstable();
    Ok(out.join(","))
}

/// `private_key_format=pkcs8` asks for PKCS#8 whatever the key type; any other value gives
/// the key type's own form (OpenBao ignores values it does not know).
fn pkcs8_wanted(d: &Data) -> Result<bool> {
    Ok(fields::str_or_empty(d, "private_key_format")? == "pkcs8")
}

/// Every issuer of a mount by id.
type IssuerMap = Arc<HashMap<String, Arc<LoadedIssuer>>>;

/// A small config entry (`config/issuers`, `config/urls`) kept decoded after its first read:
/// every `issue` needs both, and reading them from the store costs a decryption and a JSON
/// parse each. [`Cached::forget`] after every write of the entry; the generation stops a read
/// that started before a write from putting the old value back after it.
struct Cached<T> {
    slot: RwLock<(u64, Option<T>)>,
}

impl<T> Default for Cached<T> {
    fn default() -> Self {
        Cached {
            slot: RwLock::new((0, None)),
        }
    }
}

impl<T: Clone + Default + serde::de::DeserializeOwned> Cached<T> {
    /// The entry at `path` (its default when absent).
    async fn get(&self, ctx: &EngineContext, path: &str) -> Result<T> {
        let generation = {
            let slot = self.slot.read().or_else(crate::util::unpoison)?;
            if let Some(v) = &slot.1 {
                return Ok(v.clone());
            }
            slot.0
        };
        let v: T = store::get(ctx, path).await?.unwrap_or_default();
        let mut slot = self.slot.write().or_else(crate::util::unpoison)?;
        if slot.0 == generation {
            slot.1 = Some(v.clone());
        }
        Ok(v)
    }

    /// Drops the decoded copy (the entry was written or deleted).
    fn forget(&self) -> Result<()> {
        let mut slot = self.slot.write().or_else(crate::util::unpoison)?;
        slot.0 = slot.0.wrapping_add(1);
        slot.1 = None;
        Ok(())
    }
}

/// One PKI mount.
#[derive(Default)]
pub(crate) struct Pki {
    write: tokio::sync::Mutex<()>,
    issuers: RwLock<Option<IssuerMap>>,
    roles: RwLock<HashMap<String, Arc<Role>>>,
    /// `config/issuers` (the default issuer).
    issuers_config: Cached<DefaultConfig>,
    /// `config/urls`.
    urls_config: Cached<UrlsConfig>,
    pub(crate) crl: CrlCache,
}

/// A new PKI engine.
pub(crate) fn new() -> Arc<dyn Engine> {
    Arc::new(Pki::default())
}

/// OpenBao's `1 error occurred:` wrapping for errors its framework returns as 500s.
fn multierror(msg: &str) -> Error {
    Error::internal(format!("1 error occurred:\n\t* {msg}\n\n"))
}

/// The issuer lookup as `issue`, `sign` and `sign-intermediate` report it (500, as OpenBao).
fn ca_fetch_error(e: &Error) -> Error {
    multierror(&format!(
        "could not fetch the CA certificate (was one set?): {}",
        e.message()
    ))
}

fn raw_response(content_type: &str, body: &[u8]) -> Response {
    let mut d = Data::new();
    d.insert("http_content_type".into(), json!(content_type));
    d.insert("http_raw_body".into(), json!(B64.encode(body)));
    d.insert("http_status_code".into(), json!(200));
    Response::with_data(d)
}

fn data(v: Value) -> Option<Response> {
    match v {
        Value::Object(m) => Some(Response::with_data(m)),
        _ => None,
    }
}

/// OpenBao's `format`: `pem` (default), `der` (base64 DER in place of each PEM) or
/// `pem_bundle` (the certificate field carries the key, the certificate and its issuer).
fn apply_format(d: &Data, out: &mut Value) -> Result<()> {
    let format = fields::str_or_empty(d, "format")?;
    match format.as_str() {
        "" | "pem" => Ok(()),
        "der" => {
            let to_der = |v: &Value| -> Value {
                v.as_str()
                    .and_then(|p| ::pem::parse(p).ok())
                    .map(|p| json!(B64.encode(p.contents())))
                    .unwrap_or(Value::Null)
            };
            for k in ["certificate", "issuing_ca", "private_key"] {
                if let Some(v) = out.get(k).cloned() {
                    set(out, k, to_der(&v));
                }
            }
            if let Some(Value::Array(chain)) = out.get("ca_chain").cloned() {
                set(
                    out,
                    "ca_chain",
                    Value::Array(chain.iter().map(to_der).collect()),
                );
            }
            Ok(())
        }
        "pem_bundle" => {
            let s = |k: &str| out.get(k).and_then(Value::as_str).map(str::to_string);
            let mut parts: Vec<String> = Vec::new();
            if let Some(k) = s("private_key") {
                parts.push(k);
            }
            if let Some(c) = s("certificate") {
                parts.push(c);
            }
            if let Some(i) = s("issuing_ca") {
                parts.push(i);
            }
            set(out, "certificate", json!(parts.join("\n")));
            Ok(())
        }
        other => Err(Error::invalid_input(format!(
            "unknown format for the certificate: {other}"
        ))),
    }
}

/// Set `key` on a JSON object (no-op on anything else).
fn set(out: &mut Value, key: &str, v: Value) {
    if let Value::Object(m) = out {
        m.insert(key.to_string(), v);
    }
}

fn pem_cert(der: &[u8]) -> String {
    crypto::pem_block("CERTIFICATE", der)
}

fn unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

/// `TTL "1000h0m0s" is longer than permitted maxTTL "72h0m0s", so maxTTL is being used`.
fn ttl_warning(ttl: u64, max: u64) -> String {
    format!(
        "TTL {:?} is longer than permitted maxTTL {:?}, so maxTTL is being used",
        crate::util::duration::format(Duration::from_secs(ttl)),
        crate::util::duration::format(Duration::from_secs(max))
    )
}

fn check_ttl(v: u64) -> Result<u64> {
    if v > MAX_TTL {
        return Err(Error::invalid_input(format!("ttl of {v}s is out of range")));
    }
    Ok(v)
}

fn subject_from(d: &Data, cn: String) -> Result<Subject> {
    let l = |k: &str| -> Result<Vec<String>> { Ok(fields::string_list(d, k)?.unwrap_or_default()) };
    Ok(Subject {
        common_name: cn,
        organization: l("organization")?,
        ou: l("ou")?,
        country: l("country")?,
        locality: l("locality")?,
        province: l("province")?,
        street_address: l("street_address")?,
        postal_code: l("postal_code")?,
        serial_number: fields::str_or_empty(d, "serial_number")?,
        verbatim: None,
    })
}

fn sans_from(d: &Data, cn: &str, exclude_cn: bool) -> Result<Sans> {
    let mut sans = Sans::default();
    // The common name joins the SANs when it is a hostname or an email address (a CA
    // named `Root X` gets none), as OpenBao's.
    if !cn.is_empty() && !exclude_cn && (cn.contains('@') || role::valid_hostname(cn)) {
        if cn.contains('@') {
            sans.emails.push(cn.to_string());
        } else {
            sans.dns.push(cn.to_string());
        }
    }
    for n in fields::string_list(d, "alt_names")?.unwrap_or_default() {
        if n.contains('@') {
            if !sans.emails.contains(&n) {
                sans.emails.push(n);
            }
        } else if !sans.dns.contains(&n) {
            sans.dns.push(n);
        }
    }
    for ip in fields::string_list(d, "ip_sans")?.unwrap_or_default() {
        let parsed = ip.parse().map_err(|_| {
            Error::invalid_input(format!("the value {ip:?} is not a valid IP address"))
        })?;
        sans.ips.push(parsed);
    }
    sans.uris = fields::string_list(d, "uri_sans")?.unwrap_or_default();
    Ok(sans)
}

/// `other_sans` (`<oid>;UTF8:<value>`, comma-separated), each allowed by the role's
/// `allowed_other_sans` (`*`, or the same OID with a value glob), with OpenBao's texts.
fn other_sans(d: &Data, role: &Role) -> Result<Vec<(Vec<u64>, String)>> {
    let mut out = Vec::new();
    for entry in fields::string_list(d, "other_sans")?.unwrap_or_default() {
        let (oid, rest) = entry.split_once(';').ok_or_else(|| {
            Error::invalid_input(format!("expected a semicolon in other SAN {entry:?}"))
        })?;
        let (kind, value) = rest.split_once(':').ok_or_else(|| {
            Error::invalid_input(format!("expected a colon in other SAN {entry:?}"))
        })?;
        if !matches!(kind, "UTF8" | "UTF-8") {
            return Err(Error::invalid_input(format!(
                "only UTF8 other SAN types are supported, got {kind:?} in {entry:?}"
            )));
        }
        let allowed = role.allowed_other_sans.iter().any(|a| {
            a == "*"
                || a.split_once(';').is_some_and(|(aoid, arest)| {
                    aoid == oid
                        && arest.split_once(':').is_some_and(|(akind, aval)| {
                            matches!(akind, "UTF8" | "UTF-8") && role::glob_match(aval, value)
                        })
                })
        });
        if !allowed {
            return Err(Error::invalid_input(format!(
                "other SAN OID {oid} not allowed by this role"
            )));
        }
        out.push((parse_oid(oid)?, value.to_string()));
    }
    Ok(out)
}

fn ca_usage() -> Vec<KeyUsagePurpose> {
    vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign]
}

fn key_usage_of(name: &str) -> Option<KeyUsagePurpose> {
    Some(match name {
        "DigitalSignature" => KeyUsagePurpose::DigitalSignature,
        "ContentCommitment" => KeyUsagePurpose::ContentCommitment,
        "KeyEncipherment" => KeyUsagePurpose::KeyEncipherment,
        "DataEncipherment" => KeyUsagePurpose::DataEncipherment,
        "KeyAgreement" => KeyUsagePurpose::KeyAgreement,
        "CertSign" => KeyUsagePurpose::KeyCertSign,
        "CRLSign" => KeyUsagePurpose::CrlSign,
        "EncipherOnly" => KeyUsagePurpose::EncipherOnly,
        "DecipherOnly" => KeyUsagePurpose::DecipherOnly,
        _ => return None,
    })
}

fn ext_key_usage_of(name: &str) -> Option<ExtendedKeyUsagePurpose> {
    Some(match name {
        "Any" => ExtendedKeyUsagePurpose::Any,
        "ServerAuth" => ExtendedKeyUsagePurpose::ServerAuth,
        "ClientAuth" => ExtendedKeyUsagePurpose::ClientAuth,
        "CodeSigning" => ExtendedKeyUsagePurpose::CodeSigning,
        "EmailProtection" => ExtendedKeyUsagePurpose::EmailProtection,
        "TimeStamping" => ExtendedKeyUsagePurpose::TimeStamping,
        "OCSPSigning" => ExtendedKeyUsagePurpose::OcspSigning,
        "IPSECEndSystem" => ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 5]),
        "IPSECTunnel" => ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 6]),
        "IPSECUser" => ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 7]),
        _ => return None,
    })
}

fn parse_oid(s: &str) -> Result<Vec<u64>> {
    s.split('.')
        .map(|p| p.parse::<u64>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| Error::invalid_input(format!("{s} is not a valid OID")))
}

impl Pki {
    /// Every issuer of the mount, decoded (from memory after the first call).
    pub(crate) async fn issuers(&self, ctx: &EngineContext) -> Result<IssuerMap> {
        if let Some(m) = self.issuers.read().or_else(crate::util::unpoison)?.as_ref() {
            return Ok(m.clone());
        }
        let mut map = HashMap::new();
        for id in ctx.storage.list(store::ISSUER_PREFIX, &Page::all()).await? {
            let Some(entry) =
                store::get::<IssuerEntry>(ctx, &format!("{}{id}", store::ISSUER_PREFIX)).await?
            else {
                continue;
            };
            let loaded = self.decode_issuer(ctx, entry).await?;
            map.insert(id, Arc::new(loaded));
        }
        let map = Arc::new(map);
        *self.issuers.write().or_else(crate::util::unpoison)? = Some(map.clone());
        Ok(map)
    }

    async fn decode_issuer(&self, ctx: &EngineContext, entry: IssuerEntry) -> Result<LoadedIssuer> {
        let der = crypto::pem_certs(&entry.certificate)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::storage("stored issuer has no certificate"))?;
        let info = crypto::parse_cert(&der)?;
        let (signer, kind) = if entry.key_id.is_empty() {
            (None, None)
        } else {
            match store::get::<KeyEntry>(ctx, &format!("{}{}", store::KEY_PREFIX, entry.key_id))
                .await?
            {
                Some(k) => {
                    let key = PrivateKey::from_pem(&k.private_key)?;
                    let issuer = rcgen::Issuer::from_ca_cert_der(&der.as_slice().into(), key.pair)
                        .map_err(|_| Error::storage("stored issuer certificate is unusable"))?;
                    (Some(issuer), Some(key.kind))
                }
                None => (None, None),
            }
        };
        Ok(LoadedIssuer {
            entry,
            der,
            info,
            signer,
            kind,
        })
    }

    /// Drops the decoded issuers and the default-issuer config (after any write to either).
    fn forget_issuers(&self) -> Result<()> {
        *self.issuers.write().or_else(crate::util::unpoison)? = None;
        self.issuers_config.forget()
    }

    /// The issuer `reference` names: `default`, an id or a name.
    pub(crate) async fn resolve_issuer(
        &self,
        ctx: &EngineContext,
        reference: &str,
    ) -> Result<Arc<LoadedIssuer>> {
        let all = self.issuers(ctx).await?;
        let id = if reference == "default" || reference.is_empty() {
            let cfg = self.issuers_config.get(ctx, store::ISSUERS_CONFIG).await?;
            if cfg.default.is_empty() {
                return Err(Error::invalid_input(
                    "no default issuer currently configured",
                ));
            }
            cfg.default
        } else if all.contains_key(reference) {
            reference.to_string()
        } else {
            all.values()
                .find(|i| i.entry.name == reference)
                .map(|i| i.entry.id.clone())
                .ok_or_else(|| {
                    Error::invalid_input(format!(
                        "unable to find PKI issuer for reference: {reference}"
                    ))
                })?
        };
        all.get(&id).cloned().ok_or_else(|| {
            Error::invalid_input(format!(
                "unable to find PKI issuer for reference: {reference}"
            ))
        })
    }

    /// The chain of `issuer` (itself first, then its parents as far as this mount knows them).
    fn chain(all: &HashMap<String, Arc<LoadedIssuer>>, issuer: &LoadedIssuer) -> Vec<String> {
        let mut out = vec![issuer.entry.certificate.clone()];
        let mut cur = issuer;
        let mut guard = 0;
        while cur.info.issuer_der != cur.info.subject_der && guard < 16 {
            guard += 1;
            let parent = all
                .values()
                .find(|p| p.info.subject_der == cur.info.issuer_der && p.entry.id != cur.entry.id);
            match parent {
                Some(p) => {
                    out.push(p.entry.certificate.clone());
                    cur = p;
                }
                None => break,
            }
        }
        out.extend(
            issuer
                .entry
                .chain
                .iter()
                .filter(|c| !out.contains(c))
                .cloned()
                .collect::<Vec<_>>(),
        );
        out
    }

    async fn role(&self, ctx: &EngineContext, name: &str) -> Result<Option<Arc<Role>>> {
        if let Some(r) = self.roles.read().or_else(crate::util::unpoison)?.get(name) {
            return Ok(Some(r.clone()));
        }
        let Some(r) = store::get::<Role>(ctx, &format!("{}{name}", store::ROLE_PREFIX)).await?
        else {
            return Ok(None);
        };
        let r = Arc::new(r);
        self.roles
            .write()
            .or_else(crate::util::unpoison)?
            .insert(name.to_string(), r.clone());
        Ok(Some(r))
    }

    async fn urls(&self, ctx: &EngineContext) -> Result<UrlsConfig> {
        self.urls_config.get(ctx, store::URLS_CONFIG).await
    }

    /// Store a new key; returns its id.
    async fn save_key(&self, ctx: &EngineContext, key: &PrivateKey, name: &str) -> Result<String> {
        let id = crate::util::fast_uuid();
        let entry = KeyEntry {
            id: id.clone(),
            name: name.to_string(),
            key_type: key.kind.type_name().into(),
            key_bits: key.kind.bits(),
            private_key: key.pkcs8_pem().to_string(),
        };
        store::put(ctx, &format!("{}{id}", store::KEY_PREFIX), &entry).await?;
        let mut cfg: DefaultConfig = store::get(ctx, store::KEYS_CONFIG)
            .await?
            .unwrap_or_default();
        if cfg.default.is_empty() {
            cfg.default = id.clone();
            store::put(ctx, store::KEYS_CONFIG, &cfg).await?;
        }
        Ok(id)
    }

    /// Store a new issuer; the first becomes the default.
    async fn save_issuer(&self, ctx: &EngineContext, entry: &IssuerEntry) -> Result<()> {
        store::put(ctx, &format!("{}{}", store::ISSUER_PREFIX, entry.id), entry).await?;
        let mut cfg: DefaultConfig = store::get(ctx, store::ISSUERS_CONFIG)
            .await?
            .unwrap_or_default();
        let all = self.issuers(ctx).await?;
        if cfg.default.is_empty() || !all.contains_key(&cfg.default) && cfg.default != entry.id {
            cfg.default = entry.id.clone();
            store::put(ctx, store::ISSUERS_CONFIG, &cfg).await?;
        }
        self.forget_issuers()
    }

    async fn check_issuer_name(&self, ctx: &EngineContext, name: &str, except: &str) -> Result<()> {
        if name.is_empty() {
            return Ok(());
        }
        if name == "default" || !crate::util::names::is_generic_name(name) {
            return Err(Error::invalid_input(
                "issuer name contained invalid characters",
            ));
        }
        let all = self.issuers(ctx).await?;
        if all
            .values()
            .any(|i| i.entry.name == name && i.entry.id != except)
        {
            return Err(Error::invalid_input("issuer name already in use"));
        }
        Ok(())
    }

    /// `root/generate/:type`.
    async fn generate_root(
        &self,
        ctx: &EngineContext,
        req: &Request,
        kind_path: &str,
    ) -> Result<Option<Response>> {
        let exported = exported_kind("root/generate", kind_path)?;
        let d = &req.data;
        let _w = self.write.lock().await;
        let issuer_name = fields::str_or_empty(d, "issuer_name")?;
        self.check_issuer_name(ctx, &issuer_name, "").await?;
        let cn = fields::str_or_empty(d, "common_name")?;
        let key_kind = KeyKind::from_request(
            &fields::string(d, "key_type")?.unwrap_or_else(|| "rsa".into()),
            fields::int(d, "key_bits")?.unwrap_or(0),
        )?;
        let mut warnings = Vec::new();
        let (not_before, not_after) = self.validity(ctx, d, None, &mut warnings, 30)?;
        let max_path = fields::int(d, "max_path_length")?.unwrap_or(-1);
        let subject = subject_from(d, cn.clone())?;
        let exclude = fields::boolean(d, "exclude_cn_from_sans")?.unwrap_or(false);
        let sans = sans_from(d, &cn, exclude)?;
        let urls = self.urls(ctx).await?;
        let key = PrivateKey::generate(key_kind)?;
        let serial = crypto::new_serial();
        let t = Template {
            subject,
            sans,
            not_before,
            not_after,
            ca: Some(max_path),
            key_usage: ca_usage(),
            ext_key_usage: Vec::new(),
            urls: urls.clone(),
            serial: serial.clone(),
        };
        let der = t.self_signed(&key)?;
        let key_name = fields::str_or_empty(d, "key_name")?;
        let key_id = self.save_key(ctx, &key, &key_name).await?;
        let pem = pem_cert(&der);
        let serial_s = crypto::serial_colons(&serial);
        let entry = IssuerEntry {
            id: crate::util::fast_uuid(),
            name: issuer_name.clone(),
            key_id: key_id.clone(),
            certificate: pem.clone(),
            chain: Vec::new(),
            leaf_not_after_behavior: "err".into(),
            revoked: false,
            revocation_time: 0,
            revocation_time_rfc3339: String::new(),
            revocation_signature_algorithm: None,
            serial: serial_s.clone(),
            not_after: unix(not_after),
            usage: None,
            manual_chain: None,
        };
        self.save_issuer(ctx, &entry).await?;
        self.store_cert(ctx, &serial_s, &der, &entry.id, unix(not_after))
            .await?;
        let mut out = json!({
            "certificate": pem,
            "expiration": unix(not_after),
            "issuer_id": entry.id,
            "issuer_name": issuer_name,
            "issuing_ca": pem,
            "key_id": key_id,
            "key_name": key_name,
            "serial_number": serial_s,
        });
        if exported {
            let (pk, pk_type) = key.export_pem(pkcs8_wanted(d)?)?;
            set(&mut out, "private_key", json!(pk.as_str()));
            set(&mut out, "private_key_type", json!(pk_type));
        }
        if urls.issuing_certificates.is_empty() && urls.ocsp_servers.is_empty() {
            warnings.push(AIA_WARNING.to_string());
        }
        let mut resp = data(out).unwrap_or_default();
        resp.warnings = warnings;
        Ok(Some(resp))
    }

    /// notBefore / notAfter for a request: `ttl` (or `not_after`), capped by `max` (else
    /// the mount's max lease TTL) with OpenBao's warning; notBefore backdated.
    fn validity(
        &self,
        ctx: &EngineContext,
        d: &Data,
        role: Option<&Role>,
        warnings: &mut Vec<String>,
        backdate: u64,
    ) -> Result<(OffsetDateTime, OffsetDateTime)> {
        let now = ctx.clock.now();
        let mount_max = secs(ctx.max_lease_ttl);
        let role_max = role.map_or(0, |r| r.max_ttl);
        let max = if role_max > 0 { role_max } else { mount_max };
        let default = match role {
            Some(r) if r.ttl > 0 => r.ttl,
            _ => secs(ctx.default_lease_ttl),
        };
        let requested = fields::duration_secs(d, "ttl")?
            .map(check_ttl)
            .transpose()?
            .filter(|t| *t > 0);
        let not_after_req = fields::str_or_empty(d, "not_after")?;
        if requested.is_some() && !not_after_req.is_empty() {
            return Err(Error::invalid_input(
                "Either ttl or not_after should be provided. Both should not be provided in the same request.",
            ));
        }
        // As OpenBao: the TTL (asked for, the role's, or the mount's default) is capped at
        // the maximum with a warning, even when it was a default; an explicit `not_after`
        // then replaces the result (the CA's own expiry still bounds it, see `leaf_bound`).
        let mut ttl = requested.unwrap_or(default);
        if max > 0 && ttl > max {
            warnings.push(ttl_warning(ttl, max));
            ttl = max;
        }
        let explicit = if not_after_req.is_empty() {
            None
        } else {
            Some(crate::clock::parse_rfc3339(&not_after_req).ok_or_else(|| {
                Error::invalid_input(format!("cannot parse not_after timestamp: {not_after_req}"))
            })?)
        };
        let nbd = match role {
            Some(r) => r.not_before_duration,
            None => fields::duration_secs(d, "not_before_duration")?
                .map(check_ttl)
                .transpose()?
                .unwrap_or(backdate),
        };
        let not_before = now - time::Duration::seconds(i64::try_from(nbd).unwrap_or(30));
        // Nanoseconds kept: the CA-expiry check compares them as OpenBao's does (the
        // certificate itself carries whole seconds).
        let not_after = explicit
            .unwrap_or_else(|| now + time::Duration::seconds(i64::try_from(ttl).unwrap_or(0)));
        Ok((
            not_before.replace_nanosecond(0).unwrap_or(not_before),
            not_after,
        ))
    }

    async fn store_cert(
        &self,
        ctx: &EngineContext,
        serial: &str,
        der: &[u8],
        issuer_id: &str,
        not_after: i64,
    ) -> Result<()> {
        let entry = CertEntry {
            der: B64.encode(der),
            issuer_id: issuer_id.to_string(),
            not_after,
        };
        store::put(
            ctx,
            &format!("{}{}", store::CERT_PREFIX, store::serial_key(serial)),
            &entry,
        )
        .await
    }

    /// `intermediate/generate/:type`.
    async fn generate_intermediate(
        &self,
        ctx: &EngineContext,
        req: &Request,
        kind_path: &str,
    ) -> Result<Option<Response>> {
        let exported = exported_kind("intermediate/generate", kind_path)?;
        let d = &req.data;
        let _w = self.write.lock().await;
        let cn = fields::str_or_empty(d, "common_name")?;
        let key_kind = KeyKind::from_request(
            &fields::string(d, "key_type")?.unwrap_or_else(|| "rsa".into()),
            fields::int(d, "key_bits")?.unwrap_or(0),
        )?;
        let subject = subject_from(d, cn.clone())?;
        let exclude = fields::boolean(d, "exclude_cn_from_sans")?.unwrap_or(false);
        let sans = sans_from(d, &cn, exclude)?;
        let key = PrivateKey::generate(key_kind)?;
        let csr = build::csr(&subject, &sans, &key)?;
        let key_name = fields::str_or_empty(d, "key_name")?;
        let key_id = self.save_key(ctx, &key, &key_name).await?;
        let mut out = json!({ "csr": csr, "key_id": key_id });
        if exported {
            let (pk, pk_type) = key.export_pem(pkcs8_wanted(d)?)?;
            set(&mut out, "private_key", json!(pk.as_str()));
            set(&mut out, "private_key_type", json!(pk_type));
        }
        Ok(data(out))
    }

    /// `root/sign-intermediate` and `issuer/:ref/sign-intermediate`.
    async fn sign_intermediate(
        &self,
        ctx: &EngineContext,
        req: &Request,
        issuer_ref: &str,
    ) -> Result<Option<Response>> {
        let d = &req.data;
        // Refused before anything is signed or stored.
        apply_format(d, &mut json!({}))?;
        let csr_pem = fields::str_or_empty(d, "csr")?;
        let csr = build::parse_csr(&csr_pem)?;
        let issuer = self
            .resolve_issuer(ctx, issuer_ref)
            .await
            .map_err(|e| ca_fetch_error(&e))?;
        let signer = issuer.signer_for_issuing()?;
        let use_csr_values = fields::boolean(d, "use_csr_values")?.unwrap_or(false);
        let mut cn = fields::str_or_empty(d, "common_name")?;
        if cn.is_empty() || use_csr_values {
            cn = csr.common_name.clone();
        }
        let mut warnings = Vec::new();
        let (not_before, mut not_after) = self.validity(ctx, d, None, &mut warnings, 30)?;
        self.leaf_bound(&issuer, &mut not_after, &mut warnings)?;
        let max_path = fields::int(d, "max_path_length")?.unwrap_or(-1);
        let exclude = fields::boolean(d, "exclude_cn_from_sans")?.unwrap_or(false);
        let mut sans = sans_from(d, &cn, exclude)?;
        if use_csr_values {
            sans = csr.sans.clone();
        }
        let spki = rcgen::SubjectPublicKeyInfo::from_der(&csr.spki_der)
            .map_err(|_| Error::invalid_input("unsupported public key in csr"))?;
        let urls = self.urls(ctx).await?;
        let serial = crypto::new_serial();
        let t = Template {
            subject: subject_from(d, cn)?,
            sans,
            not_before,
            not_after,
            ca: Some(max_path),
            key_usage: ca_usage(),
            ext_key_usage: Vec::new(),
            urls,
            serial: serial.clone(),
        };
        let der = t.signed_by(&spki, signer)?;
        let serial_s = crypto::serial_colons(&serial);
        self.store_cert(ctx, &serial_s, &der, &issuer.entry.id, unix(not_after))
            .await?;
        let all = self.issuers(ctx).await?;
        let chain = Self::chain(&all, &issuer);
        let pem = pem_cert(&der);
        let mut full_chain = vec![pem.clone()];
        full_chain.extend(chain.iter().cloned());
        let mut out = json!({
            "certificate": pem,
            "issuing_ca": issuer.entry.certificate,
            "ca_chain": full_chain,
            "serial_number": serial_s,
            "expiration": unix(not_after),
        });
        apply_format(d, &mut out)?;
        let mut resp = data(out).unwrap_or_default();
        resp.warnings = warnings;
        Ok(Some(resp))
    }

    /// Apply the issuer's `leaf_not_after_behavior` to a certificate ending at `not_after`.
    fn leaf_bound(
        &self,
        issuer: &LoadedIssuer,
        not_after: &mut OffsetDateTime,
        _warnings: &mut [String],
    ) -> Result<()> {
        if *not_after <= issuer.info.not_after {
            return Ok(());
        }
        match issuer.entry.leaf_not_after_behavior.as_str() {
            "truncate" => {
                *not_after = issuer.info.not_after;
                Ok(())
            }
            "permit" => Ok(()),
            _ => Err(Error::invalid_input(format!(
                "cannot satisfy request, as TTL would result in notAfter of {} that is beyond the expiration of the CA certificate at {}",
                rfc3339(*not_after),
                rfc3339(issuer.info.not_after)
            ))),
        }
    }

    /// `intermediate/set-signed` (and `issuers/import/bundle`, `config/ca`): import every
    /// certificate of the bundle as an issuer, matching keys the mount holds.
    async fn import_bundle(&self, ctx: &EngineContext, req: &Request) -> Result<Option<Response>> {
        let text = fields::str_or_empty(&req.data, "certificate")?;
        let text = if text.is_empty() {
            fields::str_or_empty(&req.data, "pem_bundle")?
        } else {
            text
        };
        if text.trim().is_empty() {
            return Err(Error::invalid_input("no data found in PEM bundle"));
        }
        let certs = crypto::pem_certs(&text)?;
        // A private key in a bundle (config/ca) is imported too.
        let mut imported_keys = Vec::new();
        let _w = self.write.lock().await;
        if text.contains("PRIVATE KEY-----") {
            for block in pem::parse_many(text.as_bytes()).unwrap_or_default() {
                if block.tag().ends_with("PRIVATE KEY") {
                    let k = PrivateKey::from_pem(&pem::encode(&block))?;
                    let id = self.existing_key(ctx, &k).await?;
                    if id.is_none() {
                        imported_keys.push(self.save_key(ctx, &k, "").await?);
                    }
                }
            }
        }
        if certs.is_empty() {
            return Err(Error::invalid_input("no data found in PEM bundle"));
        }
        let all = self.issuers(ctx).await?;
        let mut imported = Vec::new();
        let mut existing = Vec::new();
        let mut mapping = serde_json::Map::new();
        for der in certs {
            let info = crypto::parse_cert(&der)?;
            if !info.is_ca {
                continue;
            }
            if let Some(i) = all.values().find(|i| i.der == der) {
                existing.push(i.entry.id.clone());
                mapping.insert(i.entry.id.clone(), json!(i.entry.key_id));
                continue;
            }
            let pubkey = crypto::spki_public_key(&info.spki_der)?;
            let key_id = self.key_for_public(ctx, &pubkey).await?.unwrap_or_default();
            let entry = IssuerEntry {
                id: crate::util::fast_uuid(),
                name: String::new(),
                key_id: key_id.clone(),
                certificate: pem_cert(&der),
                chain: Vec::new(),
                leaf_not_after_behavior: "err".into(),
                revoked: false,
                revocation_time: 0,
                revocation_time_rfc3339: String::new(),
                revocation_signature_algorithm: None,
                serial: info.serial.clone(),
                not_after: unix(info.not_after),
                usage: None,
                manual_chain: None,
            };
            self.save_issuer(ctx, &entry).await?;
            mapping.insert(entry.id.clone(), json!(key_id));
            imported.push(entry.id);
        }
        if imported.is_empty() && existing.is_empty() {
            return Err(Error::invalid_input(
                "unable to import bundle: no CA certificates found",
            ));
        }
        // Go's nil slices: an empty list is `null`.
        let list = |v: &Vec<String>| if v.is_empty() { Value::Null } else { json!(v) };
        let mut resp = data(json!({
            "existing_issuers": list(&existing),
            "existing_keys": Value::Null,
            "imported_issuers": list(&imported),
            "imported_keys": list(&imported_keys),
            "mapping": mapping,
        }))
        .unwrap_or_default();
        let urls = self.urls(ctx).await?;
        if urls.issuing_certificates.is_empty() && urls.ocsp_servers.is_empty() {
            resp.warnings.push(AIA_WARNING.into());
        }
        Ok(Some(resp))
    }

    async fn existing_key(&self, ctx: &EngineContext, k: &PrivateKey) -> Result<Option<String>> {
        self.key_for_public(ctx, k.pair.public_key_raw()).await
    }

    async fn key_for_public(&self, ctx: &EngineContext, public: &[u8]) -> Result<Option<String>> {
        for id in ctx.storage.list(store::KEY_PREFIX, &Page::all()).await? {
            if let Some(k) =
                store::get::<KeyEntry>(ctx, &format!("{}{id}", store::KEY_PREFIX)).await?
            {
                if let Ok(pk) = PrivateKey::from_pem(&k.private_key) {
                    if pk.pair.public_key_raw() == public {
                        return Ok(Some(id));
                    }
                }
            }
        }
        Ok(None)
    }

    /// `issue/:role` and `sign/:role` (and the `issuer/:ref/` forms).
    pub(crate) async fn issue(
        &self,
        ctx: &EngineContext,
        req: &Request,
        role_name: &str,
        csr_mode: bool,
        issuer_override: Option<&str>,
    ) -> Result<Option<Response>> {
        let d = &req.data;
        apply_format(d, &mut json!({}))?;
        let role = self
            .role(ctx, role_name)
            .await?
            .ok_or_else(|| Error::invalid_input(format!("unknown role: {role_name}")))?;
        let csr = if csr_mode {
            Some(build::parse_csr(&fields::str_or_empty(d, "csr")?)?)
        } else {
            None
        };
        let mut cn = fields::str_or_empty(d, "common_name")?;
        if let Some(c) = &csr {
            if role.use_csr_common_name {
                cn = c.common_name.clone();
            }
        }
        if cn.is_empty() && role.require_cn {
            return Err(Error::invalid_input(
                "the common_name field is required, or must be provided in a CSR with \"use_csr_common_name\" set to true, unless \"require_cn\" is set to false",
            ));
        }
        let exclude = fields::boolean(d, "exclude_cn_from_sans")?.unwrap_or(false);
        let mut sans = sans_from(d, &cn, exclude)?;
        if let Some(c) = &csr {
            if role.use_csr_sans {
                let mut s = c.sans.clone();
                if !cn.is_empty() && !exclude && !s.dns.contains(&cn) && !cn.contains('@') {
                    s.dns.insert(0, cn.clone());
                }
                sans = s;
            }
        }
        // OpenBao dedups the names with `strutil.RemoveDuplicates`, which sorts them.
        sans.dns.sort();
        sans.dns.dedup();
        sans.emails.sort();
        sans.emails.dedup();
        // A DNS label longer than 63 bytes is refused whatever the role (IDNA's rule, which
        // OpenBao applies before the role's).
        for n in std::iter::once(&cn).chain(sans.dns.iter()) {
            if n.contains('@') {
                continue;
            }
            if let Some(label) = n.split('.').find(|l| l.len() > 63) {
                return Err(Error::invalid_input(format!(
                    "idna: invalid label {label:?}"
                )));
            }
        }
        // Names against the role, with OpenBao's texts.
        if !cn.is_empty() && !role::name_allowed(&role, &cn) {
            return Err(Error::invalid_input(format!(
                "common name {cn} not allowed by this role"
            )));
        }
        for n in sans.dns.iter().chain(sans.emails.iter()) {
            if !role::name_allowed(&role, n) {
                return Err(Error::invalid_input(format!(
                    "subject alternate name {n} not allowed by this role"
                )));
            }
        }
        if !sans.ips.is_empty() && !role.allow_ip_sans {
            return Err(Error::invalid_input(format!(
                "IP Subject Alternative Names are not allowed in this role, but was provided {}",
                sans.ips
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        for u in &sans.uris {
            if !role.allowed_uri_sans.iter().any(|p| role::glob_match(p, u)) {
                return Err(Error::invalid_input(
                    "URI Subject Alternative Names are not allowed in this role, but were provided via the API",
                ));
            }
        }
        sans.other = other_sans(d, &role)?;
        let subject_serial = fields::str_or_empty(d, "serial_number")?;
        if !subject_serial.is_empty()
            && !role
                .allowed_serial_numbers
                .iter()
                .any(|p| role::glob_match(p, &subject_serial))
        {
            return Err(Error::invalid_input(format!(
                "serial_number {subject_serial} not allowed by this role"
            )));
        }
        let issuer_ref = issuer_override.unwrap_or(&role.issuer_ref);
        let issuer = self
            .resolve_issuer(ctx, issuer_ref)
            .await
            .map_err(|e| ca_fetch_error(&e))?;
        let signer = issuer.signer_for_issuing()?;
        let mut warnings = Vec::new();
        let (not_before, mut not_after) = self.validity(ctx, d, Some(&role), &mut warnings, 30)?;
        self.leaf_bound(&issuer, &mut not_after, &mut warnings)?;
        let mut key_usage: Vec<KeyUsagePurpose> = role
            .key_usage
            .iter()
            .filter_map(|k| key_usage_of(k))
            .collect();
        let mut eku = Vec::new();
        if role.server_flag {
            eku.push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if role.client_flag {
            eku.push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        if role.code_signing_flag {
            eku.push(ExtendedKeyUsagePurpose::CodeSigning);
        }
        if role.email_protection_flag {
            eku.push(ExtendedKeyUsagePurpose::EmailProtection);
        }
        for e in &role.ext_key_usage {
            if let Some(p) = ext_key_usage_of(e) {
                if !eku.contains(&p) {
                    eku.push(p);
                }
            }
        }
        for oid in &role.ext_key_usage_oids {
            eku.push(ExtendedKeyUsagePurpose::Other(parse_oid(oid)?));
        }
        let urls = self.urls(ctx).await?;
        let serial = crypto::new_serial();
        let subject = Subject {
            common_name: cn,
            organization: role.organization.clone(),
            ou: role.ou.clone(),
            country: role.country.clone(),
            locality: role.locality.clone(),
            province: role.province.clone(),
            street_address: role.street_address.clone(),
            postal_code: role.postal_code.clone(),
            serial_number: subject_serial,
            verbatim: None,
        };
        let mut private = None;
        let der = match &csr {
            Some(c) => {
                let spki = rcgen::SubjectPublicKeyInfo::from_der(&c.spki_der)
                    .map_err(|_| Error::invalid_input("unsupported public key in csr"))?;
                if key_usage.is_empty() {
                    key_usage.push(KeyUsagePurpose::DigitalSignature);
                }
                let t = Template {
                    subject,
                    sans,
                    not_before,
                    not_after,
                    ca: None,
                    key_usage,
                    ext_key_usage: eku,
                    urls,
                    serial: serial.clone(),
                };
                t.signed_by(&spki, signer)?
            }
            None => {
                // The role's key usages as they are, KeyEncipherment included for EC keys
                // (OpenBao 2.7 keeps it).
                let key = crypto::LeafKey::generate(role.key_kind()?)?;
                let t = Template {
                    subject,
                    sans,
                    not_before,
                    not_after,
                    ca: None,
                    key_usage,
                    ext_key_usage: eku,
                    urls,
                    serial: serial.clone(),
                };
                let der = t.signed_by(&key, signer)?;
                private = Some(key);
                der
            }
        };
        let serial_s = crypto::serial_colons(&serial);
        if !role.no_store {
            self.store_cert(ctx, &serial_s, &der, &issuer.entry.id, unix(not_after))
                .await?;
        }
        let all = self.issuers(ctx).await?;
        let chain = Self::chain(&all, &issuer);
        let pem = pem_cert(&der);
        let mut out = json!({
            "ca_chain": chain,
            "certificate": pem,
            "expiration": unix(not_after),
            "issuing_ca": issuer.entry.certificate,
            "not_before": unix(not_before),
            "serial_number": serial_s,
        });
        if let Some(k) = &private {
            let (pk, pk_type) = k.export_pem(pkcs8_wanted(d)?)?;
            set(&mut out, "private_key", json!(pk.as_str()));
            set(&mut out, "private_key_type", json!(pk_type));
        }
        apply_format(d, &mut out)?;
        let mut resp = data(out).unwrap_or_default();
        resp.warnings = warnings;
        if role.generate_lease {
            let ttl = Duration::from_secs(
                u64::try_from((not_after - ctx.clock.now()).whole_seconds()).unwrap_or(0),
            );
            let mut internal = Data::new();
            internal.insert("serial_number".into(), json!(serial_s));
            resp.lease = Some(LeaseInfo {
                ttl,
                max_ttl: ttl,
                renewable: false,
                internal,
                ..LeaseInfo::default()
            });
        }
        Ok(Some(resp))
    }

    /// Revoke one certificate by serial (colon form); OpenBao's refusals.
    pub(crate) async fn revoke_serial(
        &self,
        ctx: &EngineContext,
        serial: &str,
    ) -> Result<RevokedEntry> {
        let _w = self.write.lock().await;
        let key = store::serial_key(serial);
        if let Some(r) =
            store::get::<RevokedEntry>(ctx, &format!("{}{key}", store::REVOKED_PREFIX)).await?
        {
            return Ok(r);
        }
        let cert: CertEntry = store::get(ctx, &format!("{}{key}", store::CERT_PREFIX))
            .await?
            .ok_or_else(|| {
                Error::invalid_input(format!("certificate with serial {serial} not found."))
            })?;
        let all = self.issuers(ctx).await?;
        if let Some(i) = all.values().find(|i| i.entry.serial == serial) {
            return Err(Error::invalid_input(format!(
                "adding issuer (id: {}) to its own CRL is not allowed",
                i.entry.id
            )));
        }
        let now = ctx.clock.now();
        let entry = RevokedEntry {
            serial: serial.to_string(),
            revocation_time: unix(now),
            revocation_time_rfc3339: now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            issuer_id: cert.issuer_id.clone(),
            der: cert.der.clone(),
            not_after: cert.not_after,
        };
        store::put(ctx, &format!("{}{key}", store::REVOKED_PREFIX), &entry).await?;
        self.crl.add(&entry)?;
        Ok(entry)
    }

    async fn revoke(&self, ctx: &EngineContext, req: &Request) -> Result<Option<Response>> {
        let d = &req.data;
        let serial_in = fields::str_or_empty(d, "serial_number")?;
        let cert_in = fields::str_or_empty(d, "certificate")?;
        let serial = match (serial_in.is_empty(), cert_in.is_empty()) {
            (true, true) => {
                return Err(Error::invalid_input(
                    "The serial number or certificate to revoke must be provided.",
                ));
            }
            (false, false) => {
                return Err(Error::invalid_input(
                    "Must provide either the certificate or the serial to revoke; not both.",
                ));
            }
            (false, true) => crypto::normalize_serial(&serial_in).ok_or_else(|| {
                Error::invalid_input(format!("certificate with serial {serial_in} not found."))
            })?,
            (true, false) => {
                let der = crypto::pem_certs(&cert_in)
                    .ok()
                    .and_then(|v| v.into_iter().next())
                    .ok_or_else(|| {
                        Error::internal("1 error occurred:\n\t* provided certificate data was too short; perhaps a path was passed to the API rather than the contents of a PEM file\n\n")
                    })?;
                let info = crypto::parse_cert(&der)?;
                // Only a certificate this mount issued (the stored copy must match).
                let stored: Option<CertEntry> = store::get(
                    ctx,
                    &format!("{}{}", store::CERT_PREFIX, store::serial_key(&info.serial)),
                )
                .await?;
                match stored {
                    Some(s) if s.der == B64.encode(&der) => info.serial,
                    _ => {
                        return Err(Error::invalid_input(
                            "certificate was not issued by this mount",
                        ));
                    }
                }
            }
        };
        let entry = self.revoke_serial(ctx, &serial).await?;
        data(json!({
            "revocation_time": entry.revocation_time,
            "revocation_time_rfc3339": entry.revocation_time_rfc3339,
            "state": "revoked",
        }))
        .map(Some)
        .ok_or_else(|| Error::internal("revocation answer"))
    }

    /// `cert/:serial[/raw[/pem]]`, `cert/ca`, `cert/ca_chain`, `cert/crl`.
    async fn read_cert(&self, ctx: &EngineContext, rest: &str) -> Result<Option<Response>> {
        let (serial, fmt) = match rest.split_once('/') {
            Some((s, f)) => (s, Some(f)),
            None => (rest, None),
        };
        match serial {
            "ca" | "ca_chain" => {
                let issuer = match self.resolve_issuer(ctx, "default").await {
                    Ok(i) => i,
                    Err(_) => return Ok(None),
                };
                let all = self.issuers(ctx).await?;
                let chain = Self::chain(&all, &issuer);
                let body = if serial == "ca" {
                    issuer.entry.certificate.clone()
                } else {
                    chain.join("\n")
                };
                return match fmt {
                    None => Ok(data(json!({ "certificate": body, "ca_chain": chain,
                        "revocation_time": 0, "revocation_time_rfc3339": "", "issuer_id": issuer.entry.id }))
                        .map(|mut r| {
                            if let Some(d) = r.data.as_mut() {
                                if serial == "ca" {
                                    d.remove("ca_chain");
                                }
                                d.remove("issuer_id");
                            }
                            r
                        })),
                    Some("raw") => Ok(Some(raw_response("application/pkix-cert", &issuer.der))),
                    Some("raw/pem") => Ok(Some(raw_response(
                        "application/pem-certificate-chain",
                        body.as_bytes(),
                    ))),
                    Some(_) => Err(Error::unsupported_path(rest)),
                };
            }
            "crl" | "delta-crl" => {
                let (der, pem) = self.current_crl(ctx).await?;
                return match fmt {
                    None => Ok(data(
                        json!({ "certificate": pem.as_str(), "revocation_time": 0, "revocation_time_rfc3339": "" }),
                    )),
                    Some("raw") => Ok(Some(raw_response("application/pkix-crl", &der))),
                    Some("raw/pem") => {
                        Ok(Some(raw_response("application/x-pem-file", pem.as_bytes())))
                    }
                    Some(_) => Err(Error::unsupported_path(rest)),
                };
            }
            _ => {}
        }
        let Some(serial) = crypto::normalize_serial(serial) else {
            return Ok(None);
        };
        let key = store::serial_key(&serial);
        let Some(cert) =
            store::get::<CertEntry>(ctx, &format!("{}{key}", store::CERT_PREFIX)).await?
        else {
            return Ok(None);
        };
        let der = B64
            .decode(&cert.der)
            .map_err(|_| Error::storage("stored certificate is corrupt"))?;
        match fmt {
            None => {
                let revoked: Option<RevokedEntry> =
                    store::get(ctx, &format!("{}{key}", store::REVOKED_PREFIX)).await?;
                let mut out = json!({ "certificate": pem_cert(&der) });
                match revoked {
                    Some(r) => {
                        set(&mut out, "issuer_id", json!(r.issuer_id));
                        set(&mut out, "revocation_time", json!(r.revocation_time));
                        set(
                            &mut out,
                            "revocation_time_rfc3339",
                            json!(r.revocation_time_rfc3339),
                        );
                    }
                    None => {
                        set(&mut out, "revocation_time", json!(0));
                        set(&mut out, "revocation_time_rfc3339", json!(""));
                    }
                }
                Ok(data(out))
            }
            Some("raw") => Ok(Some(raw_response("application/pkix-cert", &der))),
            Some("raw/pem") => Ok(Some(raw_response(
                "application/pem-certificate-chain",
                pem_cert(&der).as_bytes(),
            ))),
            Some(_) => Err(Error::unsupported_path(rest)),
        }
    }

    /// The default issuer's CRL (DER, PEM), from cache or rebuilt.
    pub(crate) async fn current_crl(
        &self,
        ctx: &EngineContext,
    ) -> Result<(Arc<Vec<u8>>, Arc<String>)> {
        let issuer = self.resolve_issuer(ctx, "default").await?;
        self.crl_for(ctx, &issuer).await
    }

    pub(crate) async fn crl_for(
        &self,
        ctx: &EngineContext,
        issuer: &LoadedIssuer,
    ) -> Result<(Arc<Vec<u8>>, Arc<String>)> {
        self.crl.ensure_loaded(ctx).await?;
        self.crl.current(ctx, issuer).await
    }

    async fn ca_read(&self, ctx: &EngineContext, what: &str) -> Result<Option<Response>> {
        let issuer = match self.resolve_issuer(ctx, "default").await {
            Ok(i) => i,
            Err(_) => {
                return Ok(Some(raw_response("application/pkix-cert", b"")));
            }
        };
        match what {
            "ca" => Ok(Some(raw_response("application/pkix-cert", &issuer.der))),
            "ca/pem" => Ok(Some(raw_response(
                "application/pem-certificate-chain",
                issuer.entry.certificate.as_bytes(),
            ))),
            _ => {
                let all = self.issuers(ctx).await?;
                let chain = Self::chain(&all, &issuer).join("\n");
                Ok(Some(raw_response(
                    "application/pkix-cert",
                    chain.as_bytes(),
                )))
            }
        }
    }

    async fn list_certs(&self, ctx: &EngineContext, prefix: &str) -> Result<Option<Response>> {
        let keys = ctx.storage.list(prefix, &Page::all()).await?;
        Ok(crate::util::list_response(
            keys.into_iter().map(|k| k.replace('-', ":")).collect(),
        ))
    }

    fn issuer_data(all: &HashMap<String, Arc<LoadedIssuer>>, i: &LoadedIssuer) -> Data {
        let chain = Self::chain(all, i);
        let v = json!({
            "ca_chain": chain,
            "certificate": i.entry.certificate,
            "crl_distribution_points": [],
            "delta_crl_distribution_points": [],
            "issuer_id": i.entry.id,
            "issuer_name": i.entry.name,
            "issuing_certificates": [],
            "key_id": i.entry.key_id,
            "leaf_not_after_behavior": i.entry.leaf_not_after_behavior,
            "manual_chain": i.entry.manual_chain,
            "ocsp_servers": [],
            "revocation_signature_algorithm": i
                .entry
                .revocation_signature_algorithm
                .as_deref()
                .unwrap_or_else(|| i.kind.map_or("", KeyKind::signature_name)),
            "revoked": i.entry.revoked,
            "usage": i.usage(),
        });
        let mut m = match v {
            Value::Object(m) => m,
            _ => Data::new(),
        };
        if i.entry.revoked {
            // Only a revoked issuer shows when, as OpenBao's (keys in its sorted order).
            let mut sorted = Data::new();
            for (k, v) in m {
                if k == "revoked" {
                    sorted.insert("revocation_time".into(), json!(i.entry.revocation_time));
                    sorted.insert(
                        "revocation_time_rfc3339".into(),
                        json!(i.entry.revocation_time_rfc3339),
                    );
                }
                sorted.insert(k, v);
            }
            m = sorted;
        }
        m
    }

    async fn issuer_path(
        &self,
        ctx: &EngineContext,
        req: &Request,
        rest: &str,
    ) -> Result<Option<Response>> {
        let (reference, tail) = match rest.split_once('/') {
            Some((r, t)) => (r, Some(t)),
            None => (rest, None),
        };
        let op = req.operation;
        let write = matches!(op, Operation::Create | Operation::Update | Operation::Patch);
        match tail {
            Some(t) if t.starts_with("issue/") && write => {
                return self
                    .issue(
                        ctx,
                        req,
                        t.trim_start_matches("issue/"),
                        false,
                        Some(reference),
                    )
                    .await;
            }
            Some(t) if t.starts_with("sign/") && write => {
                return self
                    .issue(
                        ctx,
                        req,
                        t.trim_start_matches("sign/"),
                        true,
                        Some(reference),
                    )
                    .await;
            }
            Some("sign-intermediate") if write => {
                return self.sign_intermediate(ctx, req, reference).await;
            }
            _ => {}
        }
        let issuer = self
            .resolve_issuer(ctx, reference)
            .await
            .map_err(|e| multierror(e.message()))?;
        let all = self.issuers(ctx).await?;
        match (tail, op) {
            (None, Operation::Read) => {
                Ok(Some(Response::with_data(Self::issuer_data(&all, &issuer))))
            }
            (Some("json"), Operation::Read) => {
                let chain = Self::chain(&all, &issuer);
                data(json!({
                    "ca_chain": chain,
                    "certificate": issuer.entry.certificate,
                    "issuer_id": issuer.entry.id,
                    "issuer_name": issuer.entry.name,
                }))
                .map(Some)
                .ok_or_else(|| Error::internal("issuer answer"))
            }
            (Some("pem"), Operation::Read) => Ok(Some(raw_response(
                "application/pem-certificate-chain",
                issuer.entry.certificate.as_bytes(),
            ))),
            (Some("der"), Operation::Read) => {
                Ok(Some(raw_response("application/pkix-cert", &issuer.der)))
            }
            (Some("crl" | "crl/der"), Operation::Read) => {
                let (der, _) = self.crl_for(ctx, &issuer).await?;
                Ok(Some(raw_response("application/pkix-crl", &der)))
            }
            (Some("crl/pem"), Operation::Read) => {
                let (_, pem) = self.crl_for(ctx, &issuer).await?;
                Ok(Some(raw_response("application/x-pem-file", pem.as_bytes())))
            }
            (Some("revoke"), _) if write => self.revoke_issuer(ctx, &issuer).await.map(Some),
            (None, _) if write => {
                let _w = self.write.lock().await;
                let mut entry = issuer.entry.clone();
                let d = &req.data;
                // POST sets every field it does not name back to its default (as OpenBao's
                // update does: a POST with only `usage` clears the name); PATCH keeps them.
                let patch = op == Operation::Patch;
                match fields::string(d, "issuer_name")? {
                    Some(n) => {
                        self.check_issuer_name(ctx, &n, &entry.id).await?;
                        entry.name = n;
                    }
                    None if !patch => entry.name = String::new(),
                    None => {}
                }
                match fields::string(d, "leaf_not_after_behavior")? {
                    Some(b) => {
                        if !matches!(b.as_str(), "err" | "truncate" | "permit") {
                            return Err(Error::invalid_input(
                                "Unknown value for field `leaf_not_after_behavior`. Possible values are `err`, `truncate`, and `permit`.",
                            ));
                        }
                        entry.leaf_not_after_behavior = b;
                    }
                    None if !patch => entry.leaf_not_after_behavior = "err".into(),
                    None => {}
                }
                // A comma-separated string keeps its empty items (OpenBao refuses them).
                let given = match d.get("usage") {
                    Some(Value::String(u)) => Some(vec![u.clone()]),
                    _ => fields::string_list(d, "usage")?,
                };
                let usage = match given {
                    Some(u) => Some(parse_usages(&u)?),
                    None if !patch => Some(ALL_USAGES.to_string()),
                    None => None,
                };
                if let Some(u) = usage {
                    if entry.revoked && u.split(',').any(|x| x == "issuing-certificates") {
                        return Err(Error::invalid_input(
                            "This issuer was revoked; unable to modify its usage to include certificate signing again. Reissue this certificate (preferably with a new key) and modify that entry instead.",
                        ));
                    }
                    entry.usage = (u != ALL_USAGES).then_some(u);
                }
                match fields::string(d, "revocation_signature_algorithm")? {
                    Some(a) => {
                        let own = issuer.kind.map_or("", KeyKind::signature_name);
                        if !a.is_empty() && a != own {
                            return Err(Error::invalid_input(format!(
                                "revocation_signature_algorithm {a} is not supported for this issuer's key; use {own} or leave it empty"
                            )));
                        }
                        entry.revocation_signature_algorithm = Some(a);
                    }
                    None if !patch => entry.revocation_signature_algorithm = Some(String::new()),
                    None => {}
                }
                if !patch {
                    entry.manual_chain = None;
                }
                store::put(
                    ctx,
                    &format!("{}{}", store::ISSUER_PREFIX, entry.id),
                    &entry,
                )
                .await?;
                self.forget_issuers()?;
                let all = self.issuers(ctx).await?;
                let i = all
                    .get(&entry.id)
                    .cloned()
                    .ok_or_else(|| Error::internal("issuer vanished"))?;
                Ok(Some(Response::with_data(Self::issuer_data(&all, &i))))
            }
            (None, Operation::Delete) => {
                let _w = self.write.lock().await;
                ctx.storage
                    .delete(&format!("{}{}", store::ISSUER_PREFIX, issuer.entry.id))
                    .await?;
                let mut cfg: DefaultConfig = store::get(ctx, store::ISSUERS_CONFIG)
                    .await?
                    .unwrap_or_default();
                if cfg.default == issuer.entry.id {
                    cfg.default = String::new();
                    store::put(ctx, store::ISSUERS_CONFIG, &cfg).await?;
                }
                self.forget_issuers()?;
                Ok(None)
            }
            _ => Err(Error::unsupported_path(rest)),
        }
    }

    /// `issuer/:ref/revoke`: the issuer loses `issuing-certificates` for good and, where
    /// its parent lives in this mount, its certificate goes on the parent's CRL. Revoking
    /// again answers the same and changes nothing.
    async fn revoke_issuer(&self, ctx: &EngineContext, issuer: &LoadedIssuer) -> Result<Response> {
        let _w = self.write.lock().await;
        let all = self.issuers(ctx).await?;
        let current = all
            .get(&issuer.entry.id)
            .cloned()
            .ok_or_else(|| Error::internal("issuer vanished"))?;
        if current.entry.revoked {
            return Ok(Response::with_data(Self::issuer_data(&all, &current)));
        }
        let mut warnings = Vec::new();
        let self_signed = current.info.issuer_der == current.info.subject_der;
        if self_signed {
            warnings.push("This issuer is a self-signed (potentially root) certificate. This means it may not be considered revoked if there is not an external, cross-signed variant of this certificate. This issuer's serial number will not appear on its own CRL.".to_string());
        }
        let parents: Vec<&Arc<LoadedIssuer>> = all
            .values()
            .filter(|p| {
                p.entry.id != current.entry.id && p.info.subject_der == current.info.issuer_der
            })
            .collect();
        if parents.is_empty() {
            warnings.push("This issuer lacks another parent issuer within the mount. This means it will not appear on any other CRLs and may not be considered revoked by clients. Consider adding this issuer to its issuer's CRL as well if it is not self-signed.".to_string());
        }
        let cfg: DefaultConfig = store::get(ctx, store::ISSUERS_CONFIG)
            .await?
            .unwrap_or_default();
        if cfg.default == current.entry.id {
            warnings.push("This issuer is currently configured as the default issuer for this mount; operations such as certificate issuance may not work until a new default issuer is selected.".to_string());
        }
        let now = ctx.clock.now();
        let mut entry = current.entry.clone();
        entry.revoked = true;
        entry.revocation_time = unix(now);
        entry.revocation_time_rfc3339 = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let usage = current
            .usage()
            .split(',')
            .filter(|u| *u != "issuing-certificates")
            .collect::<Vec<_>>()
            .join(",");
        entry.usage = Some(usage);
        // On each parent's CRL (the revoked entry names the parent that signed it).
        for parent in parents {
            let revoked = RevokedEntry {
                serial: entry.serial.clone(),
                revocation_time: entry.revocation_time,
                revocation_time_rfc3339: entry.revocation_time_rfc3339.clone(),
                issuer_id: parent.entry.id.clone(),
                der: B64.encode(&current.der),
                not_after: entry.not_after,
            };
            store::put(
                ctx,
                &format!(
                    "{}{}",
                    store::REVOKED_PREFIX,
                    store::serial_key(&entry.serial)
                ),
                &revoked,
            )
            .await?;
            self.crl.add(&revoked)?;
        }
        store::put(
            ctx,
            &format!("{}{}", store::ISSUER_PREFIX, entry.id),
            &entry,
        )
        .await?;
        self.forget_issuers()?;
        let all = self.issuers(ctx).await?;
        let i = all
            .get(&entry.id)
            .cloned()
            .ok_or_else(|| Error::internal("issuer vanished"))?;
        // The CRLs are rebuilt now; an issuer with a key but without `crl-signing` gets
        // none, which OpenBao reports first.
        let mut rebuild: Vec<String> = all
            .values()
            .filter(|x| x.signer.is_some() && !x.usage().split(',').any(|u| u == "crl-signing"))
            .map(|x| x.entry.id.clone())
            .collect();
        rebuild.sort_unstable();
        let mut out: Vec<String> = rebuild
            .iter()
            .enumerate()
            .map(|(n, id)| format!("Warning {} during CRL rebuild: warning from local CRL rebuild: Issuer equivalency set with associated keys lacked an issuer with CRL Signing KeyUsage; refusing to rebuild CRL for this group of issuers: {id}", n + 1))
            .collect();
        out.extend(warnings);
        let mut resp = Response::with_data(Self::issuer_data(&all, &i));
        resp.warnings = out;
        Ok(resp)
    }

    /// `sign-verbatim` (and `sign-verbatim/:role`): the CSR's subject and names as they
    /// are, the request's TTL and key usages; a role, when named, only bounds the TTL.
    async fn sign_verbatim(
        &self,
        ctx: &EngineContext,
        req: &Request,
        role_name: Option<&str>,
    ) -> Result<Option<Response>> {
        let d = &req.data;
        apply_format(d, &mut json!({}))?;
        let role = match role_name {
            Some(n) => Some(
                self.role(ctx, n)
                    .await?
                    .ok_or_else(|| Error::invalid_input(format!("unknown role: {n}")))?,
            ),
            None => None,
        };
        let csr = build::parse_csr(&fields::str_or_empty(d, "csr")?)?;
        let issuer_ref = fields::string(d, "issuer_ref")?.unwrap_or_else(|| "default".into());
        let issuer = self
            .resolve_issuer(ctx, &issuer_ref)
            .await
            .map_err(|e| ca_fetch_error(&e))?;
        let signer = issuer.signer_for_issuing()?;
        let mut warnings = Vec::new();
        let (not_before, mut not_after) =
            self.validity(ctx, d, role.as_deref(), &mut warnings, 30)?;
        self.leaf_bound(&issuer, &mut not_after, &mut warnings)?;
        let key_usage = fields::string_list(d, "key_usage")?
            .unwrap_or_else(|| {
                vec![
                    "DigitalSignature".into(),
                    "KeyAgreement".into(),
                    "KeyEncipherment".into(),
                ]
            })
            .iter()
            .filter_map(|k| role::key_usage_name(k).and_then(key_usage_of))
            .collect();
        let mut eku = Vec::new();
        for e in fields::string_list(d, "ext_key_usage")?.unwrap_or_default() {
            eku.push(
                ext_key_usage_of(&e)
                    .ok_or_else(|| Error::invalid_input(format!("unknown ext_key_usage: {e}")))?,
            );
        }
        let spki = rcgen::SubjectPublicKeyInfo::from_der(&csr.spki_der)
            .map_err(|_| Error::invalid_input("unsupported public key in csr"))?;
        let serial = crypto::new_serial();
        let t = Template {
            subject: csr.subject.clone(),
            sans: csr.sans.clone(),
            not_before,
            not_after,
            ca: None,
            key_usage,
            ext_key_usage: eku,
            urls: self.urls(ctx).await?,
            serial: serial.clone(),
        };
        let der = t.signed_by(&spki, signer)?;
        let serial_s = crypto::serial_colons(&serial);
        if !role.as_ref().is_some_and(|r| r.no_store) {
            self.store_cert(ctx, &serial_s, &der, &issuer.entry.id, unix(not_after))
                .await?;
        }
        let all = self.issuers(ctx).await?;
        let mut out = json!({
            "ca_chain": Self::chain(&all, &issuer),
            "certificate": pem_cert(&der),
            "expiration": unix(not_after),
            "issuing_ca": issuer.entry.certificate,
            "not_before": unix(not_before),
            "serial_number": serial_s,
        });
        apply_format(d, &mut out)?;
        let mut resp = data(out).unwrap_or_default();
        resp.warnings = warnings;
        Ok(Some(resp))
    }

    /// `root/sign-self-issued`: a self-issued CA certificate signed again by this mount's
    /// default issuer (same subject, serial, validity and key; rebuilt with rcgen, which
    /// keeps the CA constraints and key usages but not other extensions).
    async fn sign_self_issued(
        &self,
        ctx: &EngineContext,
        req: &Request,
    ) -> Result<Option<Response>> {
        let text = fields::str_or_empty(&req.data, "certificate")?;
        let der = crypto::pem_certs(&text)
            .ok()
            .and_then(|v| v.into_iter().next())
            .ok_or_else(|| Error::invalid_input("certificate could not be PEM-decoded"))?;
        let info = crypto::parse_cert(&der)?;
        if !info.is_ca {
            return Err(Error::invalid_input(
                "given certificate is not a CA certificate",
            ));
        }
        if info.issuer_der != info.subject_der {
            return Err(Error::invalid_input("given certificate is not self-issued"));
        }
        let issuer = self
            .resolve_issuer(ctx, "default")
            .await
            .map_err(|e| ca_fetch_error(&e))?;
        let signer = issuer.signer_for_issuing()?;
        let subject = {
            use x509_parser::prelude::FromDer;
            let (_, c) = x509_parser::certificate::X509Certificate::from_der(&der)
                .map_err(|_| Error::invalid_input("unable to parse certificate"))?;
            build::subject_of(c.subject())
        };
        let spki = rcgen::SubjectPublicKeyInfo::from_der(&info.spki_der)
            .map_err(|_| Error::invalid_input("unsupported public key in certificate"))?;
        let t = Template {
            subject,
            sans: Sans::default(),
            not_before: info.not_before,
            not_after: info.not_after,
            ca: Some(-1),
            key_usage: ca_usage(),
            ext_key_usage: Vec::new(),
            urls: self.urls(ctx).await?,
            serial: crypto::serial_bytes(&info.serial),
        };
        let signed = t.signed_by(&spki, signer)?;
        data(json!({
            "certificate": pem_cert(&signed),
            "issuing_ca": issuer.entry.certificate,
        }))
        .map(Some)
        .ok_or_else(|| Error::internal("sign-self-issued answer"))
    }

    async fn list_issuers(&self, ctx: &EngineContext) -> Result<Option<Response>> {
        let all = self.issuers(ctx).await?;
        let cfg: DefaultConfig = store::get(ctx, store::ISSUERS_CONFIG)
            .await?
            .unwrap_or_default();
        let mut keys: Vec<&String> = all.keys().collect();
        keys.sort();
        let mut info = serde_json::Map::new();
        for k in &keys {
            if let Some(i) = all.get(*k) {
                info.insert(
                    (*k).clone(),
                    json!({
                        "is_default": cfg.default == **k,
                        "issuer_name": i.entry.name,
                        "key_id": i.entry.key_id,
                        "serial_number": i.entry.serial,
                    }),
                );
            }
        }
        if keys.is_empty() {
            return Ok(None);
        }
        Ok(data(json!({ "keys": keys, "key_info": info })))
    }

    async fn list_keys(&self, ctx: &EngineContext) -> Result<Option<Response>> {
        let ids = ctx.storage.list(store::KEY_PREFIX, &Page::all()).await?;
        let cfg: DefaultConfig = store::get(ctx, store::KEYS_CONFIG)
            .await?
            .unwrap_or_default();
        let mut info = serde_json::Map::new();
        for id in &ids {
            if let Some(k) =
                store::get::<KeyEntry>(ctx, &format!("{}{id}", store::KEY_PREFIX)).await?
            {
                info.insert(
                    id.clone(),
                    json!({ "is_default": cfg.default == *id, "key_name": k.name }),
                );
            }
        }
        if ids.is_empty() {
            return Ok(None);
        }
        Ok(data(json!({ "keys": ids, "key_info": info })))
    }

    async fn key_read(&self, ctx: &EngineContext, reference: &str) -> Result<Option<Response>> {
        let ids = ctx.storage.list(store::KEY_PREFIX, &Page::all()).await?;
        let cfg: DefaultConfig = store::get(ctx, store::KEYS_CONFIG)
            .await?
            .unwrap_or_default();
        for id in ids {
            let Some(k) =
                store::get::<KeyEntry>(ctx, &format!("{}{id}", store::KEY_PREFIX)).await?
            else {
                continue;
            };
            if k.id == reference
                || (!k.name.is_empty() && k.name == reference)
                || (reference == "default" && cfg.default == k.id)
            {
                return Ok(data(json!({
                    "key_id": k.id,
                    "key_name": k.name,
                    "key_type": k.key_type,
                    "managed_key_id": "",
                    "managed_key_name": "",
                })));
            }
        }
        Ok(None)
    }

    async fn import_key(&self, ctx: &EngineContext, req: &Request) -> Result<Option<Response>> {
        let text = fields::str_or_empty(&req.data, "pem_bundle")?;
        let name = fields::str_or_empty(&req.data, "key_name")?;
        let key = PrivateKey::from_pem(&text)?;
        let _w = self.write.lock().await;
        if let Some(id) = self.existing_key(ctx, &key).await? {
            return Ok(data(
                json!({ "key_id": id, "key_name": name, "key_type": key.kind.type_name() }),
            ));
        }
        let id = self.save_key(ctx, &key, &name).await?;
        // An issuer imported earlier without its key now gets it.
        self.forget_issuers()?;
        Ok(data(
            json!({ "key_id": id, "key_name": name, "key_type": key.kind.type_name() }),
        ))
    }

    async fn generate_key(
        &self,
        ctx: &EngineContext,
        req: &Request,
        kind_path: &str,
    ) -> Result<Option<Response>> {
        let exported = exported_kind("keys/generate", kind_path)?;
        let d = &req.data;
        let kind = KeyKind::from_request(
            &fields::string(d, "key_type")?.unwrap_or_else(|| "rsa".into()),
            fields::int(d, "key_bits")?.unwrap_or(0),
        )?;
        let name = fields::str_or_empty(d, "key_name")?;
        let key = PrivateKey::generate(kind)?;
        let _w = self.write.lock().await;
        let id = self.save_key(ctx, &key, &name).await?;
        let mut out = json!({ "key_id": id, "key_name": name, "key_type": kind.type_name() });
        if exported {
            let (pk, _) = key.export_pem(pkcs8_wanted(d)?)?;
            set(&mut out, "private_key", json!(pk.as_str()));
        }
        Ok(data(out))
    }

    async fn roles_path(
        &self,
        ctx: &EngineContext,
        req: &Request,
        name: &str,
    ) -> Result<Option<Response>> {
        // OpenBao's route takes a generic name only (`roles/a%2Fb` is no route at all).
        if !crate::util::names::is_generic_name(name) {
            return Err(Error::backend_unsupported_path());
        }
        let path = format!("{}{name}", store::ROLE_PREFIX);
        match req.operation {
            Operation::Read => Ok(self
                .role(ctx, name)
                .await?
                .map(|r| Response::with_data(r.to_data()))),
            Operation::Delete => {
                let _w = self.write.lock().await;
                ctx.storage.delete(&path).await?;
                self.roles
                    .write()
                    .or_else(crate::util::unpoison)?
                    .remove(name);
                Ok(None)
            }
            Operation::Create | Operation::Update | Operation::Patch => {
                let mut d = req.data.clone();
                if req.operation == Operation::Patch {
                    if let Some(existing) = self.role(ctx, name).await? {
                        let mut base = existing.to_data();
                        for (k, v) in d {
                            base.insert(k, v);
                        }
                        d = base;
                    }
                }
                let role = Role::from_request(&d)?;
                let mut warnings = Vec::new();
                if role.issuer_ref != "default"
                    && self.resolve_issuer(ctx, &role.issuer_ref).await.is_err()
                {
                    warnings.push(format!(
                        "Issuing Certificate was set to {} but no issuing certificate currently has that name",
                        role.issuer_ref
                    ));
                }
                let _w = self.write.lock().await;
                store::put(ctx, &path, &role).await?;
                self.roles
                    .write()
                    .or_else(crate::util::unpoison)?
                    .insert(name.to_string(), Arc::new(role.clone()));
                let mut resp = Response::with_data(role.to_data());
                resp.warnings = warnings;
                Ok(Some(resp))
            }
            Operation::List => Err(Error::unsupported_operation()),
        }
    }

    async fn config_default(
        &self,
        ctx: &EngineContext,
        req: &Request,
        which: &str,
    ) -> Result<Option<Response>> {
        let path = if which == "issuers" {
            store::ISSUERS_CONFIG
        } else {
            store::KEYS_CONFIG
        };
        let mut cfg: DefaultConfig = store::get(ctx, path).await?.unwrap_or_default();
        if matches!(
            req.operation,
            Operation::Create | Operation::Update | Operation::Patch
        ) {
            let _w = self.write.lock().await;
            if let Some(def) = fields::string(&req.data, "default")? {
                if which == "issuers" {
                    let i = self.resolve_issuer(ctx, &def).await?;
                    cfg.default = i.entry.id.clone();
                } else {
                    let resp = self.key_read(ctx, &def).await?.ok_or_else(|| {
                        Error::invalid_input(format!("unable to resolve key reference: {def}"))
                    })?;
                    cfg.default = resp
                        .get("key_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                }
            }
            if let Some(b) = fields::boolean(&req.data, "default_follows_latest_issuer")? {
                cfg.default_follows_latest_issuer = b;
            }
            store::put(ctx, path, &cfg).await?;
            self.issuers_config.forget()?;
        }
        if which == "issuers" {
            Ok(data(
                json!({ "default": cfg.default, "default_follows_latest_issuer": cfg.default_follows_latest_issuer }),
            ))
        } else {
            Ok(data(json!({ "default": cfg.default })))
        }
    }

    async fn config_urls(&self, ctx: &EngineContext, req: &Request) -> Result<Option<Response>> {
        let mut cfg = self.urls(ctx).await?;
        if matches!(
            req.operation,
            Operation::Create | Operation::Update | Operation::Patch
        ) {
            let d = &req.data;
            if let Some(v) = fields::string_list(d, "issuing_certificates")? {
                cfg.issuing_certificates = v;
            }
            if let Some(v) = fields::string_list(d, "crl_distribution_points")? {
                cfg.crl_distribution_points = v;
            }
            if let Some(v) = fields::string_list(d, "ocsp_servers")? {
                cfg.ocsp_servers = v;
            }
            if let Some(v) = fields::string_list(d, "delta_crl_distribution_points")? {
                cfg.delta_crl_distribution_points = v;
            }
            if let Some(v) = fields::boolean(d, "enable_templating")? {
                cfg.enable_templating = v;
            }
            for u in cfg
                .issuing_certificates
                .iter()
                .chain(&cfg.crl_distribution_points)
                .chain(&cfg.ocsp_servers)
            {
                if !(u.starts_with("http://")
                    || u.starts_with("https://")
                    || u.starts_with("ldap://"))
                {
                    return Err(Error::invalid_input(format!(
                        "invalid URL found in Authority Information Access (AIA) parameter issuing_certificates: {u}"
                    )));
                }
            }
            store::put(ctx, store::URLS_CONFIG, &cfg).await?;
            self.urls_config.forget()?;
            return Ok(None);
        }
        Ok(data(json!({
            "crl_distribution_points": cfg.crl_distribution_points,
            "delta_crl_distribution_points": cfg.delta_crl_distribution_points,
            "enable_templating": cfg.enable_templating,
            "issuing_certificates": cfg.issuing_certificates,
            "ocsp_servers": cfg.ocsp_servers,
        })))
    }

    /// `tidy`: drop stored and revoked certificates expired longer than the safety buffer.
    async fn tidy(&self, ctx: &EngineContext, req: &Request) -> Result<Option<Response>> {
        let d = &req.data;
        let certs = fields::boolean(d, "tidy_cert_store")?.unwrap_or(false);
        let revoked = fields::boolean(d, "tidy_revoked_certs")?.unwrap_or(false);
        let buffer = fields::duration_secs(d, "safety_buffer")?
            .map(check_ttl)
            .transpose()?
            .unwrap_or(72 * 3600);
        if !certs && !revoked {
            return Err(Error::invalid_input(
                "at least one tidy operation must be enabled",
            ));
        }
        let now = ctx.clock.now();
        let cutoff = unix(now) - i64::try_from(buffer).unwrap_or(0);
        let _w = self.write.lock().await;
        let mut cert_deleted = 0u64;
        let mut revoked_deleted = 0u64;
        if certs {
            for k in ctx.storage.list(store::CERT_PREFIX, &Page::all()).await? {
                let path = format!("{}{k}", store::CERT_PREFIX);
                if let Some(c) = store::get::<CertEntry>(ctx, &path).await? {
                    if c.not_after < cutoff {
                        ctx.storage.delete(&path).await?;
                        cert_deleted += 1;
                    }
                }
            }
        }
        if revoked {
            for k in ctx
                .storage
                .list(store::REVOKED_PREFIX, &Page::all())
                .await?
            {
                let path = format!("{}{k}", store::REVOKED_PREFIX);
                if let Some(r) = store::get::<RevokedEntry>(ctx, &path).await? {
                    if r.not_after < cutoff {
                        ctx.storage.delete(&path).await?;
                        ctx.storage
                            .delete(&format!("{}{k}", store::CERT_PREFIX))
                            .await?;
                        self.crl.remove(&r.serial)?;
                        revoked_deleted += 1;
                    }
                }
            }
        }
        let status = json!({
            "state": "Finished",
            "error": null,
            "time_started": rfc3339(now),
            "time_finished": rfc3339(ctx.clock.now()),
            "tidy_cert_store": certs,
            "tidy_revoked_certs": revoked,
            "safety_buffer": buffer,
            "cert_store_deleted_count": cert_deleted,
            "revoked_cert_deleted_count": revoked_deleted,
            "message": "Tidying certificate store: checking entry",
        });
        store::put(ctx, store::TIDY_STATUS, &status).await?;
        let mut resp = Response {
            kind: crate::request::ResponseKind::Accepted,
            ..Response::default()
        };
        resp.warn("Tidy operation successfully started. Any information from the operation will be printed to OpenBao's server logs.");
        Ok(Some(resp))
    }

    async fn tidy_status(ctx: &EngineContext) -> Result<Option<Response>> {
        let v: Value = store::get(ctx, store::TIDY_STATUS)
            .await?
            .unwrap_or_else(|| {
                json!({
                    "state": "Inactive",
                    "error": null,
                    "time_started": null,
                    "time_finished": null,
                    "cert_store_deleted_count": 0,
                    "revoked_cert_deleted_count": 0,
                    "message": null,
                })
            });
        Ok(data(v))
    }

    async fn delete_root(&self, ctx: &EngineContext) -> Result<Option<Response>> {
        let _w = self.write.lock().await;
        for id in ctx.storage.list(store::ISSUER_PREFIX, &Page::all()).await? {
            ctx.storage
                .delete(&format!("{}{id}", store::ISSUER_PREFIX))
                .await?;
        }
        for id in ctx.storage.list(store::KEY_PREFIX, &Page::all()).await? {
            ctx.storage
                .delete(&format!("{}{id}", store::KEY_PREFIX))
                .await?;
        }
        ctx.storage.delete(store::ISSUERS_CONFIG).await?;
        ctx.storage.delete(store::KEYS_CONFIG).await?;
        self.forget_issuers()?;
        Ok(None)
    }
}

#[async_trait]
impl Engine for Pki {
    async fn handle(&self, ctx: &EngineContext, req: &Request) -> Result<Option<Response>> {
        let path = req.path.as_str();
        let op = req.operation;
        let write = matches!(op, Operation::Create | Operation::Update);
        let read = op == Operation::Read;
        let list = op == Operation::List;
        let (head, rest) = path.split_once('/').unwrap_or((path, ""));
        match (head, rest) {
            ("root", r) if write && r.starts_with("generate/") => {
                self.generate_root(ctx, req, r.trim_start_matches("generate/"))
                    .await
            }
            ("root", "sign-intermediate") if write => {
                self.sign_intermediate(ctx, req, "default").await
            }
            ("root", "") if op == Operation::Delete => self.delete_root(ctx).await,
            ("root", "sign-self-issued") if write => self.sign_self_issued(ctx, req).await,
            ("sign-verbatim", "") if write => self.sign_verbatim(ctx, req, None).await,
            ("sign-verbatim", role) if write => self.sign_verbatim(ctx, req, Some(role)).await,
            ("intermediate", r) if write && r.starts_with("generate/") => {
                self.generate_intermediate(ctx, req, r.trim_start_matches("generate/"))
                    .await
            }
            ("intermediate", "set-signed") if write => self.import_bundle(ctx, req).await,
            ("config", "ca") if write => self.import_bundle(ctx, req).await,
            ("issuers", "import/bundle" | "import/cert") if write => {
                self.import_bundle(ctx, req).await
            }
            ("issuers", "") if list => self.list_issuers(ctx).await,
            ("issuer", r) if !r.is_empty() => self.issuer_path(ctx, req, r).await,
            ("keys", "") if list => self.list_keys(ctx).await,
            ("keys", "import") if write => self.import_key(ctx, req).await,
            ("keys", r) if write && r.starts_with("generate/") => {
                self.generate_key(ctx, req, r.trim_start_matches("generate/"))
                    .await
            }
            ("key", r) if read && !r.is_empty() => self.key_read(ctx, r).await,
            ("roles", "") if list => {
                let keys = ctx.storage.list(store::ROLE_PREFIX, &Page::all()).await?;
                Ok(crate::util::list_response(keys))
            }
            ("roles", name) if !name.is_empty() && !list => self.roles_path(ctx, req, name).await,
            ("issue", role) if write && !role.is_empty() => {
                self.issue(ctx, req, role, false, None).await
            }
            ("sign", role) if write && !role.is_empty() => {
                self.issue(ctx, req, role, true, None).await
            }
            ("cert", r) if read && !r.is_empty() => self.read_cert(ctx, r).await,
            ("certs", "") if list => self.list_certs(ctx, store::CERT_PREFIX).await,
            ("certs", "revoked/" | "revoked") if list => {
                self.list_certs(ctx, store::REVOKED_PREFIX).await
            }
            ("revoke", "") if write => self.revoke(ctx, req).await,
            ("ca", "") | ("ca", "pem") if read => self.ca_read(ctx, path).await,
            ("ca_chain", "") if read => self.ca_read(ctx, path).await,
            ("crl", "") if read => {
                let (der, _) = self.current_crl(ctx).await?;
                Ok(Some(raw_response("application/pkix-crl", &der)))
            }
            ("crl", "pem") if read => {
                let (_, pem) = self.current_crl(ctx).await?;
                Ok(Some(raw_response("application/x-pem-file", pem.as_bytes())))
            }
            ("crl", "rotate") if read => {
                self.crl.ensure_loaded(ctx).await?;
                self.crl.invalidate()?;
                let _ = self.current_crl(ctx).await?;
                Ok(data(json!({ "success": true })))
            }
            ("config", "issuers") | ("config", "keys") if !list && op != Operation::Delete => {
                self.config_default(ctx, req, rest).await
            }
            ("config", "urls") if !list && op != Operation::Delete => {
                self.config_urls(ctx, req).await
            }
            ("tidy", "") if write => self.tidy(ctx, req).await,
            ("tidy-status", "") if read => Self::tidy_status(ctx).await,
            _ => Err(Error::unsupported_path(path)),
        }
    }

    fn name_rules(&self) -> &'static [NameRule] {
        // Role names follow OpenBao's `GenericNameRegex`, case-sensitive. Issuer and key
        // references are ids, names or `default`, all within the same pattern.
        const RULES: &[NameRule] = &[
            NameRule::exact("roles/"),
            NameRule::exact("issue/"),
            NameRule::exact("sign/"),
            NameRule::exact("sign-verbatim/"),
            NameRule::exact("issuer/"),
            NameRule::exact("key/"),
        ];
        RULES
    }

    fn unauthenticated(&self, path: &str, op: Operation) -> bool {
        // OpenBao's `PathsSpecial.Unauthenticated` for the PKI backend (the paths this engine
        // serves): certificates, CA and CRL reads, and the issuer list.
        match op {
            Operation::Read => {
                matches!(path, "ca" | "ca/pem" | "ca_chain" | "crl" | "crl/pem")
                    || path.starts_with("cert/")
                    || path.strip_prefix("issuer/").is_some_and(|r| {
                        r.split_once('/').is_some_and(|(_, t)| {
                            matches!(t, "pem" | "der" | "json" | "crl" | "crl/pem" | "crl/der")
                        })
                    })
            }
            Operation::List => path == "issuers/",
            _ => false,
        }
    }

    async fn exists(&self, ctx: &EngineContext, req: &Request) -> Result<Option<bool>> {
        if let Some(name) = req.path.strip_prefix("roles/") {
            return Ok(Some(self.role(ctx, name).await?.is_some()));
        }
        Ok(None)
    }

    async fn revoke(&self, ctx: &EngineContext, lease: &LeasedSecret<'_>) -> Result<()> {
        let Some(serial) = lease.internal.get("serial_number").and_then(Value::as_str) else {
            return Ok(());
        };
        match self.revoke_serial(ctx, serial).await {
            Ok(_) => Ok(()),
            // Tidied or never stored (`no_store`): nothing left to revoke.
            Err(e) if e.code() == crate::error::ErrorCode::InvalidInput => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The `:type` of `root/generate/:type`, `intermediate/generate/:type` and
/// `keys/generate/:type`: whether the private key is returned (`exported`) or kept
/// (`internal`); any other type is a path OpenBao does not have.
fn exported_kind(prefix: &str, kind_path: &str) -> Result<bool> {
    match kind_path {
        "internal" => Ok(false),
        "exported" => Ok(true),
        other => Err(Error::unsupported_path(&format!("{prefix}/{other}"))),
    }
}
