//! The identity store behind `identity/`: entities with their aliases, groups (internal and
//! external) with their aliases, as OpenBao keeps them. Records live behind the barrier (one
//! key per entity, one per group, aliases inside their owner as OpenBao packs them); the
//! indexes in memory are rebuilt from storage on unseal and whenever another process wrote,
//! and every change lands in storage before the indexes see it.
//!
//! Tokens carry an `entity_id`; [`IdentityStore::resolve`] gives the policies the entity and
//! its groups add (`identity_policies`) and what policy templates see, cached per entity until
//! the next identity change ([`IdentityStore::generation`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex as AsyncMutex;

use crate::error::{Error, Result};
use crate::policy::template::{TemplateAlias, TemplateEntity, TemplateGroup, TemplateIdentity};
use crate::storage::{Backend, Page, TxnOp};

pub(crate) mod endpoints;

/// Where entities are stored (behind the barrier), one key per entity id.
const ENTITY_PREFIX: &str = "core/identity/entity/";
/// Where groups are stored, one key per group id.
const GROUP_PREFIX: &str = "core/identity/group/";
/// Rewritten with every change: another process's write shows as a new value, so a reload is
/// needed only then (one read per storage change elsewhere, not a scan).
const EPOCH_KEY: &str = "core/identity/epoch";
/// Resolved identities kept in memory at most (the cache is dropped whole when full).
const RESOLVED_CAP: usize = 4096;

/// An alias: an entity's (or an external group's) name in one auth mount.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub(crate) struct Alias {
    pub id: String,
    pub canonical_id: String,
    pub mount_accessor: String,
    pub name: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub custom_metadata: Option<BTreeMap<String, String>>,
    pub creation_time: String,
    pub last_update_time: String,
    #[serde(default)]
    pub merged_from_canonical_ids: Vec<String>,
}

/// An entity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub(crate) struct Entity {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default)]
    pub disabled: bool,
    pub creation_time: String,
    pub last_update_time: String,
    #[serde(default)]
    pub merged_entity_ids: Vec<String>,
    #[serde(default)]
    pub aliases: Vec<Alias>,
}

/// A group: `internal` (members set by hand) or `external` (membership from an auth
/// method's group alias).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub(crate) struct Group {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub member_entity_ids: Vec<String>,
    #[serde(default)]
    pub member_group_ids: Vec<String>,
    pub creation_time: String,
    pub last_update_time: String,
    #[serde(default)]
    pub modify_index: u64,
    #[serde(default)]
    pub alias: Option<Alias>,
}

/// What an entity's tokens get from identity: the extra policies and what templates see.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// The entity's own policies, then its groups' (direct, then inherited), deduplicated.
    pub identity_policies: Vec<String>,
    /// What `{{identity...}}` templates render from.
    pub template: TemplateIdentity,
    /// A disabled entity's tokens are refused.
    pub disabled: bool,
}

/// The in-memory indexes (the source of truth is storage).
#[derive(Default)]
pub(crate) struct State {
    pub entities: HashMap<String, Arc<Entity>>,
    /// Lower-cased name -> entity id (names are case-insensitive, as in OpenBao).
    entity_names: HashMap<String, String>,
    /// (mount accessor, alias name) -> entity id.
    alias_keys: HashMap<(String, String), String>,
    /// Alias id -> entity id.
    alias_ids: HashMap<String, String>,
    pub groups: HashMap<String, Arc<Group>>,
    group_names: HashMap<String, String>,
    group_alias_keys: HashMap<(String, String), String>,
    group_alias_ids: HashMap<String, String>,
}

impl State {
    pub(crate) fn entity(&self, id: &str) -> Option<&Arc<Entity>> {
        self.entities.get(id)
    }

    pub(crate) fn entity_by_name(&self, name: &str) -> Option<&Arc<Entity>> {
        self.entity_names
            .get(&name.to_lowercase())
            .and_then(|id| self.entities.get(id))
    }

