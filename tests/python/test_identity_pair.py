"""Issue 20 item 2, the identity secrets engine, side by side with OpenBao (see
security_pair.py): `identity/` in sys/mounts, entities / aliases / groups / group aliases /
lookups / merge answering with the same status, the same keys and the same stable values and
error texts; userpass logins creating and reusing entities, identity policies on the token
(applied at request time); and a templated-policy ACL differential: a limited token tries
paths inside and outside its templated prefixes on both servers.

Ids differ between the servers, so requests that name one are sent per side."""

import pytest

from security_pair import Pair

DENIED = "1 error occurred:\n\t* permission denied\n\n"


@pytest.fixture(scope="module")
def pair():
    p = Pair()
    p.setup("POST", "sys/auth/userpass", {"type": "userpass"})
    yield p
    p.stop()


def data_of(got):
    return {side: (body or {}).get("data") for side, (_, body, _) in got.items()}


def same_status(got):
    statuses = {s: st for s, (st, _, _) in got.items()}
    assert len(set(statuses.values())) == 1, {s: (st, got[s][2][:300]) for s, st in statuses.items()}
    return statuses["strongroom"]


def same_errors(got, text=None):
    errs = {s: (body or {}).get("errors") for s, (_, body, _) in got.items()}
    assert len({repr(e) for e in errs.values()}) == 1, errs
    if text is not None:
        assert errs["strongroom"] == [text], errs


def same_keys(got):
    keys = {s: sorted(d) if isinstance(d, dict) else d for s, d in data_of(got).items()}
    assert len({repr(k) for k in keys.values()}) == 1, keys
    return keys["strongroom"]


def same_values(got, *fields):
    for f in fields:
        vals = {s: (d or {}).get(f) for s, d in data_of(got).items()}
        assert len({repr(v) for v in vals.values()}) == 1, (f, vals)


def per_side(pair, method, path_of, body_of=None):
    """A request whose path or body names per-side ids: {side: (status, json, text)}."""
    return {
        s: pair.call(s, method, path_of(s), body_of(s) if body_of else None) for s in pair.sides
    }


def accessor(pair):
    return {s: pair.call(s, "GET", "sys/auth")[1]["data"]["userpass/"]["accessor"] for s in pair.sides}


def test_identity_mount_is_listed_and_protected(pair):
    got = pair.expect(200, "GET", "sys/mounts")
    mounts = {s: body["data"]["identity/"] for s, (_, body, _) in got.items()}
    shapes = {s: sorted(m) for s, m in mounts.items()}
    assert len({repr(v) for v in shapes.values()}) == 1, shapes
    for m in mounts.values():
        assert m["type"] == "identity"
        assert m["description"] == "identity store"
        assert m["config"]["passthrough_request_headers"] == ["Authorization"]
    got = pair.expect(400, "DELETE", "sys/mounts/identity")
    same_errors(got, 'cannot unmount "identity/"')


