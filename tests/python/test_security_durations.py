"""Security probes, issue #23 items 5, 7 (audit/ mount) and 8: extreme durations, mount lease
limits and protected mount paths, sent the same way to `strongroom server -dev` and (with
BAO_BIN) `bao server -dev`.

A wrap TTL past Go's longest duration used to panic the request's task (the client saw a
dropped connection); OpenBao answers 400. Every probe below also checks the server still
answers afterwards.
"""

import pytest

from security_pair import Pair

OVERFLOW = "multiplication of durations resulted in overflow, one operand may be too large"
POLICY = 'path "x" { capabilities = ["read"] }'


@pytest.fixture(scope="module")
def pair():
    p = Pair()
    yield p
    p.stop()


def alive(pair):
    pair.expect(200, "GET", "sys/health", token="")


def errors(got):
    return {side: (body or {}).get("errors") for side, (_, body, _) in got.items()}


def same_errors(got):
    errs = errors(got)
    assert len({repr(e) for e in errs.values()}) == 1, errs
    return errs["strongroom"]


@pytest.mark.parametrize(
    "raw, why",
    [
        ("18446744073709551615", 'time: invalid duration "18446744073709551615"'),
        ("999999999h", 'time: invalid duration "999999999h"'),
        ("2562048h", 'time: invalid duration "2562048h"'),
        ("9223372037", OVERFLOW),
        ("1e308s", 'time: unknown unit "e" in duration "1e308s"'),
    ],
)
def test_wrap_ttl_past_gos_limit_is_400(pair, raw, why):
    got = pair.expect(400, "POST", "sys/wrapping/wrap", {"a": "b"}, headers={"X-Vault-Wrap-TTL": raw})
    assert same_errors(got) == [f"error parsing X-Vault-Wrap-TTL header: {why}"]
    alive(pair)


def test_wrap_ttl_on_gos_limit_is_accepted(pair):
    got = pair.expect(
        200, "POST", "sys/wrapping/wrap", {"a": "b"}, headers={"X-Vault-Wrap-TTL": "9223372036"}
    )
    assert {body["wrap_info"]["ttl"] for _, body, _ in got.values()} == {9223372036}


@pytest.mark.parametrize("field", ["ttl", "explicit_max_ttl", "period"])
@pytest.mark.parametrize(
    "value", ["999999999h", 18446744073709551615, "18446744073709551615", "9223372037", "106752d"]
)
def test_token_create_extreme_durations_are_400(pair, field, value):
    got = pair.expect(400, "POST", "auth/token/create", {field: value})
    # token create parses its fields itself in OpenBao: the bare Go texts, as ours.
    same_errors(got)
    alive(pair)


@pytest.mark.parametrize("field", ["ttl", "explicit_max_ttl", "period"])
def test_token_create_negative_durations_say_so(pair, field):
    got = pair.expect(400, "POST", "auth/token/create", {field: "-5"})
    assert same_errors(got) == [f"{field} must be positive"]


@pytest.mark.parametrize("field", ["ttl", "explicit_max_ttl"])
def test_token_create_on_gos_limit_is_accepted_and_capped(pair, field):
    # A non-root policy: OpenBao exempts root-policy tokens from the system maximum.
    got = pair.expect(
        200, "POST", "auth/token/create", {field: "9223372036", "policies": ["default"]}
    )
    # Capped by the system's 768h either way.
    assert {body["auth"]["lease_duration"] for _, body, _ in got.values()} == {768 * 3600}


@pytest.mark.parametrize("value", ["9223372037", "999999999h", 18446744073709551615, "106752d"])
def test_policy_ttl_extreme_is_400(pair, value):
    # Same status; OpenBao's framework prefixes "Field validation failed: error converting
    # input for field "ttl": " to the same Go text.
    got = pair.expect(400, "PUT", "sys/policies/acl/dur-p", {"policy": POLICY, "ttl": value})
    for side, errs in errors(got).items():
        assert errs and not errs[0].startswith("1 error"), (side, errs)
    alive(pair)


