//! A transit key ring ([`TransitKey`]) and the operations on it: encrypt, decrypt, rewrap,
//! data keys and HMACs, with OpenBao's version rules and error texts.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use aws_lc_rs::hkdf;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::CURRENT_CONVERGENT_VERSION;
use super::aead::{self, NonceSource};
use super::asym::{self, Parsed, SignOptions};
use super::base64;
use super::ciphertext::{self, Envelope};
use super::hmac::HmacAlgorithm;
use super::key_type::{Kdf, KeyType};
use crate::barrier::aead::random_key;
use crate::error::{Error, Result};

/// Below `min_decryption_version` (OpenBao's `ErrTooOld`).
pub(crate) const ERR_TOO_OLD: &str =
    "ciphertext or signature version is disallowed by policy (too old)";
/// A derived key used without a context.
pub(crate) const ERR_MISSING_CONTEXT: &str = "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key";
/// Length of the per-version HMAC key.
const HMAC_KEY_LEN: usize = 32;
/// Length of the nonce key derived next to a convergent encryption key.
const CONVERGENT_HMAC_LEN: usize = 32;

/// One version of a key: its cipher key and its separate HMAC key, both wiped on drop.
#[derive(Clone)]
pub(crate) struct KeyVersion {
    /// The version number (from 1).
    pub version: u32,
    /// The cipher key (or, for `hmac` keys, the HMAC key).
    pub key: Zeroizing<Vec<u8>>,
    /// The 32-byte key `hmac/` uses for non-`hmac` key types.
    pub hmac_key: Zeroizing<Vec<u8>>,
    /// When the version was created.
    pub creation_time: OffsetDateTime,
    /// The convergent-encryption version of this key version (`0` = not recorded; the key's
    /// own `convergent_version` applies).
    pub convergent_version: i32,
    /// Asymmetric types: the public key (ed25519 raw, ECDSA uncompressed point, RSA PKCS #1).
    pub public_key: Vec<u8>,
    /// Asymmetric types: the parsed private key, built on first use and shared by clones.
    pub parsed: Arc<OnceLock<Parsed>>,
    /// AEAD types without derivation: the prepared cipher key, built on first use.
    pub aead: Arc<OnceLock<aead::PreparedKey>>,
}

impl KeyVersion {
    /// The prepared AEAD key of this version's own key (key schedule done once).
    pub(crate) fn aead(&self, key_type: KeyType) -> Result<&aead::PreparedKey> {
        if let Some(k) = self.aead.get() {
            return Ok(k);
        }
        let _ = self.aead.set(aead::prepare(key_type, &self.key)?);
        self.aead
            .get()
            .ok_or_else(|| Error::internal("key cache failed"))
    }

    /// The parsed private key of an asymmetric version (parsed once, then cached).
    pub(crate) fn parsed(&self, key_type: KeyType) -> Result<&Parsed> {
        if let Some(p) = self.parsed.get() {
            return Ok(p);
        }
        let p = asym::parse(key_type, &self.key, &self.public_key)?;
        let _ = self.parsed.set(p);
        self.parsed
            .get()
            .ok_or_else(|| Error::internal("key cache failed"))
    }
}

impl fmt::Debug for KeyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVersion")
            .field("version", &self.version)
            .field("key", &"[redacted]")
            .field("hmac_key", &"[redacted]")
            .field("creation_time", &self.creation_time)
            .field("convergent_version", &self.convergent_version)
            .field("public_key_len", &self.public_key.len())
            .finish()
    }
}

/// Options fixed when a key is created.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeyOptions {
    /// Derive a per-request key from a `context`.
    pub derived: bool,
    /// Deterministic encryption: the same plaintext and context give the same ciphertext.
    pub convergent_encryption: bool,
    /// Key length in bytes for `hmac` keys (32..=512; default 32).
    pub key_size: Option<usize>,
}

/// The result of an encryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Encrypted {
    /// `vault:v<N>:<base64(nonce ‖ ct ‖ tag)>`.
    pub ciphertext: String,
    /// The version that encrypted it.
    pub key_version: u32,
}

