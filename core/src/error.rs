//! Errors: one [`Error`] type for the whole engine and the stable [`ErrorCode`] table that the
//! HTTP server, the Python exceptions, the JavaScript `err.code` and the C status codes all read.

use std::fmt;

/// The stable error code table.
///
/// ```
/// use strongroom::ErrorCode;
/// assert_eq!(ErrorCode::Sealed.as_u32(), 4);
/// assert_eq!(ErrorCode::Sealed.http_status(), 503);
/// assert_eq!(ErrorCode::from_u32(4), Some(ErrorCode::Sealed));
/// assert_eq!(ErrorCode::Sealed.name(), "sealed");
/// ```
/// Numbers are part of the public ABI (C status codes, bindings):
/// never renumber, only append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u32)]
pub enum ErrorCode {
    /// The request is malformed: bad path, wrong data type, a value out of range.
    InvalidInput = 1,
    /// Nothing exists at the path, or the requested version is gone.
    NotFound = 2,
    /// The token is missing, unknown, expired, or not allowed to do this.
    PermissionDenied = 3,
    /// The engine is sealed; unseal it first.
    Sealed = 4,
    /// A check-and-set or other precondition did not hold.
    Conflict = 5,
    /// A dependency (storage, a database) is temporarily unreachable.
    Unavailable = 6,
    /// A remote system (database, Kubernetes API) answered with an error.
    Upstream = 7,
    /// A cryptographic operation failed on caller-supplied input (bad ciphertext, bad signature).
    Crypto = 8,
    /// A bug or an unexpected state inside Strongroom.
    Internal = 9,
    /// The path exists but does not support this operation.
    UnsupportedOperation = 10,
    /// No mount or route handles this path.
    UnsupportedPath = 11,
    /// The request or a value in it is larger than the configured limit.
    TooLarge = 12,
    /// The engine has not been initialised yet.
    NotInitialized = 13,
    /// The engine is already initialised (or unsealed) and the request needs it not to be.
    AlreadyInitialized = 14,
    /// The storage backend failed (I/O, corruption, a tampered entry).
    Storage = 15,
    /// A quota or rate limit was reached.
    QuotaExceeded = 16,
}

impl ErrorCode {
    /// Every code, in table order (for bindings and docs).
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::InvalidInput,
        ErrorCode::NotFound,
        ErrorCode::PermissionDenied,
        ErrorCode::Sealed,
        ErrorCode::Conflict,
        ErrorCode::Unavailable,
        ErrorCode::Upstream,
        ErrorCode::Crypto,
        ErrorCode::Internal,
        ErrorCode::UnsupportedOperation,
        ErrorCode::UnsupportedPath,
        ErrorCode::TooLarge,
        ErrorCode::NotInitialized,
        ErrorCode::AlreadyInitialized,
        ErrorCode::Storage,
        ErrorCode::QuotaExceeded,
    ];

    /// The stable number of this code.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// The stable snake-case name, used as the JavaScript `err.code` and in docs.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::NotFound => "not_found",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::Sealed => "sealed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Upstream => "upstream",
            ErrorCode::Crypto => "crypto",
            ErrorCode::Internal => "internal",
            ErrorCode::UnsupportedOperation => "unsupported_operation",
            ErrorCode::UnsupportedPath => "unsupported_path",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::NotInitialized => "not_initialized",
            ErrorCode::AlreadyInitialized => "already_initialized",
            ErrorCode::Storage => "storage",
            ErrorCode::QuotaExceeded => "quota_exceeded",
        }
    }

    /// The HTTP status OpenBao answers with for this kind of error.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidInput | ErrorCode::Conflict | ErrorCode::Crypto => 400,
            ErrorCode::AlreadyInitialized => 400,
            ErrorCode::NotFound | ErrorCode::UnsupportedPath => 404,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::UnsupportedOperation => 405,
            ErrorCode::TooLarge => 413,
            ErrorCode::QuotaExceeded => 429,
            ErrorCode::NotInitialized => 501,
            ErrorCode::Upstream => 502,
            ErrorCode::Sealed | ErrorCode::Unavailable => 503,
            ErrorCode::Internal | ErrorCode::Storage => 500,
        }
    }

    /// The code with this stable number, if any.
    pub fn from_u32(n: u32) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_u32() == n)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error from Strongroom.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use strongroom::{Config, ErrorCode, Request, Strongroom};
/// let sr = Strongroom::open(Config::memory()).await.unwrap();
/// let err = sr.handle(Request::read("secret/data/x")).await.unwrap_err();
/// assert_eq!(err.code(), ErrorCode::Sealed);
/// assert_eq!(err.to_string(), "Vault is sealed");
/// # });
/// ```
/// Messages are lowercase, carry no secret value, and name user input
/// in backticks. [`Error::code`] says what kind of failure it is.
#[derive(thiserror::Error)]
#[error("{message}")]
pub struct Error {
    code: ErrorCode,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    /// A policy refused a valid token: OpenBao's HTTP answer wraps this one in
    /// go-multierror's text ([`Error::wire_message`]).
    policy_denial: bool,
    /// A login refused a wrong password or secret for an existing user or role: OpenBao's
    /// `ErrInvalidCredentials`, the only failure its user lockout counts.
    invalid_credentials: bool,
    /// OpenBao's HTTP text when it is not the message (see [`Error::wire_message`]).
    wire_text: Option<&'static str>,
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("code", &self.code)
            .field("message", &self.message)
            .finish()
    }
}