    pub(crate) fn entity_by_alias(&self, accessor: &str, name: &str) -> Option<&Arc<Entity>> {
        self.alias_keys
            .get(&(accessor.to_string(), name.to_string()))
            .and_then(|id| self.entities.get(id))
    }

    /// The entity holding alias `alias_id`, and the alias.
    pub(crate) fn alias(&self, alias_id: &str) -> Option<(&Arc<Entity>, &Alias)> {
        let e = self
            .alias_ids
            .get(alias_id)
            .and_then(|id| self.entities.get(id))?;
        let a = e.aliases.iter().find(|a| a.id == alias_id)?;
        Some((e, a))
    }

    pub(crate) fn group(&self, id: &str) -> Option<&Arc<Group>> {
        self.groups.get(id)
    }

    pub(crate) fn group_by_name(&self, name: &str) -> Option<&Arc<Group>> {
        self.group_names
            .get(&name.to_lowercase())
            .and_then(|id| self.groups.get(id))
    }

    pub(crate) fn group_by_alias(&self, accessor: &str, name: &str) -> Option<&Arc<Group>> {
        self.group_alias_keys
            .get(&(accessor.to_string(), name.to_string()))
            .and_then(|id| self.groups.get(id))
    }

    pub(crate) fn group_alias(&self, alias_id: &str) -> Option<&Arc<Group>> {
        self.group_alias_ids
            .get(alias_id)
            .and_then(|id| self.groups.get(id))
    }

