//! The request pipeline: the one way a call travels through the engine.
//!
//! [`Strongroom::handle`] runs every request: path checks, unauthenticated `sys/` and login
//! paths, the seal check, token resolution (CIDR binding, use counts), routing (with the
//! engine's existence check), the ACL ([`Strongroom::authorize`]), audit before and after, the
//! engine, lease registration and response wrapping. The typed fast paths of the client
//! ([`FastGate`]) make the same token, CIDR and ACL decisions without building a JSON request,
//! or send the call through `handle`.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::audit::{AuditAuth, AuditInput, GrantingPolicy, PolicyResults};
use crate::auth::lockout;
use crate::error::{Error, ErrorCode, Result};
use crate::request::{Data, Operation, Request, Response};
use crate::router::{self, MountEntry};
use crate::storage::Backend;
use crate::strongroom::Strongroom;
use crate::token::TokenEntry;
use crate::token::endpoints::Caller;

impl Strongroom {
    /// A number that changes whenever anything an authorisation decision rests on changes
    /// here: a token entry, a policy, the mount table. A decision made after reading epoch
    /// `e` stays valid while the epoch is still `e` (writers bump after they change state).
    /// Token expiry is time-based and must still be checked per call.
    pub(crate) fn gate_epoch(&self) -> u64 {
        use std::sync::atomic::Ordering;
        self.inner
            .tokens
            .generation()
            .wrapping_add(self.inner.policies.generation())
            .wrapping_add(self.inner.identity.generation())
            .wrapping_add(self.inner.router_generation.load(Ordering::Acquire))
    }