/// `Result` with Strongroom's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
            source: None,
            policy_denial: false,
            invalid_credentials: false,
            wire_text: None,
        }
    }

    /// Attach the underlying cause (it must not carry secret values).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of failure this is.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message, without the code.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// [`ErrorCode::InvalidInput`].
    pub fn invalid_input(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::InvalidInput, message)
    }
    /// [`ErrorCode::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::NotFound, message)
    }
    /// [`ErrorCode::PermissionDenied`] with OpenBao's text.
    pub fn permission_denied() -> Error {
        Error::new(ErrorCode::PermissionDenied, "permission denied")
    }
    /// [`ErrorCode::PermissionDenied`] for a valid token that its policies do not allow: the
    /// message is the same, but [`Error::wire_message`] gives OpenBao's HTTP text for it,
    /// `1 error occurred:\n\t* permission denied\n\n` (a missing or unknown token answers
    /// plain `permission denied`).
    pub fn policy_denied() -> Error {
        let mut e = Error::permission_denied();
        e.policy_denial = true;
        e
    }

    /// [`ErrorCode::InvalidInput`] for a wrong credential of a user or role that exists (the
    /// failures the login lockout counts, as OpenBao's `ErrInvalidCredentials`).
    pub(crate) fn invalid_credentials(message: impl Into<String>) -> Error {
        let mut e = Error::invalid_input(message);
        e.invalid_credentials = true;
        e
    }

    /// The same error, shown over HTTP as `text` (OpenBao answers some failures with a bare
    /// word while the message says what went wrong).
    pub(crate) fn with_wire_text(mut self, text: &'static str) -> Error {
        self.wire_text = Some(text);
        self
    }

    /// The HTTP text set by [`Error::with_wire_text`], if any.
    pub(crate) fn wire_text(&self) -> Option<&'static str> {
        self.wire_text
    }

    /// Whether this is a refused credential of an existing user or role.
    pub(crate) fn is_invalid_credentials(&self) -> bool {
        self.invalid_credentials
    }

    /// The text OpenBao's HTTP API shows for this error: the message, except for a policy
    /// denial, which its request pipeline wraps in go-multierror's form.
    pub fn wire_message(&self) -> std::borrow::Cow<'_, str> {
        if let Some(t) = self.wire_text {
            return std::borrow::Cow::Borrowed(t);
        }
        if self.policy_denial {
            std::borrow::Cow::Owned(format!("1 error occurred:\n\t* {}\n\n", self.message))
        } else {
            std::borrow::Cow::Borrowed(&self.message)
        }
    }

    /// [`ErrorCode::Sealed`] with OpenBao's text.
    pub fn sealed() -> Error {
        Error::new(ErrorCode::Sealed, "Vault is sealed")
    }
    /// [`ErrorCode::Conflict`].
    pub fn conflict(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Conflict, message)
    }
    /// [`ErrorCode::Internal`].
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Internal, message)
    }
    /// [`ErrorCode::Storage`].
    pub fn storage(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Storage, message)
    }
    /// [`ErrorCode::Unavailable`].
    pub fn unavailable(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Unavailable, message)
    }
    /// [`ErrorCode::UnsupportedOperation`] with OpenBao's text.
    pub fn unsupported_operation() -> Error {
        Error::new(
            ErrorCode::UnsupportedOperation,
            "1 error occurred:\n\t* unsupported operation\n\n",
        )
    }
    /// [`ErrorCode::UnsupportedPath`] as a backend answers a path its patterns do not match
    /// (OpenBao's `logical.ErrUnsupportedPath`, wrapped in a one-error multierror).
    pub(crate) fn backend_unsupported_path() -> Error {
        Error::new(
            ErrorCode::UnsupportedPath,
            "1 error occurred:\n\t* unsupported path\n\n",
        )
    }
    /// [`ErrorCode::UnsupportedPath`] with OpenBao's text.
    pub fn unsupported_path(path: &str) -> Error {
        Error::new(
            ErrorCode::UnsupportedPath,
            format!("no handler for route \"{path}\". route entry not found."),
        )
    }
    /// [`ErrorCode::InvalidInput`]: `what` is left out of this build; it needs the Cargo
    /// feature `feature`.
    #[cfg_attr(
        all(
            feature = "sqlite",
            feature = "postgres",
            feature = "mysql",
            feature = "redis"
        ),
        allow(dead_code, reason = "only builds that leave a part out call it")
    )]
    pub(crate) fn feature_missing(feature: &str, what: &str) -> Error {
        Error::invalid_input(format!(
            "{what} is not in this build of strongroom: enable the `{feature}` Cargo feature"
        ))
    }
    /// [`ErrorCode::TooLarge`].
    pub fn too_large(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::TooLarge, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_unique() {
        let nums: Vec<u32> = ErrorCode::ALL.iter().map(|c| c.as_u32()).collect();
        assert_eq!(nums, (1..=16).collect::<Vec<_>>());
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_u32(c.as_u32()), Some(c));
        }
        assert_eq!(ErrorCode::from_u32(0), None);
    }

    #[test]
    fn http_statuses_follow_openbao() {
        assert_eq!(ErrorCode::Sealed.http_status(), 503);
        assert_eq!(ErrorCode::PermissionDenied.http_status(), 403);
        assert_eq!(ErrorCode::UnsupportedOperation.http_status(), 405);
        assert_eq!(ErrorCode::UnsupportedPath.http_status(), 404);
        assert_eq!(ErrorCode::TooLarge.http_status(), 413);
        assert_eq!(ErrorCode::Conflict.http_status(), 400);
    }

    #[test]
    fn debug_shows_code_and_message_only() {
        let e = Error::invalid_input("bad `x`");
        assert_eq!(format!("{e}"), "bad `x`");
        assert!(format!("{e:?}").contains("InvalidInput"));
    }
}