/// A named transit key and all its versions (OpenBao's `keysutil.Policy`).
#[derive(Debug, Clone)]
pub(crate) struct TransitKey {
    /// The key's name.
    pub name: String,
    /// Its type.
    pub key_type: KeyType,
    /// Its live versions (older ones may have been trimmed).
    pub versions: BTreeMap<u32, KeyVersion>,
    /// The newest version.
    pub latest_version: u32,
    /// The oldest version that may still decrypt or verify.
    pub min_decryption_version: u32,
    /// The oldest version that may encrypt (`0` = any).
    pub min_encryption_version: u32,
    /// Whether per-request keys are derived from a `context`.
    pub derived: bool,
    /// How derived keys are computed.
    pub kdf: Kdf,
    /// Whether encryption is convergent (deterministic).
    pub convergent_encryption: bool,
    /// The key-wide convergent version; `-1` for new keys, whose versions record their own.
    pub convergent_version: i32,
    /// Key-level settings and bookkeeping (`keys/:name/config`, backup, soft delete).
    pub policy: KeyPolicy,
}

/// Key-level settings that do not touch the cryptography.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyPolicy {
    /// The key may be exported (never switched off again).
    pub exportable: bool,
    /// The key may be backed up in plaintext (never switched off again).
    pub allow_plaintext_backup: bool,
    /// `DELETE keys/:name` is allowed.
    pub deletion_allowed: bool,
    /// Rotate automatically after this many seconds (`0` = never).
    pub auto_rotate_period: u64,
    /// Soft-deleted keys refuse every operation until restored.
    pub soft_deleted: bool,
    /// Versions below this were trimmed away.
    pub min_available_version: u32,
    /// Key material was imported rather than generated.
    pub imported: bool,
    /// `hmac` keys: the key length in bytes.
    pub key_size: usize,
    /// The last backup: time (RFC 3339) and the latest version then.
    pub backup_info: Option<(String, u32)>,
    /// The restore this key came from: time (RFC 3339) and version.
    pub restore_info: Option<(String, u32)>,
}

impl TransitKey {
    /// A new key with one version, created at `now`.
    pub(crate) fn new(
        name: impl Into<String>,
        key_type: KeyType,
        options: KeyOptions,
        now: OffsetDateTime,
    ) -> Result<TransitKey> {
        if options.convergent_encryption {
            if !options.derived {
                return Err(Error::invalid_input(
                    "convergent encryption requires derivation to be enabled",
                ));
            }
            if !key_type.supports_encryption() {
                return Err(Error::invalid_input(format!(
                    "convergent encryption not supported for keys of type {key_type}"
                )));
            }
        }
        if options.derived && !key_type.supports_derivation() {
            return Err(Error::invalid_input(format!(
                "key derivation not supported for keys of type {key_type}"
            )));
        }
        if let Some(size) = options.key_size {
            if key_type != KeyType::Hmac {
                return Err(Error::invalid_input(format!(
                    "key_size is not valid for algorithm {key_type}"
                )));
            }
            if !(32..=512).contains(&size) {
                return Err(Error::invalid_input("invalid key_size provided"));
            }
        }
        let mut key = TransitKey {
            name: name.into(),
            key_type,
            versions: BTreeMap::new(),
            latest_version: 0,
            min_decryption_version: 1,
            min_encryption_version: 0,
            derived: options.derived,
            kdf: Kdf::HkdfSha256,
            convergent_encryption: options.convergent_encryption,
            convergent_version: if options.convergent_encryption { -1 } else { 0 },
            policy: KeyPolicy::default(),
        };
        let len = options.key_size.unwrap_or_else(|| key_type.key_len());
        if key_type == KeyType::Hmac {
            key.policy.key_size = len;
        }
        key.rotate_with_len(len, now)?;
        Ok(key)
    }

    /// Add a version with fresh key material; returns its number.
    pub(crate) fn rotate(&mut self, now: OffsetDateTime) -> Result<u32> {
        let len = self
            .versions
            .get(&self.latest_version)
            .filter(|_| self.key_type == KeyType::Hmac)
            .map_or_else(|| self.key_type.key_len(), |v| v.key.len());
        self.rotate_with_len(len, now)
    }

