//! `Client` and the typed engine handles `Kv`, `Transit`, `Sys`, `Tokens`: each wraps one core
//! handle; a method converts its arguments, makes one core call and converts the result.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use strongroom::{Ciphertext, EncryptOptions, Operation, Request};
use tokio::runtime::Runtime;

use crate::convert::{data_arg, data_to_py, datetime, duration_arg, from_json, secret, token_arg};
use crate::database::Database;
use crate::error::{ToPyErr, invalid};
use crate::leases::Leases;
use crate::runtime::{Flavour, Local};

fn none(py: Python<'_>, _: ()) -> PyResult<Py<PyAny>> {
    Ok(py.None())
}

fn strings(py: Python<'_>, v: Vec<String>) -> PyResult<Py<PyAny>> {
    Ok(PyList::new(py, v)?.into_any().unbind())
}

/// The auth block of a login or token creation, `client_token` as a `Secret`.
pub(crate) fn auth_to_py(py: Python<'_>, a: &strongroom::Auth) -> PyResult<Py<PyAny>> {
    let d = from_json(py, &a.to_json())?;
    d.bind(py)
        .set_item("client_token", secret(py, a.client_token.expose_secret())?)?;
    Ok(d)
}

/// A response as `{data, auth, lease_id, lease_duration, renewable, warnings, wrap_info}`.
fn response_to_py(py: Python<'_>, r: &strongroom::Response) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    d.set_item(
        "data",
        r.data.as_ref().map(|m| data_to_py(py, m)).transpose()?,
    )?;
    d.set_item(
        "auth",
        r.auth.as_ref().map(|a| auth_to_py(py, a)).transpose()?,
    )?;
    d.set_item("lease_id", &r.lease_id)?;
    d.set_item("lease_duration", r.lease_duration)?;
    d.set_item("renewable", r.renewable)?;
    d.set_item("warnings", &r.warnings)?;
    let wrap = match &r.wrap_info {
        Some(w) => {
            let wd = from_json(py, &w.to_json())?;
            wd.bind(py)
                .set_item("token", secret(py, w.token.expose_secret())?)?;
            Some(wd)
        }
        None => None,
    };
    d.set_item("wrap_info", wrap)?;
    Ok(d.into_any().unbind())
}

/// A handle that makes calls with one token.
#[pyclass(frozen, module = "strongroom")]
pub(crate) struct Client {
    h: Local<strongroom::Client>,
    flavour: Flavour,
}

impl Client {
    pub(crate) fn new(rt: Arc<Runtime>, c: strongroom::Client, flavour: Flavour) -> Client {
        Client {
            h: Local::new(rt, c),
            flavour,
        }
    }
}

#[pymethods]
impl Client {
    /// The token this client uses.
    fn token_id(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        secret(py, self.h.get()?.1.token_id())
    }

    /// Any call by path: `method` is `read`, `write`, `list`, `delete`, `patch` (or the HTTP
    /// verbs `GET`, `POST`, `PUT`, `LIST`, `DELETE`, `PATCH`). Returns the response as a dict
    /// (`None` for a read of nothing, `{"keys": [...]}` for a list, `None` for a delete).
    #[pyo3(signature = (method, path, data=None))]
    fn request(
        &self,
        py: Python<'_>,
        method: &str,
        path: String,
        data: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let data = data_arg(data)?;
        let (rt, c) = self.h.get()?;
        let c = c.clone();
        let op = match method.to_ascii_lowercase().as_str() {
            "read" | "get" => Operation::Read,
            "write" | "post" | "put" | "update" => Operation::Update,
            "create" => Operation::Create,
            "list" => Operation::List,
            "delete" => Operation::Delete,
            "patch" => Operation::Patch,
            other => return Err(invalid(py, format!("unknown method `{other}`"))),
        };
        match op {
            Operation::Read => {
                self.flavour
                    .run(py, rt, async move { c.read(&path).await }, |py, r| {
                        r.map_or_else(|| Ok(py.None()), |r| response_to_py(py, &r))
                    })
            }
            Operation::List => {
                self.flavour
                    .run(py, rt, async move { c.list(&path).await }, |py, k| {
                        let d = PyDict::new(py);
                        d.set_item("keys", k)?;
                        Ok(d.into_any().unbind())
                    })
            }
            Operation::Delete => {
                self.flavour
                    .run(py, rt, async move { c.delete(&path).await }, none)
            }
            op => self.flavour.run(
                py,
                rt,
                async move { c.handle(Request::new(op, path).with_data(data)).await },
                |py, r| response_to_py(py, &r),
            ),
        }
    }

