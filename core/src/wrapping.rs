//! Response wrapping (OpenBao's `X-Vault-Wrap-TTL`): a response is stored in the cubbyhole of a
//! new single-use token with the `response-wrapping` policy, and the caller gets only that
//! token (`wrap_info`). `sys/wrapping/{wrap,lookup,unwrap,rewrap}` create, inspect, open and
//! replace such tokens.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Map, Value, json};

use crate::clock::SharedClock;
use crate::clock::rfc3339;
use crate::error::{Error, ErrorCode, Result};
use crate::policy::RESPONSE_WRAPPING_POLICY_NAME;
use crate::request::{Data, Operation, Request, Response, WrapInfo};
use crate::storage::Backend;
use crate::storage::TxnOp;
use crate::token::endpoints::Caller;
use crate::token::{TokenEntry, TokenStore};

/// OpenBao's `consts.ErrInvalidWrappingToken`.
pub(crate) const INVALID_TOKEN: &str = "wrapping token is not valid or does not exist";
/// The cubbyhole entries of a wrapping token.
const RESPONSE_KEY: &str = "response";
const INFO_KEY: &str = "wrapinfo";

/// The paths whose wrapping token is validated before the call runs.
fn validates_token(path: &str) -> bool {
    matches!(
        path,
        "sys/wrapping/lookup" | "sys/wrapping/unwrap" | "sys/wrapping/rewrap"
    )
}

/// Whether `e` is a wrapping token (its only policy is `response-wrapping`).
fn is_wrapping(e: &TokenEntry) -> bool {
    matches!(e.policies.as_slice(), [p] if p == RESPONSE_WRAPPING_POLICY_NAME)
}

fn invalid() -> Error {
    Error::invalid_input(INVALID_TOKEN)
}

fn validation_error(why: &str) -> Error {
    Error::new(
        ErrorCode::PermissionDenied,
        format!("error validating wrapping token: {why}"),
    )
}

/// The wrapping token a request names: `token` in the body (a third party unwraps), else the
/// client token itself. Errors carry OpenBao's texts.
fn named_token(req: &Request) -> Result<(String, bool)> {
    match req.data.get("token") {
        None | Some(Value::Null) => {
            let t = req.token_str();
            if t.is_empty() {
                return Err(validation_error("token is empty"));
            }
            Ok((t.to_string(), false))
        }
        Some(Value::String(s)) if s.is_empty() => {
            Err(validation_error("empty token in request body"))
        }
        Some(Value::String(s)) => Ok((s.clone(), true)),
        Some(_) => Err(validation_error("could not decode token in request body")),
    }
}

/// What response wrapping works on, and nothing more: the token store (wrapping tokens and
/// their cubbyholes), the storage behind the barrier and the clock. The pipeline hands one
/// out per call ([`crate::Strongroom`] is not reachable from here).
pub(crate) struct Wrapping<'a> {
    pub(crate) tokens: &'a TokenStore,
    pub(crate) storage: &'a dyn Backend,
    pub(crate) clock: &'a SharedClock,
}