    fn rotate_with_len(&mut self, len: usize, now: OffsetDateTime) -> Result<u32> {
        if self.key_type.is_asymmetric() {
            let (private, public) = asym::generate(self.key_type)?;
            return self.push_material(private, random_key(HMAC_KEY_LEN)?, public, now);
        }
        let key = random_key(len)?;
        // An `hmac` key's HMAC key is the key itself, as OpenBao stores it.
        let hmac_key = if self.key_type == KeyType::Hmac {
            key.clone()
        } else {
            random_key(HMAC_KEY_LEN)?
        };
        self.push_version(key, hmac_key, now)
    }

    /// Add a version with the given key material (rotation, restore, tests).
    pub(crate) fn push_version(
        &mut self,
        key: Zeroizing<Vec<u8>>,
        hmac_key: Zeroizing<Vec<u8>>,
        now: OffsetDateTime,
    ) -> Result<u32> {
        self.push_material(key, hmac_key, Vec::new(), now)
    }

    /// Add a version with the given key material and public key.
    pub(crate) fn push_material(
        &mut self,
        key: Zeroizing<Vec<u8>>,
        hmac_key: Zeroizing<Vec<u8>>,
        public_key: Vec<u8>,
        now: OffsetDateTime,
    ) -> Result<u32> {
        let version = self
            .latest_version
            .checked_add(1)
            .ok_or_else(|| Error::internal("key version overflow"))?;
        // New versions of convergent keys record v3 unless the key is pinned to v1.
        let convergent_version = if self.convergent_encryption
            && (self.convergent_version == -1 || self.convergent_version > 1)
        {
            CURRENT_CONVERGENT_VERSION
        } else {
            0
        };
        self.versions.insert(
            version,
            KeyVersion {
                version,
                key,
                hmac_key,
                creation_time: now,
                convergent_version,
                public_key,
                parsed: Arc::new(OnceLock::new()),
                aead: Arc::new(OnceLock::new()),
            },
        );
        self.latest_version = version;
        Ok(version)
    }

    /// The entry of version `ver`.
    pub(crate) fn entry(&self, ver: i64) -> Result<&KeyVersion> {
        u32::try_from(ver)
            .ok()
            .and_then(|v| self.versions.get(&v))
            .ok_or_else(|| Error::invalid_input("no such key version"))
    }

    /// The convergent version in force for `ver` (`0` when not convergent).
    fn convergent_version_of(&self, ver: i64) -> i32 {
        if !self.convergent_encryption {
            return 0;
        }
        let own = self.entry(ver).map_or(0, |e| e.convergent_version);
        match (own, self.convergent_version) {
            (0, 0) => 1,
            (0, key_wide) => key_wide,
            (own, _) => own,
        }
    }

    /// Refuse convergent versions before 3.
    fn check_convergent(&self, ver: i64) -> Result<i32> {
        if self.convergent_encryption {
            // A trimmed or unknown version has no convergent version to judge.
            self.entry(ver)?;
        }
        let cv = self.convergent_version_of(ver);
        if cv != 0 && cv < CURRENT_CONVERGENT_VERSION {
            return Err(Error::invalid_input(format!(
                "refusing to support decryption with old convergent encryption key: version {cv}"
            )));
        }
        Ok(cv)
    }