    /// The KV version 2 engine at `mount`.
    #[pyo3(signature = (mount="secret"))]
    fn kv(&self, mount: &str) -> PyResult<Kv> {
        let (rt, c) = self.h.get()?;
        Ok(Kv {
            h: Local::new(rt.clone(), Arc::new(c.kv(mount))),
            flavour: self.flavour,
        })
    }

    /// The transit engine at `mount`.
    #[pyo3(signature = (mount="transit"))]
    fn transit(&self, mount: &str) -> PyResult<Transit> {
        let (rt, c) = self.h.get()?;
        Ok(Transit {
            h: Local::new(rt.clone(), Arc::new(c.transit(mount))),
            flavour: self.flavour,
        })
    }

    /// The database secrets engine at `mount`.
    #[pyo3(signature = (mount="database"))]
    fn database(&self, mount: &str) -> PyResult<Database> {
        let (rt, c) = self.h.get()?;
        Ok(Database::new(rt.clone(), c.database(mount), self.flavour))
    }

    /// The lease manager.
    fn leases(&self) -> PyResult<Leases> {
        let (rt, c) = self.h.get()?;
        Ok(Leases::new(rt.clone(), c.leases(), self.flavour))
    }

    /// Mounts, auth methods, policies, audit devices.
    fn sys(&self) -> PyResult<Sys> {
        let (rt, c) = self.h.get()?;
        Ok(Sys {
            h: Local::new(rt.clone(), (c.sys(), c.auth(), c.clone())),
            flavour: self.flavour,
        })
    }

    /// The token store.
    fn token(&self) -> PyResult<Tokens> {
        let (rt, c) = self.h.get()?;
        Ok(Tokens {
            h: Local::new(rt.clone(), c.token()),
            flavour: self.flavour,
        })
    }

    fn __repr__(&self) -> &'static str {
        "Client(token=<redacted>)"
    }
}

/// One KV version's metadata.
#[pyclass(frozen, get_all, module = "strongroom")]
pub(crate) struct KvVersion {
    version: u64,
    created_time: Py<PyAny>,
    deletion_time: Py<PyAny>,
    destroyed: bool,
    custom_metadata: Py<PyAny>,
}

#[pymethods]
impl KvVersion {
    fn __repr__(&self) -> String {
        format!(
            "KvVersion(version={}, destroyed={})",
            self.version,
            if self.destroyed { "True" } else { "False" }
        )
    }
}

fn kv_version(py: Python<'_>, v: &strongroom::KvVersion) -> PyResult<KvVersion> {
    Ok(KvVersion {
        version: v.version,
        created_time: datetime(py, &v.created_time)?,
        deletion_time: datetime(py, &v.deletion_time)?,
        destroyed: v.destroyed,
        custom_metadata: match &v.custom_metadata {
            Some(m) => m.into_pyobject(py)?.into_any().unbind(),
            None => py.None(),
        },
    })
}

/// A KV secret: `data` (a dict) and its version's metadata. Its `repr` hides the values.
#[pyclass(frozen, get_all, module = "strongroom")]
pub(crate) struct KvSecret {
    data: Py<PyAny>,
    version: u64,
    metadata: Py<KvVersion>,
}

#[pymethods]
impl KvSecret {
    fn __repr__(&self, py: Python<'_>) -> String {
        let n = self.data.bind(py).len().unwrap_or(0);
        format!(
            "KvSecret(version={}, data=<{n} keys redacted>)",
            self.version
        )
    }
}

/// Typed access to a KV version 2 mount.
#[pyclass(frozen, module = "strongroom")]
pub(crate) struct Kv {
    h: Local<Arc<strongroom::Kv>>,
    flavour: Flavour,
}

fn version_py(py: Python<'_>, v: strongroom::KvVersion) -> PyResult<Py<PyAny>> {
    Ok(Py::new(py, kv_version(py, &v)?)?.into_any())
}