def test_policy_ttl_on_gos_limit_is_accepted(pair):
    pair.expect(204, "PUT", "sys/policies/acl/dur-q", {"policy": POLICY, "ttl": "9223372036"})
    pair.expect(200, "GET", "sys/policies/acl/dur-q")


@pytest.fixture(scope="module")
def approle(pair):
    pair.setup("POST", "sys/auth/dur-approle", {"type": "approle"})
    pair.setup("POST", "auth/dur-approle/role/r", {"policies": "default"})
    return "auth/dur-approle/role/r"


@pytest.mark.parametrize("value", ["9223372037", "999999999h", "106752d", 18446744073709551615])
def test_approle_secret_id_ttl_extreme_is_400(pair, approle, value):
    pair.expect(400, "POST", f"{approle}/secret-id", {"ttl": value})
    pair.expect(400, "POST", approle, {"secret_id_ttl": value})
    alive(pair)


def test_approle_secret_id_ttl_on_gos_limit_is_accepted(pair, approle):
    pair.expect(200, "POST", f"{approle}/secret-id", {"ttl": "106751d"})


def test_pki_style_mount_with_a_ten_year_maximum(pair):
    # The PKI tutorial's `bao secrets enable -max-lease-ttl=87600h pki` and `bao secrets tune
    # -max-lease-ttl=87600h pki`. We have no PKI engine, so the probe mounts kv at pki-dur/:
    # the mount table's rules are the same for every type.
    pair.expect(
        204, "POST", "sys/mounts/pki-dur", {"type": "kv", "config": {"max_lease_ttl": "87600h"}}
    )
    pair.expect(204, "POST", "sys/mounts/pki-dur/tune", {"max_lease_ttl": "87600h"})
    got = pair.expect(200, "GET", "sys/mounts/pki-dur/tune")
    tuned = {(b["max_lease_ttl"], b["default_lease_ttl"]) for _, b, _ in got.values()}
    assert tuned == {(87600 * 3600, 768 * 3600)}
    # Further up, and on Go's limit: no other upper bound in OpenBao.
    pair.expect(204, "POST", "sys/mounts/pki-dur/tune", {"max_lease_ttl": "876000h"})
    pair.expect(204, "POST", "sys/mounts/pki-dur/tune", {"max_lease_ttl": "9223372036"})
    pair.expect(400, "POST", "sys/mounts/pki-dur/tune", {"max_lease_ttl": "2562048h"})
    # Auth mounts follow the same rules.
    pair.expect(
        204, "POST", "sys/auth/up-dur", {"type": "userpass", "config": {"max_lease_ttl": "87600h"}}
    )
    alive(pair)


@pytest.mark.parametrize(
    "path, body",
    [
        ("sys/mounts/dur-a", {"type": "kv", "config": {"default_lease_ttl": "10h", "max_lease_ttl": "5h"}}),
        ("sys/mounts/dur-b", {"type": "kv", "config": {"default_lease_ttl": "8760h"}}),
    ],
)
def test_mount_default_above_maximum_is_refused_with_openbaos_text(pair, path, body):
    same_errors(pair.expect(400, "POST", path, body))


def test_tune_default_above_maximum_is_refused_with_openbaos_text(pair):
    pair.setup("POST", "sys/mounts/dur-c", {"type": "kv"})
    # A default above 768h with no mount maximum is accepted on tune (capped per lease).
    pair.expect(204, "POST", "sys/mounts/dur-c/tune", {"default_lease_ttl": "8760h"})
    same_errors(pair.expect(400, "POST", "sys/mounts/dur-c/tune", {"max_lease_ttl": "1h"}))
    same_errors(
        pair.expect(
            400, "POST", "sys/mounts/dur-c/tune", {"default_lease_ttl": "2h", "max_lease_ttl": "1h"}
        )
    )


@pytest.mark.parametrize(
    "path",
    ["audit", "audit/x", "auth", "auth/x", "sys", "sys/x", "cubbyhole", "cubbyhole/x", "identity", "identity/x"],
)
def test_protected_mount_paths_are_refused(pair, path):
    got = pair.expect(400, "POST", f"sys/mounts/{path}", {"type": "kv"})
    assert same_errors(got) == [f'cannot mount "{path}/"']