def test_entity_crud(pair):
    got = pair.expect(
        200, "POST", "identity/entity", {"name": "alice", "metadata": {"team": "red"}, "policies": ["p1"]}
    )
    assert same_keys(got) == ["aliases", "id", "name"]
    same_values(got, "name", "aliases")
    ids = {s: d["id"] for s, d in data_of(got).items()}

    got = pair.expect(200, "GET", "identity/entity/name/alice")
    same_keys(got)
    same_values(got, "name", "metadata", "policies", "aliases", "disabled", "namespace_id",
                "merged_entity_ids", "direct_group_ids", "group_ids", "inherited_group_ids")
    got = pair.expect(200, "GET", "identity/entity/name/ALICE")
    same_values(got, "name")

    # An existing name is updated (204), other fields kept.
    pair.expect(204, "POST", "identity/entity", {"name": "alice", "metadata": {"team": "blue"}})
    got = per_side(pair, "GET", lambda s: f"identity/entity/id/{ids[s]}")
    assert same_status(got) == 200
    same_values(got, "metadata", "policies")
    assert data_of(got)["strongroom"]["metadata"] == {"team": "blue"}

    got = pair.expect(200, "POST", "identity/entity/name/bob", {"policies": "b,a,b"})
    same_keys(got)
    got = pair.expect(200, "GET", "identity/entity/name/bob")
    same_values(got, "policies")
    assert data_of(got)["strongroom"]["policies"] == ["a", "b"]
    pair.expect(204, "POST", "identity/entity/name/bob", {"policies": "c"})
    got = pair.expect(200, "GET", "identity/entity/name/bob")
    same_values(got, "policies")

    got = pair.expect(200, "POST", "identity/entity", {})
    for d in data_of(got).values():
        assert d["name"].startswith("entity_") and d["name"].endswith(".root"), d

    same_errors(pair.expect(400, "POST", "identity/entity/id/nope", {"name": "q"}), "entity not found from id")
    got = per_side(pair, "POST", lambda s: f"identity/entity/id/{ids[s]}", lambda s: {"name": "bob"})
    assert same_status(got) == 400
    same_errors(got, "entity name is already in use")
    pair.expect(404, "GET", "identity/entity/name/nobody")
    pair.expect(404, "GET", "identity/entity/id/nobody")

    got = pair.expect(200, "LIST", "identity/entity/id")
    same_keys(got)
    for s, d in data_of(got).items():
        assert d["key_info"][ids[s]] == {"name": "alice"}
    got = pair.expect(200, "LIST", "identity/entity/name")
    names = {s: sorted(n for n in d["keys"] if not n.startswith("entity_")) for s, d in data_of(got).items()}
    assert len({repr(v) for v in names.values()}) == 1, names

    pair.expect(204, "DELETE", "identity/entity/name/bob")
    pair.expect(404, "GET", "identity/entity/name/bob")
    pair.expect(204, "DELETE", "identity/entity/id/nope")


