//! The `identity/` API: entities, entity aliases, groups, group aliases, lookups and merge,
//! with OpenBao's paths, fields, answers and error texts.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use super::{Alias, Change, Entity, Group, State, new_id, unused_entity_name, unused_group_name};
use crate::error::{Error, ErrorCode, Result};
use crate::request::{Data, Operation, Request, Response};
use crate::strongroom::Strongroom;
use crate::util::names::NameRule;
use crate::util::params;

/// What the API shows of the auth mount an alias belongs to.
#[derive(Clone)]
struct MountInfo {
    path: String,
    kind: String,
}

type Mounts = HashMap<String, MountInfo>;

async fn auth_mounts(sr: &Strongroom) -> Result<Mounts> {
    let table = crate::router::load_auth_table(sr.inner.storage.as_ref()).await?;
    Ok(table
        .into_iter()
        .map(|e| {
            (
                e.accessor.clone(),
                MountInfo {
                    path: format!("auth/{}", e.path),
                    kind: e.kind,
                },
            )
        })
        .collect())
}

/// Serve `rel` (the path after `identity/`).
/// Entity and group names in paths are matched case-insensitively, so the ACL judges them
/// lowercased (see [`crate::util::names`]). A record created through `.../name/:name` is
/// therefore named in lowercase; one created with `name` in the body keeps its case.
pub(crate) const NAME_RULES: &[NameRule] = &[
    NameRule::any_lower("entity/name/"),
    NameRule::any_lower("group/name/"),
];

pub(crate) async fn handle(sr: &Strongroom, req: &Request, rel: &str) -> Result<Option<Response>> {
    use Operation::{Create, Delete, List, Read, Update};
    let write = matches!(req.operation, Create | Update);
    let segs: Vec<&str> = rel.trim_end_matches('/').split('/').collect();
    match (segs.as_slice(), req.operation) {
        (["entity"], _) if write => entity_write(sr, req, Target::Body).await,
        (["entity", "id"], List) => entity_list(sr, true),
        (["entity", "name"], List) => entity_list(sr, false),
        (["entity", "merge"], _) if write => entity_merge(sr, req).await,
        (["entity", by @ ("id" | "name"), key], op) => {
            let target = if *by == "id" {
                Target::Id(key)
            } else {
                Target::Name(key)
            };
            match op {
                Read => entity_read(sr, &target).await,
                Delete => entity_delete(sr, &target).await,
                _ if write => entity_write(sr, req, target).await,
                _ => Err(Error::unsupported_operation()),
            }
        }
        (["entity-alias"], _) if write => alias_write(sr, req, None).await,
        (["entity-alias", "id"], List) => alias_list(sr).await,
        (["entity-alias", "id", id], op) => match op {
            Read => alias_read(sr, id).await,
            Delete => alias_delete(sr, id).await,
            _ if write => alias_write(sr, req, Some(id)).await,
            _ => Err(Error::unsupported_operation()),
        },
        (["group"], _) if write => group_write(sr, req, Target::Body).await,
        (["group", "id"], List) => group_list(sr, true),
        (["group", "name"], List) => group_list(sr, false),
        (["group", by @ ("id" | "name"), key], op) => {
            let target = if *by == "id" {
                Target::Id(key)
            } else {
                Target::Name(key)
            };
            match op {
                Read => group_read(sr, &target).await,
                Delete => group_delete(sr, &target).await,
                _ if write => group_write(sr, req, target).await,
                _ => Err(Error::unsupported_operation()),
            }
        }
        (["group-alias"], _) if write => group_alias_write(sr, req, None).await,
        (["group-alias", "id"], List) => group_alias_list(sr).await,
        (["group-alias", "id", id], op) => match op {
            Read => group_alias_read(sr, id).await,
            Delete => group_alias_delete(sr, id).await,
            _ if write => group_alias_write(sr, req, Some(id)).await,
            _ => Err(Error::unsupported_operation()),
        },
        (["lookup", "entity"], _) if write => lookup_entity(sr, req).await,
        (["lookup", "group"], _) if write => lookup_group(sr, req).await,
        _ => Err(Error::backend_unsupported_path()),
    }
}

