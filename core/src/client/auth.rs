//! Typed auth-method API: `client.auth().userpass("userpass").login("bob", "pw")` and friends.
//! Logins return a [`Client`] holding the new token.

use secrecy::SecretString;
use serde_json::{Value, json};

use super::{Client, keys_of, none_if_missing};
use crate::error::{Error, Result};
use crate::request::{Auth, Data, Request};

/// Auth methods: enable and disable them, and reach each one's typed handle.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use strongroom::{Config, Strongroom, data};
/// let sr = Strongroom::open(Config::dev()).await?;
/// let root = sr.client(sr.dev_root_token().unwrap_or_default());
/// root.auth().enable("userpass", "userpass").await?;
/// let up = root.auth().userpass("userpass");
/// up.write_user("bob", "correct horse", data(serde_json::json!({"token_policies": "dev"}))).await?;
/// let bob = sr.client("").auth().userpass("userpass").login("bob", "correct horse").await?;
/// let me = bob.token().lookup_self().await?;
/// assert_eq!(me.display_name, "userpass-bob");
/// # Ok::<(), strongroom::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct AuthMethods {
    pub(super) client: Client,
}

impl AuthMethods {
    /// Enable a method of type `kind` (`userpass`, `approle`, `kubernetes`) at `path`.
    pub async fn enable(&self, path: &str, kind: &str) -> Result<()> {
        self.enable_with(path, kind, Data::new()).await
    }

    /// Enable a method with extra `sys/auth` settings (`description`, `config`).
    pub async fn enable_with(&self, path: &str, kind: &str, mut settings: Data) -> Result<()> {
        settings.insert("type".into(), Value::String(kind.to_string()));
        self.client
            .write(&format!("sys/auth/{}", path.trim_matches('/')), settings)
            .await
            .map(|_| ())
    }

    /// Disable the method at `path`; the tokens it issued are revoked.
    pub async fn disable(&self, path: &str) -> Result<()> {
        self.client
            .delete(&format!("sys/auth/{}", path.trim_matches('/')))
            .await
    }

    /// The enabled methods (`sys/auth`), keyed by path.
    pub async fn list(&self) -> Result<Data> {
        Ok(self
            .client
            .read("sys/auth")
            .await?
            .and_then(|r| r.data)
            .unwrap_or_default())
    }

    /// The userpass method mounted at `mount`.
    pub fn userpass(&self, mount: &str) -> Userpass {
        Userpass {
            client: self.client.clone(),
            mount: mount.trim_matches('/').to_string(),
        }
    }

    /// The AppRole method mounted at `mount`.
    pub fn approle(&self, mount: &str) -> AppRole {
        AppRole {
            client: self.client.clone(),
            mount: mount.trim_matches('/').to_string(),
        }
    }

    /// The Kubernetes method mounted at `mount`.
    pub fn kubernetes(&self, mount: &str) -> Kubernetes {
        Kubernetes {
            client: self.client.clone(),
            mount: mount.trim_matches('/').to_string(),
        }
    }
}

/// Run an unauthenticated login and hand back the auth block.
async fn login(client: &Client, path: String, body: Data) -> Result<Auth> {
    let mut req = Request::write(path, body);
    req.token = None;
    client
        .sr
        .handle(req)
        .await?
        .auth
        .ok_or_else(|| Error::internal("the login returned no auth"))
}

fn client_for(client: &Client, auth: &Auth) -> Client {
    Client::new(client.sr.clone(), auth.client_token.clone())
}

/// The userpass method at one mount.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use strongroom::{Config, Strongroom, data};
/// let sr = Strongroom::open(Config::dev()).await?;
/// let root = sr.client(sr.dev_root_token().unwrap_or_default());
/// root.auth().enable("userpass", "userpass").await?;
/// let users = root.auth().userpass("userpass");
/// users
///     .write_user("bob", "correct horse", data(serde_json::json!({"token_policies": "dev"})))
///     .await?;
/// let auth = users.login_auth("bob", "correct horse").await?;
/// assert_eq!(auth.policies, ["default", "dev"]);
/// // A wrong password is refused, with OpenBao's text (and counts towards the lockout).
/// let e = users.login_auth("bob", "wrong").await.unwrap_err();
/// assert_eq!(e.message(), "invalid username or password");
/// # Ok::<(), strongroom::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Userpass {
    client: Client,
    mount: String,
}

impl Userpass {
    /// Create or update a user; `settings` holds the `token_*` fields.
    pub async fn write_user(&self, name: &str, password: &str, mut settings: Data) -> Result<()> {
        settings.insert("password".into(), Value::String(password.to_string()));
        self.client
            .write(&format!("auth/{}/users/{name}", self.mount), settings)
            .await
            .map(|_| ())
    }

    /// A user's settings (never the password); `None` when there is no such user.
    pub async fn read_user(&self, name: &str) -> Result<Option<Data>> {
        Ok(self
            .client
            .read(&format!("auth/{}/users/{name}", self.mount))
            .await?
            .and_then(|r| r.data))
    }

