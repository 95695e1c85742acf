"""Issue #23, token lifetime and pipeline answers, side by side with OpenBao (see
security_pair.py): a batch token dies with its parent (item 2), a limited-use token spends a
use on every answered call (7a), unrouted paths are ACL-checked before they are not found
(7b), policy lists need `list` (7c).

Policy expiry (item 6) is time-driven: it is shown in core/tests/acl.rs on the virtual clock
rather than here, where it would take real sleeps on both servers."""

import pytest

from security_pair import Pair

LIM = """
path "secret/*" { capabilities = ["read", "create", "update", "list"] }
path "auth/token/create" { capabilities = ["update"] }
path "granted/*" { capabilities = ["read"] }
"""

LIST_ONLY = "".join(
    f'path "{p}" {{ capabilities = ["list"] }}\npath "{p}/" {{ capabilities = ["list"] }}\n'
    for p in ("sys/policies/acl", "sys/policies/password", "sys/policy")
)
READ_ONLY = LIST_ONLY.replace('"list"', '"read"')

DENIED = "1 error occurred:\n\t* permission denied\n\n"
UNSUPPORTED_OP = "1 error occurred:\n\t* unsupported operation\n\n"


@pytest.fixture(scope="module")
def pair():
    p = Pair()
    p.setup("PUT", "sys/policies/acl/lim", {"policy": LIM})
    p.setup("PUT", "sys/policies/acl/lonly", {"policy": LIST_ONLY})
    p.setup("PUT", "sys/policies/acl/ronly", {"policy": READ_ONLY})
    p.setup(
        "PUT",
        "sys/policies/password/pw",
        {"policy": 'length = 20\nrule "charset" { charset = "abc" }'},
    )
    yield p
    p.stop()


def errors(got):
    """The `errors` list of every side's answer."""
    return {side: (body or {}).get("errors") for side, (_, body, _) in got.items()}


def assert_errors(got, text):
    assert all(e == [text] for e in errors(got).values()), errors(got)


def batch_under(pair, parent):
    """A non-orphan batch token created by `parent` on every side."""
    out = {}
    for side in pair.sides:
        status, body, text = pair.call(
            side,
            "POST",
            "auth/token/create",
            {"type": "batch", "policies": ["lim"]},
            token=parent[side],
        )
        assert status == 200, f"{side}: {status} {text}"
        assert body["auth"]["client_token"].startswith("b.")
        out[side] = body["auth"]["client_token"]
    return out


def test_batch_token_dies_with_its_revoked_parent(pair):
    parent = pair.token(policies=["lim"], ttl="1h")
    batch = batch_under(pair, parent)
    got = pair.expect(200, "GET", "auth/token/lookup-self", token=batch)
    assert all(b["data"]["orphan"] is False for _, b, _ in got.values())
    pair.expect(404, "GET", "secret/data/none", token=batch)
    for side in pair.sides:
        status, _, text = pair.call(
            side, "POST", "auth/token/revoke", {"token": parent[side]}
        )
        assert status == 204, f"{side}: {status} {text}"
    # The batch token is now an invalid token: plain "permission denied" everywhere.
    assert_errors(
        pair.expect(403, "GET", "auth/token/lookup-self", token=batch),
        "permission denied",
    )
    assert_errors(
        pair.expect(403, "GET", "secret/data/none", token=batch), "permission denied"
    )
    assert_errors(
        pair.expect(403, "POST", "auth/token/renew-self", {}, token=batch),
        "permission denied",
    )
    # Root's lookup answers as for any unknown token.
    for side in pair.sides:
        status, body, _ = pair.call(
            side, "POST", "auth/token/lookup", {"token": batch[side]}
        )
        assert (status, body["errors"]) == (403, ["bad token"]), side
        # Revoking it is a no-op, as for any unknown token (not "cannot be revoked").
        status, _, text = pair.call(
            side, "POST", "auth/token/revoke", {"token": batch[side]}
        )
        assert status == 204, f"{side}: {status} {text}"
        status, body, _ = pair.call(
            side, "POST", "sys/capabilities", {"token": batch[side], "paths": ["a"]}
        )
        assert (status, body["errors"]) == (
            400,
            ["1 error occurred:\n\t* invalid token\n\n"],
        ), side


def test_revoke_and_capabilities_of_unknown_tokens(pair):
    pair.expect(204, "POST", "auth/token/revoke", {"token": "b.garbage"})
    assert_errors(
        pair.expect(400, "POST", "auth/token/revoke", {"token": ""}), "missing token ID"
    )
    got = pair.expect(
        400, "POST", "sys/capabilities-accessor", {"accessor": "nope", "paths": ["a"]}
    )
    assert_errors(got, "1 error occurred:\n\t* invalid accessor\n\n")