/// Which record a request names.
enum Target<'a> {
    /// Named by the body (`id`, else `name`).
    Body,
    Id(&'a str),
    Name(&'a str),
}

fn now(sr: &Strongroom) -> String {
    crate::clock::rfc3339(sr.inner.clock.now())
}

fn respond(v: Value) -> Result<Option<Response>> {
    Ok(Some(Response::with_data(crate::data(v))))
}

fn null_if_empty<T: serde::Serialize>(v: &[T]) -> Value {
    if v.is_empty() { Value::Null } else { json!(v) }
}

fn map_or_null(m: &BTreeMap<String, String>) -> Value {
    if m.is_empty() { Value::Null } else { json!(m) }
}

/// OpenBao's `TypeKVPairs`: an object, or a list of `key=value` strings.
fn kv_pairs(d: &Data, field: &str) -> Result<Option<BTreeMap<String, String>>> {
    match d.get(field) {
        Some(Value::Array(items)) => {
            let mut m = BTreeMap::new();
            for item in items {
                let s = item.as_str().unwrap_or_default();
                let Some((k, v)) = s.split_once('=') else {
                    return Err(Error::invalid_input(format!(
                        "Field validation failed: error converting input for field \"{field}\": invalid key value pair {}",
                        crate::policy::hcl::strconv::quote(s)
                    )));
                };
                m.insert(k.to_string(), v.to_string());
            }
            Ok(Some(m))
        }
        Some(Value::String(s)) if s.is_empty() => Ok(Some(BTreeMap::new())),
        _ => params::string_map(d, field),
    }
}

/// Policies as OpenBao stores them on entities and groups: sorted, without duplicates.
fn policy_list(d: &Data) -> Result<Option<Vec<String>>> {
    Ok(params::string_list(d, "policies")?.map(|mut v| {
        v.sort();
        v.dedup();
        v
    }))
}

fn alias_json(a: &Alias, mounts: &Mounts, entity_alias: bool) -> Value {
    let m = mounts.get(&a.mount_accessor);
    let mut v = json!({
        "canonical_id": a.canonical_id,
        "creation_time": a.creation_time,
        "id": a.id,
        "last_update_time": a.last_update_time,
        "merged_from_canonical_ids": null_if_empty(&a.merged_from_canonical_ids),
        "metadata": map_or_null(&a.metadata),
        "mount_accessor": a.mount_accessor,
        "mount_path": m.map(|m| m.path.as_str()).unwrap_or(""),
        "mount_type": m.map(|m| m.kind.as_str()).unwrap_or(""),
        "name": a.name,
    });
    if let (true, Some(o)) = (entity_alias, v.as_object_mut()) {
        o.insert("custom_metadata".into(), json!(a.custom_metadata));
        o.insert("local".into(), json!(false));
    }
    v
}

/// An alias as its own read answers it (entity or group alias).
fn alias_detail(a: &Alias, mounts: &Mounts, entity_alias: bool) -> Value {
    let mut v = alias_json(a, mounts, entity_alias);
    if let Some(o) = v.as_object_mut() {
        o.insert("namespace_id".into(), json!("root"));
    }
    v
}

/// A LIST of aliases (entity or group aliases): ids in order with their key info, or `None`
/// (404) when there are none.
fn alias_listing(mut all: Vec<&Alias>, mounts: &Mounts) -> Option<Value> {
    if all.is_empty() {
        return None;
    }
    all.sort_by(|a, b| a.id.cmp(&b.id));
    let info: serde_json::Map<String, Value> = all
        .iter()
        .map(|a| (a.id.clone(), alias_key_info(a, mounts)))
        .collect();
    let keys: Vec<&str> = all.iter().map(|a| a.id.as_str()).collect();
    Some(json!({"keys": keys, "key_info": info}))
}

fn alias_key_info(a: &Alias, mounts: &Mounts) -> Value {
    let m = mounts.get(&a.mount_accessor);
    json!({
        "canonical_id": a.canonical_id,
        "custom_metadata": a.custom_metadata,
        "local": false,
        "metadata": map_or_null(&a.metadata),
        "mount_accessor": a.mount_accessor,
        "mount_path": m.map(|m| m.path.as_str()).unwrap_or(""),
        "mount_type": m.map(|m| m.kind.as_str()).unwrap_or(""),
        "name": a.name,
    })
}

fn entity_json(s: &State, e: &Entity, mounts: &Mounts) -> Value {
    let direct = s.direct_groups(&e.id);
    let inherited = s.inherited_groups(&direct);
    let direct_ids: Vec<&str> = direct.iter().map(|g| g.id.as_str()).collect();
    let inherited_ids: Vec<&str> = inherited.iter().map(|g| g.id.as_str()).collect();
    let all: Vec<&str> = direct_ids
        .iter()
        .chain(inherited_ids.iter())
        .copied()
        .collect();
    json!({
        "aliases": e.aliases.iter().map(|a| alias_json(a, mounts, true)).collect::<Vec<_>>(),
        "creation_time": e.creation_time,
        "direct_group_ids": direct_ids,
        "disabled": e.disabled,
        "group_ids": all,
        "id": e.id,
        "inherited_group_ids": inherited_ids,
        "last_update_time": e.last_update_time,
        "merged_entity_ids": null_if_empty(&e.merged_entity_ids),
        "metadata": map_or_null(&e.metadata),
        "name": e.name,
        "namespace_id": "root",
        "policies": e.policies,
    })
}

fn group_json(s: &State, g: &Group, mounts: &Mounts) -> Value {
    let parents: Vec<&str> = s
        .parent_groups(&g.id)
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    json!({
        "alias": g.alias.as_ref().map_or(json!({}), |a| alias_json(a, mounts, false)),
        "creation_time": g.creation_time,
        "id": g.id,
        "last_update_time": g.last_update_time,
        "member_entity_ids": null_if_empty(&g.member_entity_ids),
        "member_group_ids": null_if_empty(&g.member_group_ids),
        "metadata": map_or_null(&g.metadata),
        "modify_index": g.modify_index,
        "name": g.name,
        "namespace_id": "root",
        "parent_group_ids": null_if_empty(&parents),
        "policies": null_if_empty(&g.policies),
        "type": g.kind,
    })
}

fn find_entity<'s>(s: &'s State, t: &Target<'_>) -> Option<&'s std::sync::Arc<Entity>> {
    match t {
        Target::Id(id) => s.entity(id),
        Target::Name(n) => s.entity_by_name(n),
        Target::Body => None,
    }
}

fn find_group<'s>(s: &'s State, t: &Target<'_>) -> Option<&'s std::sync::Arc<Group>> {
    match t {
        Target::Id(id) => s.group(id),
        Target::Name(n) => s.group_by_name(n),
        Target::Body => None,
    }
}

// ---- entities ----

async fn entity_read(sr: &Strongroom, t: &Target<'_>) -> Result<Option<Response>> {
    let mounts = auth_mounts(sr).await?;
    let v = sr
        .inner
        .identity
        .read(|s| find_entity(s, t).map(|e| entity_json(s, e, &mounts)))?;
    v.map_or(Ok(None), respond)
}

async fn entity_write(sr: &Strongroom, req: &Request, t: Target<'_>) -> Result<Option<Response>> {
    let d = &req.data;
    let body_id = params::string(d, "id")?.filter(|s| !s.is_empty());
    let mut name = params::string(d, "name")?.filter(|s| !s.is_empty());
    let metadata = kv_pairs(d, "metadata")?;
    let policies = policy_list(d)?;
    let disabled = params::bool(d, "disabled")?;
    if let Target::Name(n) = t {
        name = Some(n.to_string());
    }
    let now = now(sr);
    let storage = sr.inner.storage.clone();
    sr.inner
        .identity
        .write(storage.as_ref(), |s| {
            let by_id = match (&t, &body_id) {
                (Target::Id(id), _) => Some(*id),
                (Target::Body, Some(id)) => Some(id.as_str()),
                _ => None,
            };
            let existing = match (&t, by_id) {
                (_, Some(id)) => Some(
                    s.entity(id)
                        .ok_or_else(|| Error::invalid_input("entity not found from id"))?,
                ),
                (Target::Name(n), _) => s.entity_by_name(n),
                (_, None) => name.as_deref().and_then(|n| s.entity_by_name(n)),
            };
            let mut e = match existing {
                Some(e) => Entity::clone(e),
                None => Entity {
                    id: new_id(),
                    creation_time: now.clone(),
                    ..Entity::default()
                },
            };
            let created = existing.is_none();
            if let Some(n) = &name {
                if let Some(other) = s.entity_by_name(n) {
                    if other.id != e.id {
                        return Err(Error::invalid_input("entity name is already in use"));
                    }
                }
                e.name = n.clone();
            } else if created {
                e.name = unused_entity_name(s);
            }
            if let Some(m) = metadata {
                e.metadata = m;
            }
            if let Some(p) = policies {
                e.policies = p;
            }
            if let Some(b) = disabled {
                e.disabled = b;
            }
            e.last_update_time = now.clone();
            let answer = created.then(|| json!({"id": e.id, "name": e.name, "aliases": null}));
            Ok((
                Change {
                    put_entities: vec![e],
                    ..Change::default()
                },
                answer,
            ))
        })
        .await?
        .map_or(Ok(None), respond)
}

async fn entity_delete(sr: &Strongroom, t: &Target<'_>) -> Result<Option<Response>> {
    let storage = sr.inner.storage.clone();
    let now = now(sr);
    sr.inner
        .identity
        .write(storage.as_ref(), |s| {
            let Some(e) = find_entity(s, t) else {
                return Ok((Change::default(), ()));
            };
            // Its group memberships go with it.
            let put_groups = s
                .direct_groups(&e.id)
                .into_iter()
                .map(|g| {
                    let mut g = Group::clone(g);
                    g.member_entity_ids.retain(|m| m != &e.id);
                    g.modify_index += 1;
                    g.last_update_time = now.clone();
                    g
                })
                .collect();
            Ok((
                Change {
                    delete_entities: vec![e.id.clone()],
                    put_groups,
                    ..Change::default()
                },
                (),
            ))
        })
        .await?;
    Ok(None)
}

fn entity_list(sr: &Strongroom, by_id: bool) -> Result<Option<Response>> {
    let v = sr.inner.identity.read(|s| {
        let mut all: Vec<&std::sync::Arc<Entity>> = s.entities.values().collect();
        if all.is_empty() {
            return None;
        }
        if by_id {
            all.sort_by(|a, b| a.id.cmp(&b.id));
            let info: serde_json::Map<String, Value> = all
                .iter()
                .map(|e| (e.id.clone(), json!({"name": e.name})))
                .collect();
            let keys: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
            Some(json!({"keys": keys, "key_info": info}))
        } else {
            let mut keys: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
            keys.sort_unstable();
            Some(json!({ "keys": keys }))
        }
    })?;
    v.map_or(Ok(None), respond)
}

async fn entity_merge(sr: &Strongroom, req: &Request) -> Result<Option<Response>> {
    let d = &req.data;
    let from = params::string_list(d, "from_entity_ids")?.unwrap_or_default();
    let to = params::string(d, "to_entity_id")?.unwrap_or_default();
    let keep = params::string_list(d, "conflicting_alias_ids_to_keep")?.unwrap_or_default();
    if to.is_empty() {
        return Err(Error::invalid_input("missing entity id to merge to"));
    }
    if from.is_empty() {
        return Err(Error::invalid_input("missing entity ids to merge from"));
    }
    let now = now(sr);
    let storage = sr.inner.storage.clone();
    sr.inner
        .identity
        .write(storage.as_ref(), |s| {
            let mut target = Entity::clone(
                s.entity(&to)
                    .ok_or_else(|| Error::invalid_input("entity id to merge to is invalid"))?,
            );
            let mut change = Change::default();
            let mut groups: HashMap<String, Group> = HashMap::new();
            for from_id in &from {
                if from_id == &to {
                    continue;
                }
                let source = s
                    .entity(from_id)
                    .ok_or_else(|| Error::invalid_input("entity id to merge from is invalid"))?;
                for a in &source.aliases {
                    if let Some(mine) = target
                        .aliases
                        .iter()
                        .position(|t| t.mount_accessor == a.mount_accessor)
                    {
                        let mine_id = target.aliases.get(mine).map(|t| t.id.clone());
                        match (keep.contains(&a.id), mine_id.is_some_and(|m| keep.contains(&m))) {
                            (true, _) => {
                                target.aliases.remove(mine);
                            }
                            (false, true) => continue,
                            (false, false) => {
                                return Err(Error::invalid_input(format!(
                                    "conflicting mount accessors in following alias IDs and neither were present in conflicting_alias_ids_to_keep: {}, {}",
                                    a.id,
                                    target.aliases.get(mine).map_or("", |t| t.id.as_str())
                                )));
                            }
                        }
                    }
                    let mut moved = a.clone();
                    moved.canonical_id = target.id.clone();
                    moved.merged_from_canonical_ids.push(source.id.clone());
                    moved.last_update_time = now.clone();
                    target.aliases.push(moved);
                }
                target.merged_entity_ids.push(source.id.clone());
                for g in s.direct_groups(&source.id) {
                    let g = groups.entry(g.id.clone()).or_insert_with(|| Group::clone(g));
                    g.member_entity_ids.retain(|m| m != &source.id);
                    if !g.member_entity_ids.contains(&target.id) {
                        g.member_entity_ids.push(target.id.clone());
                    }
                    g.last_update_time = now.clone();
                }
                change.delete_entities.push(source.id.clone());
            }
            target.last_update_time = now.clone();
            for g in groups.into_values() {
                let mut g = g;
                g.modify_index += 1;
                change.put_groups.push(g);
            }
            change.put_entities.push(target);
            Ok((change, ()))
        })
        .await?;
    Ok(None)
}

// ---- entity aliases ----

async fn alias_read(sr: &Strongroom, id: &str) -> Result<Option<Response>> {
    let mounts = auth_mounts(sr).await?;
    let v = sr
        .inner
        .identity
        .read(|s| s.alias(id).map(|(_, a)| alias_detail(a, &mounts, true)))?;
    v.map_or(Ok(None), respond)
}

async fn alias_list(sr: &Strongroom) -> Result<Option<Response>> {
    let mounts = auth_mounts(sr).await?;
    let v = sr.inner.identity.read(|s| {
        alias_listing(
            s.entities.values().flat_map(|e| e.aliases.iter()).collect(),
            &mounts,
        )
    })?;
    v.map_or(Ok(None), respond)
}

async fn alias_write(sr: &Strongroom, req: &Request, id: Option<&str>) -> Result<Option<Response>> {
    let d = &req.data;
    let id = match id {
        Some(i) => Some(i.to_string()),
        None => params::string(d, "id")?.filter(|s| !s.is_empty()),
    };
    let name = params::string(d, "name")?.filter(|s| !s.is_empty());
    let accessor = params::string(d, "mount_accessor")?.filter(|s| !s.is_empty());
    let canonical = params::string(d, "canonical_id")?.filter(|s| !s.is_empty());
    let custom = kv_pairs(d, "custom_metadata")?;
    let mounts = auth_mounts(sr).await?;
    if let Some(a) = &accessor {
        if !mounts.contains_key(a) {
            return Err(Error::invalid_input(format!(
                "invalid mount accessor {}",
                crate::policy::hcl::strconv::quote(a)
            )));
        }
    }
    let now = now(sr);
    let storage = sr.inner.storage.clone();
    let out = sr
        .inner
        .identity
        .write(storage.as_ref(), |s| {
            // The alias being changed: by id, else by (mount accessor, name).
            let current: Option<(&std::sync::Arc<Entity>, &Alias)> = match &id {
                Some(i) => Some(
                    s.alias(i)
                        .ok_or_else(|| Error::invalid_input("invalid alias ID provided"))?,
                ),
                None => {
                    let (Some(acc), Some(n)) = (&accessor, &name) else {
                        return Err(Error::invalid_input(
                            "'id' or 'mount_accessor' and 'name' must be provided",
                        ));
                    };
                    s.entity_by_alias(acc, n).and_then(|e| {
                        e.aliases
                            .iter()
                            .find(|a| &a.mount_accessor == acc && &a.name == n)
                            .map(|a| (e, a))
                    })
                }
            };
            let target = match &canonical {
                Some(c) => Some(
                    s.entity(c)
                        .ok_or_else(|| Error::invalid_input("invalid canonical ID"))?,
                ),
                None => None,
            };
            let mut alias = match current {
                Some((_, a)) => a.clone(),
                None => Alias {
                    id: new_id(),
                    creation_time: now.clone(),
                    custom_metadata: Some(BTreeMap::new()),
                    ..Alias::default()
                },
            };
            if let Some(n) = &name {
                alias.name = n.clone();
            }
            if let Some(a) = &accessor {
                alias.mount_accessor = a.clone();
            }
            if current.is_none() || custom.is_some() || id.is_none() {
                alias.custom_metadata = Some(custom.clone().unwrap_or_default());
            }
            alias.last_update_time = now.clone();
            // Another alias already holds the new (mount accessor, name).
            if let Some(other) = s.entity_by_alias(&alias.mount_accessor, &alias.name) {
                if other.aliases.iter().any(|a| {
                    a.mount_accessor == alias.mount_accessor
                        && a.name == alias.name
                        && a.id != alias.id
                }) {
                    return Err(Error::invalid_input(
                        "alias with combination of mount accessor and name already exists",
                    ));
                }
            }
            let mut change = Change::default();
            let owner_id = current.map(|(e, _)| e.id.clone());
            let mut dest = match (target, current) {
                (Some(t), _) => Entity::clone(t),
                (None, Some((e, _))) => Entity::clone(e),
                (None, None) => Entity {
                    id: new_id(),
                    name: unused_entity_name(s),
                    creation_time: now.clone(),
                    last_update_time: now.clone(),
                    ..Entity::default()
                },
            };
            if owner_id.as_deref() != Some(dest.id.as_str()) {
                if let Some(old) = owner_id.as_deref().and_then(|o| s.entity(o)) {
                    let mut old = Entity::clone(old);
                    old.aliases.retain(|a| a.id != alias.id);
                    old.last_update_time = now.clone();
                    change.put_entities.push(old);
                }
            }
            if dest
                .aliases
                .iter()
                .any(|a| a.mount_accessor == alias.mount_accessor && a.id != alias.id)
            {
                return Err(Error::invalid_input(
                    "Alias already exists for requested entity and mount accessor",
                ));
            }
            alias.canonical_id = dest.id.clone();
            dest.aliases.retain(|a| a.id != alias.id);
            dest.aliases.push(alias.clone());
            dest.last_update_time = now.clone();
            change.put_entities.push(dest);
            Ok((
                change,
                json!({"canonical_id": alias.canonical_id, "id": alias.id}),
            ))
        })
        .await?;
    respond(out)
}

async fn alias_delete(sr: &Strongroom, id: &str) -> Result<Option<Response>> {
    let now = now(sr);
    let storage = sr.inner.storage.clone();
    sr.inner
        .identity
        .write(storage.as_ref(), |s| {
            let Some((e, _)) = s.alias(id) else {
                return Ok((Change::default(), ()));
            };
            let mut e = Entity::clone(e);
            e.aliases.retain(|a| a.id != id);
            e.last_update_time = now.clone();
            Ok((
                Change {
                    put_entities: vec![e],
                    ..Change::default()
                },
                (),
            ))
        })
        .await?;
    Ok(None)
}

// ---- groups ----

async fn group_read(sr: &Strongroom, t: &Target<'_>) -> Result<Option<Response>> {
    let mounts = auth_mounts(sr).await?;
    let v = sr
        .inner
        .identity
        .read(|s| find_group(s, t).map(|g| group_json(s, g, &mounts)))?;
    v.map_or(Ok(None), respond)
}

/// OpenBao answers a bad member id with a wrapped 500.
fn member_error(what: String) -> Error {
    Error::new(
        ErrorCode::Internal,
        format!("1 error occurred:\n\t* {what}\n\n"),
    )
}

async fn group_write(sr: &Strongroom, req: &Request, t: Target<'_>) -> Result<Option<Response>> {
    let d = &req.data;
    let body_id = params::string(d, "id")?.filter(|s| !s.is_empty());
    let mut name = params::string(d, "name")?.filter(|s| !s.is_empty());
    let kind = params::string(d, "type")?.filter(|s| !s.is_empty());
    let metadata = kv_pairs(d, "metadata")?;
    let policies = policy_list(d)?;
    let members = params::string_list(d, "member_entity_ids")?;
    let member_groups = params::string_list(d, "member_group_ids")?;
    if let Target::Name(n) = t {
        name = Some(n.to_string());
    }
    if let Some(k) = &kind {
        if k != "internal" && k != "external" {
            return Err(Error::invalid_input(format!(
                "invalid group type {}",
                crate::policy::hcl::strconv::quote(k)
            )));
        }
    }
    let now = now(sr);
    let storage = sr.inner.storage.clone();
    sr.inner
        .identity
        .write(storage.as_ref(), |s| {
            let by_id = match (&t, &body_id) {
                (Target::Id(id), _) => Some(*id),
                (Target::Body, Some(id)) => Some(id.as_str()),
                _ => None,
            };
            let existing = match (&t, by_id) {
                (_, Some(id)) => Some(
                    s.group(id)
                        .ok_or_else(|| Error::invalid_input("group not found from id"))?,
                ),
                (Target::Name(n), _) => s.group_by_name(n),
                (_, None) => name.as_deref().and_then(|n| s.group_by_name(n)),
            };
            let created = existing.is_none();
            let mut touched: Vec<Group> = Vec::new();
            let mut g = match existing {
                Some(g) => Group::clone(g),
                None => Group {
                    id: new_id(),
                    kind: "internal".into(),
                    creation_time: now.clone(),
                    ..Group::default()
                },
            };
            if let Some(k) = &kind {
                if !created && k != &g.kind {
                    return Err(Error::invalid_input("group type cannot be changed"));
                }
                g.kind = k.clone();
            }
            if let Some(n) = &name {
                if let Some(other) = s.group_by_name(n) {
                    if other.id != g.id {
                        return Err(Error::invalid_input("group name is already in use"));
                    }
                }
                g.name = n.clone();
            } else if created {
                g.name = unused_group_name(s);
            }
            if let Some(m) = metadata {
                g.metadata = m;
            }
            if let Some(p) = policies {
                g.policies = p;
            }
            if let Some(m) = members {
                if g.kind == "external" && !m.is_empty() {
                    return Err(Error::invalid_input(
                        "member entities can't be set manually for external groups",
                    ));
                }
                for id in &m {
                    if s.entity(id).is_none() {
                        return Err(member_error(format!(
                            "invalid entity ID {}",
                            crate::policy::hcl::strconv::quote(id)
                        )));
                    }
                }
                g.member_entity_ids = m;
            }
            if let Some(m) = member_groups {
                for id in &m {
                    if s.group(id).is_none() {
                        return Err(member_error(format!(
                            "invalid member group ID {}",
                            crate::policy::hcl::strconv::quote(id)
                        )));
                    }
                    if id == &g.id {
                        return Err(member_error(format!(
                            "member group ID {} is same as the ID of the group",
                            crate::policy::hcl::strconv::quote(id)
                        )));
                    }
                }
                // OpenBao keeps the link on the member (its parent ids): a member group
                // added or dropped is itself modified.
                for id in m
                    .iter()
                    .filter(|id| !g.member_group_ids.contains(id))
                    .chain(g.member_group_ids.iter().filter(|id| !m.contains(id)))
                {
                    if let Some(child) = s.group(id) {
                        let mut child = Group::clone(child);
                        child.modify_index += 1;
                        child.last_update_time = now.clone();
                        touched.push(child);
                    }
                }
                g.member_group_ids = m;
            }
            g.modify_index += 1;
            g.last_update_time = now.clone();
            let answer = created.then(|| json!({"id": g.id, "name": g.name}));
            touched.push(g);
            Ok((
                Change {
                    put_groups: touched,
                    ..Change::default()
                },
                answer,
            ))
        })
        .await?
        .map_or(Ok(None), respond)
}

async fn group_delete(sr: &Strongroom, t: &Target<'_>) -> Result<Option<Response>> {
    let now = now(sr);
    let storage = sr.inner.storage.clone();
    sr.inner
        .identity
        .write(storage.as_ref(), |s| {
            let Some(g) = find_group(s, t) else {
                return Ok((Change::default(), ()));
            };
            // Parents stop listing it; its member groups lose a parent, which in OpenBao is
            // a change of theirs.
            let mut put_groups: Vec<Group> = s
                .parent_groups(&g.id)
                .into_iter()
                .filter(|p| p.id != g.id)
                .map(|p| {
                    let mut p = Group::clone(p);
                    p.member_group_ids.retain(|m| m != &g.id);
                    p
                })
                .collect();
            for child in g.member_group_ids.iter().filter_map(|id| s.group(id)) {
                if child.id == g.id {
                    continue;
                }
                let mut child = match put_groups.iter().position(|p| p.id == child.id) {
                    Some(i) => put_groups.swap_remove(i),
                    None => Group::clone(child),
                };
                child.modify_index += 1;
                child.last_update_time = now.clone();
                put_groups.push(child);
            }
            Ok((
                Change {
                    delete_groups: vec![g.id.clone()],
                    put_groups,
                    ..Change::default()
                },
                (),
            ))
        })
        .await?;
    Ok(None)
}

fn group_list(sr: &Strongroom, by_id: bool) -> Result<Option<Response>> {
    let v = sr.inner.identity.read(|s| {
        let mut all: Vec<&std::sync::Arc<Group>> = s.groups.values().collect();
        if all.is_empty() {
            return None;
        }
        if by_id {
            all.sort_by(|a, b| a.id.cmp(&b.id));
            let info: serde_json::Map<String, Value> = all
                .iter()
                .map(|g| {
                    (
                        g.id.clone(),
                        json!({
                            "name": g.name,
                            "num_member_entities": g.member_entity_ids.len(),
                            "num_parent_groups": s.parent_groups(&g.id).len(),
                        }),
                    )
                })
                .collect();
            let keys: Vec<&str> = all.iter().map(|g| g.id.as_str()).collect();
            Some(json!({"keys": keys, "key_info": info}))
        } else {
            let mut keys: Vec<&str> = all.iter().map(|g| g.name.as_str()).collect();
            keys.sort_unstable();
            Some(json!({ "keys": keys }))
        }
    })?;
    v.map_or(Ok(None), respond)
}

// ---- group aliases ----

async fn group_alias_read(sr: &Strongroom, id: &str) -> Result<Option<Response>> {
    let mounts = auth_mounts(sr).await?;
    let v = sr.inner.identity.read(|s| {
        s.group_alias(id)
            .and_then(|g| g.alias.as_ref())
            .map(|a| alias_detail(a, &mounts, false))
    })?;
    v.map_or(Ok(None), respond)
}

async fn group_alias_list(sr: &Strongroom) -> Result<Option<Response>> {
    let mounts = auth_mounts(sr).await?;
    let v = sr.inner.identity.read(|s| {
        alias_listing(
            s.groups.values().filter_map(|g| g.alias.as_ref()).collect(),
            &mounts,
        )
    })?;
    v.map_or(Ok(None), respond)
}

async fn group_alias_write(
    sr: &Strongroom,
    req: &Request,
    id: Option<&str>,
) -> Result<Option<Response>> {
    let d = &req.data;
    let id = match id {
        Some(i) => Some(i.to_string()),
        None => params::string(d, "id")?.filter(|s| !s.is_empty()),
    };
    let name = params::string(d, "name")?.filter(|s| !s.is_empty());
    let accessor = params::string(d, "mount_accessor")?.filter(|s| !s.is_empty());
    let canonical = params::string(d, "canonical_id")?.filter(|s| !s.is_empty());
    let mounts = auth_mounts(sr).await?;
    if let Some(a) = &accessor {
        if !mounts.contains_key(a) {
            return Err(Error::invalid_input(format!(
                "invalid mount accessor {}",
                crate::policy::hcl::strconv::quote(a)
            )));
        }
    }
    let now = now(sr);
    let storage = sr.inner.storage.clone();
    let out = sr
        .inner
        .identity
        .write(storage.as_ref(), |s| {
            let current = match &id {
                Some(i) => Some(
                    s.group_alias(i)
                        .ok_or_else(|| Error::invalid_input("invalid group alias ID provided"))?,
                ),
                None => None,
            };
            if current.is_none() {
                if name.is_none() {
                    return Err(Error::invalid_input("missing alias name"));
                }
                if accessor.is_none() {
                    return Err(Error::invalid_input("missing mount_accessor"));
                }
            }
            let mut alias = current
                .and_then(|g| g.alias.clone())
                .unwrap_or_else(|| Alias {
                    id: new_id(),
                    creation_time: now.clone(),
                    ..Alias::default()
                });
            if let Some(n) = &name {
                alias.name = n.clone();
            }
            if let Some(a) = &accessor {
                alias.mount_accessor = a.clone();
            }
            alias.last_update_time = now.clone();
            if let Some(other) = s.group_by_alias(&alias.mount_accessor, &alias.name) {
                if other.alias.as_ref().is_some_and(|a| a.id != alias.id) {
                    return Err(Error::invalid_input(
                        "combination of mount and group alias name is already in use",
                    ));
                }
            }
            let mut change = Change::default();
            let mut dest = match (&canonical, current) {
                (Some(c), _) => Group::clone(s.group(c).ok_or_else(|| {
                    Error::invalid_input("invalid group ID given in 'canonical_id'")
                })?),
                (None, Some(g)) => Group::clone(g),
                (None, None) => Group {
                    id: new_id(),
                    name: unused_group_name(s),
                    kind: "external".into(),
                    creation_time: now.clone(),
                    ..Group::default()
                },
            };
            if dest.kind != "external" {
                return Err(Error::invalid_input(
                    "alias can't be set on an internal group",
                ));
            }
            if dest.alias.as_ref().is_some_and(|a| a.id != alias.id) {
                return Err(Error::invalid_input("group already has an alias"));
            }
            if let Some(old) = current.filter(|g| g.id != dest.id) {
                let mut old = Group::clone(old);
                old.alias = None;
                old.modify_index += 1;
                old.last_update_time = now.clone();
                change.put_groups.push(old);
            }
            alias.canonical_id = dest.id.clone();
            dest.alias = Some(alias.clone());
            dest.modify_index += 1;
            dest.last_update_time = now.clone();
            change.put_groups.push(dest);
            Ok((
                change,
                json!({"canonical_id": alias.canonical_id, "id": alias.id}),
            ))
        })
        .await?;
    respond(out)
}

async fn group_alias_delete(sr: &Strongroom, id: &str) -> Result<Option<Response>> {
    let now = now(sr);
    let storage = sr.inner.storage.clone();
    sr.inner
        .identity
        .write(storage.as_ref(), |s| {
            let Some(g) = s.group_alias(id) else {
                return Ok((Change::default(), ()));
            };
            let mut g = Group::clone(g);
            g.alias = None;
            g.modify_index += 1;
            g.last_update_time = now.clone();
            Ok((
                Change {
                    put_groups: vec![g],
                    ..Change::default()
                },
                (),
            ))
        })
        .await?;
    Ok(None)
}

// ---- lookups ----

/// The one criterion a lookup names (OpenBao refuses none and several).
enum Criterion {
    Name(String),
    Id(String),
    AliasId(String),
    Alias(String, String),
}

fn criterion(d: &Data) -> Result<Criterion> {
    let get =
        |k: &str| -> Result<Option<String>> { Ok(params::string(d, k)?.filter(|s| !s.is_empty())) };
    let name = get("name")?;
    let id = get("id")?;
    let alias_id = get("alias_id")?;
    let alias_name = get("alias_name")?;
    let accessor = get("alias_mount_accessor")?;
    let given = [
        name.is_some(),
        id.is_some(),
        alias_id.is_some(),
        alias_name.is_some() || accessor.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given == 0 {
        return Err(Error::invalid_input("query parameter not supplied"));
    }
    if given > 1 {
        return Err(Error::invalid_input(
            "query parameter conflict; please supply distinct set of query parameters",
        ));
    }
    Ok(match (name, id, alias_id, alias_name, accessor) {
        (Some(n), ..) => Criterion::Name(n),
        (_, Some(i), ..) => Criterion::Id(i),
        (_, _, Some(a), ..) => Criterion::AliasId(a),
        (_, _, _, Some(n), Some(a)) => Criterion::Alias(n, a),
        (_, _, _, None, _) => return Err(Error::invalid_input("missing alias_name")),
        (_, _, _, _, None) => return Err(Error::invalid_input("missing alias_mount_accessor")),
    })
}

async fn lookup_entity(sr: &Strongroom, req: &Request) -> Result<Option<Response>> {
    let c = criterion(&req.data)?;
    let mounts = auth_mounts(sr).await?;
    let v = sr.inner.identity.read(|s| {
        let e = match &c {
            Criterion::Name(n) => s.entity_by_name(n),
            Criterion::Id(i) => s.entity(i),
            Criterion::AliasId(a) => s.alias(a).map(|(e, _)| e),
            Criterion::Alias(n, a) => s.entity_by_alias(a, n),
        };
        e.map(|e| entity_json(s, e, &mounts))
    })?;
    // Not found is an empty 204, as OpenBao answers.
    match v {
        Some(v) => respond(v),
        None => Ok(Some(Response::default())),
    }
}

async fn lookup_group(sr: &Strongroom, req: &Request) -> Result<Option<Response>> {
    let c = criterion(&req.data)?;
    let mounts = auth_mounts(sr).await?;
    let v = sr.inner.identity.read(|s| {
        let g = match &c {
            Criterion::Name(n) => s.group_by_name(n),
            Criterion::Id(i) => s.group(i),
            Criterion::AliasId(a) => s.group_alias(a),
            Criterion::Alias(n, a) => s.group_by_alias(a, n),
        };
        g.map(|g| group_json(s, g, &mounts))
    })?;
    match v {
        Some(v) => respond(v),
        None => Ok(Some(Response::default())),
    }
}