    /// The key for version `ver`: the version key itself, or for derived keys `len` bytes
    /// derived from it with `context` (OpenBao's `GetKey`/`DeriveKey`).
    pub(crate) fn key_for(
        &self,
        context: &[u8],
        ver: i64,
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>> {
        if !self.derived {
            return Ok(self.entry(ver)?.key.clone());
        }
        if !self.key_type.supports_derivation() {
            return Err(Error::invalid_input(format!(
                "derivation not supported for key type {}",
                self.key_type
            )));
        }
        if ver <= 0 || ver > i64::from(self.latest_version) {
            return Err(Error::invalid_input("invalid key version"));
        }
        let entry = self.entry(ver)?;
        if context.is_empty() {
            return Err(Error::invalid_input(ERR_MISSING_CONTEXT));
        }
        match self.kdf {
            Kdf::HkdfSha256 => hkdf_sha256(&entry.key, context, len),
            Kdf::HmacSha256Counter => Ok(counter_mode_256(&entry.key, context)),
        }
    }

    /// Encrypt `plaintext` with version `key_version` (`0` = latest), binding `aad`.
    /// `context` is required (non-empty) for derived keys and ignored otherwise.
    pub(crate) fn encrypt(
        &self,
        plaintext: &[u8],
        context: &[u8],
        aad: &[u8],
        key_version: i64,
    ) -> Result<Encrypted> {
        if !self.key_type.supports_encryption() {
            return Err(Error::invalid_input(format!(
                "message encryption not supported for key type {}",
                self.key_type
            )));
        }
        let latest = i64::from(self.latest_version);
        let ver = match key_version {
            0 => latest,
            v if v < 0 => {
                return Err(Error::invalid_input(
                    "requested version for encryption is negative",
                ));
            }
            v if v > latest => {
                return Err(Error::invalid_input(
                    "requested version for encryption is higher than the latest key version",
                ));
            }
            v if v < i64::from(self.min_encryption_version) => {
                return Err(Error::invalid_input(
                    "requested version for encryption is less than the minimum encryption key version",
                ));
            }
            v => v,
        };
        let key_version =
            u32::try_from(ver).map_err(|_| Error::internal("key version out of range"))?;
        if self.key_type.is_rsa() {
            let parsed = self.entry(ver)?.parsed(self.key_type)?;
            let raw = asym::rsa_encrypt(parsed, plaintext)?;
            return Ok(Encrypted {
                ciphertext: ciphertext::format_raw(key_version, &raw),
                key_version,
            });
        }
        let convergent = self.check_convergent(ver)? != 0;
        if !self.derived && !convergent {
            let prepared = self.entry(ver)?.aead(self.key_type)?;
            let raw = aead::seal_with(prepared, plaintext, aad, NonceSource::Random)?;
            return Ok(Encrypted {
                ciphertext: ciphertext::format_raw(key_version, &raw),
                key_version,
            });
        }
        let enc_len = self.key_type.key_len();
        let hmac_len = if convergent { CONVERGENT_HMAC_LEN } else { 0 };
        let material = self.key_for(context, ver, enc_len + hmac_len)?;
        if material.len() < enc_len + hmac_len {
            return Err(Error::internal("could not derive key, length too small"));
        }
        let (enc_key, rest) = material.split_at(enc_len);
        let nonce = if convergent {
            // OpenBao takes the nonce key right after the cipher key (`key[encBytes:]`).
            let hmac_key = rest
                .get(..CONVERGENT_HMAC_LEN)
                .ok_or_else(|| Error::internal("could not derive hmac key, length not correct"))?;
            NonceSource::Convergent { hmac_key }
        } else {
            NonceSource::Random
        };
        let raw = aead::seal(self.key_type, enc_key, plaintext, aad, nonce)?;
        Ok(Encrypted {
            ciphertext: ciphertext::format_raw(key_version, &raw),
            key_version,
        })
    }

    /// Decrypt a `vault:v<N>:...` ciphertext with the version it names.
    pub(crate) fn decrypt(
        &self,
        value: &str,
        context: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        if !self.key_type.supports_encryption() {
            return Err(Error::invalid_input(format!(
                "message decryption not supported for key type {}",
                self.key_type
            )));
        }
        let (ver, payload) = ciphertext::parse(value, Envelope::Ciphertext)?;
        // Keys once started at version 0.
        let ver = if ver == 0 { 1 } else { ver };
        if ver > i64::from(self.latest_version) {
            return Err(Error::invalid_input(
                "invalid ciphertext: version is too new",
            ));
        }
        if self.min_decryption_version > 0 && ver < i64::from(self.min_decryption_version) {
            return Err(Error::invalid_input(ERR_TOO_OLD));
        }
        self.check_convergent(ver)?;
        let raw = base64::decode(payload)
            .map_err(|_| Error::invalid_input("invalid ciphertext: could not decode base64"))?;
        if self.key_type.is_rsa() {
            return self.entry(ver)?.parsed(self.key_type)?.rsa_decrypt(&raw);
        }
        if !self.derived {
            let prepared = self.entry(ver)?.aead(self.key_type)?;
            return aead::open_with(self.key_type, prepared, &raw, aad);
        }
        let enc_len = self.key_type.key_len();
        let material = self.key_for(context, ver, enc_len)?;
        let enc_key = material
            .get(..enc_len)
            .ok_or_else(|| Error::internal("could not derive enc key, length not correct"))?;
        aead::open(self.key_type, enc_key, &raw, aad)
    }

    /// Decrypt `value` and encrypt it again with `key_version` (`0` = latest).
    pub(crate) fn rewrap(
        &self,
        value: &str,
        context: &[u8],
        key_version: i64,
    ) -> Result<Encrypted> {
        let plaintext = self.decrypt(value, context, &[])?;
        self.encrypt(&plaintext, context, &[], key_version)
    }

    /// A random data key of `bits` (128, 256 or 512) and its encryption under this key.
    pub(crate) fn data_key(
        &self,
        bits: u32,
        context: &[u8],
        key_version: i64,
    ) -> Result<(Zeroizing<Vec<u8>>, Encrypted)> {
        let len = match bits {
            128 => 16,
            256 => 32,
            512 => 64,
            _ => return Err(Error::invalid_input("invalid bit length")),
        };
        let plaintext = random_key(len)?;
        let wrapped = self.encrypt(&plaintext, context, &[], key_version)?;
        Ok((plaintext, wrapped))
    }

    /// The HMAC key of version `ver` (the key itself for `hmac` keys).
    fn hmac_key_of(&self, ver: i64) -> Result<&[u8]> {
        if ver < 0 {
            return Err(Error::invalid_input(
                "key version does not exist (cannot be negative)",
            ));
        }
        if ver > i64::from(self.latest_version) {
            return Err(Error::invalid_input(format!(
                "key version does not exist; latest key version is {}",
                self.latest_version
            )));
        }
        let entry = self.entry(ver)?;
        Ok(if self.key_type == KeyType::Hmac {
            &entry.key
        } else {
            &entry.hmac_key
        })
    }

    /// `vault:v<N>:base64(HMAC-<algorithm>(hmac key of vN, input))`, `key_version` `0` = latest.
    pub(crate) fn hmac(
        &self,
        input: &[u8],
        algorithm: HmacAlgorithm,
        key_version: i64,
    ) -> Result<String> {
        let latest = i64::from(self.latest_version);
        let ver = if key_version == 0 {
            latest
        } else {
            key_version
        };
        if ver != latest
            && self.min_encryption_version > 0
            && ver < i64::from(self.min_encryption_version)
        {
            return Err(Error::invalid_input(
                "cannot generate HMAC: version is too old (disallowed by policy)",
            ));
        }
        let mac = algorithm.sign(self.hmac_key_of(ver)?, input);
        let ver = u32::try_from(ver).map_err(|_| Error::internal("key version out of range"))?;
        Ok(ciphertext::format_raw(ver, mac.as_ref()))
    }

    /// Whether `hmac` (`vault:v<N>:...`) is the HMAC of `input`. A mismatch is `Ok(false)`;
    /// a malformed value is an error with OpenBao's text.
    pub(crate) fn verify_hmac(
        &self,
        input: &[u8],
        hmac: &str,
        algorithm: HmacAlgorithm,
    ) -> Result<bool> {
        let (ver, payload) = ciphertext::parse(hmac, Envelope::Hmac)?;
        let tag = base64::decode(payload).map_err(|e| {
            Error::invalid_input(format!("unable to decode verification HMAC as base64: {e}"))
        })?;
        if ver > i64::from(self.latest_version) {
            return Err(Error::invalid_input("invalid HMAC: version is too new"));
        }
        if self.min_decryption_version > 0 && ver < i64::from(self.min_decryption_version) {
            return Err(Error::invalid_input(
                "cannot verify HMAC: version is too old (disallowed by policy)",
            ));
        }
        Ok(algorithm.verify(self.hmac_key_of(ver)?, input, &tag))
    }
}

impl TransitKey {
    /// The parsed signing key of version `ver`, derived from `context` for derived ed25519.
    fn signer(&self, ver: i64, context: &[u8]) -> Result<SignerRef<'_>> {
        if self.derived && self.key_type == KeyType::Ed25519 {
            let seed = self.key_for(context, ver, 32)?;
            return Ok(SignerRef::Owned(Box::new(asym::ed25519_from_seed(&seed)?)));
        }
        Ok(SignerRef::Cached(self.entry(ver)?.parsed(self.key_type)?))
    }