    /// Internal groups with `entity_id` as a direct member, sorted by id.
    pub(crate) fn direct_groups(&self, entity_id: &str) -> Vec<&Arc<Group>> {
        let mut v: Vec<&Arc<Group>> = self
            .groups
            .values()
            .filter(|g| g.member_entity_ids.iter().any(|m| m == entity_id))
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Groups that list `group_id` as a member group, sorted by id.
    pub(crate) fn parent_groups(&self, group_id: &str) -> Vec<&Arc<Group>> {
        let mut v: Vec<&Arc<Group>> = self
            .groups
            .values()
            .filter(|g| g.member_group_ids.iter().any(|m| m == group_id))
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The groups above `direct` (parents of parents ...), without `direct` itself, in the
    /// order found; cycles stop.
    pub(crate) fn inherited_groups(&self, direct: &[&Arc<Group>]) -> Vec<Arc<Group>> {
        let mut seen: BTreeSet<String> = direct.iter().map(|g| g.id.clone()).collect();
        let mut queue: Vec<String> = direct.iter().map(|g| g.id.clone()).collect();
        let mut out = Vec::new();
        while let Some(id) = queue.pop() {
            for p in self.parent_groups(&id) {
                if seen.insert(p.id.clone()) {
                    queue.push(p.id.clone());
                    out.push(p.clone());
                }
            }
        }
        out
    }

    fn index_entity(&mut self, e: Arc<Entity>) {
        self.unindex_entity(&e.id);
        self.entity_names
            .insert(e.name.to_lowercase(), e.id.clone());
        for a in &e.aliases {
            self.alias_keys
                .insert((a.mount_accessor.clone(), a.name.clone()), e.id.clone());
            self.alias_ids.insert(a.id.clone(), e.id.clone());
        }
        self.entities.insert(e.id.clone(), e);
    }

    fn unindex_entity(&mut self, id: &str) {
        if let Some(old) = self.entities.remove(id) {
            if self.entity_names.get(&old.name.to_lowercase()) == Some(&old.id) {
                self.entity_names.remove(&old.name.to_lowercase());
            }
            for a in &old.aliases {
                let key = (a.mount_accessor.clone(), a.name.clone());
                if self.alias_keys.get(&key) == Some(&old.id) {
                    self.alias_keys.remove(&key);
                }
                if self.alias_ids.get(&a.id) == Some(&old.id) {
                    self.alias_ids.remove(&a.id);
                }
            }
        }
    }

    fn index_group(&mut self, g: Arc<Group>) {
        self.unindex_group(&g.id);
        self.group_names.insert(g.name.to_lowercase(), g.id.clone());
        if let Some(a) = &g.alias {
            self.group_alias_keys
                .insert((a.mount_accessor.clone(), a.name.clone()), g.id.clone());
            self.group_alias_ids.insert(a.id.clone(), g.id.clone());
        }
        self.groups.insert(g.id.clone(), g);
    }

    fn unindex_group(&mut self, id: &str) {
        if let Some(old) = self.groups.remove(id) {
            if self.group_names.get(&old.name.to_lowercase()) == Some(&old.id) {
                self.group_names.remove(&old.name.to_lowercase());
            }
            if let Some(a) = &old.alias {
                let key = (a.mount_accessor.clone(), a.name.clone());
                if self.group_alias_keys.get(&key) == Some(&old.id) {
                    self.group_alias_keys.remove(&key);
                }
                if self.group_alias_ids.get(&a.id) == Some(&old.id) {
                    self.group_alias_ids.remove(&a.id);
                }
            }
        }
    }
}

/// A set of record writes that land together (one storage transaction).
#[derive(Default)]
pub(crate) struct Change {
    pub put_entities: Vec<Entity>,
    pub delete_entities: Vec<String>,
    pub put_groups: Vec<Group>,
    pub delete_groups: Vec<String>,
}

impl Change {
    fn is_empty(&self) -> bool {
        self.put_entities.is_empty()
            && self.delete_entities.is_empty()
            && self.put_groups.is_empty()
            && self.delete_groups.is_empty()
    }
}

/// The identity store: indexes over the stored records, and the per-entity resolution cache.
#[derive(Default)]
pub(crate) struct IdentityStore {
    state: RwLock<State>,
    /// Serialises changes: each is decided on the current state and stored before the next.
    writes: AsyncMutex<()>,
    /// Bumped after every change (and reload): resolutions and ACLs built on an older
    /// generation are stale.
    generation: AtomicU64,
    resolved: RwLock<HashMap<String, (u64, Arc<Resolved>)>>,
    /// The stored epoch the indexes were loaded at (or last written).
    epoch: RwLock<Option<Vec<u8>>>,
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, raw: &[u8]) -> Result<T> {
    crate::util::json::decode(raw, || {
        Error::storage(format!("identity record `{key}` is corrupt"))
    })
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    crate::util::json::encode(v, || Error::internal("cannot encode identity record"))
}

impl IdentityStore {
    /// Changes whenever an entity or group changes (read it before deciding).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn bump(&self) -> Result<()> {
        self.resolved
            .write()
            .or_else(crate::util::unpoison)?
            .clear();
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Rebuild the indexes when another process changed identity since they were loaded.
    pub(crate) async fn reload_if_changed(&self, storage: &dyn Backend) -> Result<()> {
        let stored = storage.get(EPOCH_KEY).await?;
        if *self.epoch.read().or_else(crate::util::unpoison)? == stored {
            return Ok(());
        }
        self.load(storage).await
    }

    /// Rebuild the indexes from storage (unseal, or another process wrote).
    pub(crate) async fn load(&self, storage: &dyn Backend) -> Result<()> {
        let _w = self.writes.lock().await;
        // Read first: a change landing during the scan leaves a newer epoch, so the next
        // check loads again.
        let epoch = storage.get(EPOCH_KEY).await?;
        let mut state = State::default();
        for key in scan_all(storage, ENTITY_PREFIX).await? {
            let full = format!("{ENTITY_PREFIX}{key}");
            if let Some(raw) = storage.get(&full).await? {
                state.index_entity(Arc::new(decode::<Entity>(&full, &raw)?));
            }
        }
        for key in scan_all(storage, GROUP_PREFIX).await? {
            let full = format!("{GROUP_PREFIX}{key}");
            if let Some(raw) = storage.get(&full).await? {
                state.index_group(Arc::new(decode::<Group>(&full, &raw)?));
            }
        }
        *self.state.write().or_else(crate::util::unpoison)? = state;
        *self.epoch.write().or_else(crate::util::unpoison)? = epoch;
        self.bump()
    }

    /// Drop everything in memory (sealed).
    pub(crate) fn clear(&self) -> Result<()> {
        *self.state.write().or_else(crate::util::unpoison)? = State::default();
        *self.epoch.write().or_else(crate::util::unpoison)? = None;
        self.bump()
    }

    /// Read the current state.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&State) -> T) -> Result<T> {
        Ok(f(&*self.state.read().or_else(crate::util::unpoison)?))
    }

    /// Decide a change on the current state with `f`, store it, then apply it to the
    /// indexes; `f`'s error changes nothing.
    pub(crate) async fn write<T>(
        &self,
        storage: &dyn Backend,
        f: impl FnOnce(&State) -> Result<(Change, T)>,
    ) -> Result<T> {
        let _w = self.writes.lock().await;
        let (change, out) = f(&*self.state.read().or_else(crate::util::unpoison)?)?;
        if change.is_empty() {
            return Ok(out);
        }
        let epoch = new_id().into_bytes();
        let mut ops = vec![TxnOp::Put {
            key: EPOCH_KEY.into(),
            value: epoch.clone(),
        }];
        for e in &change.put_entities {
            ops.push(TxnOp::Put {
                key: format!("{ENTITY_PREFIX}{}", e.id),
                value: encode(e)?,
            });
        }
        for id in &change.delete_entities {
            ops.push(TxnOp::Delete {
                key: format!("{ENTITY_PREFIX}{id}"),
            });
        }
        for g in &change.put_groups {
            ops.push(TxnOp::Put {
                key: format!("{GROUP_PREFIX}{}", g.id),
                value: encode(g)?,
            });
        }
        for id in &change.delete_groups {
            ops.push(TxnOp::Delete {
                key: format!("{GROUP_PREFIX}{id}"),
            });
        }
        storage.transaction(ops).await?;
        *self.epoch.write().or_else(crate::util::unpoison)? = Some(epoch);
        {
            let mut state = self.state.write().or_else(crate::util::unpoison)?;
            for id in &change.delete_entities {
                state.unindex_entity(id);
            }
            for e in change.put_entities {
                state.index_entity(Arc::new(e));
            }
            for id in &change.delete_groups {
                state.unindex_group(id);
            }
            for g in change.put_groups {
                state.index_group(Arc::new(g));
            }
        }
        self.bump()?;
        Ok(out)
    }

    /// What identity gives the tokens of `entity_id` (`None`: no such entity, as for a token
    /// whose entity was deleted; it keeps only its own policies).
    pub(crate) fn resolve(&self, entity_id: &str) -> Result<Option<Arc<Resolved>>> {
        let generation = self.generation();
        if let Some((g, r)) = self
            .resolved
            .read()
            .or_else(crate::util::unpoison)?
            .get(entity_id)
        {
            if *g == generation {
                return Ok(Some(r.clone()));
            }
        }
        let resolved = self.read(|s| {
            let e = s.entity(entity_id)?;
            let direct = s.direct_groups(&e.id);
            let inherited = s.inherited_groups(&direct);
            let mut identity_policies: Vec<String> = Vec::new();
            let mut add = |p: &String| {
                if !identity_policies.contains(p) {
                    identity_policies.push(p.clone());
                }
            };
            e.policies.iter().for_each(&mut add);
            let groups: Vec<&Group> = direct
                .iter()
                .map(|g| g.as_ref())
                .chain(inherited.iter().map(|g| g.as_ref()))
                .collect();
            for g in &groups {
                g.policies.iter().for_each(&mut add);
            }
            Some(Arc::new(Resolved {
                identity_policies,
                disabled: e.disabled,
                template: TemplateIdentity {
                    entity: Some(TemplateEntity {
                        id: e.id.clone(),
                        name: e.name.clone(),
                        metadata: e.metadata.clone(),
                        aliases: e
                            .aliases
                            .iter()
                            .map(|a| TemplateAlias {
                                mount_accessor: a.mount_accessor.clone(),
                                id: a.id.clone(),
                                name: a.name.clone(),
                                metadata: a.metadata.clone(),
                                custom_metadata: a.custom_metadata.clone().unwrap_or_default(),
                            })
                            .collect(),
                    }),
                    groups: groups
                        .iter()
                        .map(|g| TemplateGroup {
                            id: g.id.clone(),
                            name: g.name.clone(),
                            namespace_id: String::new(),
                            metadata: g.metadata.clone(),
                        })
                        .collect(),
                    namespace_id: String::new(),
                },
            }))
        })?;
        if let Some(r) = &resolved {
            let mut cache = self.resolved.write().or_else(crate::util::unpoison)?;
            // Entities resolved after the generation moved on are not kept (a racing
            // change would otherwise be hidden until the next one).
            if self.generation() == generation {
                if cache.len() >= RESOLVED_CAP {
                    cache.clear();
                }
                cache.insert(entity_id.to_string(), (generation, r.clone()));
            }
        }
        Ok(resolved)
    }

    /// A login through the auth mount `accessor` as `alias_name`: the entity that alias
    /// belongs to, created with the alias when there is none (OpenBao names it
    /// `entity_<8 hex>`); the alias metadata the method reports replaces the stored one.
    pub(crate) async fn login_entity(
        &self,
        storage: &dyn Backend,
        now: &str,
        accessor: &str,
        alias_name: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<String> {
        // Most logins are of known aliases with unchanged metadata: no write.
        if let Some(id) = self.read(|s| {
            s.entity_by_alias(accessor, alias_name).and_then(|e| {
                e.aliases
                    .iter()
                    .any(|a| {
                        a.mount_accessor == accessor
                            && a.name == alias_name
                            && &a.metadata == metadata
                    })
                    .then(|| e.id.clone())
            })
        })? {
            return Ok(id);
        }
        self.write(storage, |s| {
            if let Some(e) = s.entity_by_alias(accessor, alias_name) {
                let mut e = Entity::clone(e);
                for a in &mut e.aliases {
                    if a.mount_accessor == accessor && a.name == alias_name {
                        a.metadata = metadata.clone();
                        a.last_update_time = now.to_string();
                    }
                }
                let id = e.id.clone();
                return Ok((
                    Change {
                        put_entities: vec![e],
                        ..Change::default()
                    },
                    id,
                ));
            }
            let id = new_id();
            let e = Entity {
                id: id.clone(),
                name: unused_entity_name(s),
                creation_time: now.to_string(),
                last_update_time: now.to_string(),
                aliases: vec![Alias {
                    id: new_id(),
                    canonical_id: id.clone(),
                    mount_accessor: accessor.to_string(),
                    name: alias_name.to_string(),
                    metadata: metadata.clone(),
                    custom_metadata: None,
                    creation_time: now.to_string(),
                    last_update_time: now.to_string(),
                    merged_from_canonical_ids: Vec::new(),
                }],
                ..Entity::default()
            };
            Ok((
                Change {
                    put_entities: vec![e],
                    ..Change::default()
                },
                id,
            ))
        })
        .await
    }
}

/// A fresh identity id (OpenBao's uuid form).
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// OpenBao's generated names: `entity_<8 hex>.root`, `group_<8 hex>.root` (the suffix is
/// the namespace), unused.
fn generated_name(kind: &str, taken: impl Fn(&str) -> bool) -> String {
    loop {
        let hex = uuid::Uuid::new_v4().simple().to_string();
        let n = format!("{kind}_{}.root", hex.get(..8).unwrap_or("00000000"));
        if !taken(&n) {
            return n;
        }
    }
}

pub(crate) fn unused_entity_name(s: &State) -> String {
    generated_name("entity", |n| s.entity_by_name(n).is_some())
}

pub(crate) fn unused_group_name(s: &State) -> String {
    generated_name("group", |n| s.group_by_name(n).is_some())
}

async fn scan_all(storage: &dyn Backend, prefix: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = storage
            .scan(
                prefix,
                &Page {
                    after: after.clone(),
                    limit: Some(1000),
                },
            )
            .await?;
        let Some(last) = page.last().cloned() else {
            return Ok(out);
        };
        let full = page.len() == 1000;
        out.extend(page);
        if !full {
            return Ok(out);
        }
        after = Some(last);
    }
}
