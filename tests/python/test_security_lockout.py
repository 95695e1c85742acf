"""Security probe, issue #23 item 3: login lockout. Wrong passwords (or AppRole secret ids)
lock the user (role id) after 5 failures, the right password is then refused with 403 until
the lockout runs out or an operator unlocks it: the same on strongroom and on OpenBao."""

import pytest

from security_pair import Pair


@pytest.fixture(scope="module")
def pair():
    p = Pair()
    yield p
    p.stop()


def accessor(pair, side, path):
    status, body, text = pair.call(side, "GET", "sys/auth")
    assert status == 200, text
    return body["data"][path]["accessor"]


def errors(got):
    return {side: (body or {}).get("errors") for side, (_, body, _) in got.items()}


def test_five_wrong_passwords_then_the_right_one_is_refused(pair):
    pair.setup("POST", "sys/auth/lock-up", {"type": "userpass"})
    pair.setup("POST", "auth/lock-up/users/bob", {"password": "right-pw"})
    for _ in range(5):
        got = pair.expect(400, "POST", "auth/lock-up/login/bob", {"password": "wrong"}, token="")
        assert set(map(tuple, errors(got).values())) == {("invalid username or password",)}
    got = pair.expect(403, "POST", "auth/lock-up/login/bob", {"password": "right-pw"}, token="")
    assert set(map(tuple, errors(got).values())) == {("permission denied",)}
    # Another spelling of the name is the same user.
    pair.expect(403, "POST", "auth/lock-up/login/BOB", {"password": "right-pw"}, token="")

    for side in pair.sides:
        acc = accessor(pair, side, "lock-up/")
        status, body, text = pair.call(side, "GET", f"sys/locked-users?mount_accessor={acc}")
        assert status == 200, text
        assert body["data"] == {
            "by_namespace": [
                {
                    "namespace_id": "root",
                    "namespace_path": "",
                    "counts": 1,
                    "mount_accessors": [
                        {"mount_accessor": acc, "counts": 1, "alias_identifiers": ["bob"]}
                    ],
                }
            ],
            "total": 1,
        }, side
        # Unlock (no sudo needed in OpenBao): 204, then the right password works.
        status, _, text = pair.call(side, "POST", f"sys/locked-users/{acc}/unlock/bob", {})
        assert status == 204, text
    pair.expect(200, "POST", "auth/lock-up/login/bob", {"password": "right-pw"}, token="")


def test_a_success_resets_the_count_and_unknown_users_never_lock(pair):
    pair.setup("POST", "sys/auth/lock-reset", {"type": "userpass"})
    pair.setup("POST", "auth/lock-reset/users/ann", {"password": "pw"})
    for _ in range(2):
        for _ in range(4):
            pair.expect(400, "POST", "auth/lock-reset/login/ann", {"password": "x"}, token="")
        pair.expect(200, "POST", "auth/lock-reset/login/ann", {"password": "pw"}, token="")
    for _ in range(7):
        pair.expect(400, "POST", "auth/lock-reset/login/ghost", {"password": "x"}, token="")


def test_approle_wrong_secret_ids_lock_the_role_id(pair):
    pair.setup("POST", "sys/auth/lock-ar", {"type": "approle"})
    pair.setup("POST", "auth/lock-ar/role/web", {"token_policies": "default"})
    creds = {}
    for side in pair.sides:
        _, body, _ = pair.call(side, "GET", "auth/lock-ar/role/web/role-id")
        role_id = body["data"]["role_id"]
        _, body, _ = pair.call(side, "POST", "auth/lock-ar/role/web/secret-id", {})
        creds[side] = (role_id, body["data"]["secret_id"])
    for _ in range(5):
        for side, (role_id, _) in creds.items():
            status, body, text = pair.call(
                side, "POST", "auth/lock-ar/login", {"role_id": role_id, "secret_id": "bad"}, ""
            )
            assert (status, body["errors"]) == (400, ["invalid role or secret ID"]), (side, text)
    for side, (role_id, secret) in creds.items():
        status, body, text = pair.call(
            side, "POST", "auth/lock-ar/login", {"role_id": role_id, "secret_id": secret}, ""
        )
        assert (status, body["errors"]) == (403, ["permission denied"]), (side, text)
        acc = accessor(pair, side, "lock-ar/")
        status, _, text = pair.call(side, "POST", f"sys/locked-users/{acc}/unlock/{role_id}", {})
        assert status == 204, text
        status, _, text = pair.call(
            side, "POST", "auth/lock-ar/login", {"role_id": role_id, "secret_id": secret}, ""
        )
        assert status == 200, (side, text)


def test_the_mount_tune_and_its_errors(pair):
    pair.setup("POST", "sys/auth/lock-tune", {"type": "userpass"})
    pair.setup("POST", "auth/lock-tune/users/cy", {"password": "pw"})
    pair.setup(
        "POST",
        "sys/auth/lock-tune/tune",
        {"user_lockout_config": {"lockout_threshold": "2", "lockout_duration": "10m"}},
    )
    got = pair.expect(200, "GET", "sys/auth/lock-tune/tune")
    for side, (_, body, _) in got.items():
        d = body["data"]
        assert (d["user_lockout_threshold"], d["user_lockout_duration"]) == (2, 600), side
        assert (d["user_lockout_counter_reset_duration"], d["user_lockout_disable"]) == (0, False)
    for bad in (
        {"lockout_threshold": "x"},
        {"lockout_threshold": "+3"},
        {"lockout_disable": "true"},
        {"lockout_duration": "soon"},
    ):
        got = pair.expect(400, "POST", "sys/auth/lock-tune/tune", {"user_lockout_config": bad})
        assert len({tuple(e) for e in errors(got).values()}) == 1, errors(got)
    three = {"user_lockout_config": {"lockout_threshold": "3"}}
    pair.expect(400, "POST", "sys/auth/token/tune", three)
    pair.expect(400, "POST", "sys/mounts/secret/tune", three)
    for _ in range(2):
        pair.expect(400, "POST", "auth/lock-tune/login/cy", {"password": "x"}, token="")
    pair.expect(403, "POST", "auth/lock-tune/login/cy", {"password": "pw"}, token="")
    # Disabling lockout on the mount lets the locked user in.
    off = {"user_lockout_config": {"lockout_disable": True}}
    pair.setup("POST", "sys/auth/lock-tune/tune", off)
    pair.expect(200, "POST", "auth/lock-tune/login/cy", {"password": "pw"}, token="")


def test_a_negative_lockout_duration_is_refused(pair):
    # Deliberately stricter than OpenBao, which stores "-5s" and then never locks anyone (a
    # silent way to switch lockout off): we answer 400 and keep the setting.
    pair.call("strongroom", "POST", "sys/auth/lock-neg", {"type": "userpass"})
    negative = {"user_lockout_config": {"lockout_duration": "-5s"}}
    status, body, text = pair.call("strongroom", "POST", "sys/auth/lock-neg/tune", negative)
    assert status == 400, text
    assert body["errors"] == ["cannot provide negative value '-5'"]


def test_locked_users_needs_no_sudo(pair):
    pair.setup(
        "PUT",
        "sys/policies/acl/lock-reader",
        {"policy": 'path "sys/locked-users" { capabilities = ["read"] }'},
    )
    tok = pair.token(policies=["lock-reader"])
    pair.expect(200, "GET", "sys/locked-users", token=tok)
    # Without a grant on the unlock path: refused.
    pair.expect(403, "POST", "sys/locked-users/x/unlock/y", {}, token=tok)