    /// Change a user's password.
    pub async fn set_password(&self, name: &str, password: &str) -> Result<()> {
        self.client
            .write(
                &format!("auth/{}/users/{name}/password", self.mount),
                crate::data(json!({ "password": password })),
            )
            .await
            .map(|_| ())
    }

    /// Delete a user.
    pub async fn delete_user(&self, name: &str) -> Result<()> {
        self.client
            .delete(&format!("auth/{}/users/{name}", self.mount))
            .await
    }

    /// The user names.
    pub async fn list_users(&self) -> Result<Vec<String>> {
        self.client
            .list(&format!("auth/{}/users", self.mount))
            .await
    }

    /// Log in; the returned auth block holds the token, its accessor, policies and TTL.
    pub async fn login_auth(&self, user: &str, password: &str) -> Result<Auth> {
        login(
            &self.client,
            format!("auth/{}/login/{user}", self.mount),
            crate::data(json!({ "password": password })),
        )
        .await
    }

    /// Log in and get a client holding the new token.
    pub async fn login(&self, user: &str, password: &str) -> Result<Client> {
        let auth = self.login_auth(user, password).await?;
        Ok(client_for(&self.client, &auth))
    }
}

/// A generated AppRole secret id (the id itself is a secret: not shown by `Debug`).
#[derive(Clone)]
pub struct SecretId {
    /// The secret id.
    pub secret_id: SecretString,
    /// Its accessor (safe to log; used to look up or destroy it).
    pub accessor: String,
    /// Seconds it is valid for (0 = no expiry).
    pub ttl: u64,
    /// Logins it allows (0 = unlimited).
    pub num_uses: u64,
}

impl std::fmt::Debug for SecretId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretId")
            .field("accessor", &self.accessor)
            .field("ttl", &self.ttl)
            .field("num_uses", &self.num_uses)
            .finish_non_exhaustive()
    }
}

/// The AppRole method at one mount.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use secrecy::ExposeSecret;
/// use strongroom::{Config, Strongroom, data};
/// let sr = Strongroom::open(Config::dev()).await?;
/// let root = sr.client(sr.dev_root_token().unwrap_or_default());
/// root.auth().enable("approle", "approle").await?;
/// let approle = root.auth().approle("approle");
/// approle
///     .write_role("ci", data(serde_json::json!({"token_policies": "deploy", "secret_id_ttl": "10m"})))
///     .await?;
/// // The role id is handed to the machine's config; the secret id is delivered separately.
/// let role_id = approle.role_id("ci").await?;
/// let secret_id = approle.generate_secret_id("ci", data(serde_json::json!({}))).await?;
/// let ci = sr
///     .login_approle("approle", &role_id, secret_id.secret_id.expose_secret())
///     .await?;
/// assert_eq!(ci.token().lookup_self().await?.policies, ["default", "deploy"]);
/// # Ok::<(), strongroom::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct AppRole {
    client: Client,
    mount: String,
}

impl AppRole {
    /// Create or update a role (`bind_secret_id`, `secret_id_num_uses`, `secret_id_ttl`,
    /// `secret_id_bound_cidrs`, `token_*`).
    pub async fn write_role(&self, name: &str, settings: Data) -> Result<()> {
        self.client
            .write(&format!("auth/{}/role/{name}", self.mount), settings)
            .await
            .map(|_| ())
    }

    /// A role's settings; `None` when there is no such role.
    pub async fn read_role(&self, name: &str) -> Result<Option<Data>> {
        Ok(self
            .client
            .read(&format!("auth/{}/role/{name}", self.mount))
            .await?
            .and_then(|r| r.data))
    }

    /// Delete a role and its secret ids.
    pub async fn delete_role(&self, name: &str) -> Result<()> {
        self.client
            .delete(&format!("auth/{}/role/{name}", self.mount))
            .await
    }

