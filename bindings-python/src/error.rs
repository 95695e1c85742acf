//! Exceptions: `StrongroomError` and one subclass per [`ErrorCode`], generated at import from
//! the core's one table (`ErrorCode::ALL`, `ErrorCode::name()`), so they cannot drift from it.

use std::ffi::CString;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use strongroom::ErrorCode;

pyo3::create_exception!(
    strongroom,
    StrongroomError,
    pyo3::exceptions::PyException,
    "Base class of every error the engine raises; `.code` is the snake_case error code."
);

/// The subclass for each code, in `ErrorCode::ALL` order.
static CLASSES: PyOnceLock<Vec<(ErrorCode, Py<PyType>)>> = PyOnceLock::new();

/// `permission_denied` -> `PermissionDenied`.
pub(crate) fn class_name(code: ErrorCode) -> String {
    code.name()
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn classes(py: Python<'_>) -> PyResult<&Vec<(ErrorCode, Py<PyType>)>> {
    CLASSES.get_or_try_init(py, || {
        let base = py.get_type::<StrongroomError>();
        ErrorCode::ALL
            .iter()
            .map(|&code| {
                let name = CString::new(format!("strongroom.{}", class_name(code)))?;
                let doc = CString::new(format!(
                    "The engine's `{}` error (code {}).",
                    code.name(),
                    code.as_u32()
                ))?;
                let ty = PyErr::new_type(py, &name, Some(&doc), Some(&base), None)?;
                ty.bind(py).setattr("code", code.name())?;
                ty.bind(py).setattr("number", code.as_u32())?;
                Ok((code, ty))
            })
            .collect::<PyResult<Vec<_>>>()
    })
}

/// Add `StrongroomError` and its subclasses to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let base = py.get_type::<StrongroomError>();
    base.setattr("code", py.None())?;
    base.setattr("number", py.None())?;
    m.add("StrongroomError", base)?;
    for (code, ty) in classes(py)? {
        m.add(class_name(*code), ty.clone_ref(py))?;
    }
    Ok(())
}

/// A Python exception of the class for `code`.
pub(crate) fn error_of(py: Python<'_>, code: ErrorCode, message: &str) -> PyErr {
    match classes(py) {
        Ok(all) => match all.iter().find(|(c, _)| *c == code) {
            Some((_, ty)) => PyErr::from_type(ty.bind(py).clone(), message.to_string()),
            None => StrongroomError::new_err(message.to_string()),
        },
        Err(e) => e,
    }
}

/// Core errors as Python exceptions. The message is the core's, which never carries a secret.
pub(crate) trait ToPyErr {
    fn to_py_err(self, py: Python<'_>) -> PyErr;
}

impl ToPyErr for strongroom::Error {
    fn to_py_err(self, py: Python<'_>) -> PyErr {
        error_of(py, self.code(), self.message())
    }
}

/// A handle used in a process forked after it was opened.
pub(crate) fn forked() -> PyErr {
    Python::attach(|py| {
        error_of(
            py,
            ErrorCode::Unavailable,
            "this handle was opened in the parent process before fork(); open the store again in this process",
        )
    })
}

/// Bad input found by the binding before it reaches the engine.
pub(crate) fn invalid(py: Python<'_>, message: impl AsRef<str>) -> PyErr {
    error_of(py, ErrorCode::InvalidInput, message.as_ref())
}
