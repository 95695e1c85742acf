//! Values across the boundary: JSON <-> Python objects, durations (`timedelta`), RFC 3339 times
//! (`datetime`), and [`Secret`], the redacted wrapper for tokens and passwords.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::error::invalid;

/// A secret value (a token, a password, an unseal key): its `repr` and `str` never show it.
///
/// ```python
/// token = sr.dev_root_token()
/// print(token)           # Secret(<redacted>)
/// token.reveal()         # the value
/// ```
#[pyclass(frozen, module = "strongroom")]
pub(crate) struct Secret(pub(crate) SecretString);

#[pymethods]
impl Secret {
    #[new]
    fn new(value: String) -> Secret {
        Secret(SecretString::from(value))
    }

    /// The secret value itself.
    fn reveal(&self) -> String {
        self.0.expose_secret().to_string()
    }

    fn __repr__(&self) -> &'static str {
        "Secret(<redacted>)"
    }

    fn __str__(&self) -> &'static str {
        "Secret(<redacted>)"
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        match other.cast::<Secret>() {
            Ok(o) => self.0.expose_secret() == o.get().0.expose_secret(),
            Err(_) => false,
        }
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.0.expose_secret().hash(&mut h);
        h.finish()
    }

    fn __len__(&self) -> usize {
        self.0.expose_secret().len()
    }
}

pub(crate) fn secret(py: Python<'_>, value: impl Into<String>) -> PyResult<Py<PyAny>> {
    Ok(Py::new(py, Secret(SecretString::from(value.into())))?.into_any())
}

/// A token argument: `str` or [`Secret`].
pub(crate) fn token_arg(v: &Bound<'_, PyAny>) -> PyResult<SecretString> {
    if let Ok(s) = v.cast::<Secret>() {
        return Ok(s.get().0.clone());
    }
    match v.extract::<String>() {
        Ok(s) => Ok(SecretString::from(s)),
        Err(_) => Err(invalid(
            v.py(),
            "a token must be a str or a strongroom.Secret",
        )),
    }
}