    /// Sign `input` with version `key_version` (`0` = latest): `vault:v<N>:<signature>` and N.
    pub(crate) fn sign(
        &self,
        input: &[u8],
        context: &[u8],
        opts: &SignOptions,
        key_version: i64,
    ) -> Result<(String, u32)> {
        if !self.key_type.supports_signing() {
            return Err(Error::invalid_input(format!(
                "key type {} does not support signing",
                self.key_type
            )));
        }
        let latest = i64::from(self.latest_version);
        let ver = match key_version {
            0 => latest,
            v if v < 0 => {
                return Err(Error::invalid_input(
                    "requested version for signing is negative",
                ));
            }
            v if v > latest => {
                return Err(Error::invalid_input(
                    "requested version for signing is higher than the latest key version",
                ));
            }
            v => v,
        };
        if self.min_encryption_version > 0 && ver < i64::from(self.min_encryption_version) {
            return Err(Error::invalid_input(
                "requested version for signing is less than the minimum encryption key version",
            ));
        }
        let sig = self
            .signer(ver, context)?
            .get()
            .sign(self.key_type, opts, input)?;
        let encoded = if opts.jws {
            base64::encode_url_nopad(&sig)
        } else {
            base64::encode(&sig)
        };
        let ver = u32::try_from(ver).map_err(|_| Error::internal("key version out of range"))?;
        Ok((ciphertext::format(ver, &encoded), ver))
    }