def test_aliases_groups_lookups_merge(pair):
    acc = accessor(pair)
    got = pair.expect(200, "POST", "identity/entity", {"name": "carol"})
    carol = {s: d["id"] for s, d in data_of(got).items()}

    got = per_side(pair, "POST", lambda s: "identity/entity-alias",
                   lambda s: {"name": "carl", "canonical_id": carol[s], "mount_accessor": "bad"})
    assert same_status(got) == 400
    same_errors(got, 'invalid mount accessor "bad"')
    got = per_side(pair, "POST", lambda s: "identity/entity-alias",
                   lambda s: {"name": "carl", "canonical_id": "nope", "mount_accessor": acc[s]})
    assert same_status(got) == 400
    same_errors(got, "invalid canonical ID")
    got = per_side(pair, "POST", lambda s: "identity/entity-alias",
                   lambda s: {"canonical_id": carol[s], "mount_accessor": acc[s]})
    assert same_status(got) == 400
    same_errors(got, "'id' or 'mount_accessor' and 'name' must be provided")
    got = per_side(pair, "POST", lambda s: "identity/entity-alias",
                   lambda s: {"name": "carl", "canonical_id": carol[s], "mount_accessor": acc[s],
                              "custom_metadata": {"x": "y"}})
    assert same_status(got) == 200
    assert same_keys(got) == ["canonical_id", "id"]
    alias = {s: d["id"] for s, d in data_of(got).items()}
    got = per_side(pair, "GET", lambda s: f"identity/entity-alias/id/{alias[s]}")
    assert same_status(got) == 200
    same_keys(got)
    same_values(got, "name", "mount_path", "mount_type", "custom_metadata", "metadata", "local",
                "namespace_id", "merged_from_canonical_ids")
    got = per_side(pair, "POST", lambda s: "identity/entity-alias",
                   lambda s: {"name": "other", "canonical_id": carol[s], "mount_accessor": acc[s]})
    assert same_status(got) == 400
    same_errors(got, "Alias already exists for requested entity and mount accessor")
    got = pair.expect(400, "POST", "identity/entity-alias/id/nope", {"custom_metadata": {}})
    same_errors(got, "invalid alias ID provided")
    pair.expect(404, "GET", "identity/entity-alias/id/nope")
    got = pair.expect(200, "LIST", "identity/entity-alias/id")
    for s, d in data_of(got).items():
        info = d["key_info"][alias[s]]
        assert sorted(info) == ["canonical_id", "custom_metadata", "local", "metadata",
                                "mount_accessor", "mount_path", "mount_type", "name"], info

    got = per_side(pair, "POST", lambda s: "identity/group",
                   lambda s: {"name": "devs", "policies": ["gp"], "member_entity_ids": [carol[s]],
                              "metadata": {"m": "1"}})
    assert same_status(got) == 200
    assert same_keys(got) == ["id", "name"]
    devs = {s: d["id"] for s, d in data_of(got).items()}
    got = per_side(pair, "POST", lambda s: "identity/group",
                   lambda s: {"name": "outer", "member_group_ids": [devs[s]]})
    assert same_status(got) == 200
    got = pair.expect(200, "GET", "identity/group/name/devs")
    same_keys(got)
    same_values(got, "alias", "metadata", "modify_index", "name", "namespace_id", "policies", "type",
                "member_group_ids")
    got = pair.expect(200, "GET", "identity/group/name/outer")
    same_values(got, "member_entity_ids", "parent_group_ids", "policies", "metadata", "alias")
    got = per_side(pair, "GET", lambda s: f"identity/entity/id/{carol[s]}")
    for s, d in data_of(got).items():
        assert d["direct_group_ids"] == [devs[s]]
        assert len(d["inherited_group_ids"]) == 1 and len(d["group_ids"]) == 2
    got = per_side(pair, "POST", lambda s: "identity/group",
                   lambda s: {"name": "x", "type": "external", "member_entity_ids": [carol[s]]})
    assert same_status(got) == 400
    same_errors(got, "member entities can't be set manually for external groups")
    same_errors(pair.expect(400, "POST", "identity/group", {"name": "x", "type": "weird"}),
                'invalid group type "weird"')
    same_errors(pair.expect(500, "POST", "identity/group", {"name": "x", "member_entity_ids": ["nope"]}),
                '1 error occurred:\n\t* invalid entity ID "nope"\n\n')
    same_errors(pair.expect(500, "POST", "identity/group", {"name": "x", "member_group_ids": ["nope"]}),
                '1 error occurred:\n\t* invalid member group ID "nope"\n\n')
    pair.expect(204, "POST", "identity/group/name/devs", {"policies": ["gp2", "gp", "gp2"]})
    same_values(pair.expect(200, "GET", "identity/group/name/devs"), "modify_index", "policies")
    got = pair.expect(200, "LIST", "identity/group/id")
    for s, d in data_of(got).items():
        assert d["key_info"][devs[s]] == {"name": "devs", "num_member_entities": 1, "num_parent_groups": 1}
    got = pair.expect(200, "LIST", "identity/group/name")
    names = {s: sorted(d["keys"]) for s, d in data_of(got).items()}
    assert len({repr(v) for v in names.values()}) == 1, names

    got = per_side(pair, "POST", lambda s: "identity/group-alias",
                   lambda s: {"name": "gh-team", "mount_accessor": acc[s]})
    assert same_status(got) == 200
    assert same_keys(got) == ["canonical_id", "id"]
    ext = {s: d["canonical_id"] for s, d in data_of(got).items()}
    got = per_side(pair, "GET", lambda s: f"identity/group/id/{ext[s]}")
    same_keys(got)
    same_values(got, "type", "policies", "member_entity_ids")
    for d in data_of(got).values():
        assert d["alias"]["name"] == "gh-team" and d["alias"]["mount_path"] == "auth/userpass/"
    alias_shapes = {s: sorted(d["alias"]) for s, d in data_of(got).items()}
    assert len({repr(v) for v in alias_shapes.values()}) == 1, alias_shapes

    got = pair.expect(200, "POST", "identity/lookup/entity", {"name": "carol"})
    same_keys(got)
    for s, d in data_of(got).items():
        assert d["id"] == carol[s]
    got = per_side(pair, "POST", lambda s: "identity/lookup/entity",
                   lambda s: {"alias_name": "carl", "alias_mount_accessor": acc[s]})
    assert same_status(got) == 200
    pair.expect(204, "POST", "identity/lookup/entity", {"name": "nobody"})
    same_errors(pair.expect(400, "POST", "identity/lookup/entity", {}), "query parameter not supplied")
    got = per_side(pair, "POST", lambda s: "identity/lookup/entity", lambda s: {"name": "carol", "id": carol[s]})
    assert same_status(got) == 400
    same_errors(got, "query parameter conflict; please supply distinct set of query parameters")
    got = pair.expect(200, "POST", "identity/lookup/group", {"name": "devs"})
    same_keys(got)
    got = per_side(pair, "POST", lambda s: "identity/lookup/group",
                   lambda s: {"alias_name": "gh-team", "alias_mount_accessor": acc[s]})
    assert same_status(got) == 200
    same_keys(got)

    got = pair.expect(200, "POST", "identity/entity", {"name": "dave"})
    dave = {s: d["id"] for s, d in data_of(got).items()}
    got = per_side(pair, "POST", lambda s: "identity/entity/merge",
                   lambda s: {"from_entity_ids": ["nope"], "to_entity_id": dave[s]})
    assert same_status(got) == 400
    same_errors(got, "entity id to merge from is invalid")
    got = per_side(pair, "POST", lambda s: "identity/entity/merge",
                   lambda s: {"from_entity_ids": [carol[s]], "to_entity_id": "nope"})
    assert same_status(got) == 400
    same_errors(got, "entity id to merge to is invalid")
    got = per_side(pair, "POST", lambda s: "identity/entity/merge", lambda s: {"to_entity_id": dave[s]})
    assert same_status(got) == 400
    same_errors(got, "missing entity ids to merge from")
    got = per_side(pair, "POST", lambda s: "identity/entity/merge",
                   lambda s: {"from_entity_ids": [carol[s]], "to_entity_id": dave[s]})
    assert same_status(got) == 204
    assert same_status(per_side(pair, "GET", lambda s: f"identity/entity/id/{carol[s]}")) == 404
    got = per_side(pair, "GET", lambda s: f"identity/entity/id/{dave[s]}")
    for s, d in data_of(got).items():
        assert d["merged_entity_ids"] == [carol[s]]
        assert [a["name"] for a in d["aliases"]] == ["carl"]
        assert d["aliases"][0]["merged_from_canonical_ids"] == [carol[s]]
        assert d["direct_group_ids"] == [devs[s]]