#[pymethods]
impl Kv {
    /// The latest version of `key` (or `version`); `None` when missing or deleted.
    #[pyo3(signature = (key, *, version=None))]
    fn get(&self, py: Python<'_>, key: String, version: Option<u64>) -> PyResult<Py<PyAny>> {
        let (rt, kv) = self.h.get()?;
        let kv = kv.clone();
        self.flavour.run(
            py,
            rt,
            async move {
                match version {
                    Some(v) => kv.get_version(&key, v).await,
                    None => kv.get(&key).await,
                }
            },
            |py, s| match s {
                None => Ok(py.None()),
                Some(s) => Ok(Py::new(
                    py,
                    KvSecret {
                        data: data_to_py(py, s.data.expose())?,
                        version: s.metadata.version,
                        metadata: Py::new(py, kv_version(py, &s.metadata)?)?,
                    },
                )?
                .into_any()),
            },
        )
    }

    /// Write `data` as a new version; with `cas`, only if the current version is `cas`.
    #[pyo3(signature = (key, data, *, cas=None))]
    fn put(
        &self,
        py: Python<'_>,
        key: String,
        data: &Bound<'_, PyAny>,
        cas: Option<u64>,
    ) -> PyResult<Py<PyAny>> {
        let data = data_arg(Some(data))?;
        let (rt, kv) = self.h.get()?;
        let kv = kv.clone();
        self.flavour.run(
            py,
            rt,
            async move {
                match cas {
                    Some(c) => kv.put_cas(&key, &data, c).await,
                    None => kv.put(&key, &data).await,
                }
            },
            version_py,
        )
    }

    /// Merge `data` into the latest version (`None` removes a field), as a new version.
    fn patch(&self, py: Python<'_>, key: String, data: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let data = data_arg(Some(data))?;
        let (rt, kv) = self.h.get()?;
        let kv = kv.clone();
        self.flavour.run(
            py,
            rt,
            async move { kv.patch(&key, &data).await },
            version_py,
        )
    }

    /// Soft-delete the latest version, or the given `versions`.
    #[pyo3(signature = (key, *, versions=None))]
    fn delete(
        &self,
        py: Python<'_>,
        key: String,
        versions: Option<Vec<u64>>,
    ) -> PyResult<Py<PyAny>> {
        let (rt, kv) = self.h.get()?;
        let kv = kv.clone();
        self.flavour.run(
            py,
            rt,
            async move {
                match versions {
                    Some(v) => kv.delete_versions(&key, &v).await,
                    None => kv.delete(&key).await,
                }
            },
            none,
        )
    }

    /// Restore soft-deleted versions.
    fn undelete(&self, py: Python<'_>, key: String, versions: Vec<u64>) -> PyResult<Py<PyAny>> {
        let (rt, kv) = self.h.get()?;
        let kv = kv.clone();
        self.flavour.run(
            py,
            rt,
            async move { kv.undelete(&key, &versions).await },
            none,
        )
    }

    /// Destroy the data of these versions for good.
    fn destroy(&self, py: Python<'_>, key: String, versions: Vec<u64>) -> PyResult<Py<PyAny>> {
        let (rt, kv) = self.h.get()?;
        let kv = kv.clone();
        self.flavour.run(
            py,
            rt,
            async move { kv.destroy(&key, &versions).await },
            none,
        )
    }

    /// The key's metadata as a dict (`current_version`, `oldest_version`, `max_versions`,
    /// `cas_required`, `created_time`, `updated_time`, `versions`...); `None` when missing.
    fn metadata(&self, py: Python<'_>, key: String) -> PyResult<Py<PyAny>> {
        let (rt, kv) = self.h.get()?;
        let kv = kv.clone();
        self.flavour.run(
            py,
            rt,
            async move { kv.metadata(&key).await },
            |py, m| match m {
                None => Ok(py.None()),
                Some(m) => {
                    let d = PyDict::new(py);
                    d.set_item("current_version", m.current_version)?;
                    d.set_item("oldest_version", m.oldest_version)?;
                    d.set_item("max_versions", m.max_versions)?;
                    d.set_item("cas_required", m.cas_required)?;
                    d.set_item("delete_version_after", &m.delete_version_after)?;
                    d.set_item("custom_metadata", &m.custom_metadata)?;
                    d.set_item("created_time", datetime(py, &m.created_time)?)?;
                    d.set_item("updated_time", datetime(py, &m.updated_time)?)?;
                    d.set_item("versions", versions_py(py, &m)?)?;
                    Ok(d.into_any().unbind())
                }
            },
        )
    }

    /// The key's versions: `{number: {"created_time", "deletion_time", "destroyed"}}`.
    fn versions(&self, py: Python<'_>, key: String) -> PyResult<Py<PyAny>> {
        let (rt, kv) = self.h.get()?;
        let kv = kv.clone();
        self.flavour.run(
            py,
            rt,
            async move { kv.metadata(&key).await },
            |py, m| match m {
                None => Ok(PyDict::new(py).into_any().unbind()),
                Some(m) => versions_py(py, &m),
            },
        )
    }

