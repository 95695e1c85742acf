"""Issue #20 item 3: every `sys/` listing field by field, `strongroom server -dev` beside
`bao server -dev` (BAO_BIN). Values that differ by nature (uuids, accessors, request ids,
timestamps) are compared by presence only; everything else must be equal: fields a client
parses (vaultrs fails on a missing `token_type`), defaults (`options: {}`), the `kv-v2`
alias, `listing_visibility`, and `sys/internal/ui/mounts` as each kind of caller sees it.
"""

import pytest

from security_pair import Pair

VOLATILE = {"uuid", "accessor", "request_id", "modified"}
# Mounts OpenBao has that are not ours yet (the identity engine is issue #20 item 2).
NOT_YET = {"identity/"}


@pytest.fixture(scope="module")
def pair():
    p = Pair()
    for path, body in [
        ("sys/mounts/kv1", {"type": "kv"}),
        ("sys/mounts/kv2", {"type": "kv-v2"}),
        ("sys/mounts/kvo", {"type": "kv", "options": {"version": "2"}}),
        ("sys/mounts/transit", {"type": "transit"}),
        ("sys/mounts/database", {"type": "database"}),
        ("sys/mounts/hidden", {"type": "kv", "config": {"listing_visibility": "hidden"}}),
        ("sys/auth/userpass", {"type": "userpass"}),
        ("sys/auth/approle", {"type": "approle"}),
        ("sys/auth/kubernetes", {"type": "kubernetes"}),
        ("sys/mounts/kv1/tune", {"listing_visibility": "unauth"}),
        ("sys/auth/userpass/tune", {"listing_visibility": "unauth"}),
        ("sys/policies/acl/kv2-reader", {"policy": 'path "kv2/*" { capabilities = ["read"] }'}),
    ]:
        p.setup("POST", path, body)
    yield p
    p.stop()


def normalise(v, key=None):
    if isinstance(v, dict):
        return {
            k: ("<present>" if k in VOLATILE else normalise(x, k))
            for k, x in v.items()
            if k not in NOT_YET
        }
    if isinstance(v, list):
        return [normalise(x) for x in v]
    return v


def same_body(pair, method, path, body=None, token=None):
    got = pair.both(method, path, body, token)
    ours = got["strongroom"]
    if "openbao" not in got:
        return ours
    theirs = got["openbao"]
    assert ours[0] == theirs[0], f"{path}: status {ours[0]} vs OpenBao {theirs[0]}: {ours[2][:300]}"
    a, b = normalise(ours[1]), normalise(theirs[1])
    assert a == b, f"{method} {path}:\n ours   {a}\n openbao {b}"
    return ours


@pytest.mark.parametrize(
    "path",
    [
        "sys/mounts",
        "sys/auth",
        "sys/mounts/sys",
        "sys/mounts/kv1",
        "sys/mounts/kv2",
        "sys/mounts/kvo",
        "sys/mounts/transit",
        "sys/mounts/database",
        "sys/mounts/hidden",
        "sys/mounts/cubbyhole",
        "sys/auth/token",
        "sys/auth/userpass",
        "sys/auth/approle",
        "sys/auth/kubernetes",
        "sys/mounts/kv1/tune",
        "sys/mounts/kv2/tune",
        "sys/mounts/hidden/tune",
        "sys/mounts/secret/tune",
        "sys/auth/token/tune",
        "sys/auth/userpass/tune",
        "sys/auth/kubernetes/tune",
        "sys/internal/ui/mounts",
        "sys/internal/ui/mounts/kv1",
        "sys/internal/ui/mounts/kv2",
    ],
)
def test_listing_matches_openbao(pair, path):
    status, body, _ = same_body(pair, "GET", path)
    assert status == 200


def test_kv_v2_alias_and_default_options(pair):
    _, body, _ = pair.call("strongroom", "GET", "sys/mounts/kv2")
    assert (body["type"], body["options"]) == ("kv", {"version": "2"})
    _, body, _ = pair.call("strongroom", "GET", "sys/mounts/kv1")
    assert body["options"] == {}
    assert body["config"]["listing_visibility"] == "unauth"
    _, body, _ = pair.call("strongroom", "GET", "sys/auth")
    for path, mount in body["data"].items():
        assert mount["config"]["token_type"] == "default-service", path


def test_bad_listing_visibility_is_refused_alike(pair):
    got = pair.expect(400, "POST", "sys/mounts/kv1/tune", {"listing_visibility": "bogus"})
    assert got["strongroom"][1]["errors"] == ["invalid listing_visibility bogus"]


@pytest.mark.parametrize("who", ["no token", "bogus token", "default policy", "kv2 reader", "root"])
def test_ui_mounts_as_each_caller_sees_them(pair, who):
    token = {
        "no token": "",
        "bogus token": "s.bogus",
        "default policy": pair.token(policies=["default"]) if who == "default policy" else None,
        "kv2 reader": pair.token(policies=["kv2-reader"]) if who == "kv2 reader" else None,
        "root": None,
    }[who]
    status, body, _ = same_body(pair, "GET", "sys/internal/ui/mounts", token=token)
    if who == "bogus token":
        assert status == 403
        return
    assert status == 200
    secret, auth = set(body["data"]["secret"]), set(body["data"]["auth"])
    if who == "no token":
        assert (secret, auth) == ({"kv1/"}, {"userpass/"})
        assert set(body["data"]["secret"]["kv1/"]) == {"description", "options", "type"}
    elif who == "kv2 reader":
        assert "kv2/" in secret and "transit/" not in secret and "kv1/" in secret
    elif who == "default policy":
        assert "kv2/" not in secret and "hidden/" not in secret
    else:
        assert {"kv1/", "kv2/", "hidden/", "transit/", "sys/"} <= secret


@pytest.mark.parametrize("how", ["renew-self", "renew", "renew-accessor"])
def test_token_renewal_answers_with_the_token_as_openbao(pair, how):
    """`renew-self` and `renew` carry the renewed token in `auth.client_token` (a client that
    stores it must not end up with an empty one); `renew-accessor` does not reveal it."""
    tokens = pair.token(policies=["default"], ttl="1h")
    for side in pair.sides:
        tok = tokens[side]
        if how == "renew-self":
            status, body, text = pair.call(side, "POST", "auth/token/renew-self", {}, token=tok)
        elif how == "renew":
            status, body, text = pair.call(side, "POST", "auth/token/renew", {"token": tok})
        else:
            _, me, _ = pair.call(side, "GET", "auth/token/lookup-self", token=tok)
            status, body, text = pair.call(
                side, "POST", "auth/token/renew-accessor", {"accessor": me["data"]["accessor"]}
            )
        assert status == 200, f"{side}: {text}"
        want = "" if how == "renew-accessor" else tok
        assert body["auth"]["client_token"] == want, side