    /// Whether `signature` (`vault:v<N>:...`) signs `input`. A mismatch is `Ok(false)`.
    pub(crate) fn verify_signature(
        &self,
        input: &[u8],
        signature: &str,
        context: &[u8],
        opts: &SignOptions,
    ) -> Result<bool> {
        if !self.key_type.supports_signing() {
            return Err(Error::invalid_input(format!(
                "key type {} does not support verification",
                self.key_type
            )));
        }
        let (ver, payload) = ciphertext::parse(signature, Envelope::Signature)?;
        let ver = if ver == 0 { 1 } else { ver };
        if ver > i64::from(self.latest_version) {
            return Err(Error::invalid_input(
                "invalid signature: version is too new",
            ));
        }
        if self.min_decryption_version > 0 && ver < i64::from(self.min_decryption_version) {
            return Err(Error::invalid_input(ERR_TOO_OLD));
        }
        let sig = if opts.jws {
            base64::decode_url_nopad(payload)
        } else {
            base64::decode(payload).ok()
        }
        .ok_or_else(|| Error::invalid_input("invalid base64 signature value"))?;
        self.signer(ver, context)?
            .get()
            .verify(self.key_type, opts, input, &sig)
    }
}

/// A signing key: the version's cached one, or one derived for this call.
enum SignerRef<'a> {
    Cached(&'a Parsed),
    Owned(Box<Parsed>),
}

impl SignerRef<'_> {
    fn get(&self) -> &Parsed {
        match self {
            SignerRef::Cached(p) => p,
            SignerRef::Owned(p) => p,
        }
    }
}