def login(pair, user):
    out = {}
    for s in pair.sides:
        status, body, text = pair.call(s, "POST", f"auth/userpass/login/{user}", {"password": "pw"}, token="")
        assert status == 200, (s, text)
        out[s] = body["auth"]
    return out


def test_logins_entities_and_identity_policies(pair):
    acc = accessor(pair)
    pair.setup("POST", "auth/userpass/users/erin", {"password": "pw", "token_policies": "tp"})
    pair.setup("PUT", "sys/policies/acl/ep", {"policy": 'path "secret/data/ent/*" { capabilities = ["read"] }'})
    pair.setup("PUT", "secret/data/ent/x", {"data": {"v": 1}})
    first = login(pair, "erin")
    for a in first.values():
        assert a["entity_id"] and "identity_policies" not in a and a["policies"] == ["default", "tp"]
    got = per_side(pair, "POST", lambda s: "identity/lookup/entity",
                   lambda s: {"alias_name": "erin", "alias_mount_accessor": acc[s]})
    for s, d in data_of(got).items():
        assert d["id"] == first[s]["entity_id"]
        assert d["name"].startswith("entity_") and d["name"].endswith(".root")
        assert d["aliases"][0]["metadata"] is None and d["aliases"][0]["custom_metadata"] is None
    tok = {s: a["client_token"] for s, a in first.items()}
    pair.expect(403, "GET", "secret/data/ent/x", token=tok)

    # Entity and group policies apply to the token already issued.
    got = per_side(pair, "POST", lambda s: f"identity/entity/id/{first[s]['entity_id']}",
                   lambda s: {"policies": ["ep"]})
    assert same_status(got) == 204
    pair.expect(200, "GET", "secret/data/ent/x", token=tok)
    got = per_side(pair, "POST", lambda s: "identity/group",
                   lambda s: {"name": "erin-g", "policies": ["gp"], "member_entity_ids": [first[s]["entity_id"]]})
    assert same_status(got) == 200
    got = pair.expect(200, "GET", "auth/token/lookup-self", token=tok)
    same_keys(got)
    same_values(got, "identity_policies", "external_namespace_policies", "policies")
    assert data_of(got)["strongroom"]["identity_policies"] == ["ep", "gp"]

    again = login(pair, "erin")
    for s, a in again.items():
        assert a["entity_id"] == first[s]["entity_id"]
    shapes = {s: (sorted(a), a["policies"], a["token_policies"], a["identity_policies"]) for s, a in again.items()}
    assert len({repr(v) for v in shapes.values()}) == 1, shapes

    got = per_side(pair, "POST", lambda s: f"identity/entity/id/{first[s]['entity_id']}",
                   lambda s: {"policies": []})
    assert same_status(got) == 204
    pair.expect(403, "GET", "secret/data/ent/x", token=tok)

    # A disabled entity: its tokens are refused as invalid ones, and it cannot log in.
    got = per_side(pair, "POST", lambda s: f"identity/entity/id/{first[s]['entity_id']}",
                   lambda s: {"disabled": True})
    assert same_status(got) == 204
    same_errors(pair.expect(403, "GET", "auth/token/lookup-self", token=tok), "permission denied")
    got = pair.expect(403, "POST", "auth/userpass/login/erin", {"password": "pw"}, token="")
    same_errors(got, "permission denied")
    got = per_side(pair, "POST", lambda s: f"identity/entity/id/{first[s]['entity_id']}",
                   lambda s: {"disabled": False})
    assert same_status(got) == 204
    pair.expect(200, "GET", "auth/token/lookup-self", token=tok)
    # A deleted entity: the same, and the next login makes a new entity.
    got = per_side(pair, "DELETE", lambda s: f"identity/entity/id/{first[s]['entity_id']}")
    assert same_status(got) == 204
    same_errors(pair.expect(403, "GET", "auth/token/lookup-self", token=tok), "permission denied")
    fresh = login(pair, "erin")
    for s, a in fresh.items():
        assert a["entity_id"] and a["entity_id"] != first[s]["entity_id"]