impl Wrapping<'_> {
    /// The live wrapping token a request names, as OpenBao checks it before `lookup`, `unwrap`
    /// and `rewrap` run.
    async fn wrapping_token(&self, req: &Request) -> Result<(TokenEntry, bool)> {
        let (id, third_party) = named_token(req)?;
        match self
            .tokens
            .lookup(self.storage, &id, self.clock.now())
            .await?
        {
            Some(e) if is_wrapping(&e) => Ok(((*e).clone(), third_party)),
            _ => Err(invalid()),
        }
    }

    /// The pipeline's step before authentication: validate the wrapping token of
    /// `sys/wrapping/{lookup,unwrap,rewrap}`, and answer `lookup`, which needs no other token.
    pub(crate) async fn wrapping_precheck(
        &self,
        req: &Request,
    ) -> Result<Option<(Response, TokenEntry)>> {
        if !validates_token(&req.path) {
            return Ok(None);
        }
        let (entry, _) = self.wrapping_token(req).await?;
        if req.path != "sys/wrapping/lookup" {
            return Ok(None);
        }
        if !matches!(
            req.operation,
            Operation::Read | Operation::Update | Operation::Create
        ) {
            return Err(Error::unsupported_operation());
        }
        let info = self
            .cubbyhole_entry(&entry.salted_id, INFO_KEY)
            .await?
            .ok_or_else(invalid)?;
        let mut d = Data::new();
        for k in ["creation_path", "creation_time", "creation_ttl"] {
            if let Some(v) = info.get(k) {
                d.insert(k.into(), v.clone());
            }
        }
        Ok(Some((Response::with_data(d), entry)))
    }

    /// `sys/wrapping/{wrap,unwrap,rewrap}` for an authenticated caller.
    pub(crate) async fn wrapping_endpoint(
        &self,
        caller: &Caller,
        req: &Request,
    ) -> Result<Response> {
        if !matches!(req.operation, Operation::Update | Operation::Create) {
            return Err(Error::unsupported_operation());
        }
        match req.path.as_str() {
            "sys/wrapping/wrap" => {
                if req.wrap_ttl.is_none() {
                    return Err(Error::invalid_input(
                        "endpoint requires response wrapping to be used",
                    ));
                }
                Ok(Response::with_data(req.data.clone()))
            }
            "sys/wrapping/unwrap" => {
                let salted = self.open_wrapping_token(caller, req).await?;
                let stored = self.cubbyhole_entry(&salted, RESPONSE_KEY).await;
                self.close_wrapping_token(caller, &salted).await?;
                let raw = stored?
                    .and_then(|d| {
                        d.get(RESPONSE_KEY)
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .ok_or_else(|| Error::internal("no response found inside the cubbyhole"))?;
                if raw.is_empty() {
                    return Ok(Response::default());
                }
                let v: Value = serde_json::from_str(&raw).map_err(|e| {
                    Error::storage("wrapped response is not valid json").with_source(e)
                })?;
                Ok(Response::from_envelope(&v))
            }
            "sys/wrapping/rewrap" => {
                let salted = self.open_wrapping_token(caller, req).await?;
                let read = async {
                    let info = self.cubbyhole_entry(&salted, INFO_KEY).await?;
                    let resp = self.cubbyhole_entry(&salted, RESPONSE_KEY).await?;
                    Ok::<_, Error>((info, resp))
                }
                .await;
                self.close_wrapping_token(caller, &salted).await?;
                let (info, resp) = read?;
                let info = info.ok_or_else(invalid)?;
                let raw = resp
                    .and_then(|d| {
                        d.get(RESPONSE_KEY)
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .ok_or_else(|| Error::internal("no response found inside the cubbyhole"))?;
                let ttl = info
                    .get("creation_ttl")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| Error::storage("wrapping information is corrupt"))?;
                let path = info
                    .get("creation_path")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let wrap = self
                    .create_wrapping_token(&path, Duration::from_secs(ttl), raw, String::new())
                    .await?;
                Ok(Response {
                    wrap_info: Some(wrap),
                    ..Response::default()
                })
            }
            _ => Err(Error::unsupported_path(&req.path)),
        }
    }

    /// Take the single use of the wrapping token an `unwrap`/`rewrap` names. When the caller is
    /// the wrapping token itself, the pipeline has already used it. Returns its salted id.
    async fn open_wrapping_token(&self, caller: &Caller, req: &Request) -> Result<String> {
        if !named_token(req)?.1 {
            // The caller is the wrapping token: the pipeline counted this use already.
            if !is_wrapping(&caller.entry) {
                return Err(invalid());
            }
            return Ok(caller.entry.salted_id.clone());
        }
        let (entry, _) = self.wrapping_token(req).await?;
        // Counting the use first makes a concurrent second unwrap fail.
        self.tokens
            .use_once(self.storage, &entry)
            .await
            .map_err(|e| {
                if e.code() == ErrorCode::PermissionDenied {
                    invalid()
                } else {
                    e
                }
            })?;
        Ok(entry.salted_id)
    }

    /// A third party's unwrap revokes the wrapping token here; the token's own unwrap is its
    /// last use, which the pipeline revokes.
    async fn close_wrapping_token(&self, caller: &Caller, salted: &str) -> Result<()> {
        if caller.entry.salted_id != salted {
            self.tokens.revoke_one(self.storage, salted).await?;
        }
        Ok(())
    }

    /// One JSON entry of a token's cubbyhole.
    async fn cubbyhole_entry(&self, salted: &str, key: &str) -> Result<Option<Data>> {
        let Some(cubby) = self.tokens.cubbyhole_of(salted)? else {
            return Ok(None);
        };
        match self.storage.get(&format!("{cubby}{key}")).await? {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| Error::storage("cubbyhole entry is corrupt").with_source(e)),
        }
    }

    /// Wrap `resp`, the answer to `req`, in a new wrapping token living `ttl`.
    pub(crate) async fn wrap_response(
        &self,
        req: &Request,
        resp: &Response,
        ttl: Duration,
    ) -> Result<Response> {
        let mut env = resp.envelope();
        env.insert("request_id".into(), json!(req.id));
        // Go marshals maps with sorted keys; the stored text is what unwrap hands back.
        if let Some(data) = env.get_mut("data") {
            sort_keys(data);
        }
        let raw = serde_json::to_string(&Value::Object(env))
            .map_err(|e| Error::internal("cannot encode the wrapped response").with_source(e))?;
        let wrapped_accessor = resp
            .auth
            .as_ref()
            .map(|a| a.accessor.clone())
            .unwrap_or_default();
        let wrap = self
            .create_wrapping_token(&req.path, ttl, raw, wrapped_accessor)
            .await?;
        Ok(Response {
            request_id: req.id.clone(),
            wrap_info: Some(wrap),
            ..Response::default()
        })
    }

    /// A new wrapping token for `path` holding `response` (the envelope JSON) in its cubbyhole:
    /// an orphan service token with the `response-wrapping` policy, one use, TTL `ttl`.
    async fn create_wrapping_token(
        &self,
        path: &str,
        ttl: Duration,
        response: String,
        wrapped_accessor: String,
    ) -> Result<WrapInfo> {
        let now = self.clock.now();
        let mut entry =
            crate::token::new_entry(now, path, vec![RESPONSE_WRAPPING_POLICY_NAME.into()]);
        entry.num_uses = 1;
        entry.ttl = ttl.as_secs();
        entry.creation_ttl = ttl.as_secs();
        entry.explicit_max_ttl = ttl.as_secs();
        entry.expire_at_ns = Some(crate::clock::expiry_ns(now, ttl)?);
        entry.renewable = false;
        let storage = self.storage;
        let (id, accessor) = self.tokens.store_new(storage, entry, None).await?;
        let salted = self.tokens.salt_id(&id)?;
        let creation_time = rfc3339(now);
        let stored = async {
            let cubby = self
                .tokens
                .cubbyhole_of(&salted)?
                .ok_or_else(|| Error::internal("there is no cubbyhole mount"))?;
            let encode = |v: Value| {
                serde_json::to_vec(&v)
                    .map_err(|e| Error::internal("cannot encode wrapping entry").with_source(e))
            };
            storage
                .transaction(vec![
                    TxnOp::Put {
                        key: format!("{cubby}{RESPONSE_KEY}"),
                        value: encode(json!({ RESPONSE_KEY: response }))?,
                    },
                    TxnOp::Put {
                        key: format!("{cubby}{INFO_KEY}"),
                        value: encode(json!({
                            "creation_path": path,
                            "creation_time": creation_time,
                            "creation_ttl": ttl.as_secs(),
                        }))?,
                    },
                ])
                .await
        }
        .await;
        if let Err(e) = stored {
            // No token may be handed out without its response.
            self.tokens.revoke_one(self.storage, &salted).await?;
            return Err(e);
        }
        Ok(WrapInfo {
            token: SecretString::from(id),
            accessor,
            ttl: ttl.as_secs(),
            creation_time,
            creation_path: path.to_string(),
            wrapped_accessor,
        })
    }
}

fn sort_keys(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            *m = entries
                .into_iter()
                .map(|(k, mut v)| {
                    sort_keys(&mut v);
                    (k, v)
                })
                .collect::<Map<String, Value>>();
        }
        Value::Array(a) => a.iter_mut().for_each(sort_keys),
        _ => {}
    }
}