    /// Keys under `prefix` (folders end in `/`).
    #[pyo3(signature = (prefix=String::new()))]
    fn list(&self, py: Python<'_>, prefix: String) -> PyResult<Py<PyAny>> {
        let (rt, kv) = self.h.get()?;
        let kv = kv.clone();
        self.flavour
            .run(py, rt, async move { kv.list(&prefix).await }, strings)
    }

    /// Delete the key with every version and its metadata.
    fn delete_metadata(&self, py: Python<'_>, key: String) -> PyResult<Py<PyAny>> {
        let (rt, kv) = self.h.get()?;
        let kv = kv.clone();
        self.flavour
            .run(py, rt, async move { kv.delete_metadata(&key).await }, none)
    }
}

fn versions_py(py: Python<'_>, m: &strongroom::KvMetadata) -> PyResult<Py<PyAny>> {
    let out = PyDict::new(py);
    for (n, v) in &m.versions {
        let d = PyDict::new(py);
        d.set_item("created_time", datetime(py, &v.created_time)?)?;
        d.set_item("deletion_time", datetime(py, &v.deletion_time)?)?;
        d.set_item("destroyed", v.destroyed)?;
        let n: u64 = n
            .parse()
            .map_err(|_| invalid(py, format!("the engine returned version `{n}`")))?;
        out.set_item(n, d)?;
    }
    Ok(out.into_any().unbind())
}

/// A data key: `plaintext` (bytes, hidden from `repr`), `ciphertext`, `key_version`.
#[pyclass(frozen, get_all, module = "strongroom")]
pub(crate) struct DataKey {
    plaintext: Py<PyBytes>,
    ciphertext: String,
    key_version: u32,
}

#[pymethods]
impl DataKey {
    fn __repr__(&self) -> String {
        format!(
            "DataKey(key_version={}, plaintext=<redacted>)",
            self.key_version
        )
    }
}

/// Encryption as a service on a transit mount.
#[pyclass(frozen, module = "strongroom")]
pub(crate) struct Transit {
    h: Local<Arc<strongroom::Transit>>,
    flavour: Flavour,
}

fn text(py: Python<'_>, s: String) -> PyResult<Py<PyAny>> {
    Ok(pyo3::types::PyString::new(py, &s).into_any().unbind())
}

fn ciphertext(py: Python<'_>, c: Ciphertext) -> PyResult<Py<PyAny>> {
    text(py, c.as_str().to_string())
}

fn plaintext(py: Python<'_>, p: strongroom::Plaintext) -> PyResult<Py<PyAny>> {
    Ok(PyBytes::new(py, p.expose()).into_any().unbind())
}

fn boolean(py: Python<'_>, b: bool) -> PyResult<Py<PyAny>> {
    Ok(pyo3::types::PyBool::new(py, b)
        .to_owned()
        .into_any()
        .unbind())
}

