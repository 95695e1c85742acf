"""Probe: a deny rule on a name must hold for every spelling of it (case, leading and trailing
spaces, percent-encoded), over HTTP, against strongroom server -dev and bao server -dev side by
side. The engine-level table is core/tests/names.rs; this replays it on the wire, where the
encoded variants (`%20st-protected`, `ST-PROTECTED%20`) arrive.

For each endpoint that takes a name, a token allowed on `<prefix>*` but denied `<prefix><name>`
and `<prefix><name>/*` writes to the name's variants. Both servers must answer alike, and the
protected object must be unchanged on both.
"""

import pytest

from security_pair import Pair, quote

PASSWORD_POLICY = 'length = 20\nrule "charset" { charset = "abcdefghij" }'
GRANT_ALL = 'path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }'

OBJECTS = [
    ("sys/policies/acl/st-protected", {"policy": 'path "x" { capabilities = ["read"] }'}),
    ("sys/policies/password/prot", {"policy": PASSWORD_POLICY}),
    ("auth/token/roles/st-admin-role", {"allowed_policies": "st-protected"}),
    ("auth/userpass/users/admin", {"password": "right"}),
    ("auth/approle/role/st-admin", {"token_policies": "st-protected"}),
    (
        "auth/kubernetes/role/prot",
        {"bound_service_account_names": "x", "bound_service_account_namespaces": "y"},
    ),
    ("transit/keys/prot", {}),
]

# (prefix, name, suffix, kind, body). kind: how the server treats the name
#   trim-lower: trimmed and lowercased (ACL policies): every variant is denied
#   lower:      GenericNameRegex, lowercased: case variants denied, spaced ones 404
#   exact:      GenericNameRegex, case-sensitive: case variants are other objects, spaced 404
#   raw:        taken as sent (password policies): every variant is another object
CASES = [
    ("sys/policies/acl/", "st-protected", "", "trim-lower", {"policy": GRANT_ALL}),
    ("sys/policy/", "st-protected", "", "trim-lower", {"policy": GRANT_ALL}),
    ("sys/policies/password/", "prot", "", "raw", {"policy": PASSWORD_POLICY}),
    ("auth/token/roles/", "st-admin-role", "", "exact", {"allowed_policies": "root"}),
    ("auth/token/create/", "st-admin-role", "", "exact", {}),
    (
        "auth/userpass/users/",
        "admin",
        "",
        "lower",
        {"password": "hijacked", "token_policies": "root"},
    ),
    ("auth/userpass/users/", "admin", "/password", "lower", {"password": "hijacked"}),
    ("auth/approle/role/", "st-admin", "", "lower", {"token_policies": "root"}),
    ("auth/approle/role/", "st-admin", "/secret-id", "lower", {}),
    ("auth/approle/role/", "st-admin", "/role-id", "lower", None),
    (
        "auth/kubernetes/role/",
        "prot",
        "",
        "lower",
        {
            "bound_service_account_names": "*",
            "bound_service_account_namespaces": "*",
            "token_policies": "root",
        },
    ),
    ("transit/keys/", "prot", "", "exact", {"exportable": True}),
    ("transit/encrypt/", "prot", "", "exact", {"plaintext": "aGk="}),
]

# Where we are stricter than OpenBao, on purpose. OpenBao leaves `users/ADMIN/password` as
# sent, so a denied token "changes ADMIN's password": it creates an `ADMIN` entry that no login
# can reach (logins lowercase). Here the ACL judges the entry the engine acts on,
# `users/admin/password`, and denies it. The protected user is unchanged on both.
STRICTER = {("auth/userpass/users/", "/password")}


def variants(name):
    return [
        (name.upper(), True),
        (name[:1].upper() + name[1:], True),
        (" " + name, False),
        (name + " ", False),
        (" " + name.upper() + " ", False),
    ]


def expected(kind, case_only, prefix):
    if kind == "trim-lower" or (kind == "lower" and case_only):
        return 403
    if kind in ("lower", "exact") and not case_only:
        return 404
    if prefix == "auth/token/create/":
        return 400  # unknown role ST-ADMIN-ROLE: another (missing) role
    return {200, 204}


@pytest.fixture(scope="module")
def pair():
    p = Pair()
    try:
        for method in ("userpass", "approle", "kubernetes"):
            p.setup("POST", f"sys/auth/{method}", {"type": method})
        p.setup("POST", "sys/mounts/transit", {"type": "transit"})
        for path, body in OBJECTS:
            p.setup("POST", path, body)
        yield p
    finally:
        p.stop()


def snapshot(pair, side):
    out = {}
    for path, _ in OBJECTS:
        status, body, text = pair.call(side, "GET", path)
        assert status == 200, f"{side} {path}: {status} {text}"
        data = body["data"]
        data.pop("modified", None)  # a transit key's age is no change
        out[path] = data
    status, _, _ = pair.call(
        side, "POST", "auth/userpass/login/admin", {"password": "right"}, token=""
    )
    out["admin logs in"] = status == 200
    return out


@pytest.mark.parametrize("prefix,name,suffix,kind,body", CASES)
def test_deny_rule_holds_for_every_spelling(pair, prefix, name, suffix, kind, body):
    policy = f"""
path "{prefix}*" {{ capabilities = ["create", "read", "update", "delete", "list"] }}
path "{prefix}{name}" {{ capabilities = ["deny"] }}
path "{prefix}{name}/*" {{ capabilities = ["deny"] }}
"""
    pname = "limited-" + quote(prefix + suffix).replace("%", "").lower()
    pair.setup("PUT", f"sys/policies/acl/{pname}", {"policy": policy})
    token = pair.token(policies=[pname])
    before = {side: snapshot(pair, side) for side in pair.sides}
    method = "GET" if body is None else "POST"

    pair.expect(403, method, f"{prefix}{name}{suffix}", body, token=token)
    for variant, case_only in variants(name):
        path = f"{prefix}{quote(variant)}{suffix}"
        want = expected(kind, case_only, prefix)
        if (prefix, suffix) in STRICTER and case_only:
            status, _, text = pair.call("strongroom", method, path, body, token)
            assert status == 403, f"{path}: {status} {text}"
        else:
            pair.expect(want, method, path, body, token=token)
        for side in pair.sides:
            assert snapshot(pair, side) == before[side], f"{side}: {path} changed the object"