    /// A role's role id.
    pub async fn role_id(&self, name: &str) -> Result<String> {
        let r = self
            .client
            .read(&format!("auth/{}/role/{name}/role-id", self.mount))
            .await?
            .ok_or_else(|| Error::not_found(format!("no role `{name}`")))?;
        Ok(r.get("role_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }

    /// Generate a secret id for a role; `settings` may hold `metadata`, `cidr_list`,
    /// `token_bound_cidrs`, `num_uses`, `ttl`.
    pub async fn generate_secret_id(&self, name: &str, settings: Data) -> Result<SecretId> {
        let r = self
            .client
            .write(
                &format!("auth/{}/role/{name}/secret-id", self.mount),
                settings,
            )
            .await?;
        let s = |k: &str| {
            r.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let n = |k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
        Ok(SecretId {
            secret_id: SecretString::from(s("secret_id")),
            accessor: s("secret_id_accessor"),
            ttl: n("secret_id_ttl"),
            num_uses: n("secret_id_num_uses"),
        })
    }

    /// The accessors of a role's secret ids.
    pub async fn list_secret_ids(&self, name: &str) -> Result<Vec<String>> {
        match none_if_missing(
            self.client
                .handle(Request::list(format!(
                    "auth/{}/role/{name}/secret-id",
                    self.mount
                )))
                .await,
        )? {
            None => Ok(Vec::new()),
            Some(r) => Ok(keys_of(&r)),
        }
    }

    /// Destroy a secret id by its accessor.
    pub async fn destroy_secret_id_accessor(&self, name: &str, accessor: &str) -> Result<()> {
        self.client
            .write(
                &format!("auth/{}/role/{name}/secret-id-accessor/destroy", self.mount),
                crate::data(json!({ "secret_id_accessor": accessor })),
            )
            .await
            .map(|_| ())
    }

    /// Remove expired and dangling secret ids (`tidy/secret-id`).
    pub async fn tidy(&self) -> Result<()> {
        self.client
            .write(&format!("auth/{}/tidy/secret-id", self.mount), Data::new())
            .await
            .map(|_| ())
    }

    /// Log in; the returned auth block holds the token.
    pub async fn login_auth(&self, role_id: &str, secret_id: &str) -> Result<Auth> {
        let mut body = crate::data(json!({ "role_id": role_id }));
        if !secret_id.is_empty() {
            body.insert("secret_id".into(), Value::String(secret_id.to_string()));
        }
        login(&self.client, format!("auth/{}/login", self.mount), body).await
    }

    /// Log in and get a client holding the new token.
    pub async fn login(&self, role_id: &str, secret_id: &str) -> Result<Client> {
        let auth = self.login_auth(role_id, secret_id).await?;
        Ok(client_for(&self.client, &auth))
    }
}

/// The Kubernetes method at one mount: a pod logs in with its service-account token, checked
/// by the API server's TokenReview or offline against the cluster's signing keys.
///
/// ```no_run
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use strongroom::{Config, Strongroom, data};
/// let sr = Strongroom::open(Config::dev()).await?;
/// let root = sr.client(sr.dev_root_token().unwrap_or_default());
/// root.auth().enable("kubernetes", "kubernetes").await?;
/// let k8s = root.auth().kubernetes("kubernetes");
/// k8s.configure(data(serde_json::json!({
///     "kubernetes_host": "https://kubernetes.default.svc",
///     "kubernetes_ca_cert": std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt").unwrap_or_default(),
/// })))
/// .await?;
/// k8s.write_role("api-service", data(serde_json::json!({
///     "bound_service_account_names": "api-service",
///     "bound_service_account_namespaces": "production",
///     "token_policies": "api-service",
/// })))
/// .await?;
/// // In the pod: its projected service-account token is the credential.
/// let jwt = std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/token").unwrap_or_default();
/// let app = sr.login_kubernetes("kubernetes", "api-service", &jwt).await?;
/// # let _ = app;
/// # Ok::<(), strongroom::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Kubernetes {
    client: Client,
    mount: String,
}

impl Kubernetes {
    /// Write the mount's config (`kubernetes_host`, `kubernetes_ca_cert`,
    /// `token_reviewer_jwt`, `pem_keys`, `issuer`, ...).
    pub async fn configure(&self, config: Data) -> Result<()> {
        self.client
            .write(&format!("auth/{}/config", self.mount), config)
            .await
            .map(|_| ())
    }

    /// Create or update a role.
    pub async fn write_role(&self, name: &str, settings: Data) -> Result<()> {
        self.client
            .write(&format!("auth/{}/role/{name}", self.mount), settings)
            .await
            .map(|_| ())
    }

    /// A role's settings; `None` when there is no such role.
    pub async fn read_role(&self, name: &str) -> Result<Option<Data>> {
        Ok(self
            .client
            .read(&format!("auth/{}/role/{name}", self.mount))
            .await?
            .and_then(|r| r.data))
    }

    /// Log in with a service-account JWT; the returned auth block holds the token.
    pub async fn login_auth(&self, role: &str, jwt: &str) -> Result<Auth> {
        login(
            &self.client,
            format!("auth/{}/login", self.mount),
            crate::data(json!({ "role": role, "jwt": jwt })),
        )
        .await
    }

    /// Log in and get a client holding the new token.
    pub async fn login(&self, role: &str, jwt: &str) -> Result<Client> {
        let auth = self.login_auth(role, jwt).await?;
        Ok(client_for(&self.client, &auth))
    }
}

impl crate::strongroom::Strongroom {
    /// Log in with userpass at `mount` and get a client holding the new token.
    pub async fn login_userpass(&self, mount: &str, user: &str, password: &str) -> Result<Client> {
        self.client("")
            .auth()
            .userpass(mount)
            .login(user, password)
            .await
    }

    /// Log in with AppRole at `mount` and get a client holding the new token.
    pub async fn login_approle(
        &self,
        mount: &str,
        role_id: &str,
        secret_id: &str,
    ) -> Result<Client> {
        self.client("")
            .auth()
            .approle(mount)
            .login(role_id, secret_id)
            .await
    }

    /// Log in with a Kubernetes service-account JWT at `mount`.
    pub async fn login_kubernetes(&self, mount: &str, role: &str, jwt: &str) -> Result<Client> {
        self.client("")
            .auth()
            .kubernetes(mount)
            .login(role, jwt)
            .await
    }
}