TEMPLATED = """
path "secret/data/name/{{identity.entity.name}}/*" { capabilities = ["read"] }
path "secret/data/team/{{identity.entity.metadata.team}}/*" { capabilities = ["read"] }
path "secret/data/alias/{{identity.entity.aliases.ACC.name}}/*" { capabilities = ["read"] }
path "secret/data/gid/{{identity.groups.names.tgroup.id}}/*" { capabilities = ["read"] }
path "secret/data/gname/{{identity.groups.ids.GID.name}}/*" { capabilities = ["read"] }
path "secret/data/missing/{{identity.entity.metadata.nope}}/*" { capabilities = ["read"] }
path "secret/data/nogroup/{{identity.groups.names.nogroup.id}}/*" { capabilities = ["read"] }
"""


def test_templated_policy_acl_differential(pair):
    acc = accessor(pair)
    pair.setup("POST", "auth/userpass/users/tina", {"password": "pw", "token_policies": "tmpl"})
    first = login(pair, "tina")
    eid = {s: a["entity_id"] for s, a in first.items()}
    got = per_side(pair, "POST", lambda s: f"identity/entity/id/{eid[s]}",
                   lambda s: {"name": "tina-e", "metadata": {"team": "red"}})
    assert same_status(got) == 204
    got = per_side(pair, "POST", lambda s: "identity/group",
                   lambda s: {"name": "tgroup", "member_entity_ids": [eid[s]]})
    gid = {s: d["id"] for s, d in data_of(got).items()}
    for s in pair.sides:
        policy = TEMPLATED.replace("ACC", acc[s]).replace("GID", gid[s])
        status, _, text = pair.call(s, "PUT", "sys/policies/acl/tmpl", {"policy": policy})
        assert status == 204, text
    inside = ["name/tina-e/x", "team/red/x", "alias/tina/x", "gname/tgroup/x"]
    outside = ["name/tina/x", "team/blue/x", "alias/other/x", "gname/other/x", "gid/other/x",
               "missing/x", "nogroup/x"]
    for p in inside + outside:
        pair.setup("PUT", f"secret/data/{p}", {"data": {"v": 1}})
    tok = {s: a["client_token"] for s, a in first.items()}
    for p in inside:
        pair.expect(200, "GET", f"secret/data/{p}", token=tok)
    for p in outside:
        same_errors(pair.expect(403, "GET", f"secret/data/{p}", token=tok), DENIED)
    # The group id prefix, per side.
    got = per_side(pair, "GET", lambda s: f"secret/data/gid/{gid[s]}/x")
    assert same_status(got) == 404
    for s in pair.sides:
        pair.call(s, "PUT", f"secret/data/gid/{gid[s]}/x", {"data": {"v": 1}})
    got = {s: pair.call(s, "GET", f"secret/data/gid/{gid[s]}/x", token=tok[s]) for s in pair.sides}
    assert same_status(got) == 200
    # Renaming the entity moves the prefix for the same token.
    got = per_side(pair, "POST", lambda s: f"identity/entity/id/{eid[s]}", lambda s: {"name": "tina-f"})
    assert same_status(got) == 204
    pair.setup("PUT", "secret/data/name/tina-f/x", {"data": {"v": 1}})
    pair.expect(200, "GET", "secret/data/name/tina-f/x", token=tok)
    pair.expect(403, "GET", "secret/data/name/tina-e/x", token=tok)
    # A `/` or a wildcard substituted into a path fails every request of the token (400
    # `Forbidden`), not just the rule; a clean name restores it.
    for bad in ("tina/x", "tina*", "tina+"):
        got = per_side(pair, "POST", lambda s: f"identity/entity/id/{eid[s]}", lambda s: {"name": bad})
        assert same_status(got) == 204
        same_errors(pair.expect(400, "GET", "secret/data/team/red/x", token=tok), "Forbidden")
    got = per_side(pair, "POST", lambda s: f"identity/entity/id/{eid[s]}", lambda s: {"name": "tina-f"})
    assert same_status(got) == 204
    pair.expect(200, "GET", "secret/data/team/red/x", token=tok)
    # The default policy's own-entity rules.
    got = {s: pair.call(s, "GET", f"identity/entity/id/{eid[s]}", token=tok[s]) for s in pair.sides}
    assert same_status(got) == 200
    pair.expect(200, "GET", "identity/entity/name/tina-f", token=tok)
    pair.expect(403, "GET", "identity/entity/name/someone", token=tok)
    # capabilities-self renders the same ACL.
    got = pair.expect(200, "POST", "sys/capabilities-self",
                      {"paths": ["secret/data/team/red/x", "secret/data/team/blue/x"]}, token=tok)
    same_values(got, "secret/data/team/red/x", "secret/data/team/blue/x")
    # A token without an entity and the same policy gets none of the templated rules.
    plain = pair.token(policies=["tmpl"])
    pair.expect(403, "GET", "secret/data/team/red/x", token=plain)