/// A Python object as JSON: dict, list/tuple, str, int, float, bool, None, bytes (UTF-8),
/// `Secret` (its value), `timedelta` (whole seconds).
pub(crate) fn to_json(v: &Bound<'_, PyAny>) -> PyResult<Value> {
    let py = v.py();
    if v.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if v.is_instance_of::<PyInt>() {
        if let Ok(n) = v.extract::<i64>() {
            return Ok(Value::from(n));
        }
        if let Ok(n) = v.extract::<u64>() {
            return Ok(Value::from(n));
        }
        return Err(invalid(py, "an integer does not fit in 64 bits"));
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return serde_json::Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| invalid(py, "a float must be finite"));
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if let Ok(d) = v.cast::<PyDict>() {
        return Ok(Value::Object(dict_to_data(d)?));
    }
    if let Ok(l) = v.cast::<PyList>() {
        return l
            .iter()
            .map(|x| to_json(&x))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    if let Ok(t) = v.cast::<PyTuple>() {
        return t
            .iter()
            .map(|x| to_json(&x))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        return std::str::from_utf8(b.as_bytes())
            .map(|s| Value::String(s.to_string()))
            .map_err(|_| invalid(py, "bytes in request data must be UTF-8 text"));
    }
    if let Ok(s) = v.cast::<Secret>() {
        return Ok(Value::String(s.get().0.expose_secret().to_string()));
    }
    if v.hasattr("total_seconds")? {
        return Ok(Value::from(duration_arg(v)?.as_secs()));
    }
    let ty = v.get_type().name()?.to_string();
    Err(invalid(
        py,
        format!("a value of type `{ty}` cannot be sent"),
    ))
}

pub(crate) fn dict_to_data(d: &Bound<'_, PyDict>) -> PyResult<Map<String, Value>> {
    let mut out = Map::new();
    for (k, v) in d.iter() {
        let key = k
            .extract::<String>()
            .map_err(|_| invalid(d.py(), "data keys must be strings"))?;
        out.insert(key, to_json(&v)?);
    }
    Ok(out)
}

/// An optional dict argument as request data.
pub(crate) fn data_arg(v: Option<&Bound<'_, PyAny>>) -> PyResult<Map<String, Value>> {
    match v {
        None => Ok(Map::new()),
        Some(v) if v.is_none() => Ok(Map::new()),
        Some(v) => match v.cast::<PyDict>() {
            Ok(d) => dict_to_data(d),
            Err(_) => Err(invalid(v.py(), "data must be a dict")),
        },
    }
}

/// JSON as Python objects.
pub(crate) fn from_json(py: Python<'_>, v: &Value) -> PyResult<Py<PyAny>> {
    Ok(match v {
        Value::Null => py.None(),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any().unbind()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any().unbind()
            } else {
                n.as_f64()
                    .unwrap_or(f64::NAN)
                    .into_pyobject(py)?
                    .into_any()
                    .unbind()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any().unbind(),
        Value::Array(a) => {
            let items = a
                .iter()
                .map(|x| from_json(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any().unbind()
        }
        Value::Object(m) => data_to_py(py, m)?,
    })
}

pub(crate) fn data_to_py(py: Python<'_>, m: &Map<String, Value>) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    for (k, v) in m {
        d.set_item(k, from_json(py, v)?)?;
    }
    Ok(d.into_any().unbind())
}

static TIMEDELTA: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static DATETIME: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static UTC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn datetime_attr<'a>(
    py: Python<'_>,
    cell: &'a PyOnceLock<Py<PyAny>>,
    path: &[&str],
) -> PyResult<&'a Py<PyAny>> {
    cell.get_or_try_init(py, || {
        let mut obj = py.import("datetime")?.into_any();
        for p in path {
            obj = obj.getattr(*p)?;
        }
        Ok::<_, PyErr>(obj.unbind())
    })
}

/// A `datetime.timedelta`.
pub(crate) fn timedelta(py: Python<'_>, d: Duration) -> PyResult<Py<PyAny>> {
    let td = datetime_attr(py, &TIMEDELTA, &["timedelta"])?;
    td.call1(py, (0, d.as_secs(), d.subsec_micros()))
}

/// A duration argument: `timedelta`, seconds (`int`/`float`), or Go-style text (`"1h30m"`).
pub(crate) fn duration_arg(v: &Bound<'_, PyAny>) -> PyResult<Duration> {
    let py = v.py();
    let secs: f64 = if v.hasattr("total_seconds")? {
        v.call_method0("total_seconds")?.extract()?
    } else if let Ok(s) = v.extract::<String>() {
        return strongroom::parse_duration(&s).map_err(|e| invalid(py, e.message()));
    } else if let Ok(f) = v.extract::<f64>() {
        f
    } else {
        return Err(invalid(
            py,
            "a duration must be a timedelta, seconds or text like `1h`",
        ));
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(invalid(py, "a duration must be zero or more"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// An RFC 3339 time as an aware `datetime` (UTC); `None` for "" (OpenBao's "not set").
pub(crate) fn datetime(py: Python<'_>, text: &str) -> PyResult<Py<PyAny>> {
    if text.is_empty() {
        return Ok(py.None());
    }
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            invalid(
                py,
                format!("the engine returned a time it cannot parse: `{text}`"),
            )
        })?
        .to_offset(time::UtcOffset::UTC);
    let utc = datetime_attr(py, &UTC, &["timezone", "utc"])?;
    let dt = datetime_attr(py, &DATETIME, &["datetime"])?;
    dt.call1(
        py,
        (
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond(),
            utc.clone_ref(py),
        ),
    )
}

pub(crate) fn opt_datetime(py: Python<'_>, text: Option<&str>) -> PyResult<Py<PyAny>> {
    datetime(py, text.unwrap_or_default())
}