    /// Run one request through the pipeline: seal check, token, ACL, audit, engine, lease,
    /// audit. This is the only door: the typed API, the bindings and the HTTP server use it.
    pub async fn handle(&self, mut req: Request) -> Result<Response> {
        // Counted until the call ends, so shutdown can wait for it.
        let _in_flight = self.inner.calls.enter()?;
        if req.id.is_empty() {
            req.id = crate::util::fast_uuid();
        }
        // A zero wrap TTL means "do not wrap", as in OpenBao.
        if req.wrap_ttl.is_some_and(|t| t.is_zero()) {
            req.wrap_ttl = None;
        }
        // Refused before anything runs, as OpenBao refuses the header: a wrap TTL past Go's
        // longest duration could not be wrapped after the request had already acted.
        if let Some(t) = req.wrap_ttl.filter(|t| *t > crate::util::duration::MAX) {
            return Err(Error::invalid_input(format!(
                "wrap ttl of {}s is out of range",
                t.as_secs()
            )));
        }
        req.path = normalize_request_path(&req.path)?;
        if req.operation == Operation::List && !req.path.ends_with('/') && !req.path.is_empty() {
            req.path.push('/');
        }
        if matches!(
            req.operation,
            Operation::Create | Operation::Update | Operation::Patch
        ) && req.path.ends_with('/')
        {
            return Err(Error::invalid_input("cannot write to a path ending in '/'"));
        }
        // The rare branches are boxed: inlined, their futures would make this one several
        // kilobytes, carried (and moved) by every call.
        if req.path.starts_with("sys/") {
            if let Some(resp) = Box::pin(crate::sys::unauthenticated(self, &req)).await? {
                return Ok(with_id(resp, &req));
            }
        }
        if self.inner.barrier.is_sealed() {
            return Err(Error::sealed());
        }
        self.sync_store().await?;
        // `sys/wrapping/{lookup,unwrap,rewrap}` check their wrapping token first; `lookup`
        // needs nothing else.
        if req.path.starts_with("sys/wrapping/") {
            // Audited like any call: a wrong or spent wrapping token is worth a line.
            match Box::pin(self.wrapping().wrapping_precheck(&req)).await {
                Ok(Some((resp, wrapping))) => {
                    let resp = with_id(resp, &req);
                    if let Some(a) = self.audit_auth(&wrapping) {
                        let memo = crate::audit::AuditMemo::default();
                        let input = AuditInput::new(&req).with_auth(&a).with_memo(&memo);
                        self.inner.audit.log_request(&input).await?;
                        self.inner
                            .audit
                            .log_response(&input.with_response(&resp))
                            .await?;
                    }
                    return Ok(resp);
                }
                Ok(None) => {}
                Err(e) => return Err(Box::pin(self.audit_failure(&req, None, None, e)).await),
            }
        }
        // Logins live under `auth/` (`AuthMethods::route` answers nothing else).
        if req.path.starts_with("auth/") {
            if let Some(resp) = Box::pin(self.try_login(&req)).await? {
                return match req.wrap_ttl {
                    Some(ttl) => Box::pin(self.wrapping().wrap_response(&req, &resp, ttl)).await,
                    None => Ok(resp),
                };
            }
        }
        // Paths an engine serves without a token (a PKI mount's CA and CRL reads).
        if let Some(resp) = Box::pin(self.try_unauthenticated(&req)).await? {
            return Ok(with_id(resp, &req));
        }
        let mut caller = match self.resolve_token(&req).await {
            Ok(c) => c,
            Err(e) => return Err(Box::pin(self.audit_failure(&req, None, None, e)).await),
        };
        let mut auth = self.audit_auth(&caller.entry);
        let memo = crate::audit::AuditMemo::default();
        // OpenBao counts a use right after the token check, before the ACL or routing answer
        // (request_handling.go: UseToken precedes the CheckToken error): a denied, unrouted
        // or failing call spends a use too, and the last one revokes the token whatever the
        // outcome. Every early return below goes through `finish_use`.
        let last_use = self.use_token(&mut caller).await?;
        // Route first: the existence check (create vs update) must precede the ACL.
        let target = match self.route(&mut req, &caller.entry).await {
            Ok(t) => t,
            Err(e) => {
                // OpenBao checks the ACL before routing: a path the token may not use is 403
                // whether or not a mount serves it, so a limited token cannot probe for mounts
                // (only a token allowed the path, root included, learns "no handler").
                let e = match self.authorize(&caller.entry, &req, auth.as_mut()).await {
                    Err(denied) if e.code() == ErrorCode::UnsupportedPath => denied,
                    _ => e,
                };
                self.finish_use(&caller.entry, last_use).await?;
                return Err(Box::pin(self.audit_failure(&req, auth.as_ref(), None, e)).await);
            }
        };
        let mount = match &target {
            Target::Mount(m, _) => Some(&m.entry),
            _ => None,
        };
        match self.authorize(&caller.entry, &req, auth.as_mut()).await {
            Ok(sudo) => caller.sudo = sudo,
            Err(e) => {
                self.finish_use(&caller.entry, last_use).await?;
                return Err(Box::pin(self.audit_failure(&req, auth.as_ref(), mount, e)).await);
            }
        }
        if let Some(a) = &auth {
            let mut input = AuditInput::new(&req).with_auth(a).with_memo(&memo);
            if let Some(m) = mount {
                input = input.with_mount(m);
            }
            // A required device that cannot log fails the call before it runs.
            if let Err(e) = self.inner.audit.log_request(&input).await {
                self.finish_use(&caller.entry, last_use).await?;
                return Err(e);
            }
        }
        let result = match &target {
            Target::Sys if req.path.starts_with("sys/wrapping/") => {
                Box::pin(self.wrapping().wrapping_endpoint(&caller, &req))
                    .await
                    .map(Some)
            }
            Target::NotCanonical => Err(Error::backend_unsupported_path()),
            Target::Sys => Box::pin(crate::sys::handle(self, &req)).await.map(Some),
            Target::Token(rel) => Box::pin(crate::token::endpoints::handle(
                &self.token_site(),
                &caller,
                &req,
                rel,
            ))
            .await
            .map(Some),
            Target::Identity(rel) => {
                Box::pin(crate::identity::endpoints::handle(self, &req, rel)).await
            }
            Target::Mount(mount, rel) => {
                req.display_name.clone_from(&caller.entry.display_name);
                let full = std::mem::replace(&mut req.path, rel.clone());
                let r = match as_owner(mount, &mut req, &caller.entry) {
                    Ok(token) => {
                        let r = mount.engine.handle(&mount.ctx, &req).await;
                        if let Some(t) = token {
                            req.token = t;
                        }
                        r
                    }
                    Err(e) => Err(e),
                };
                req.path = full;
                r.map(|resp| resp.map(|r| cubbyhole_response_warning(&req, &caller.entry, r)))
            }
        };
        self.finish_use(&caller.entry, last_use).await?;
        let resp = match result {
            Ok(Some(r)) if r.lease.is_some() => match &target {
                Target::Mount(m, rel) => {
                    Box::pin(self.inner.leases.register_secret_lease(
                        &req,
                        &caller.entry,
                        m,
                        rel,
                        r,
                    ))
                    .await
                }
                _ => Err(Error::internal(format!(
                    "`{}` returned a lease outside a secrets engine",
                    req.path
                ))),
            },
            Ok(Some(r)) => Ok(r),
            Ok(None) if matches!(req.operation, Operation::Read | Operation::List) => Err(
                Error::not_found(format!("no value found at `{}`", req.path)),
            ),
            Ok(None) => Ok(Response::default()),
            Err(e) => Err(e),
        };
        let resp = match (resp, req.wrap_ttl) {
            (Ok(r), Some(ttl)) if !r.is_empty() && r.kind == crate::request::ResponseKind::Done => {
                Box::pin(self.wrapping().wrap_response(&req, &with_id(r, &req), ttl)).await
            }
            (r, _) => r.map(|r| with_id(r, &req)),
        };
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                if let Some(a) = &auth {
                    let mut input = AuditInput::new(&req)
                        .with_auth(a)
                        .with_error(&e)
                        .with_memo(&memo);
                    if let Some(m) = mount {
                        input = input.with_mount(m);
                    }
                    self.inner.audit.log_response(&input).await?;
                }
                return Err(e);
            }
        };
        if let Some(a) = &auth {
            let mut input = AuditInput::new(&req)
                .with_auth(a)
                .with_response(&resp)
                .with_memo(&memo);
            if let Some(m) = mount {
                input = input.with_mount(m);
            }
            self.inner.audit.log_response(&input).await?;
        }
        Ok(resp)
    }

    /// The token endpoints' handle on the token store, storage, clock, identity and auth
    /// methods.
    pub(crate) fn token_site(&self) -> crate::token::endpoints::TokenSite<'_> {
        crate::token::endpoints::TokenSite {
            tokens: &self.inner.tokens,
            storage: self.inner.storage.as_ref(),
            barrier: &self.inner.barrier,
            clock: &self.inner.clock,
            identity: &self.inner.identity,
            auth: &self.inner.auth,
        }
    }

    /// The response-wrapping step's handle on the token store, storage and clock.
    fn wrapping(&self) -> crate::wrapping::Wrapping<'_> {
        crate::wrapping::Wrapping {
            tokens: &self.inner.tokens,
            storage: self.inner.storage.as_ref(),
            clock: &self.inner.clock,
        }
    }

    /// Serve `req` without a token when its mount's engine lists the path as unauthenticated
    /// (OpenBao's `PathsSpecial.Unauthenticated`): no token check, no ACL, audited like a
    /// login. `None` = the path needs a token.
    async fn try_unauthenticated(&self, req: &Request) -> Result<Option<Response>> {
        if req.path.starts_with("sys/") || req.path.starts_with("auth/") {
            return Ok(None);
        }
        let router = self.router()?;
        let Some((mount, rel)) = router.route(&req.path) else {
            return Ok(None);
        };
        if !mount.engine.unauthenticated(rel, req.operation) {
            return Ok(None);
        }
        let mut inner = req.clone();
        inner.path = rel.to_string();
        inner.token = None;
        let input = AuditInput::new(req).with_mount(&mount.entry);
        if !self.inner.audit.is_empty() {
            self.inner.audit.log_request(&input).await?;
        }
        let resp = match mount.engine.handle(&mount.ctx, &inner).await {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(Error::not_found(format!(
                "no value found at `{}`",
                req.path
            ))),
            Err(e) => Err(e),
        };
        if !self.inner.audit.is_empty() {
            match &resp {
                Ok(r) => {
                    self.inner
                        .audit
                        .log_response(&input.with_response(r))
                        .await?
                }
                Err(e) => self.inner.audit.log_response(&input.with_error(e)).await?,
            }
        }
        resp.map(Some)
    }

    /// The typed fast path's decision, under `epoch` from [`Strongroom::fast_gate_epoch`]
    /// (which made the seal, audit and sync checks): the pipeline's token and ACL steps for
    /// `op` on `path`, without building a JSON request. `Ok(None)` sends the caller through
    /// [`Strongroom::handle`] instead: the token has limited uses, the path is not on a mount
    /// (or is a cubbyhole), or the matching ACL rule inspects request parameters.
    pub(crate) async fn fast_gate(
        &self,
        epoch: u64,
        token: &str,
        op: Operation,
        path: &str,
    ) -> Result<Option<FastGate>> {
        let path = normalize_request_path(path)?;
        let entry = self
            .token_site()
            .token_lookup(token)
            .await?
            .ok_or_else(Error::permission_denied)?;
        if entry.num_uses != 0 {
            return Ok(None);
        }
        // The same CIDR check as `resolve_token`: a typed call has no remote address, so a
        // CIDR-bound token is refused here exactly as `handle` refuses it.
        if !crate::auth::cidr::allows(&entry.bound_cidrs, None) {
            return Err(Error::permission_denied());
        }
        let router = self.router()?;
        let Some((mount, rel)) = router.route(&path) else {
            return Ok(None);
        };
        // A name not in the engine's form (`Prot ` for a lowercasing engine) takes the full
        // pipeline, which judges the path the engine would act on, or refuses it.
        if !matches!(
            crate::util::names::canonical_path(rel, mount.engine.name_rules()),
            crate::util::names::CanonicalPath::Same(_)
        ) {
            return Ok(None);
        }
        // Cubbyhole keys on the caller's salted id, which only the full pipeline hands it.
        if mount.entry.kind == crate::secrets::cubbyhole::KIND {
            return Ok(None);
        }
        let acl = self.acl_for_token(&entry).await?;
        if acl.inspects_body(&path) {
            return Ok(None);
        }
        let empty = Data::new();
        let d = acl.allow(op, &path, &empty, None);
        if !(d.allowed && (d.root_privs || !crate::policies::needs_sudo(&path))) {
            return Err(Error::policy_denied());
        }
        Ok(Some(FastGate {
            epoch,
            mount: Arc::downgrade(&mount),
            entry,
            acl_expires: acl.expires(),
        }))
    }

    /// The checks every typed fast-path call makes, decided or not: the seal, audit devices
    /// (which need the full pipeline: `None`) and other processes' changes. Returns the gate
    /// epoch to decide under, or to compare a remembered [`FastGate`] with; it is read before
    /// any decision, so a change made while deciding shows as a new epoch.
    pub(crate) async fn fast_gate_epoch(&self) -> Result<Option<u64>> {
        if self.inner.calls.is_closed() {
            return Err(crate::scheduler::shut_down());
        }
        if self.inner.barrier.is_sealed() {
            return Err(Error::sealed());
        }
        if !self.inner.audit.is_empty() {
            return Ok(None);
        }
        self.sync_store().await?;
        Ok(Some(self.gate_epoch()))
    }

    /// Whether a remembered decision still holds at `epoch` (`Ok(false)`: decide again); a
    /// token that expired since is refused, as a fresh decision would refuse it.
    pub(crate) fn fast_gate_holds(&self, gate: &FastGate, epoch: u64) -> Result<bool> {
        if gate.epoch != epoch {
            return Ok(false);
        }
        let now = self.inner.clock.now();
        if gate.entry.expired(now) {
            return Err(Error::permission_denied());
        }
        // A policy or rule the decision rested on expired: decide again, on the new ACL.
        Ok(gate.acl_expires.is_none_or(|t| now < t))
    }

    /// Route a request: `sys/`, the token store, or a mount (running the engine's existence
    /// check, which turns an update of a missing entry into a create).
    ///
    /// The path is put in the form the engine acts on first (its declared name rules, see
    /// [`crate::util::names`]), so the ACL that follows judges exactly what the engine will
    /// act on: `sys/policies/acl/ST-PROTECTED` is judged, and served, as
    /// `sys/policies/acl/st-protected`.
    async fn route(&self, req: &mut Request, caller: &TokenEntry) -> Result<Target> {
        if req.path == "sys" || req.path.starts_with("sys/") {
            return Ok(
                match canonicalize(req, "sys/".len(), crate::sys::NAME_RULES) {
                    Some(_) => Target::Sys,
                    None => Target::NotCanonical,
                },
            );
        }
        if req.path.starts_with("auth/token/") {
            return Ok(
                match canonicalize(
                    req,
                    "auth/token/".len(),
                    crate::token::endpoints::NAME_RULES,
                ) {
                    Some(rel) => Target::Token(rel),
                    None => Target::NotCanonical,
                },
            );
        }
        if req.path.starts_with("identity/") {
            return Ok(
                match canonicalize(
                    req,
                    "identity/".len(),
                    crate::identity::endpoints::NAME_RULES,
                ) {
                    Some(rel) => Target::Identity(rel),
                    None => Target::NotCanonical,
                },
            );
        }
        let (mount, rel) = match self.route_auth(&req.path)? {
            Some(found) => found,
            None => {
                let router = self.router()?;
                let (mount, rel) = router
                    .route(&req.path)
                    .ok_or_else(|| Error::unsupported_path(&req.path))?;
                (mount, rel.to_string())
            }
        };
        let Some(prefix) = req.path.strip_suffix(rel.as_str()).map(str::len) else {
            return Err(Error::internal(format!(
                "`{}` routed to a path that is not its suffix",
                req.path
            )));
        };
        let Some(rel) = canonicalize(req, prefix, mount.engine.name_rules()) else {
            return Ok(Target::NotCanonical);
        };
        if req.operation == Operation::Update {
            // Engines see the path relative to their mount.
            let full = std::mem::replace(&mut req.path, rel.clone());
            let exists = match as_owner(&mount, req, caller) {
                Ok(token) => {
                    let exists = mount.engine.exists(&mount.ctx, req).await;
                    if let Some(t) = token {
                        req.token = t;
                    }
                    exists
                }
                // The batch-token refusal comes after the ACL; a write stays an update.
                Err(_) => Ok(None),
            };
            req.path = full;
            if let Some(false) = exists? {
                req.operation = Operation::Create;
            }
        }
        Ok(Target::Mount(mount, rel))
    }

    /// What the audit entries say about the caller (`None` when no device is configured, so
    /// the common case costs nothing).
    fn audit_auth(&self, e: &TokenEntry) -> Option<AuditAuth> {
        if self.inner.audit.is_empty() {
            return None;
        }
        // OpenBao's auth block: `policies` is the sorted union with the identity policies.
        let identity_policies = match e.entity_id.as_str() {
            "" => Vec::new(),
            id => self
                .inner
                .identity
                .resolve(id)
                .ok()
                .flatten()
                .map(|r| r.identity_policies.clone())
                .unwrap_or_default(),
        };
        let mut policies = e.policies.clone();
        if !identity_policies.is_empty() {
            policies.extend(identity_policies.iter().cloned());
            policies.sort();
            policies.dedup();
        }
        Some(AuditAuth {
            accessor: e.accessor.clone(),
            display_name: e.display_name.clone(),
            policies,
            identity_policies,
            token_policies: e.policies.clone(),
            metadata: e.meta.clone(),
            remaining_uses: u64::try_from(e.num_uses).unwrap_or(0),
            entity_id: e.entity_id.clone(),
            token_type: e.token_type.clone(),
            token_ttl: e.ttl,
            token_issue_time: crate::clock::parse_rfc3339(&e.issue_time),
            ..AuditAuth::default()
        })
    }

    /// Log a call that failed before it ran (bad token, unknown path, denied) and hand back
    /// the error to return; a required device that cannot log turns it into its own error.
    async fn audit_failure(
        &self,
        req: &Request,
        auth: Option<&AuditAuth>,
        mount: Option<&MountEntry>,
        e: Error,
    ) -> Error {
        if self.inner.audit.is_empty() {
            return e;
        }
        let memo = crate::audit::AuditMemo::default();
        let mut input = AuditInput::new(req).with_error(&e).with_memo(&memo);
        if let Some(a) = auth {
            input = input.with_auth(a);
        }
        if let Some(m) = mount {
            input = input.with_mount(m);
        }
        if let Err(audit_err) = self.inner.audit.log_request(&input).await {
            return audit_err;
        }
        if let Err(audit_err) = self.inner.audit.log_response(&input).await {
            return audit_err;
        }
        e
    }

    pub(crate) async fn sync_store(&self) -> Result<()> {
        let Some(cache) = &self.inner.cache else {
            return Ok(());
        };
        if cache.sync().await? {
            self.inner.tokens.clear()?;
            self.inner.policies.clear()?;
            self.inner.leases.clear()?;
            self.reload_router().await?;
            self.inner
                .identity
                .reload_if_changed(self.inner.storage.as_ref())
                .await?;
        }
        Ok(())
    }

    async fn resolve_token(&self, req: &Request) -> Result<Caller> {
        let entry = self
            .token_site()
            .token_lookup(req.token_str())
            .await?
            .ok_or_else(Error::permission_denied)?;
        // A CIDR-bound token (from a login) is usable only from its networks.
        if !crate::auth::cidr::allows(&entry.bound_cidrs, req.remote_addr) {
            return Err(Error::permission_denied());
        }
        Ok(Caller {
            id: Zeroizing::new(req.token_str().to_string()),
            entry,
            sudo: false,
        })
    }

    /// Count a use of a limited-use token; returns whether this is its last use.
    async fn use_token(&self, caller: &mut Caller) -> Result<bool> {
        match self
            .inner
            .tokens
            .use_once(self.inner.storage.as_ref(), &caller.entry)
            .await?
        {
            None => Ok(false),
            Some(updated) => {
                let last = updated.num_uses < 0;
                caller.entry = Arc::new(updated);
                Ok(last)
            }
        }
    }

    /// After the last allowed use of a limited-use token, revoke it.
    async fn finish_use(&self, token: &TokenEntry, last_use: bool) -> Result<()> {
        if last_use {
            self.token_site()
                .token_revoke_tree(&token.salted_id)
                .await?;
        }
        Ok(())
    }

    /// The ACL step: may `token` do `req`? Returns whether it holds sudo (root privileges) on
    /// the path. Sudo-protected paths need it on top of the operation's capability.
    /// When `auth` is given (an audit device is configured), the granting policies are
    /// recorded in it for the audit entry.
    async fn authorize(
        &self,
        token: &TokenEntry,
        req: &Request,
        auth: Option<&mut AuditAuth>,
    ) -> Result<bool> {
        let acl = self.acl_for_token(token).await?;
        // The mount listing answers every valid token, listing what its policies reach.
        if req.path == "sys/internal/ui/mounts" && req.operation == Operation::Read {
            return Ok(acl.is_root());
        }
        if let Some(path) = req
            .path
            .strip_prefix("sys/internal/ui/mounts/")
            .filter(|p| !p.is_empty() && req.operation == Operation::Read)
        {
            return self.ui_mount_access(&acl, path, auth);
        }
        let decision = acl.allow(req.operation, &req.path, &req.data, req.wrap_ttl);
        let allowed =
            decision.allowed && (decision.root_privs || !crate::policies::needs_sudo(&req.path));
        if let Some(a) = auth {
            a.policy_results = Some(PolicyResults {
                allowed,
                granting_policies: decision
                    .granting_policies
                    .iter()
                    .map(|p| GrantingPolicy {
                        name: p.to_string(),
                        namespace_id: "root".into(),
                        policy_type: "acl".into(),
                        ..GrantingPolicy::default()
                    })
                    .collect(),
            });
        }
        if !allowed {
            return Err(Error::policy_denied());
        }
        Ok(decision.root_privs)
    }

    /// `sys/internal/ui/mounts/:path`, which the CLI reads before every `kv` command: OpenBao
    /// serves it to any valid token that has some access inside the mount holding `path`, not
    /// only to tokens with a capability on the sys path itself.
    fn ui_mount_access(
        &self,
        acl: &crate::policy::Acl,
        path: &str,
        auth: Option<&mut AuditAuth>,
    ) -> Result<bool> {
        let path = format!("{}/", path.trim_matches('/'));
        let router = self.router()?;
        let allowed = router
            .route(&path)
            .is_some_and(|(m, _)| acl.has_mount_access(&m.entry.path));
        if let Some(a) = auth {
            a.policy_results = Some(PolicyResults {
                allowed,
                granting_policies: Vec::new(),
            });
        }
        if !allowed {
            return Err(Error::new(
                ErrorCode::PermissionDenied,
                format!(
                    "preflight capability check returned 403, please ensure client's policies grant access to path \"{path}\""
                ),
            ));
        }
        Ok(acl.is_root())
    }

    /// The ACL a token's requests are judged by: its policies, plus those its entity and the
    /// entity's groups carry, resolved now (a change to the entity or a group applies to
    /// tokens already issued, as in OpenBao). A token without an entity costs nothing more.
    pub(crate) async fn acl_for_token(
        &self,
        token: &TokenEntry,
    ) -> Result<Arc<crate::policy::Acl>> {
        if token.entity_id.is_empty() || token.policies.iter().any(|p| p == "root") {
            return self.acl_for(&token.policies).await;
        }
        // Read the generation first: a change racing with the build makes the cached ACL
        // look stale, never the reverse.
        let generation = self.inner.identity.generation();
        // As OpenBao: the token of an entity that was deleted or disabled is refused as an
        // invalid token (plain `permission denied`).
        let identity = self
            .inner
            .identity
            .resolve(&token.entity_id)?
            .filter(|r| !r.disabled)
            .ok_or_else(Error::permission_denied)?;
        self.inner
            .policies
            .acl_for_entity(
                self.inner.storage.as_ref(),
                &token.policies,
                &token.entity_id,
                &identity,
                generation,
                self.inner.clock.now(),
            )
            .await
    }

    /// The compiled ACL for a set of policy names (cached until a policy changes).
    pub(crate) async fn acl_for(&self, policies: &[String]) -> Result<Arc<crate::policy::Acl>> {
        self.inner
            .policies
            .acl(
                self.inner.storage.as_ref(),
                policies,
                self.inner.clock.now(),
            )
            .await
    }

    /// The unauthenticated login door: when `req` is a login path of a mounted method, check
    /// the credential, create the token and answer. `None` = not a login, go on with the
    /// pipeline.
    pub(crate) async fn try_login(&self, req: &Request) -> Result<Option<Response>> {
        let Some((m, rel)) = self.inner.auth.route(&req.path)? else {
            return Ok(None);
        };
        if !m.method.is_login(rel, req.operation) {
            return Ok(None);
        }
        let entry = &m.mounted.entry;
        if !self.inner.audit.is_empty() {
            self.inner
                .audit
                .log_request(&AuditInput::new(req).with_mount(entry))
                .await?;
        }
        let result = async {
            let lc = crate::auth::LoginContext {
                ctx: &m.mounted.ctx,
                remote_addr: req.remote_addr,
            };
            // OpenBao checks the lockout before the credential: a locked user is refused
            // even with the right password.
            let lockout = lockout::for_login(
                &self.inner.user_lockouts,
                entry,
                m.method.lockout_alias(rel, req),
            );
            let storage = self.inner.storage.as_ref();
            let mut state = lockout::State::Clean;
            // Held until the failure, if any, is recorded: parallel guesses wait their turn.
            let mut _permit = None;
            if let Some((user, policy)) = &lockout {
                let clock = &self.inner.clock;
                let (s, permit) = self
                    .inner
                    .login_checks
                    .admit(storage, user, policy, || clock.now().unix_timestamp())
                    .await?;
                state = s;
                _permit = Some(permit);
            }
            let grant = match m.method.login(&lc, req).await {
                Ok(g) => g,
                Err(e) => {
                    if let (Some((user, policy)), true) = (&lockout, e.is_invalid_credentials()) {
                        let now = self.inner.clock.now().unix_timestamp();
                        lockout::record_failure(storage, user, policy, now).await?;
                    }
                    return Err(e);
                }
            };
            let reuse = grant.reuse_key.clone();
            let resp = crate::token::endpoints::create_login_token(
                &self.token_site(),
                entry,
                &req.path,
                grant,
            )
            .await?;
            if let Some(key) = reuse {
                self.replace_previous_login(&m.mounted.ctx, &key, &resp)
                    .await?;
            }
            // Most logins have no failures on record: no extra storage round trip for them.
            if let (Some((user, _)), lockout::State::Counted) = (&lockout, state) {
                lockout::clear(storage, user).await?;
            }
            Ok(resp)
        }
        .await;
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => {
                if !self.inner.audit.is_empty() {
                    self.inner
                        .audit
                        .log_response(&AuditInput::new(req).with_mount(entry).with_error(&e))
                        .await?;
                }
                return Err(e);
            }
        };
        resp.request_id = req.id.clone();
        if !self.inner.audit.is_empty() {
            self.inner
                .audit
                .log_response(&AuditInput::new(req).with_mount(entry).with_response(&resp))
                .await?;
        }
        Ok(Some(resp))
    }

    /// Login reuse: remember the new token (by its salted id only) under `key` and revoke the
    /// one the previous login with the same key got.
    async fn replace_previous_login(
        &self,
        ctx: &crate::secrets::EngineContext,
        key: &str,
        resp: &Response,
    ) -> Result<()> {
        let Some(auth) = resp
            .auth
            .as_ref()
            .filter(|a| !a.client_token.expose_secret().starts_with("b."))
        else {
            return Ok(());
        };
        let salted = self
            .inner
            .tokens
            .salt_id(auth.client_token.expose_secret())?;
        let slot = format!("reuse/{key}");
        let previous = ctx.storage.get(&slot).await?;
        ctx.storage.put(&slot, salted.as_bytes()).await?;
        if let Some(old) = previous.and_then(|p| String::from_utf8(p).ok()) {
            if old != salted {
                self.token_site().token_revoke_tree(&old).await?;
            }
        }
        Ok(())
    }
}

