"""The PKI engine over real HTTP, side by side with `bao server -dev` (when BAO_BIN is set):
the seed's workflow (a root, an intermediate signed by it, a role per service, certificates),
the same requests to both servers, and the answers compared: statuses, data keys, warnings,
error texts, content types of the raw endpoints, token-less reads, and the issued
certificates' fields as `openssl x509` reads them.
"""

import json
import shutil
import subprocess

import pytest

from security_pair import Pair

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not found")


@pytest.fixture
def pair():
    p = Pair()
    try:
        yield p
    finally:
        p.stop()


def x509_text(pem):
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-text"], input=pem, capture_output=True, text=True, check=True
    )
    return out.stdout


def ext(text, name):
    """The line after an extension's header in `openssl x509 -text`."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith(name):
            return line.strip(), lines[i + 1].strip()
    return None


def seed(pair):
    for m in ("pki", "pki_int"):
        pair.setup("POST", f"sys/mounts/{m}", {"type": "pki"})
        pair.setup("POST", f"sys/mounts/{m}/tune", {"max_lease_ttl": "87600h"})
    root = pair.expect(
        200,
        "POST",
        "pki/root/generate/internal",
        {"common_name": "example.com", "ttl": "87600h", "issuer_name": "root-2024", "key_type": "ec"},
    )
    csr = pair.expect(
        200, "POST", "pki_int/intermediate/generate/internal", {"common_name": "example.com Intermediate Authority", "key_type": "ec"}
    )
    for side, (_, body, _) in csr.items():
        assert sorted(body["data"]) == ["csr", "key_id"], side
    out = {}
    for side in pair.sides:
        st, body, text = pair.call(
            side,
            "POST",
            "pki/root/sign-intermediate",
            {"csr": csr[side][1]["data"]["csr"], "format": "pem_bundle", "ttl": "43800h"},
        )
        assert st == 200, text
        st, imp, text = pair.call(
            side, "POST", "pki_int/intermediate/set-signed", {"certificate": body["data"]["certificate"]}
        )
        assert st == 200, text
        # The pem_bundle holds the intermediate and the root: both become issuers.
        assert len(imp["data"]["imported_issuers"]) == 2, side
        out[side] = (root[side][1]["data"], body["data"])
    pair.setup(
        "POST",
        "pki_int/roles/example-dot-com",
        {"allowed_domains": "example.com", "allow_subdomains": True, "max_ttl": "720h", "key_type": "ec"},
    )
    return out


def test_seed_workflow_matches_openbao(pair):
    seeded = seed(pair)
    for side, (root, _) in seeded.items():
        assert sorted(root) == [
            "certificate", "expiration", "issuer_id", "issuer_name", "issuing_ca", "key_id", "key_name", "serial_number",
        ], side
        assert root["issuer_name"] == "root-2024"
    got = pair.expect(
        200, "POST", "pki_int/issue/example-dot-com", {"common_name": "test.example.com", "ttl": "24h", "alt_names": "www.example.com"}
    )
    texts = {}
    for side, (_, body, _) in got.items():
        d = body["data"]
        assert sorted(d) == [
            "ca_chain", "certificate", "expiration", "issuing_ca", "not_before", "private_key", "private_key_type", "serial_number",
        ], side
        assert d["private_key_type"] == "ec"
        assert len(d["serial_number"].split(":")) >= 19
        assert d["ca_chain"][0] == d["issuing_ca"]
        t = x509_text(d["certificate"])
        texts[side] = t
        assert "Subject: CN = test.example.com" in t, side
        assert "Issuer: CN = example.com Intermediate Authority" in t, side
        assert ext(t, "X509v3 Subject Alternative Name")[1] == "DNS:test.example.com, DNS:www.example.com", side
        assert ext(t, "X509v3 Key Usage") == ("X509v3 Key Usage: critical", "Digital Signature, Key Encipherment, Key Agreement"), side
        assert ext(t, "X509v3 Extended Key Usage")[1] == "TLS Web Server Authentication, TLS Web Client Authentication", side
        assert "X509v3 Basic Constraints" not in t, side
        assert "X509v3 Authority Key Identifier" in t and "X509v3 Subject Key Identifier" in t, side
        assert d["expiration"] - d["not_before"] == 24 * 3600 + 30, side
    # Reads and lists: same statuses on both sides.
    serial = got["strongroom"][1]["data"]["serial_number"]
    for side in pair.sides:
        s = got[side][1]["data"]["serial_number"]
        for form in (s, s.replace(":", "-")):
            st, body, text = pair.call(side, "GET", f"pki_int/cert/{form}", token="")
            assert st == 200, (side, text)
            assert body["data"]["certificate"] == got[side][1]["data"]["certificate"]
            assert body["data"]["revocation_time"] == 0
    pair.expect(200, "LIST", "pki_int/certs")
    pair.expect(404, "LIST", "pki_int/certs/revoked")


def test_raw_endpoints_and_tokenless_reads_match(pair):
    seed(pair)
    for path in [
        "pki_int/ca",
        "pki_int/ca/pem",
        "pki_int/ca_chain",
        "pki_int/crl",
        "pki_int/crl/pem",
        "pki_int/cert/ca/raw",
        "pki_int/cert/ca/raw/pem",
    ]:
        got = pair.expect(200, "GET", path, token="")
        for side, (_, _, text) in got.items():
            assert text, (side, path)
    for path in ["pki_int/cert/ca", "pki_int/cert/crl"]:
        pair.expect(200, "GET", path, token="")
    pair.expect(200, "LIST", "pki_int/issuers", token="")
    for method, path, body in [
        ("LIST", "pki_int/certs", None),
        ("GET", "pki_int/roles/example-dot-com", None),
        ("POST", "pki_int/issue/example-dot-com", {"common_name": "a.example.com"}),
        ("GET", "pki_int/config/urls", None),
    ]:
        pair.expect(403, method, path, body, token="")


def test_content_types_match(pair):
    import urllib.request

    seed(pair)
    for path in ["pki_int/ca", "pki_int/ca/pem", "pki_int/crl", "pki_int/crl/pem", "pki_int/ca_chain", "pki_int/cert/ca/raw/pem"]:
        types = {}
        for side, (url, _, _) in pair.sides.items():
            with urllib.request.urlopen(f"{url}/v1/{path}") as r:
                types[side] = r.headers.get("Content-Type")
        assert len(set(types.values())) == 1, (path, types)


def test_refusals_match_openbao(pair):
    seed(pair)
    cases = [
        ("POST", "pki_int/issue/example-dot-com", {"common_name": "a.other.com"}),
        ("POST", "pki_int/issue/example-dot-com", {"common_name": "example.com"}),
        ("POST", "pki_int/issue/nope", {"common_name": "a.example.com"}),
        ("POST", "pki_int/issue/example-dot-com", {}),
        ("POST", "pki_int/issue/example-dot-com", {"common_name": "a.example.com", "ttl": "bogus"}),
        ("POST", "pki_int/sign/example-dot-com", {"csr": "garbage"}),
        ("POST", "pki_int/issue/example-dot-com", {"common_name": "a.example.com", "alt_names": "x.other.com"}),
        ("POST", "pki_int/revoke", {}),
        ("POST", "pki_int/revoke", {"serial_number": "00:11"}),
        ("POST", "pki_int/roles/bad", {"key_type": "ec", "key_bits": 333}),
        ("POST", "pki_int/roles/bad", {"ttl": "10h", "max_ttl": "1h"}),
        ("POST", "pki/root/sign-intermediate", {"csr": "junk"}),
        # Names, sizes and fields an attacker would try (found probing both servers).
        ("POST", "pki_int/roles/a%2Fb", {}),
        ("POST", "pki_int/roles/bad", {"key_type": "rsa", "key_bits": -1}),
        ("POST", "pki_int/roles/bad", {"ttl": "-5h"}),
        ("POST", "pki_int/issue/example-dot-com", {"common_name": "a" * 64 + ".example.com"}),
        ("POST", "pki_int/issue/example-dot-com", {"common_name": "a.example.com", "alt_names": "b" * 70 + ".example.com"}),
        ("POST", "pki_int/issue/example-dot-com", {"common_name": "a.example.com", "other_sans": "1.2.3;UTF8:x"}),
        ("POST", "pki_int/issue/example-dot-com", {"common_name": "a.example.com", "serial_number": "zz"}),
        ("POST", "pki_int/issue/example-dot-com", {"common_name": "a.example.com", "uri_sans": "spiffe://x/y"}),
        ("POST", "pki_int/issue/example-dot-com", {"common_name": "a.example.com", "ttl": "-1.5s"}),
        ("POST", "pki_int/issue/example-dot-com", {"common_name": "a.example.com", "ttl": "1h", "not_after": "2030-01-01T00:00:00Z"}),
    ]
    for method, path, body in cases:
        got = pair.both(method, path, body)
        statuses = {s: st for s, (st, _, _) in got.items()}
        errors = {s: (b or {}).get("errors") for s, (_, b, _) in got.items()}
        assert len(set(statuses.values())) == 1, (path, body, statuses, errors)
        assert len({json.dumps(e) for e in errors.values()}) == 1, (path, body, errors)
    pair.expect(404, "GET", "pki_int/roles/bad")
    # TTL capped by the role with OpenBao's warning.
    got = pair.expect(200, "POST", "pki_int/issue/example-dot-com", {"common_name": "a.example.com", "ttl": "1000h"})
    warnings = {s: b["warnings"] for s, (_, b, _) in got.items()}
    assert len({json.dumps(w) for w in warnings.values()}) == 1, warnings


def test_revoke_and_crl_match(pair):
    seed(pair)
    got = pair.expect(200, "POST", "pki_int/issue/example-dot-com", {"common_name": "r.example.com"})
    for side, (_, body, _) in got.items():
        serial = body["data"]["serial_number"]
        st, rv, text = pair.call(side, "POST", "pki_int/revoke", {"serial_number": serial})
        assert st == 200, text
        assert sorted(rv["data"]) == ["revocation_time", "revocation_time_rfc3339", "state"]
        st, rv2, _ = pair.call(side, "POST", "pki_int/revoke", {"serial_number": serial})
        assert rv2["data"]["revocation_time"] == rv["data"]["revocation_time"]
        st, listed, _ = pair.call(side, "LIST", "pki_int/certs/revoked")
        assert listed["data"]["keys"] == [serial], side
        st, _, crl = pair.call(side, "GET", "pki_int/crl/pem", token="")
        out = subprocess.run(["openssl", "crl", "-noout", "-text"], input=crl, capture_output=True, text=True, check=True)
        assert serial.replace(":", "").upper() in out.stdout.replace(":", "").upper(), side
        st, cert, _ = pair.call(side, "GET", f"pki_int/cert/{serial}", token="")
        assert cert["data"]["revocation_time"] == rv["data"]["revocation_time"]


def test_sign_csr_and_sign_verbatim_match(pair, tmp_path):
    seed(pair)
    key = tmp_path / "k.pem"
    csr_path = tmp_path / "r.csr"
    subprocess.run(
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-subj", "/CN=svc.example.com/O=Acme", "-addext",
         "subjectAltName=DNS:alt.example.com", "-out", str(csr_path)],
        check=True, capture_output=True,
    )
    csr = csr_path.read_text()
    for path in ["pki_int/sign/example-dot-com", "pki_int/sign-verbatim"]:
        got = pair.expect(200, "POST", path, {"csr": csr, "ttl": "2h"})
        subjects = {}
        for side, (_, body, _) in got.items():
            d = body["data"]
            assert "private_key" not in d, side
            t = x509_text(d["certificate"])
            subjects[side] = (
                [l.strip() for l in t.splitlines() if l.strip().startswith("Subject:")],
                ext(t, "X509v3 Subject Alternative Name"),
                ext(t, "X509v3 Key Usage"),
                ext(t, "X509v3 Extended Key Usage"),
                sorted(d),
            )
        assert len({json.dumps(v) for v in subjects.values()}) == 1, (path, subjects)


def _one_answer(got, ids):
    """Every side's (status, errors, warnings) with its own issuer ids replaced by names, so
    answers that name an issuer compare across servers."""
    out = {}
    for side, (st, body, _) in got.items():
        text = json.dumps([(body or {}).get("errors"), (body or {}).get("warnings")])
        for name, per_side in ids.items():
            text = text.replace(per_side[side], f"<{name}>")
        out[side] = (st, text)
    assert len(set(out.values())) == 1, out
    return out["strongroom"]


def test_issuer_revoke_usage_and_update_match(pair):
    """`issuer/:ref/revoke`: usage loses issuing-certificates for good, the issuer lands on its
    parent's CRL, the warnings; POST on an issuer resets what it does not name, PATCH keeps."""
    seed(pair)
    pair.setup("POST", "pki/roles/web", {"allow_any_name": True, "ttl": "1h", "key_type": "ec"})
    csr = pair.expect(200, "POST", "pki/intermediate/generate/internal", {"common_name": "int.example", "key_type": "ec"})
    ids = {"root": {}, "int": {}}
    int_serial = {}
    for side in pair.sides:
        st, signed, text = pair.call(side, "POST", "pki/root/sign-intermediate", {"csr": csr[side][1]["data"]["csr"]})
        assert st == 200, text
        int_serial[side] = signed["data"]["serial_number"]
        st, imp, text = pair.call(side, "POST", "pki/intermediate/set-signed", {"certificate": signed["data"]["certificate"]})
        assert st == 200, text
        (new_id,) = imp["data"]["imported_issuers"]
        ids["int"][side] = new_id
        st, body, text = pair.call(side, "GET", "pki/issuer/root-2024")
        ids["root"][side] = body["data"]["issuer_id"]
        st, body, text = pair.call(side, "POST", f"pki/issuer/{new_id}", {"issuer_name": "int"})
        assert st == 200 and body["data"]["issuer_name"] == "int", text
    pair.expect(200, "POST", "pki/issuer/int/issue/web", {"common_name": "a.example"})

    got = pair.expect(200, "POST", "pki/issuer/int/revoke")
    _one_answer(got, ids)
    for side, (_, body, _) in got.items():
        d = body["data"]
        assert d["revoked"] is True and d["usage"] == "crl-signing,ocsp-signing,read-only", (side, d)
        assert d["revocation_time"] > 0 and d["revocation_time_rfc3339"], side
    keys = {s: sorted(b["data"]) for s, (_, b, _) in got.items()}
    assert len({json.dumps(k) for k in keys.values()}) == 1, keys
    # Again: the same answer, the same time.
    again = pair.expect(200, "POST", "pki/issuer/int/revoke")
    for side in pair.sides:
        assert again[side][1]["data"]["revocation_time"] == got[side][1]["data"]["revocation_time"]
    # It no longer issues (500 and OpenBao's text), and cannot get the usage back.
    _one_answer(pair.both("POST", "pki/issuer/int/issue/web", {"common_name": "b.example"}), ids)
    _one_answer(pair.both("POST", "pki/issuer/int", {"issuer_name": "int", "usage": "issuing-certificates"}), ids)
    # On the root's CRL, and `cert/:serial` shows it revoked.
    for side in pair.sides:
        st, _, crl = pair.call(side, "GET", "pki/issuer/root-2024/crl/pem", token="")
        out = subprocess.run(["openssl", "crl", "-noout", "-text"], input=crl, capture_output=True, text=True, check=True)
        assert int_serial[side].replace(":", "").upper() in out.stdout.replace(":", "").upper(), side
        st, cert, _ = pair.call(side, "GET", f"pki/cert/{int_serial[side]}", token="")
        assert cert["data"]["revocation_time"] == got[side][1]["data"]["revocation_time"], side

    # Usage parsing.
    for usage in ["foo", "ocsp-signing,,read-only"]:
        _one_answer(pair.both("POST", "pki/issuer/root-2024", {"issuer_name": "root-2024", "usage": usage}), ids)
    got = pair.expect(200, "POST", "pki/issuer/root-2024", {"issuer_name": "root-2024", "usage": "read-only,issuing-certificates,read-only"})
    assert {b["data"]["usage"] for _, (_, b, _) in got.items()} == {"issuing-certificates,read-only"}
    # PATCH keeps the name; POST without it clears it (and resets usage to all).
    got = pair.expect(
        200, "PATCH", "pki/issuer/root-2024", {"leaf_not_after_behavior": "truncate"},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    for side, (_, b, _) in got.items():
        assert (b["data"]["issuer_name"], b["data"]["usage"]) == ("root-2024", "issuing-certificates,read-only"), side
    got = pair.expect(200, "POST", "pki/issuer/default", {"usage": "read-only"})
    for side, (_, b, _) in got.items():
        d = b["data"]
        assert (d["issuer_name"], d["usage"], d["leaf_not_after_behavior"]) == ("", "read-only", "err"), (side, d)
        assert d["revocation_signature_algorithm"] == "", (side, d)
    # A read-only default issuer refuses to issue, with OpenBao's text.
    _one_answer(pair.both("POST", "pki/issue/web", {"common_name": "c.example"}), ids)
    # Revoking the (self-signed, default, parentless) root: all three warnings.
    got = pair.expect(200, "POST", "pki/issuer/default/revoke")
    _, text = _one_answer(got, ids)
    assert "self-signed" in text and "default issuer" in text


def test_private_key_forms_match(pair):
    """Issued keys come back as OpenBao gives them: PKCS#1 `RSA PRIVATE KEY`, SEC1 `EC PRIVATE
    KEY`, PKCS#8 for ed25519, and PKCS#8 for every type with private_key_format=pkcs8 (an
    unknown value is ignored, as OpenBao ignores it)."""
    seed(pair)
    for key_type, bits in [("rsa", 2048), ("ec", 256), ("ed25519", 0)]:
        pair.setup("POST", f"pki/roles/k-{key_type}", {"allow_any_name": True, "key_type": key_type, "key_bits": bits})
        for fmt in [None, "pkcs8", "der", "bogus"]:
            body = {"common_name": "k.example", "ttl": "1h"}
            if fmt:
                body["private_key_format"] = fmt
            got = pair.expect(200, "POST", f"pki/issue/k-{key_type}", body)
            forms = {
                side: (b["data"]["private_key"].splitlines()[0], b["data"]["private_key_type"])
                for side, (_, b, _) in got.items()
            }
            assert len(set(forms.values())) == 1, (key_type, fmt, forms)
            # No trailing newline after the PEM block on either side.
            assert all(not b["data"]["private_key"].endswith("\n") for _, (_, b, _) in got.items())
            if key_type == "rsa" and fmt is None:
                assert forms["strongroom"] == ("-----BEGIN RSA PRIVATE KEY-----", "rsa")
            # The key belongs to the certificate.
            d = got["strongroom"][1]["data"]
            pub_of_key = subprocess.run(["openssl", "pkey", "-pubout"], input=d["private_key"], capture_output=True, text=True, check=True).stdout
            pub_of_cert = subprocess.run(["openssl", "x509", "-noout", "-pubkey"], input=d["certificate"], capture_output=True, text=True, check=True).stdout
            assert pub_of_key == pub_of_cert, key_type


def test_other_sans_serial_number_and_not_after_match(pair):
    """Allowed `other_sans` and `serial_number` land in the certificate as OpenBao puts them;
    an explicit `not_after` replaces the TTL (past the role's max_ttl, with OpenBao's warning
    about the default TTL), and a role max below the mount's default warns on every issue."""
    seed(pair)
    pair.setup(
        "POST",
        "pki_int/roles/extra",
        {"allow_any_name": True, "key_type": "ec", "max_ttl": "1h", "allowed_other_sans": "1.3.6.1.4.1.311.20.2.3;UTF8:*", "allowed_serial_numbers": "dev-*"},
    )
    got = pair.expect(
        200,
        "POST",
        "pki_int/issue/extra",
        {"common_name": "u.example.com", "other_sans": "1.3.6.1.4.1.311.20.2.3;UTF8:user@example.com", "serial_number": "dev-7"},
    )
    texts = {}
    for side, (_, b, _) in got.items():
        t = x509_text(b["data"]["certificate"])
        texts[side] = (ext(t, "X509v3 Subject Alternative Name"), [l.strip() for l in t.splitlines() if l.strip().startswith("Subject:")])
    assert len({json.dumps(v) for v in texts.values()}) == 1, texts
    assert "serialNumber = dev-7" in texts["strongroom"][1][0]
    warnings = {s: b["warnings"] for s, (_, b, _) in got.items()}
    assert len({json.dumps(w) for w in warnings.values()}) == 1, warnings
    assert warnings["strongroom"] and "maxTTL" in warnings["strongroom"][0]
    import datetime
    na = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    got = pair.expect(200, "POST", "pki_int/issue/extra", {"common_name": "n.example.com", "not_after": na})
    for side, (_, b, _) in got.items():
        exp = datetime.datetime.fromtimestamp(b["data"]["expiration"], datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert exp == na, (side, exp, na)
    warnings = {s: b["warnings"] for s, (_, b, _) in got.items()}
    assert len({json.dumps(w) for w in warnings.values()}) == 1, warnings