/// Batch results: each item a value or the exception for that item.
fn batch<T>(
    py: Python<'_>,
    items: Vec<strongroom::Result<T>>,
    one: fn(Python<'_>, T) -> PyResult<Py<PyAny>>,
) -> PyResult<Py<PyAny>> {
    let out = items
        .into_iter()
        .map(|r| match r {
            Ok(v) => one(py, v),
            Err(e) => Ok(e.to_py_err(py).into_value(py).into_any()),
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok(PyList::new(py, out)?.into_any().unbind())
}

#[pymethods]
impl Transit {
    /// Create a named key (`type`: `aes256-gcm96`, `chacha20-poly1305`, `ed25519`, ...).
    #[pyo3(signature = (name, *, type_=String::new(), derived=false, convergent_encryption=false, exportable=false, auto_rotate_period=None))]
    #[allow(clippy::too_many_arguments, reason = "Python keyword arguments")]
    fn create_key(
        &self,
        py: Python<'_>,
        name: String,
        type_: String,
        derived: bool,
        convergent_encryption: bool,
        exportable: bool,
        auto_rotate_period: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let config = strongroom::KeyConfig {
            key_type: type_,
            derived,
            convergent_encryption,
            exportable,
            auto_rotate_period: auto_rotate_period
                .map(duration_arg)
                .transpose()?
                .map_or(0, |d| d.as_secs()),
            ..Default::default()
        };
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour.run(
            py,
            rt,
            async move { t.create_key(&name, &config).await },
            none,
        )
    }

    /// Add a key version; returns the latest version number.
    fn rotate(&self, py: Python<'_>, name: String) -> PyResult<Py<PyAny>> {
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour
            .run(py, rt, async move { t.rotate(&name).await }, |py, v| {
                Ok(v.into_pyobject(py)?.into_any().unbind())
            })
    }

    /// Encrypt `plaintext` (bytes); returns the `vault:v<n>:...` ciphertext.
    #[pyo3(signature = (key, plaintext, *, context=None, associated_data=None, key_version=0))]
    fn encrypt(
        &self,
        py: Python<'_>,
        key: String,
        plaintext: &[u8],
        context: Option<Vec<u8>>,
        associated_data: Option<Vec<u8>>,
        key_version: u32,
    ) -> PyResult<Py<PyAny>> {
        let pt = plaintext.to_vec();
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour.run(
            py,
            rt,
            async move {
                let opts = encrypt_options(context, associated_data, key_version);
                t.encrypt_with(&key, &pt, &opts).await
            },
            ciphertext,
        )
    }

    /// Decrypt a ciphertext; returns the plaintext bytes.
    #[pyo3(signature = (key, ciphertext, *, context=None, associated_data=None))]
    fn decrypt(
        &self,
        py: Python<'_>,
        key: String,
        ciphertext: String,
        context: Option<Vec<u8>>,
        associated_data: Option<Vec<u8>>,
    ) -> PyResult<Py<PyAny>> {
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour.run(
            py,
            rt,
            async move {
                let opts = encrypt_options(context, associated_data, 0);
                t.decrypt_with(&key, &Ciphertext::new(ciphertext), &opts)
                    .await
            },
            plaintext,
        )
    }

    /// Re-encrypt a ciphertext with the latest key version.
    fn rewrap(&self, py: Python<'_>, key: String, ciphertext: String) -> PyResult<Py<PyAny>> {
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour.run(
            py,
            rt,
            async move { t.rewrap(&key, &Ciphertext::new(ciphertext)).await },
            self::ciphertext,
        )
    }

    /// Encrypt many plaintexts; each item is a ciphertext or the exception for that item.
    fn encrypt_batch(
        &self,
        py: Python<'_>,
        key: String,
        plaintexts: Vec<Vec<u8>>,
    ) -> PyResult<Py<PyAny>> {
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour.run(
            py,
            rt,
            async move {
                let refs: Vec<&[u8]> = plaintexts.iter().map(Vec::as_slice).collect();
                t.encrypt_batch(&key, &refs).await
            },
            |py, items| batch(py, items, ciphertext),
        )
    }

    /// Decrypt many ciphertexts; each item is plaintext bytes or the exception for that item.
    fn decrypt_batch(
        &self,
        py: Python<'_>,
        key: String,
        ciphertexts: Vec<String>,
    ) -> PyResult<Py<PyAny>> {
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour.run(
            py,
            rt,
            async move {
                let cts: Vec<Ciphertext> = ciphertexts.into_iter().map(Ciphertext::new).collect();
                t.decrypt_batch(&key, &cts).await
            },
            |py, items| batch(py, items, plaintext),
        )
    }

    /// A new data key of `bits` (128, 256, 512): its plaintext and its ciphertext under `key`.
    #[pyo3(signature = (key, *, bits=256))]
    fn datakey(&self, py: Python<'_>, key: String, bits: u32) -> PyResult<Py<PyAny>> {
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour.run(
            py,
            rt,
            async move { t.datakey(&key, bits).await },
            |py, k| {
                Ok(Py::new(
                    py,
                    DataKey {
                        plaintext: PyBytes::new(py, k.plaintext.expose()).unbind(),
                        ciphertext: k.ciphertext.as_str().to_string(),
                        key_version: k.key_version,
                    },
                )?
                .into_any())
            },
        )
    }

    /// Sign `input` with an asymmetric key; returns `vault:v<n>:<signature>`.
    fn sign(&self, py: Python<'_>, key: String, input: Vec<u8>) -> PyResult<Py<PyAny>> {
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour
            .run(py, rt, async move { t.sign(&key, &input).await }, text)
    }

    /// Whether `signature` is valid for `input`.
    fn verify(
        &self,
        py: Python<'_>,
        key: String,
        input: Vec<u8>,
        signature: String,
    ) -> PyResult<Py<PyAny>> {
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour.run(
            py,
            rt,
            async move { t.verify(&key, &input, &signature).await },
            boolean,
        )
    }

    /// The HMAC-SHA256 of `input`: `vault:v<n>:<base64>`.
    fn hmac(&self, py: Python<'_>, key: String, input: Vec<u8>) -> PyResult<Py<PyAny>> {
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour
            .run(py, rt, async move { t.hmac(&key, &input).await }, text)
    }

    /// Whether `hmac` is the HMAC of `input`.
    fn verify_hmac(
        &self,
        py: Python<'_>,
        key: String,
        input: Vec<u8>,
        hmac: String,
    ) -> PyResult<Py<PyAny>> {
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour.run(
            py,
            rt,
            async move { t.verify_hmac(&key, &input, &hmac).await },
            boolean,
        )
    }

    /// Sign many inputs; each item is a signature or the exception for that item.
    fn sign_batch(&self, py: Python<'_>, key: String, inputs: Vec<Vec<u8>>) -> PyResult<Py<PyAny>> {
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour.run(
            py,
            rt,
            async move {
                let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
                t.sign_batch(&key, &refs).await
            },
            |py, items| batch(py, items, text),
        )
    }

    /// Verify many `(input, signature)` pairs; each item is a bool or the exception for
    /// that item (a malformed signature).
    fn verify_batch(
        &self,
        py: Python<'_>,
        key: String,
        items: Vec<(Vec<u8>, String)>,
    ) -> PyResult<Py<PyAny>> {
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour.run(
            py,
            rt,
            async move {
                let refs: Vec<(&[u8], &str)> = items
                    .iter()
                    .map(|(i, s)| (i.as_slice(), s.as_str()))
                    .collect();
                t.verify_batch(&key, &refs).await
            },
            |py, items| batch(py, items, boolean),
        )
    }

    /// HMAC many inputs; each item is `vault:v<n>:<base64>` or the exception for that item.
    fn hmac_batch(&self, py: Python<'_>, key: String, inputs: Vec<Vec<u8>>) -> PyResult<Py<PyAny>> {
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour.run(
            py,
            rt,
            async move {
                let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
                t.hmac_batch(&key, &refs).await
            },
            |py, items| batch(py, items, text),
        )
    }

    /// Verify many `(input, hmac)` pairs; each item is a bool or the exception for that item.
    fn verify_hmac_batch(
        &self,
        py: Python<'_>,
        key: String,
        items: Vec<(Vec<u8>, String)>,
    ) -> PyResult<Py<PyAny>> {
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour.run(
            py,
            rt,
            async move {
                let refs: Vec<(&[u8], &str)> = items
                    .iter()
                    .map(|(i, h)| (i.as_slice(), h.as_str()))
                    .collect();
                t.verify_hmac_batch(&key, &refs).await
            },
            |py, items| batch(py, items, boolean),
        )
    }
}

/// System operations: mounts, auth methods, policies, audit devices.
#[pyclass(frozen, module = "strongroom")]
pub(crate) struct Sys {
    h: Local<(strongroom::Sys, strongroom::AuthMethods, strongroom::Client)>,
    flavour: Flavour,
}

fn str_map(d: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<(String, String)>> {
    Ok(data_arg(d)?
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect())
}

fn data_py(py: Python<'_>, d: strongroom::Data) -> PyResult<Py<PyAny>> {
    data_to_py(py, &d)
}

#[pymethods]
impl Sys {
    /// Mount a secrets engine: `enable_mount("kv2", "kv", options={"version": "2"})`.
    #[pyo3(signature = (path, type_, *, options=None))]
    fn enable_mount(
        &self,
        py: Python<'_>,
        path: String,
        type_: String,
        options: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let options = str_map(options)?;
        let (rt, (sys, _, _)) = self.h.get()?;
        let sys = sys.clone();
        self.flavour.run(
            py,
            rt,
            async move {
                let opts: Vec<(&str, &str)> = options
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                sys.enable_mount(&path, &type_, &opts).await
            },
            none,
        )
    }

    /// Unmount a secrets engine and delete its data.
    fn disable_mount(&self, py: Python<'_>, path: String) -> PyResult<Py<PyAny>> {
        let (rt, (sys, _, _)) = self.h.get()?;
        let sys = sys.clone();
        self.flavour
            .run(py, rt, async move { sys.disable_mount(&path).await }, none)
    }

    /// Every secrets mount, keyed by path.
    fn mounts(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (rt, (sys, _, _)) = self.h.get()?;
        let sys = sys.clone();
        self.flavour
            .run(py, rt, async move { sys.mounts().await }, data_py)
    }

    /// Tune a mount (`default_lease_ttl`, `max_lease_ttl`, `description`, ...).
    fn tune_mount(
        &self,
        py: Python<'_>,
        path: String,
        config: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let config = data_arg(Some(config))?;
        let (rt, (sys, _, _)) = self.h.get()?;
        let sys = sys.clone();
        self.flavour.run(
            py,
            rt,
            async move { sys.tune_mount(&path, config).await },
            none,
        )
    }

    /// Enable an auth method (`userpass`, `approle`, `kubernetes`) at `path`.
    #[pyo3(signature = (path, type_, *, config=None))]
    fn enable_auth(
        &self,
        py: Python<'_>,
        path: String,
        type_: String,
        config: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let config = data_arg(config)?;
        let (rt, (_, auth, _)) = self.h.get()?;
        let auth = auth.clone();
        self.flavour.run(
            py,
            rt,
            async move { auth.enable_with(&path, &type_, config).await },
            none,
        )
    }

    /// Disable the auth method at `path`.
    fn disable_auth(&self, py: Python<'_>, path: String) -> PyResult<Py<PyAny>> {
        let (rt, (_, auth, _)) = self.h.get()?;
        let auth = auth.clone();
        self.flavour
            .run(py, rt, async move { auth.disable(&path).await }, none)
    }

    /// The enabled auth methods, keyed by path.
    fn auth_methods(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (rt, (_, auth, _)) = self.h.get()?;
        let auth = auth.clone();
        self.flavour
            .run(py, rt, async move { auth.list().await }, data_py)
    }

    /// Write an ACL policy (HCL or JSON).
    fn write_policy(&self, py: Python<'_>, name: String, policy: String) -> PyResult<Py<PyAny>> {
        let (rt, (sys, _, _)) = self.h.get()?;
        let sys = sys.clone();
        self.flavour.run(
            py,
            rt,
            async move { sys.write_policy(&name, &policy).await },
            none,
        )
    }

    /// An ACL policy's text; `None` when there is none.
    fn read_policy(&self, py: Python<'_>, name: String) -> PyResult<Py<PyAny>> {
        let (rt, (sys, _, _)) = self.h.get()?;
        let sys = sys.clone();
        self.flavour.run(
            py,
            rt,
            async move { sys.read_policy(&name).await },
            |py, p| Ok(p.into_pyobject(py)?.into_any().unbind()),
        )
    }

    /// The ACL policy names.
    fn list_policies(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (rt, (sys, _, _)) = self.h.get()?;
        let sys = sys.clone();
        self.flavour
            .run(py, rt, async move { sys.list_policies().await }, strings)
    }

    /// Delete an ACL policy.
    fn delete_policy(&self, py: Python<'_>, name: String) -> PyResult<Py<PyAny>> {
        let (rt, (sys, _, _)) = self.h.get()?;
        let sys = sys.clone();
        self.flavour
            .run(py, rt, async move { sys.delete_policy(&name).await }, none)
    }

    /// The audit devices, keyed by path (`sys/audit`; the core has no typed call for it).
    fn audit_devices(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (rt, (_, _, c)) = self.h.get()?;
        let c = c.clone();
        self.flavour.run(
            py,
            rt,
            async move {
                Ok(c.read("sys/audit")
                    .await?
                    .and_then(|r| r.data)
                    .unwrap_or_default())
            },
            data_py,
        )
    }

    /// Enable an audit device at `path` (`type_`: `file`, `socket`, `stdout`); the engine must
    /// be opened with API audit creation allowed.
    #[pyo3(signature = (path, type_, *, options=None, description=None))]
    fn enable_audit(
        &self,
        py: Python<'_>,
        path: String,
        type_: String,
        options: Option<&Bound<'_, PyAny>>,
        description: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let options = data_arg(options)?;
        let (rt, (_, _, c)) = self.h.get()?;
        let c = c.clone();
        let body = strongroom::data(json!({
            "type": type_,
            "options": options,
            "description": description.unwrap_or_default(),
        }));
        self.flavour.run(
            py,
            rt,
            async move {
                c.write(&format!("sys/audit/{}", path.trim_matches('/')), body)
                    .await
                    .map(|_| ())
            },
            none,
        )
    }

    /// Disable the audit device at `path`.
    fn disable_audit(&self, py: Python<'_>, path: String) -> PyResult<Py<PyAny>> {
        let (rt, (_, _, c)) = self.h.get()?;
        let c = c.clone();
        self.flavour.run(
            py,
            rt,
            async move {
                c.delete(&format!("sys/audit/{}", path.trim_matches('/')))
                    .await
            },
            none,
        )
    }
}

/// The token store: create, look up, renew, revoke.
#[pyclass(frozen, module = "strongroom")]
pub(crate) struct Tokens {
    h: Local<strongroom::Tokens>,
    flavour: Flavour,
}

fn token_info(py: Python<'_>, t: strongroom::TokenInfo) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    d.set_item("accessor", &t.accessor)?;
    d.set_item("policies", &t.policies)?;
    d.set_item(
        "ttl",
        crate::convert::timedelta(py, std::time::Duration::from_secs(t.ttl))?,
    )?;
    d.set_item(
        "creation_ttl",
        crate::convert::timedelta(py, std::time::Duration::from_secs(t.creation_ttl))?,
    )?;
    d.set_item(
        "expire_time",
        crate::convert::opt_datetime(py, t.expire_time.as_deref())?,
    )?;
    d.set_item("display_name", &t.display_name)?;
    d.set_item("num_uses", t.num_uses)?;
    d.set_item("orphan", t.orphan)?;
    d.set_item("renewable", t.renewable)?;
    d.set_item("path", &t.path)?;
    d.set_item("type", &t.token_type)?;
    d.set_item("meta", &t.meta)?;
    Ok(d.into_any().unbind())
}

#[pymethods]
impl Tokens {
    /// Create a child token; returns the auth block (`client_token` is a `Secret`).
    #[pyo3(signature = (*, policies=Vec::new(), ttl=None, num_uses=0, type_=None, display_name=None, renewable=None, no_parent=false, role=None))]
    #[allow(clippy::too_many_arguments, reason = "Python keyword arguments")]
    fn create(
        &self,
        py: Python<'_>,
        policies: Vec<String>,
        ttl: Option<&Bound<'_, PyAny>>,
        num_uses: u64,
        type_: Option<String>,
        display_name: Option<String>,
        renewable: Option<bool>,
        no_parent: bool,
        role: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let req = strongroom::TokenRequest {
            policies,
            ttl: ttl.map(duration_arg).transpose()?.unwrap_or_default(),
            num_uses,
            token_type: type_,
            display_name,
            renewable,
            no_parent,
            role,
            ..Default::default()
        };
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour
            .run(py, rt, async move { t.create(&req).await }, |py, a| {
                auth_to_py(py, &a)
            })
    }

    /// This client's token: policies, ttl, num_uses, path, type, ...
    fn lookup_self(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour
            .run(py, rt, async move { t.lookup_self().await }, token_info)
    }

    /// Another token's details.
    fn lookup(&self, py: Python<'_>, token: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let token = token_arg(token)?;
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour.run(
            py,
            rt,
            async move { t.lookup(token.expose_secret()).await },
            token_info,
        )
    }

    /// Renew this client's token by `increment`; returns the auth block.
    #[pyo3(signature = (increment=None))]
    fn renew_self(
        &self,
        py: Python<'_>,
        increment: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let inc = increment.map(duration_arg).transpose()?.unwrap_or_default();
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour
            .run(py, rt, async move { t.renew_self(inc).await }, |py, a| {
                auth_to_py(py, &a)
            })
    }

    /// Revoke this client's token (and its children).
    fn revoke_self(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour
            .run(py, rt, async move { t.revoke_self().await }, none)
    }

    /// Revoke another token (and its children).
    fn revoke(&self, py: Python<'_>, token: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let token = token_arg(token)?;
        let (rt, t) = self.h.get()?;
        let t = t.clone();
        self.flavour.run(
            py,
            rt,
            async move { t.revoke(token.expose_secret()).await },
            none,
        )
    }
}

/// The core's options for one encrypt or decrypt.
fn encrypt_options(
    context: Option<Vec<u8>>,
    associated_data: Option<Vec<u8>>,
    key_version: u32,
) -> EncryptOptions {
    let mut opts = EncryptOptions::new().key_version(key_version);
    if let Some(c) = context {
        opts = opts.context(c);
    }
    if let Some(a) = associated_data {
        opts = opts.associated_data(a);
    }
    opts
}