/// A fast-path authorisation decision of the typed API: the token may do this operation on
/// this path of `mount`, as long as [`Strongroom::gate_epoch`] is still `epoch`, the token
/// has not expired and neither has the ACL (a policy or rule with an `expiration`).
#[derive(Clone)]
pub(crate) struct FastGate {
    pub(crate) epoch: u64,
    /// Weak: a handle's remembered decision must not keep a mount, and the keys in its
    /// memory, alive after the mount is gone (sealed, unmounted).
    pub(crate) mount: std::sync::Weak<router::Mounted>,
    pub(crate) entry: Arc<TokenEntry>,
    pub(crate) acl_expires: Option<time::OffsetDateTime>,
}

/// Where a request goes after routing.
enum Target {
    Sys,
    Token(String),
    /// The identity store, with the path after `identity/`.
    Identity(String),
    /// The mount and the path relative to it.
    Mount(Arc<crate::router::Mounted>, String),
    /// A path whose name no object can have (`transit/keys/a%20b`): judged by the ACL as
    /// sent, then answered 404 `unsupported path`, as OpenBao's framework answers it.
    NotCanonical,
}

/// Put `req.path` (whose first `prefix` bytes are the mount) in the form the engine acts on
/// under `rules`, returning the path relative to the mount; `None` when the path names
/// nothing the engine can have (the path is left as sent, for the ACL to judge).
fn canonicalize(
    req: &mut Request,
    prefix: usize,
    rules: &[crate::util::names::NameRule],
) -> Option<String> {
    use crate::util::names::{CanonicalPath, canonical_path};
    let rel = req.path.get(prefix..).unwrap_or("");
    match canonical_path(rel, rules) {
        CanonicalPath::Same(rel) => Some(rel.to_string()),
        CanonicalPath::Rewritten(rel) => {
            req.path.truncate(prefix);
            req.path.push_str(&rel);
            Some(rel)
        }
        CanonicalPath::NotCanonical => None,
    }
}

