//! What one render may do. A template is configuration, but a runaway one (or one written by
//! someone who may edit the agent's templates and not much else) must not hang the agent or
//! exhaust its memory. gotmpl bounds `range` iterations and call depth; this module bounds the
//! rest, deterministically (no clock):
//!
//! - every function call, built-in or consul-template's, is charged what it takes in and gives
//!   out (a string's bytes, a list's or map's entries, 1 for anything else) against
//!   [`WORK_BYTES`] per render;
//! - every `{{ template "x" }}` call costs [`TEMPLATE_CALL_COST`], so a chain of `define`s that
//!   call each other several times (exponentially many calls from a short source) stops;
//! - no value a function returns may exceed [`MAX_VALUE_BYTES`], and functions whose result can
//!   be far larger than their input (`replaceAll`, `join`, `indent`, `printf` widths, the
//!   escapers, the JSON and YAML encoders) are refused before they allocate it;
//! - the rendered output stops at [`MAX_OUTPUT_BYTES`].
//!
//! The limits are far above what a secrets file needs (a certificate bundle is a few KiB) and
//! each refusal names the function and the limit.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use gotmpl::parse::{Expr, ListNode, Node};
use gotmpl::{FuncMap, TemplateError, Value, ValueFunc};

use crate::util::unpoison;

/// The most one value a function returns may hold (16 MiB).
pub(crate) const MAX_VALUE_BYTES: usize = 16 << 20;
/// The most a render may write (64 MiB).
pub(crate) const MAX_OUTPUT_BYTES: usize = 64 << 20;
/// What the functions of one render may take in and give out together (1 GiB).
pub(crate) const WORK_BYTES: u64 = 1 << 30;
/// What one `{{ template }}` call costs against [`WORK_BYTES`].
/// (16 KiB: at most 65,536 template calls per render.)
pub(crate) const TEMPLATE_CALL_COST: u64 = 16 << 10;
/// A function whose result could exceed this much is not called at all (a bound, looser than
/// [`MAX_VALUE_BYTES`] where it is an estimate: the real result is then checked against that).
const MAX_ESTIMATE_BYTES: u64 = 256 << 20;

/// The charge function inserted before every `{{ template }}` call (not an identifier a
/// template can call: `check` rejects it at parse time as an undefined function).
pub(crate) const TICK: &str = "__strongroom_tick";

/// The built-ins metered through a delegate (see [`builtin`]); `and` and `or` are evaluated by
/// the executor itself, `not`, `len`, `index` and `call` are O(1) in their arguments.
const METERED_BUILTINS: [&str; 12] = [
    "eq", "ne", "lt", "le", "gt", "ge", "slice", "print", "println", "printf", "html", "js",
];
const ALSO_METERED: [&str; 1] = ["urlquery"];

/// What is left of one render's budget. Reset before each render (renders of one template are
/// serialised by its render lock).
#[derive(Clone, Debug)]
pub(crate) struct Meter(Arc<AtomicU64>);

impl Meter {
    pub(crate) fn new() -> Self {
        Meter(Arc::new(AtomicU64::new(WORK_BYTES)))
    }

    pub(crate) fn reset(&self) {
        self.0.store(WORK_BYTES, Ordering::Relaxed);
    }

    fn charge(&self, name: &str, cost: u64) -> gotmpl::Result<()> {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(cost)
            })
            .map(|_| ())
            .map_err(|_| {
                TemplateError::Exec(format!(
                    "{name}: the template used up its work budget ({} MiB of function input \
                     and output, or that much in template calls, per render)",
                    WORK_BYTES >> 20
                ))
            })
    }
}