def test_an_orphan_batch_token_outlives_the_token_that_made_it(pair):
    maker = pair.token(policies=["lim"])
    orphan = {}
    for side in pair.sides:
        status, body, text = pair.call(
            side,
            "POST",
            "auth/token/create-orphan",
            {"type": "batch", "policies": ["lim"]},
        )
        assert status == 200, f"{side}: {status} {text}"
        orphan[side] = body["auth"]["client_token"]
    for side in pair.sides:
        pair.call(side, "POST", "auth/token/revoke", {"token": maker[side]})
    pair.expect(200, "GET", "auth/token/lookup-self", token=orphan)


def uses_left(pair, tok):
    out = {}
    for side in pair.sides:
        status, body, text = pair.call(side, "POST", "auth/token/lookup", {"token": tok[side]})
        assert status == 200, f"{side}: {status} {text}"
        out[side] = body["data"]["num_uses"]
    return out


def test_every_answered_call_spends_a_use(pair):
    tok = pair.token(policies=["lim"], num_uses=10)
    steps = [
        (403, "GET", "sys/mounts", None),  # policy denial
        (403, "GET", "nomount/x", None),  # no mount, path not allowed
        (404, "GET", "secret/data/missing", None),  # not found
        (400, "PUT", "secret/data/bad", {"data": "not a map"}),  # bad input
        (404, "GET", "granted/x", None),  # allowed path, no mount
    ]
    left = 10
    for status, method, path, body in steps:
        pair.expect(status, method, path, body, token=tok)
        left -= 1
        got = uses_left(pair, tok)
        assert set(got.values()) == {left}, f"{method} {path}: {got}"


def test_a_denied_last_use_revokes_the_token(pair):
    tok = pair.token(policies=["lim"], num_uses=1)
    assert_errors(pair.expect(403, "GET", "sys/mounts", token=tok), DENIED)
    assert_errors(
        pair.expect(403, "GET", "secret/data/missing", token=tok), "permission denied"
    )


@pytest.mark.parametrize("path", ["nomount/x", "auth/nosuch/login", "transit/keys/k"])
def test_unrouted_paths_do_not_reveal_mounts(pair, path):
    tok = pair.token(policies=["lim"])
    for method, body in (("GET", None), ("PUT", {"a": 1}), ("LIST", None)):
        assert_errors(pair.expect(403, method, path, body, token=tok), DENIED)
    # Root, which may use any path, is told there is no handler.
    got = pair.expect(404, "GET", path)
    assert_errors(got, f'no handler for route "{path}". route entry not found.')


def test_an_allowed_unrouted_path_is_not_found(pair):
    tok = pair.token(policies=["lim"])
    got = pair.expect(404, "GET", "granted/x", token=tok)
    assert_errors(got, 'no handler for route "granted/x". route entry not found.')
    for path in ("sys/nosuchthing", "auth/token/nosuch"):
        assert_errors(pair.expect(403, "GET", path, token=tok), DENIED)
        got = pair.expect(404, "GET", path)
        assert_errors(got, "1 error occurred:\n\t* unsupported path\n\n")


@pytest.mark.parametrize("path", ["sys/policies/acl", "sys/policies/password"])
def test_policy_lists_need_list(pair, path):
    reader = pair.token(policies=["ronly"])
    lister = pair.token(policies=["lonly"])
    for tok in (None, reader):  # root too
        assert_errors(pair.expect(405, "GET", path, token=tok), UNSUPPORTED_OP)
        assert_errors(pair.expect(405, "GET", path + "/", token=tok), UNSUPPORTED_OP)
    assert_errors(pair.expect(403, "LIST", path, token=reader), DENIED)
    assert_errors(pair.expect(403, "GET", path + "?list=true", token=reader), DENIED)
    assert_errors(pair.expect(403, "GET", path, token=lister), DENIED)
    got = pair.expect(200, "LIST", path, token=lister)
    assert all(b["data"]["keys"] for _, b, _ in got.values())
    pair.expect(200, "GET", path + "?list=true", token=lister)


def test_legacy_policy_list_answers_a_read(pair):
    reader = pair.token(policies=["ronly"])
    lister = pair.token(policies=["lonly"])
    got = pair.expect(200, "GET", "sys/policy", token=reader)
    assert all("ronly" in b["policies"] for _, b, _ in got.values())
    pair.expect(403, "LIST", "sys/policy", token=reader)
    pair.expect(200, "LIST", "sys/policy", token=lister)
    pair.expect(403, "GET", "sys/policy", token=lister)