/// Cubbyhole mounts see the caller's salted token id in place of the token (as OpenBao's
/// router does): swap it in, returning the token to put back. Batch tokens have no cubbyhole.
fn as_owner(
    mount: &router::Mounted,
    req: &mut Request,
    caller: &TokenEntry,
) -> Result<Option<Option<SecretString>>> {
    if mount.entry.kind != crate::secrets::cubbyhole::KIND {
        return Ok(None);
    }
    if caller.is_batch() || caller.salted_id.is_empty() {
        return Err(Error::invalid_input(
            "cubbyhole operations are only supported by 'service' type tokens",
        ));
    }
    Ok(Some(
        req.token
            .replace(SecretString::from(caller.salted_id.clone())),
    ))
}

/// OpenBao's warning when a wrapping token reads its response directly.
fn cubbyhole_response_warning(req: &Request, caller: &TokenEntry, mut resp: Response) -> Response {
    if req.operation == Operation::Read
        && req.path == "cubbyhole/response"
        && caller
            .policies
            .iter()
            .any(|p| p == crate::policy::RESPONSE_WRAPPING_POLICY_NAME)
    {
        resp.warn("Reading from 'cubbyhole/response' is deprecated. Please use sys/wrapping/unwrap to unwrap responses, as it provides additional security checks and other benefits.");
    }
    resp
}

fn with_id(mut resp: Response, req: &Request) -> Response {
    resp.request_id = req.id.clone();
    resp
}

/// Strip the leading `/`, refuse non-printable characters and relative segments.
fn normalize_request_path(path: &str) -> Result<String> {
    let p = path.trim_start_matches('/');
    if p.chars().any(|c| c.is_control()) {
        return Err(Error::invalid_input(
            "path contains non-printable characters",
        ));
    }
    if p.contains('.') && p.split('/').any(|s| s == ".." || s == ".") {
        return Err(Error::invalid_input(format!("invalid path `{p}`")));
    }
    if p.len() > 4096 {
        return Err(Error::invalid_input("path is too long"));
    }
    Ok(p.to_string())
}