/// What a call is charged for a value it takes or gives: O(1) to compute.
fn shallow(v: &Value) -> u64 {
    let n = match v {
        Value::String(s) => s.len(),
        Value::List(l) => l.len(),
        Value::Map(m) => m.len(),
        _ => 1,
    };
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The size of a value printed or encoded, walked without recursion: `bytes` of text (strings,
/// keys, numbers), `nodes` visited, and `indent`, the sum of every node's depth (what pretty
/// printers add). The walk stops once `bytes + nodes` passes `cap`.
#[derive(Default)]
struct Shape {
    bytes: u64,
    nodes: u64,
    indent: u64,
}

fn shape(values: &[Value], cap: u64) -> Shape {
    let mut s = Shape::default();
    let mut stack: Vec<(&Value, u64)> = values.iter().map(|v| (v, 0)).collect();
    while let Some((v, depth)) = stack.pop() {
        s.nodes += 1;
        s.indent = s.indent.saturating_add(depth);
        match v {
            Value::String(t) => s.bytes += u64::try_from(t.len()).unwrap_or(u64::MAX),
            Value::List(l) => stack.extend(l.iter().map(|x| (x, depth + 1))),
            Value::Map(m) => {
                for (k, x) in m.iter() {
                    s.bytes += u64::try_from(k.len()).unwrap_or(u64::MAX);
                    stack.push((x, depth + 1));
                }
            }
            // Numbers print in at most 24 characters; nil and booleans in 5.
            _ => s.bytes += 24,
        }
        if s.bytes.saturating_add(s.nodes) > cap {
            break;
        }
    }
    s
}

fn arg_str(args: &[Value], i: usize) -> &str {
    match args.get(i) {
        Some(Value::String(s)) => s,
        _ => "",
    }
}

fn len64(s: &str) -> u64 {
    u64::try_from(s.len()).unwrap_or(u64::MAX)
}

/// The most `printf`'s widths and precisions can add: each is capped by gotmpl at 65535.
fn printf_padding(format: &str) -> u64 {
    let mut total = 0u64;
    let mut rest = format;
    while let Some(i) = rest.find('%') {
        rest = &rest[i + 1..];
        let spec_end = rest
            .find(|c: char| c.is_ascii_alphabetic() || c == '%')
            .unwrap_or(rest.len());
        let spec = &rest[..spec_end];
        for part in spec.split('.') {
            let digits: String = part
                .trim_start_matches(['+', '-', '#', ' ', '0'])
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '*' || *c == '[' || *c == ']')
                .collect();
            if digits.contains('*') {
                total = total.saturating_add(65_535);
            } else if let Ok(n) = digits.trim_matches(['[', ']']).parse::<u64>() {
                total = total.saturating_add(n.min(65_535));
            }
        }
        rest = rest.get(spec_end + 1..).unwrap_or("");
    }
    total
}

/// An upper bound of the result's size, for the functions whose result may be much larger than
/// what they are charged on the way in; `None` for the others. Computing it costs what it
/// reports in `walked` (charged too).
fn estimate(name: &str, args: &[Value], walked: &mut u64) -> Option<u64> {
    let cap = MAX_ESTIMATE_BYTES;
    let mut measure = |values: &[Value]| {
        let s = shape(values, cap);
        *walked = walked.saturating_add(s.nodes);
        s
    };
    let bound = match name {
        "replaceAll" => {
            let (from, to, s) = (arg_str(args, 0), arg_str(args, 1), arg_str(args, 2));
            *walked = walked.saturating_add(len64(s));
            let count = if from.is_empty() {
                s.chars().count() + 1
            } else if to.len() <= from.len() {
                0
            } else {
                s.matches(from).count()
            };
            len64(s).saturating_add(
                u64::try_from(count)
                    .unwrap_or(u64::MAX)
                    .saturating_mul(len64(to)),
            )
        }
        // A list of parts: each is a value of its own (about 64 bytes with its allocation).
        "split" => {
            let (sep, s) = (arg_str(args, 0), arg_str(args, 1));
            *walked = walked.saturating_add(len64(s));
            let parts = if sep.is_empty() {
                s.chars().count()
            } else {
                s.matches(sep).count() + 1
            };
            len64(s).saturating_add(u64::try_from(parts).unwrap_or(u64::MAX).saturating_mul(64))
        }
        // `[]` is two bytes of text and a value (and serde_json's, on the way) of 80.
        "parseJSON" => len64(arg_str(args, 0)).saturating_mul(40),
        "join" => {
            let sep = len64(arg_str(args, 0));
            let s = measure(args.get(1..).unwrap_or(&[]));
            s.bytes
                .saturating_add(s.nodes.saturating_mul(sep.saturating_add(2)))
        }
        "indent" => {
            let spaces = match args.first() {
                Some(Value::Int(i)) => u64::try_from(*i).unwrap_or(0),
                Some(Value::Uint(u)) => *u,
                _ => 0,
            };
            let s = arg_str(args, 1);
            *walked = walked.saturating_add(len64(s));
            let lines = u64::try_from(s.matches('\n').count() + 1).unwrap_or(u64::MAX);
            len64(s).saturating_add(lines.saturating_mul(spaces))
        }
        "printf" => {
            let format = arg_str(args, 0);
            let s = measure(args.get(1..).unwrap_or(&[]));
            len64(format)
                .saturating_add(printf_padding(format))
                .saturating_add(s.bytes.saturating_mul(10))
                .saturating_add(s.nodes.saturating_mul(4))
        }
        "print" | "println" | "html" | "js" | "urlquery" | "toJSON" | "toLower" | "toUpper" => {
            let s = measure(args);
            s.bytes
                .saturating_mul(10)
                .saturating_add(s.nodes.saturating_mul(4))
        }
        "toJSONPretty" | "toYAML" => {
            let s = measure(args);
            s.bytes
                .saturating_mul(10)
                .saturating_add(s.nodes.saturating_mul(8))
                .saturating_add(s.indent.saturating_mul(4))
        }
        _ => return None,
    };
    Some(bound)
}

fn too_large(name: &str) -> TemplateError {
    TemplateError::Exec(format!(
        "{name}: the result would be larger than {} MiB, the most one template value may hold",
        MAX_VALUE_BYTES >> 20
    ))
}

/// `f`, charged to `meter` and bounded as this module says.
fn metered(name: &str, f: ValueFunc, meter: &Meter) -> ValueFunc {
    let name = name.to_string();
    let meter = meter.clone();
    Arc::new(move |args: &[Value]| {
        let taken = args.iter().map(shallow).fold(1u64, u64::saturating_add);
        meter.charge(&name, taken)?;
        let mut walked = 0;
        let bound = estimate(&name, args, &mut walked);
        meter.charge(&name, walked)?;
        if bound.is_some_and(|b| b > MAX_ESTIMATE_BYTES) {
            return Err(too_large(&name));
        }
        let out = f(args)?;
        if let Value::String(s) = &out
            && s.len() > MAX_VALUE_BYTES
        {
            return Err(too_large(&name));
        }
        meter.charge(&name, shallow(&out))?;
        Ok(out)
    })
}

/// `funcs` (consul-template's and the Vault functions), each metered, plus the metered
/// built-ins and the template-call charge.
pub(crate) fn meter_funcs(funcs: FuncMap, meter: &Meter) -> FuncMap {
    let mut out: FuncMap = funcs
        .into_iter()
        .map(|(name, f)| {
            let g = metered(&name, f, meter);
            (name, g)
        })
        .collect();
    for name in METERED_BUILTINS.into_iter().chain(ALSO_METERED) {
        let f: ValueFunc = Arc::new(move |args: &[Value]| builtin(name, args));
        out.insert(name.to_string(), metered(name, f, meter));
    }
    let m = meter.clone();
    out.insert(
        TICK.to_string(),
        Arc::new(move |_: &[Value]| {
            m.charge("template", TEMPLATE_CALL_COST)?;
            Ok(Value::String("".into()))
        }),
    );
    out
}

/// The key a delegate's capture function leaves its value under (per thread: a call runs
/// synchronously on the caller's thread).
const CAPTURE: &str = "__strongroom_capture";

thread_local! {
    static CAPTURED: std::cell::RefCell<Option<Value>> = const { std::cell::RefCell::new(None) };
}

/// Delegates by name and arity: `{{ __strongroom_capture (NAME .a0 .a1 …) }}` over gotmpl's
/// own built-ins (the template holds no metered function, so the call reaches the built-in).
/// At most a few dozen: a template calls a handful of built-ins with a handful of arities.
type Delegates = HashMap<(&'static str, usize), Arc<gotmpl::Template>>;
static DELEGATES: LazyLock<Mutex<Delegates>> = LazyLock::new(|| Mutex::new(HashMap::new()));
const MAX_DELEGATES: usize = 256;

/// Calls gotmpl's built-in `name` with `args` (gotmpl does not export its built-ins, so a
/// wrapper cannot hold them: a one-action template calls it and hands the value back).
fn builtin(name: &'static str, args: &[Value]) -> gotmpl::Result<Value> {
    let delegate = {
        let mut cache = DELEGATES
            .lock()
            .or_else(unpoison)
            .map_err(|_| TemplateError::Exec(format!("{name}: internal state unavailable")))?;
        match cache.get(&(name, args.len())) {
            Some(t) => Arc::clone(t),
            None => {
                let t = Arc::new(delegate_for(name, args.len())?);
                if cache.len() < MAX_DELEGATES {
                    cache.insert((name, args.len()), Arc::clone(&t));
                }
                t
            }
        }
    };
    let data: BTreeMap<Arc<str>, Value> = args
        .iter()
        .enumerate()
        .map(|(i, a)| (Arc::from(format!("a{i}")), a.clone()))
        .collect();
    CAPTURED.with(|c| c.borrow_mut().take());
    let mut sink = String::new();
    delegate.execute_fmt(&mut sink, &Value::Map(Arc::new(data)))?;
    CAPTURED
        .with(|c| c.borrow_mut().take())
        .ok_or_else(|| TemplateError::Exec(format!("{name}: gave no value")))
}

fn delegate_for(name: &str, arity: usize) -> gotmpl::Result<gotmpl::Template> {
    let mut source = format!("{{{{ {CAPTURE} ({name}");
    for i in 0..arity {
        source.push_str(&format!(" .a{i}"));
    }
    source.push_str(") }}");
    gotmpl::Template::new("builtin")
        .func(CAPTURE, |args: &[Value]| {
            let v = args.first().cloned().unwrap_or(Value::Nil);
            CAPTURED.with(|c| *c.borrow_mut() = Some(v));
            Ok(Value::String("".into()))
        })
        .parse(&source)
}

/// `list` with a [`TICK`] call before every `{{ template }}` call, at any depth.
pub(crate) fn tick_calls(list: &ListNode) -> ListNode {
    super::locate::insert_before(list, &|node| match node {
        Node::Template(t) => Some(super::locate::call(
            t.pos,
            vec![Expr::Identifier(t.pos, TICK.into())],
        )),
        _ => None,
    })
}

/// The render's output, refusing to grow past [`MAX_OUTPUT_BYTES`].
#[derive(Default)]
pub(crate) struct Output {
    pub(crate) text: String,
    pub(crate) overflowed: bool,
}

impl fmt::Write for Output {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.text.len().saturating_add(s.len()) > MAX_OUTPUT_BYTES {
            self.overflowed = true;
            return Err(fmt::Error);
        }
        self.text.push_str(s);
        Ok(())
    }
}

pub(crate) fn output_too_large(name: &str) -> String {
    format!(
        "template: {name}: the rendered output is larger than {} MiB, the most a template may \
         write",
        MAX_OUTPUT_BYTES >> 20
    )
}
