//! The PKI engine through the pipeline and the typed handle: the seed's workflow (a root, an
//! intermediate, a role per service, certificates), certificate fields read back with
//! x509-parser, OpenBao's refusals (that store nothing), revocation and the CRL, tidy on the
//! virtual clock, leases that revoke, and token-less CA/CRL reads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use strongroom::{Client, Config, ErrorCode, Request, Strongroom, VirtualClock, data};
use x509_parser::prelude::*;

async fn setup() -> (Strongroom, Client, Arc<VirtualClock>) {
    let clock = Arc::new(VirtualClock::new());
    let sr = Strongroom::open(Config::dev().clock(clock.clone()))
        .await
        .unwrap();
    let client = sr.client(sr.dev_root_token().unwrap());
    for m in ["pki", "pki_int"] {
        client.sys().enable_mount(m, "pki", &[]).await.unwrap();
        client
            .sys()
            .tune_mount(m, data(json!({"max_lease_ttl": "87600h"})))
            .await
            .unwrap();
    }
    (sr, client, clock)
}

fn der_of(pem_text: &str) -> Vec<u8> {
    ::pem::parse(pem_text).unwrap().into_contents()
}

fn with_cert<R>(pem_text: &str, f: impl FnOnce(&X509Certificate<'_>) -> R) -> R {
    let der = der_of(pem_text);
    let (_, c) = X509Certificate::from_der(&der).unwrap();
    f(&c)
}

fn dns_sans(c: &X509Certificate<'_>) -> Vec<String> {
    c.subject_alternative_name()
        .unwrap()
        .map(|s| {
            s.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    GeneralName::DNSName(d) => Some((*d).to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn v(r: &strongroom::Response) -> Value {
    Value::Object(r.data.clone().unwrap_or_default())
}

/// Root in `pki`, intermediate in `pki_int` signed by it, a role `web` on the intermediate.
async fn seed_chain(c: &Client) -> (String, String) {
    let root = c
        .pki("pki")
        .generate_root(
            false,
            data(json!({"common_name": "Example Root CA", "ttl": "87600h", "issuer_name": "root-2024", "key_type": "ec"})),
        )
        .await
        .unwrap();
    let root_pem = v(&root)["certificate"].as_str().unwrap().to_string();
    let int = c
        .pki("pki_int")
        .generate_intermediate(false, data(json!({"common_name": "Example Intermediate CA", "key_type": "ec", "key_bits": 384})))
        .await
        .unwrap();
    let csr = v(&int)["csr"].as_str().unwrap().to_string();
    let signed = c
        .pki("pki")
        .sign_intermediate(Some("root-2024"), &csr, data(json!({"ttl": "43800h"})))
        .await
        .unwrap();
    let imported = c
        .pki("pki_int")
        .set_signed(&signed.certificate)
        .await
        .unwrap();
    assert_eq!(
        v(&imported)["imported_issuers"].as_array().unwrap().len(),
        1
    );
    c.pki("pki_int")
        .write_role(
            "web",
            data(json!({"allowed_domains": "example.com", "allow_subdomains": true, "max_ttl": "72h", "key_type": "ec"})),
        )
        .await
        .unwrap();
    (root_pem, signed.certificate)
}

#[tokio::test]
async fn seed_workflow_issues_chained_certificates_with_openbao_fields() {
    let (_sr, c, clock) = setup().await;
    let (root_pem, int_pem) = seed_chain(&c).await;
    let pki = c.pki("pki_int");
    let cert = pki
        .issue(
            "web",
            "api.example.com",
            data(json!({"ttl": "24h", "alt_names": "www.example.com", "ip_sans": "10.1.2.3"})),
        )
        .await
        .unwrap();
    assert_eq!(cert.issuing_ca, int_pem);
    // The intermediate mount knows only what set-signed gave it (OpenBao's answer too).
    assert_eq!(cert.ca_chain, vec![int_pem.clone()]);
    assert_eq!(cert.private_key_type, "ec");
    assert!(
        cert.private_key_pem()
            .unwrap()
            .contains("BEGIN EC PRIVATE KEY")
    );
    assert!(!format!("{cert:?}").contains("PRIVATE"));
    let now = clock.now_unix();
    with_cert(&cert.certificate, |x| {
        // Serial in OpenBao's colon form.
        assert_eq!(x.tbs_certificate.raw_serial_as_string(), cert.serial_number);
        assert_eq!(
            x.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "api.example.com"
        );
        assert_eq!(
            x.issuer()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "Example Intermediate CA"
        );
        assert_eq!(dns_sans(x), vec!["api.example.com", "www.example.com"]);
        // notBefore backdated 30 s, notAfter = ttl.
        let nb = x.validity().not_before.timestamp();
        let na = x.validity().not_after.timestamp();
        assert!((now - 31..=now - 29).contains(&nb), "{nb} vs {now}");
        assert!((now + 24 * 3600 - 1..=now + 24 * 3600).contains(&na));
        assert_eq!(na, cert.expiration);
        let ku = x.key_usage().unwrap().unwrap();
        assert!(ku.critical);
        assert!(ku.value.digital_signature() && ku.value.key_agreement());
        // OpenBao keeps the role's KeyEncipherment for EC keys too.
        assert!(ku.value.key_encipherment());
        let eku = x.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(x.basic_constraints().unwrap().is_none());
        // Subject and authority key ids chain to the intermediate.
        let aki = x
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.clone(),
                _ => None,
            })
            .unwrap();
        with_cert(&int_pem, |i| {
            let ski = i
                .extensions()
                .iter()
                .find_map(|e| match e.parsed_extension() {
                    ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                    _ => None,
                })
                .unwrap();
            assert_eq!(aki.0, ski.as_slice());
            assert!(i.is_ca());
            // The signature verifies with the intermediate's key.
            x.verify_signature(Some(i.public_key())).unwrap();
        });
    });
    with_cert(&int_pem, |i| {
        with_cert(&root_pem, |r| {
            i.verify_signature(Some(r.public_key())).unwrap()
        });
    });
    // A bundle with the root too: every issuer is imported, and the chain reaches the root.
    let bundle = format!("{int_pem}\n{root_pem}\n");
    let r = pki.set_signed(&bundle).await.unwrap();
    assert_eq!(v(&r)["imported_issuers"].as_array().unwrap().len(), 1);
    assert_eq!(v(&r)["existing_issuers"].as_array().unwrap().len(), 1);
    assert_eq!(v(&r)["existing_keys"], Value::Null);
    let cert2 = pki
        .issue("web", "api.example.com", data(json!({})))
        .await
        .unwrap();
    assert_eq!(cert2.ca_chain, vec![int_pem.clone(), root_pem.clone()]);
    // Stored and listed; readable by serial in colon and dash form.
    assert!(
        pki.list_certs()
            .await
            .unwrap()
            .contains(&cert.serial_number)
    );
    let rec = pki
        .read_cert(&cert.serial_number.replace(':', "-"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.certificate, cert.certificate);
    assert_eq!(rec.revocation_time, 0);
}

#[tokio::test]
async fn role_ttl_is_capped_with_openbaos_warning_and_mount_caps_the_root() {
    let (_sr, c, _clock) = setup().await;
    seed_chain(&c).await;
    let cert = c
        .pki("pki_int")
        .issue("web", "a.example.com", data(json!({"ttl": "1000h"})))
        .await
        .unwrap();
    assert_eq!(
        cert.warnings,
        vec![
            "TTL \"1000h0m0s\" is longer than permitted maxTTL \"72h0m0s\", so maxTTL is being used"
        ]
    );
    c.sys().enable_mount("small", "pki", &[]).await.unwrap();
    c.sys()
        .tune_mount("small", data(json!({"max_lease_ttl": "24h"})))
        .await
        .unwrap();
    let r = c
        .pki("small")
        .generate_root(
            false,
            data(json!({"common_name": "s", "ttl": "48h", "key_type": "ed25519"})),
        )
        .await
        .unwrap();
    assert_eq!(
        r.warnings[0],
        "TTL \"48h0m0s\" is longer than permitted maxTTL \"24h0m0s\", so maxTTL is being used"
    );
    assert!(
        r.warnings[1].starts_with("This mount hasn't configured any authority information access")
    );
}

#[tokio::test]
async fn refusals_carry_openbaos_texts_and_store_nothing() {
    let (_sr, c, _clock) = setup().await;
    seed_chain(&c).await;
    let pki = c.pki("pki_int");
    let before = pki.list_certs().await.unwrap();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "issue/web",
            json!({"common_name": "a.other.com"}),
            "common name a.other.com not allowed by this role",
        ),
        (
            "issue/web",
            json!({"common_name": "example.com"}),
            "common name example.com not allowed by this role",
        ),
        (
            "issue/nope",
            json!({"common_name": "a.example.com"}),
            "unknown role: nope",
        ),
        (
            "issue/web",
            json!({}),
            "the common_name field is required, or must be provided in a CSR with \"use_csr_common_name\" set to true, unless \"require_cn\" is set to false",
        ),
        (
            "issue/web",
            json!({"common_name": "a.example.com", "ttl": "bogus"}),
            "Field validation failed: error converting input for field \"ttl\": time: invalid duration \"bogus\"",
        ),
        (
            "sign/web",
            json!({"csr": "garbage"}),
            "csr contains no data",
        ),
        (
            "issue/web",
            json!({"common_name": "a.example.com", "alt_names": "x.other.com"}),
            "subject alternate name x.other.com not allowed by this role",
        ),
        (
            "revoke",
            json!({}),
            "The serial number or certificate to revoke must be provided.",
        ),
        (
            "revoke",
            json!({"serial_number": "00:11"}),
            "certificate with serial 00:11 not found.",
        ),
        (
            "roles/bad",
            json!({"key_type": "ec", "key_bits": 333}),
            "unsupported bit length for EC key: 333",
        ),
        (
            "roles/bad",
            json!({"ttl": "10h", "max_ttl": "1h"}),
            "\"ttl\" value must be less than \"max_ttl\" value",
        ),
    ];
    for (path, body, want) in cases {
        let e = c
            .write(&format!("pki_int/{path}"), data(body))
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput, "{path}");
        assert_eq!(e.message(), want, "{path}");
    }
    assert_eq!(pki.list_certs().await.unwrap(), before);
    assert!(pki.read_role("bad").await.unwrap().is_none());
    // An unknown issuer on a role is a warning at write time, an error at issue time.
    let w = pki
        .write_role(
            "ghost",
            data(json!({"allow_any_name": true, "issuer_ref": "nonexist"})),
        )
        .await
        .unwrap();
    assert_eq!(
        w.warnings,
        vec![
            "Issuing Certificate was set to nonexist but no issuing certificate currently has that name"
        ]
    );
    let e = pki
        .issue("ghost", "x.com", data(json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Internal);
    assert_eq!(
        e.message(),
        "1 error occurred:\n\t* could not fetch the CA certificate (was one set?): unable to find PKI issuer for reference: nonexist\n\n"
    );
    assert_eq!(pki.list_certs().await.unwrap(), before);
}

#[tokio::test]
async fn sign_csr_uses_the_csr_key_and_names() {
    let (_sr, c, _clock) = setup().await;
    let (_, int_pem) = seed_chain(&c).await;
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["svc.example.com".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "svc.example.com");
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let cert = c
        .pki("pki_int")
        .sign("web", &csr, data(json!({})))
        .await
        .unwrap();
    assert!(cert.private_key.is_none());
    with_cert(&cert.certificate, |x| {
        assert_eq!(
            x.public_key().subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
        assert_eq!(dns_sans(x), vec!["svc.example.com"]);
        with_cert(&int_pem, |i| {
            x.verify_signature(Some(i.public_key())).unwrap()
        });
    });
    // A CSR for a name outside the role is refused.
    let mut params = rcgen::CertificateParams::new(vec!["evil.com".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "evil.com");
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let e = c
        .pki("pki_int")
        .sign("web", &csr, data(json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "common name evil.com not allowed by this role");
}

#[tokio::test]
async fn revoke_lists_and_the_crl_carries_the_serial() {
    let (_sr, c, _clock) = setup().await;
    seed_chain(&c).await;
    let pki = c.pki("pki_int");
    let a = pki
        .issue("web", "a.example.com", data(json!({})))
        .await
        .unwrap();
    let b = pki
        .issue("web", "b.example.com", data(json!({})))
        .await
        .unwrap();
    let crl0 = pki.crl_der().await.unwrap();
    let (_, crl) = x509_parser::parse_x509_crl(&crl0).unwrap();
    assert_eq!(crl.iter_revoked_certificates().count(), 0);
    let t = pki.revoke(&a.serial_number).await.unwrap();
    assert!(t > 0);
    // Revoking twice answers the first revocation.
    assert_eq!(
        pki.revoke(&a.serial_number.to_uppercase().replace(':', "-"))
            .await
            .unwrap(),
        t
    );
    assert_eq!(
        pki.list_revoked().await.unwrap(),
        vec![a.serial_number.clone()]
    );
    assert_eq!(
        pki.read_cert(&a.serial_number)
            .await
            .unwrap()
            .unwrap()
            .revocation_time,
        t
    );
    let der = pki.crl_der().await.unwrap();
    let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
    let serials: Vec<String> = crl
        .iter_revoked_certificates()
        .map(|r| r.raw_serial_as_string())
        .collect();
    assert_eq!(serials, vec![a.serial_number.clone()]);
    assert_eq!(
        crl.crl_number().map(|n| n.to_string()),
        Some("2".to_string())
    );
    // Served from cache: the same bytes until something changes.
    assert_eq!(pki.crl_der().await.unwrap(), der);
    assert!(
        pki.crl_pem()
            .await
            .unwrap()
            .starts_with("-----BEGIN X509 CRL-----\n")
    );
    // Revoke by certificate.
    let r = c
        .write(
            "pki_int/revoke",
            data(json!({"certificate": b.certificate})),
        )
        .await
        .unwrap();
    assert_eq!(r.get("state"), Some(&json!("revoked")));
    // An issuer may not revoke itself.
    let issuers = c.list("pki_int/issuers").await.unwrap();
    let serial = c
        .read(&format!("pki_int/issuer/{}", issuers[0]))
        .await
        .unwrap()
        .unwrap();
    let cert_pem = serial
        .get("certificate")
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let e = c
        .write("pki_int/revoke", data(json!({"certificate": cert_pem})))
        .await
        .unwrap_err();
    assert!(
        e.message()
            .contains("certificate was not issued by this mount")
            || e.message().contains("to its own CRL is not allowed")
    );
}

#[tokio::test]
async fn tidy_drops_expired_certificates_past_the_safety_buffer() {
    let (_sr, c, clock) = setup().await;
    seed_chain(&c).await;
    let pki = c.pki("pki_int");
    let a = pki
        .issue("web", "a.example.com", data(json!({"ttl": "1h"})))
        .await
        .unwrap();
    let b = pki
        .issue("web", "b.example.com", data(json!({"ttl": "72h"})))
        .await
        .unwrap();
    pki.revoke(&a.serial_number).await.unwrap();
    clock.advance(Duration::from_secs(2 * 3600));
    let r = c
        .write("pki_int/tidy", data(json!({"tidy_cert_store": true, "tidy_revoked_certs": true, "safety_buffer": "30m"})))
        .await
        .unwrap();
    assert_eq!(r.kind, strongroom::ResponseKind::Accepted);
    let certs = pki.list_certs().await.unwrap();
    assert!(!certs.contains(&a.serial_number));
    assert!(certs.contains(&b.serial_number));
    assert!(pki.list_revoked().await.unwrap().is_empty());
    let crl_der = pki.crl_der().await.unwrap();
    let (_, crl) = x509_parser::parse_x509_crl(&crl_der).unwrap();
    assert_eq!(crl.iter_revoked_certificates().count(), 0);
    let st = c.read("pki_int/tidy-status").await.unwrap().unwrap();
    assert_eq!(st.get("cert_store_deleted_count"), Some(&json!(1)));
    assert_eq!(st.get("revoked_cert_deleted_count"), Some(&json!(1)));
}

#[tokio::test]
async fn generate_lease_revokes_the_certificate_with_its_lease() {
    let (_sr, c, _clock) = setup().await;
    seed_chain(&c).await;
    let pki = c.pki("pki_int");
    pki.write_role(
        "leased",
        data(json!({"allowed_domains": "example.com", "allow_subdomains": true, "generate_lease": true, "key_type": "ec", "ttl": "1h"})),
    )
    .await
    .unwrap();
    let cert = pki
        .issue("leased", "l.example.com", data(json!({})))
        .await
        .unwrap();
    assert!(
        cert.lease_id.starts_with("pki_int/issue/leased/"),
        "{}",
        cert.lease_id
    );
    c.leases().revoke(&cert.lease_id).await.unwrap();
    assert!(
        pki.read_cert(&cert.serial_number)
            .await
            .unwrap()
            .unwrap()
            .revocation_time
            > 0
    );
}

#[tokio::test]
async fn ca_and_crl_reads_need_no_token_where_openbaos_do_not() {
    let (sr, c, _clock) = setup().await;
    let (_, int_pem) = seed_chain(&c).await;
    let cert = c
        .pki("pki_int")
        .issue("web", "a.example.com", data(json!({})))
        .await
        .unwrap();
    for path in [
        "pki_int/ca/pem",
        "pki_int/ca",
        "pki_int/crl",
        "pki_int/crl/pem",
        "pki_int/ca_chain",
    ] {
        let r = sr.handle(Request::read(path)).await.unwrap();
        assert!(r.get("http_raw_body").is_some(), "{path}");
    }
    let r = sr
        .handle(Request::read(format!(
            "pki_int/cert/{}",
            cert.serial_number
        )))
        .await
        .unwrap();
    assert_eq!(
        r.get("certificate").unwrap().as_str().unwrap(),
        cert.certificate
    );
    assert_eq!(c.pki("pki_int").ca_pem().await.unwrap(), int_pem);
    // Listing issuers is public; certificates, roles and issuing are not.
    sr.handle(Request::list("pki_int/issuers")).await.unwrap();
    for req in [
        Request::list("pki_int/certs"),
        Request::read("pki_int/roles/web"),
        Request::write(
            "pki_int/issue/web",
            data(json!({"common_name": "x.example.com"})),
        ),
    ] {
        let e = sr.handle(req).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::PermissionDenied);
    }
}

#[tokio::test]
async fn issuers_rename_default_and_leaf_not_after_behavior() {
    let (_sr, c, _clock) = setup().await;
    seed_chain(&c).await;
    let issuers = c.list("pki_int/issuers").await.unwrap();
    let id = issuers[0].clone();
    c.write(
        &format!("pki_int/issuer/{id}"),
        data(json!({"issuer_name": "int-1", "leaf_not_after_behavior": "truncate"})),
    )
    .await
    .unwrap();
    let r = c.read("pki_int/issuer/int-1").await.unwrap().unwrap();
    assert_eq!(r.get("issuer_id"), Some(&json!(id)));
    assert_eq!(r.get("leaf_not_after_behavior"), Some(&json!("truncate")));
    let cfg = c.read("pki_int/config/issuers").await.unwrap().unwrap();
    assert_eq!(cfg.get("default"), Some(&json!(id)));
    // A role allowing long TTLs: truncate caps the leaf at the issuer's notAfter.
    c.pki("pki_int")
        .write_role(
            "long",
            data(json!({"allow_any_name": true, "key_type": "ec", "max_ttl": "87600h"})),
        )
        .await
        .unwrap();
    let cert = c
        .pki("pki_int")
        .issue("long", "x.example.com", data(json!({"ttl": "87000h"})))
        .await
        .unwrap();
    let int_not_after = with_cert(r.get("certificate").unwrap().as_str().unwrap(), |i| {
        i.validity().not_after.timestamp()
    });
    assert_eq!(cert.expiration, int_not_after);
    // A POST resets what it does not name (as OpenBao's): the name goes with it.
    let r = c
        .write(
            &format!("pki_int/issuer/{id}"),
            data(json!({"leaf_not_after_behavior": "err"})),
        )
        .await
        .unwrap();
    assert_eq!(v(&r)["issuer_name"], json!(""));
    c.write(
        &format!("pki_int/issuer/{id}"),
        data(json!({"issuer_name": "int-1"})),
    )
    .await
    .unwrap();
    let e = c
        .pki("pki_int")
        .issue("long", "x.example.com", data(json!({"ttl": "87000h"})))
        .await
        .unwrap_err();
    assert!(
        e.message()
            .starts_with("cannot satisfy request, as TTL would result in notAfter of"),
        "{}",
        e.message()
    );
    // Issuer pem/der/json reads.
    let json = c.read("pki_int/issuer/int-1/json").await.unwrap().unwrap();
    assert_eq!(json.get("issuer_name"), Some(&json!("int-1")));
    // Key types: rsa 2048, ec p521, ed25519 roots.
    for (kt, kb) in [("rsa", 2048), ("ec", 521), ("ed25519", 0)] {
        let m = format!("k{kt}{kb}");
        c.sys().enable_mount(&m, "pki", &[]).await.unwrap();
        let r = c
            .pki(&m)
            .generate_root(
                true,
                data(json!({"common_name": "k.example.com", "key_type": kt, "key_bits": kb})),
            )
            .await
            .unwrap();
        let d = v(&r);
        assert_eq!(d["private_key_type"], json!(kt));
        with_cert(d["certificate"].as_str().unwrap(), |x| {
            assert!(x.is_ca());
            assert_eq!(dns_sans(x), vec!["k.example.com"]);
            if kb != 521 {
                // x509-parser does not verify P-521/SHA-512.
                x.verify_signature(None).unwrap();
            }
        });
    }
}

trait NowUnix {
    fn now_unix(&self) -> i64;
}

impl NowUnix for VirtualClock {
    fn now_unix(&self) -> i64 {
        use strongroom::Clock;
        self.now().unix_timestamp()
    }
}

#[tokio::test]
async fn sign_verbatim_and_sign_self_issued() {
    let (_sr, c, _clock) = setup().await;
    let (root_pem, _) = seed_chain(&c).await;
    // sign-verbatim: the CSR's subject and names as they are, no role needed.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["v2.other.org".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "verbatim.other.org");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Acme");
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let r = c
        .write("pki/sign-verbatim", data(json!({"csr": csr, "ttl": "2h"})))
        .await
        .unwrap();
    let d = v(&r);
    assert_eq!(
        d.as_object().unwrap().keys().cloned().collect::<Vec<_>>(),
        vec![
            "ca_chain",
            "certificate",
            "expiration",
            "issuing_ca",
            "not_before",
            "serial_number"
        ]
    );
    with_cert(d["certificate"].as_str().unwrap(), |x| {
        assert_eq!(
            x.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "verbatim.other.org"
        );
        assert_eq!(
            x.subject()
                .iter_organization()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "Acme"
        );
        assert_eq!(dns_sans(x), vec!["v2.other.org"]);
        assert!(x.extended_key_usage().unwrap().is_none());
        with_cert(&root_pem, |r| {
            x.verify_signature(Some(r.public_key())).unwrap()
        });
    });
    // sign-self-issued: a self-signed CA signed again by this mount's root.
    let other = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Self CA");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let self_pem = ca.self_signed(&other).unwrap().pem();
    let r = c
        .write(
            "pki/root/sign-self-issued",
            data(json!({"certificate": self_pem})),
        )
        .await
        .unwrap();
    let d = v(&r);
    with_cert(d["certificate"].as_str().unwrap(), |x| {
        assert!(x.is_ca());
        assert_eq!(
            x.public_key().subject_public_key.data.as_ref(),
            other.public_key_raw()
        );
        with_cert(&root_pem, |r| {
            x.verify_signature(Some(r.public_key())).unwrap()
        });
    });
    // Refusals as OpenBao's.
    for (body, want) in [
        (
            json!({"certificate": "x"}),
            "certificate could not be PEM-decoded",
        ),
        (
            json!({"certificate": d["certificate"].clone()}),
            "given certificate is not self-issued",
        ),
    ] {
        let e = c
            .write("pki/root/sign-self-issued", data(body))
            .await
            .unwrap_err();
        assert_eq!(e.message(), want);
    }
}

#[tokio::test]
async fn keeper_renews_on_the_virtual_clock_survives_a_sealed_ca_and_swaps_the_tls_certificate() {
    use strongroom::{CertEvent, CertKeeperAction, KeeperOptions};
    let (sr, c, clock) = setup().await;
    seed_chain(&c).await;
    let pki = c.pki("pki_int");
    let keeper = pki.keeper(
        "web",
        "svc.example.com",
        data(json!({"ttl": "1h"})),
        KeeperOptions::default(),
    );
    let mut events = keeper.subscribe();
    let resolver = keeper.resolver();
    assert!(resolver.current().is_none());
    let first = match keeper.tick().await.unwrap() {
        CertKeeperAction::Renewed(c) => c,
        other => panic!("{other:?}"),
    };
    let tls0 = resolver.current().unwrap();
    assert_eq!(tls0.cert.len(), 2, "leaf and intermediate");
    assert!(matches!(
        events.recv().await.unwrap(),
        CertEvent::Issued { .. }
    ));
    // Two thirds of an hour: 40 minutes.
    clock.advance(Duration::from_secs(30 * 60));
    match keeper.tick().await.unwrap() {
        CertKeeperAction::Nothing(d) => assert_eq!(d, Duration::from_secs(10 * 60)),
        other => panic!("{other:?}"),
    }
    let mut serials = vec![first.serial_number.clone()];
    for _ in 0..3 {
        clock.advance(Duration::from_secs(40 * 60));
        match keeper.tick().await.unwrap() {
            CertKeeperAction::Renewed(c) => serials.push(c.serial_number.clone()),
            other => panic!("{other:?}"),
        }
        // The TLS resolver hands out the new certificate at once.
        let leaf = resolver.current().unwrap().cert[0].clone();
        assert_eq!(
            ::pem::parse(&keeper.current().unwrap().certificate)
                .unwrap()
                .contents(),
            leaf.as_ref()
        );
    }
    serials.dedup();
    assert_eq!(serials.len(), 4);
    // The CA sealed: retries with backoff, the last certificate stays in use.
    let before = keeper.current().unwrap().serial_number.clone();
    sr.seal().await.unwrap();
    clock.advance(Duration::from_secs(40 * 60));
    let mut delays = Vec::new();
    for _ in 0..4 {
        match keeper.tick().await.unwrap() {
            CertKeeperAction::Retrying(d) => delays.push(d),
            other => panic!("{other:?}"),
        }
        clock.advance(*delays.last().unwrap());
    }
    assert_eq!(
        delays,
        [1, 2, 4, 8].map(Duration::from_secs).to_vec(),
        "exponential backoff"
    );
    assert_eq!(keeper.current().unwrap().serial_number, before);
    assert!(resolver.current().is_some());
    let mut failed = 0;
    while let Ok(e) = events.try_recv() {
        if let CertEvent::Failed { code, .. } = e {
            assert_eq!(code, strongroom::ErrorCode::Sealed);
            failed += 1;
        }
    }
    assert_eq!(failed, 4);
    sr.unseal(sr.dev_unseal_key().unwrap().expose_secret())
        .await
        .unwrap();
    match keeper.tick().await.unwrap() {
        CertKeeperAction::Renewed(c) => assert_ne!(c.serial_number, before),
        other => panic!("{other:?}"),
    }
    // PEM files for servers that read them.
    let dir = tempfile::tempdir().unwrap();
    let (cp, kp) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    assert!(keeper.write_pem_files(&cp, &kp).unwrap());
    let written = std::fs::read_to_string(&cp).unwrap();
    assert!(written.starts_with(&keeper.current().unwrap().certificate));
    assert!(
        std::fs::read_to_string(&kp)
            .unwrap()
            .contains("PRIVATE KEY")
    );
    assert!(!format!("{keeper:?}").contains("PRIVATE"));
}

/// A revoked issuer: the keeper keeps serving its last certificate and backs off (the CA
/// refuses with OpenBao's text, not a panic or a silent stop); once an operator makes a new
/// intermediate the default, the next retry renews under it. The revoked intermediate is on
/// the root's CRL.
#[tokio::test]
async fn keeper_survives_a_revoked_issuer_and_renews_under_its_successor() {
    use strongroom::{CertEvent, CertKeeperAction, KeeperOptions};
    let (_sr, c, clock) = setup().await;
    let (_, old_int) = seed_chain(&c).await;
    let pki = c.pki("pki_int");
    let keeper = pki.keeper(
        "web",
        "svc.example.com",
        data(json!({"ttl": "1h"})),
        KeeperOptions::default(),
    );
    let mut events = keeper.subscribe();
    let first = match keeper.tick().await.unwrap() {
        CertKeeperAction::Renewed(c) => c,
        other => panic!("{other:?}"),
    };
    let old_issuer_serial = with_cert(&old_int, |x| x.raw_serial_as_string());

    let revoked = pki.revoke_issuer("default").await.unwrap();
    let d = v(&revoked);
    assert_eq!(d["revoked"], json!(true));
    assert_eq!(d["usage"], json!("crl-signing,ocsp-signing,read-only"));
    // Its parent is in another mount and it is the default: OpenBao's two warnings.
    assert_eq!(revoked.warnings.len(), 2, "{:?}", revoked.warnings);
    assert!(revoked.warnings[1].contains("default issuer"));
    // Revoking again changes nothing.
    let again = pki.revoke_issuer("default").await.unwrap();
    assert_eq!(v(&again)["revocation_time"], d["revocation_time"]);
    assert!(pki.revoke_issuer("bad/ref").await.is_err());

    clock.advance(Duration::from_secs(45 * 60));
    let mut delays = Vec::new();
    for _ in 0..3 {
        match keeper.tick().await.unwrap() {
            CertKeeperAction::Retrying(d) => delays.push(d),
            other => panic!("{other:?}"),
        }
        clock.advance(*delays.last().unwrap());
    }
    assert_eq!(delays, [1, 2, 4].map(Duration::from_secs).to_vec());
    assert_eq!(keeper.current().unwrap().serial_number, first.serial_number);
    let mut failures = 0;
    while let Ok(e) = events.try_recv() {
        if let CertEvent::Failed { message, .. } = e {
            assert!(
                message.contains("requested usage issuing-certificates"),
                "{message}"
            );
            failures += 1;
        }
    }
    assert_eq!(failures, 3);
    // Nor can anyone else issue from it, or give it the usage back.
    let e = pki
        .issue("web", "x.example.com", data(json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Internal);
    let e = c
        .write(
            "pki_int/issuer/default",
            data(json!({"usage": "issuing-certificates"})),
        )
        .await
        .unwrap_err();
    assert!(e.message().contains("This issuer was revoked"), "{e}");

    // A successor intermediate, made the default.
    let int = pki
        .generate_intermediate(
            false,
            data(json!({"common_name": "Example Intermediate CA 2", "key_type": "ec"})),
        )
        .await
        .unwrap();
    let signed = c
        .pki("pki")
        .sign_intermediate(
            Some("root-2024"),
            v(&int)["csr"].as_str().unwrap(),
            data(json!({"ttl": "43800h"})),
        )
        .await
        .unwrap();
    let imported = pki.set_signed(&signed.certificate).await.unwrap();
    let new_id = v(&imported)["imported_issuers"][0]
        .as_str()
        .unwrap()
        .to_string();
    c.write("pki_int/config/issuers", data(json!({"default": new_id})))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(8));
    let renewed = match keeper.tick().await.unwrap() {
        CertKeeperAction::Renewed(c) => c,
        other => panic!("{other:?}"),
    };
    assert_ne!(renewed.serial_number, first.serial_number);
    assert_eq!(renewed.issuing_ca.trim(), signed.certificate.trim());

    // Its parent lives in another mount (as the warning said), so the root's CRL does not
    // list it until the root's mount revokes it too.
    let root_crl = |der: Vec<u8>| -> Vec<String> {
        let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
        crl.iter_revoked_certificates()
            .map(|r| r.raw_serial_as_string())
            .collect()
    };
    assert!(root_crl(c.pki("pki").crl_der().await.unwrap()).is_empty());
    let old_serial = with_cert(&old_int, |x| {
        x.raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    });
    c.pki("pki").revoke(&old_serial).await.unwrap();
    assert_eq!(
        root_crl(c.pki("pki").crl_der().await.unwrap()),
        vec![old_issuer_serial]
    );
}

/// The CRL at scale: 100,000 revocations load once, then a rebuild signs from memory and
/// later reads serve the cache. Timed here in whatever profile the tests run (the ≤ 2 s
/// target is for release builds: `cargo bench -p strongroom --bench pki`).
#[tokio::test]
#[ignore = "slow in debug builds; run with --ignored or use the pki benchmark"]
async fn crl_with_100k_revocations() {
    let (sr, c, _clock) = setup().await;
    c.pki("pki")
        .generate_root(
            false,
            data(json!({"common_name": "Big CRL", "key_type": "ec"})),
        )
        .await
        .unwrap();
    strongroom::bench_internals::pki_seed_revoked(&sr, "pki", 100_000)
        .await
        .unwrap();
    let pki = c.pki("pki");
    let t = std::time::Instant::now();
    let der = pki.crl_der().await.unwrap();
    let first = t.elapsed();
    let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
    assert_eq!(crl.iter_revoked_certificates().count(), 100_000);
    let t = std::time::Instant::now();
    pki.rotate_crl().await.unwrap();
    let rebuild = t.elapsed();
    let t = std::time::Instant::now();
    assert_eq!(
        pki.crl_der().await.unwrap().len(),
        pki.crl_der().await.unwrap().len()
    );
    let cached = t.elapsed() / 2;
    println!("100k CRL: first load+build {first:?}, rebuild {rebuild:?}, cached read {cached:?}");
}