/// The outcome of a version-limit change: the values to store and any warnings to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VersionLimits {
    /// The new `min_decryption_version`.
    pub min_decryption_version: u32,
    /// The new `min_encryption_version`.
    pub min_encryption_version: u32,
    /// Warnings for the response (OpenBao's texts).
    pub warnings: Vec<String>,
}

impl TransitKey {
    /// Unix creation time of every version still able to decrypt (the `keys` map of a key
    /// read): versions below `min_decryption_version` are not listed.
    pub(crate) fn version_times(&self) -> BTreeMap<u32, i64> {
        self.versions
            .range(self.min_decryption_version..)
            .map(|(v, e)| (*v, e.creation_time.unix_timestamp()))
            .collect()
    }

    /// Validate new `min_decryption_version` / `min_encryption_version` values
    /// (`keys/:name/config`), as OpenBao does, without changing the key. Apply the result with
    /// [`TransitKey::apply_version_limits`].
    pub(crate) fn check_version_limits(
        &self,
        min_decryption: Option<i64>,
        min_encryption: Option<i64>,
    ) -> Result<VersionLimits> {
        let latest = i64::from(self.latest_version);
        let mut warnings = Vec::new();
        let mut min_dec = i64::from(self.min_decryption_version);
        let mut min_enc = i64::from(self.min_encryption_version);
        if let Some(mut v) = min_decryption {
            if v < 0 {
                return Err(Error::invalid_input(
                    "min decryption version cannot be negative",
                ));
            }
            if v == 0 {
                v = 1;
                warnings.push(
                    "since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1"
                        .to_owned(),
                );
            }
            if v != min_dec && v > latest {
                return Err(Error::invalid_input(format!(
                    "cannot set min decryption version of {v}, latest key version is {latest}"
                )));
            }
            min_dec = v;
        }
        if let Some(v) = min_encryption {
            if v < 0 {
                return Err(Error::invalid_input(
                    "min encryption version cannot be negative",
                ));
            }
            if v != min_enc && v > latest {
                return Err(Error::invalid_input(format!(
                    "cannot set min encryption version of {v}, latest key version is {latest}"
                )));
            }
            min_enc = v;
        }
        if min_enc > 0 && min_enc < min_dec {
            return Err(Error::invalid_input(format!(
                "cannot set min encryption/decryption values; min encryption version of {min_enc} must be greater than or equal to min decryption version of {min_dec}"
            )));
        }
        let to_u32 = |v: i64| u32::try_from(v).map_err(|_| Error::internal("version out of range"));
        Ok(VersionLimits {
            min_decryption_version: to_u32(min_dec)?,
            min_encryption_version: to_u32(min_enc)?,
            warnings,
        })
    }

    /// Store limits checked by [`TransitKey::check_version_limits`].
    pub(crate) fn apply_version_limits(&mut self, limits: &VersionLimits) {
        self.min_decryption_version = limits.min_decryption_version;
        self.min_encryption_version = limits.min_encryption_version;
    }
}

/// HKDF-SHA256 with an empty salt: `len` bytes of key for `context`.
fn hkdf_sha256(ikm: &[u8], context: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let failed = || Error::internal("key derivation failed");
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(ikm);
    let info = [context];
    let okm = prk.expand(&info, Len(len)).map_err(|_| failed())?;
    let mut out = Zeroizing::new(vec![0u8; len]);
    okm.fill(out.as_mut_slice()).map_err(|_| failed())?;
    Ok(out)
}

/// Legacy NIST SP 800-108 counter-mode KDF with HMAC-SHA256 and 256 output bits: one round,
/// `HMAC(key, be32(0) ‖ context ‖ be32(256))`.
fn counter_mode_256(key: &[u8], context: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut input = Zeroizing::new(Vec::with_capacity(8 + context.len()));
    input.extend_from_slice(&0u32.to_be_bytes());
    input.extend_from_slice(context);
    input.extend_from_slice(&256u32.to_be_bytes());
    Zeroizing::new(HmacAlgorithm::Sha2_256.sign(key, &input))
}

#[cfg(test)]
mod tests;
