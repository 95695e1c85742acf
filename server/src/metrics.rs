//! The server's metrics: requests and latency per mount, method and status, overload and
//! timeout rejections, plus the engine's figures (leases, audit devices, seal) when
//! `/v1/sys/metrics` is read. Rendered as Prometheus text (`?format=prometheus`) or in the
//! JSON shape OpenBao's in-memory sink serves.
//!
//! Recording a request costs a handful of relaxed atomic adds: the per-mount series are found
//! in a copy-on-write map read without a lock (a new mount copies the map once).
//!
//! The `mount` label is only ever a mounted path (the caller resolves it with
//! [`strongroom::Strongroom::mount_of`]); requests under no mount are counted as
//! [`UNKNOWN_MOUNT`], so clients cannot add series by inventing paths. At most
//! [`MAX_MOUNT_SERIES`] mounts get series of their own (the rest count as [`OTHER_MOUNTS`]), and
//! the series of a mount that is gone are dropped when the metrics are read
//! ([`Metrics::retain_mounts`]). OpenBao labels its `vault.route.*` metrics with existing mounts
//! only, and shows them to anyone when `unauthenticated_metrics_access` is set; so do we.
//!
//! ```
//! use std::time::Duration;
//! use strongroom_server::metrics::Metrics;
//!
//! let m = Metrics::new();
//! m.record("secret/", "GET", 200, Duration::from_micros(250));
//! let text = m.prometheus(&strongroom::EngineMetrics::default());
//! assert!(text.contains(r#"strongroom_http_requests_total{mount="secret/",method="GET",status="200"} 1"#));
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde_json::{Value, json};
use strongroom::{AuditDeviceStats, EngineMetrics};

/// Upper bounds of the latency histogram buckets, in microseconds (100 µs .. 10 s).
const BUCKETS_MICROS: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Methods with a series of their own; anything else is counted as `other`.
const METHODS: [&str; 8] = [
    "GET", "LIST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "other",
];

/// Statuses with a series of their own; anything else is counted as `other`.
const STATUSES: [u16; 16] = [
    200, 204, 307, 400, 403, 404, 405, 409, 412, 413, 415, 429, 500, 502, 503, 0,
];

/// The `mount` label of requests no mount serves (mount paths end in `/`, so it never clashes).
pub const UNKNOWN_MOUNT: &str = "unknown";

/// The `mount` label of mounts beyond [`MAX_MOUNT_SERIES`].
pub const OTHER_MOUNTS: &str = "other";

/// Mounts with series of their own; more share [`OTHER_MOUNTS`]. Each costs about 20 KiB.
pub const MAX_MOUNT_SERIES: usize = 256;

/// One (mount, method, status) series: a counter and a latency histogram.
struct Series {
    count: AtomicU64,
    sum_micros: AtomicU64,
    min_micros: AtomicU64,
    max_micros: AtomicU64,
    /// Non-cumulative: `buckets[i]` counts requests in `(BUCKETS[i-1], BUCKETS[i]]`; the last
    /// slot is above every bound.
    buckets: [AtomicU64; BUCKETS_MICROS.len() + 1],
}

impl Default for Series {
    fn default() -> Self {
        Series {
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
            // Lowered by the first sample; never shown while the count is 0.
            min_micros: AtomicU64::new(u64::MAX),
            max_micros: AtomicU64::new(0),
            buckets: Default::default(),
        }
    }
}

impl Series {
    fn record(&self, micros: u64) {
        self.sum_micros.fetch_add(micros, Relaxed);
        self.min_micros.fetch_min(micros, Relaxed);
        self.max_micros.fetch_max(micros, Relaxed);
        let slot = BUCKETS_MICROS
            .iter()
            .position(|&b| micros <= b)
            .unwrap_or(BUCKETS_MICROS.len());
        if let Some(b) = self.buckets.get(slot) {
            b.fetch_add(1, Relaxed);
        }
        // Last, so a series a scrape sees as non-empty has its other fields set.
        self.count.fetch_add(1, Relaxed);
    }
}

/// Every series of one mount, indexed by method and status.
struct MountSeries {
    series: Vec<Series>,
}

impl MountSeries {
    fn new() -> MountSeries {
        MountSeries {
            series: (0..METHODS.len() * STATUSES.len())
                .map(|_| Series::default())
                .collect(),
        }
    }
}

/// What a rejected request was refused for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Too many requests in flight (503).
    Overload,
    /// The handler ran past `max_request_duration` (500, as OpenBao).
    Timeout,
}

/// The server's request metrics, shared by every listener.
pub struct Metrics {
    started: Instant,
    mounts: ArcSwap<HashMap<String, Arc<MountSeries>>>,
    in_flight: AtomicI64,
    overload: AtomicU64,
    timeout: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("mounts", &self.mounts.load().len())
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Empty metrics; uptime counts from now.
    pub fn new() -> Metrics {
        Metrics {
            started: Instant::now(),
            mounts: ArcSwap::from_pointee(HashMap::new()),
            in_flight: AtomicI64::new(0),
            overload: AtomicU64::new(0),
            timeout: AtomicU64::new(0),
        }
    }

    /// Count one answered request.
    pub fn record(&self, mount: &str, method: &str, status: u16, elapsed: Duration) {
        let m = METHODS
            .iter()
            .position(|&x| x == method)
            .unwrap_or(METHODS.len() - 1);
        let s = STATUSES
            .iter()
            .position(|&x| x == status)
            .unwrap_or(STATUSES.len() - 1);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let series = self.mount(mount);
        if let Some(one) = series.series.get(m * STATUSES.len() + s) {
            one.record(micros);
        }
    }

    fn mount(&self, mount: &str) -> Arc<MountSeries> {
        let current = self.mounts.load();
        if let Some(s) = current.get(mount) {
            return s.clone();
        }
        // The two labels that are always allowed, so a full map still has room for them.
        let label =
            if current.len() >= MAX_MOUNT_SERIES && mount != UNKNOWN_MOUNT && mount != OTHER_MOUNTS
            {
                if let Some(s) = current.get(OTHER_MOUNTS) {
                    return s.clone();
                }
                OTHER_MOUNTS
            } else {
                mount
            };
        drop(current);
        // A mount seen for the first time: copy the map with it added (rare; mounts are few).
        let fresh = Arc::new(MountSeries::new());
        let mut chosen = fresh.clone();
        self.mounts.rcu(|current| {
            let mut next = HashMap::clone(current);
            chosen = next
                .entry(label.to_string())
                .or_insert_with(|| fresh.clone())
                .clone();
            next
        });
        chosen
    }

    /// Drop the series of every mount `keep` says is gone ([`UNKNOWN_MOUNT`] and
    /// [`OTHER_MOUNTS`] stay), so an unmounted path stops being reported and frees its slot.
    pub fn retain_mounts(&self, keep: impl Fn(&str) -> bool) {
        let current = self.mounts.load();
        let gone = |m: &str| m != UNKNOWN_MOUNT && m != OTHER_MOUNTS && !keep(m);
        if !current.keys().any(|m| gone(m)) {
            return;
        }
        drop(current);
        self.mounts.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.retain(|m, _| !gone(m));
            next
        });
    }

    /// How many mount labels have series.
    pub fn mount_labels(&self) -> usize {
        self.mounts.load().len()
    }

    /// Count a request refused before or while it ran.
    pub fn reject(&self, why: Rejection) {
        match why {
            Rejection::Overload => self.overload.fetch_add(1, Relaxed),
            Rejection::Timeout => self.timeout.fetch_add(1, Relaxed),
        };
    }

    /// A request started; the returned guard marks it finished when dropped.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(self.clone())
    }

    /// Seconds since the metrics were created (the server started).
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    fn sorted_mounts(&self) -> Vec<(String, Arc<MountSeries>)> {
        let mut v: Vec<(String, Arc<MountSeries>)> = self
            .mounts
            .load()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Every non-empty series with its labels.
    fn each_series(&self, mut f: impl FnMut(&str, &str, &str, &Series)) {
        for (mount, ms) in self.sorted_mounts() {
            for (mi, method) in METHODS.iter().enumerate() {
                for (si, status) in STATUSES.iter().enumerate() {
                    let Some(one) = ms.series.get(mi * STATUSES.len() + si) else {
                        continue;
                    };
                    if one.count.load(Relaxed) == 0 {
                        continue;
                    }
                    let status = if *status == 0 {
                        "other".to_string()
                    } else {
                        status.to_string()
                    };
                    f(&mount, method, &status, one);
                }
            }
        }
    }

    /// The Prometheus text exposition format (0.0.4): the server's series plus the engine's
    /// figures from [`strongroom::Strongroom::metrics`] (`engine`).
    pub fn prometheus(&self, engine: &EngineMetrics) -> String {
        let mut out = String::with_capacity(8 * 1024);
        header(
            &mut out,
            "strongroom_http_requests_total",
            "counter",
            "HTTP requests answered, by mount, method and status.",
        );
        self.each_series(|mount, method, status, s| {
            let _ = writeln!(
                out,
                "strongroom_http_requests_total{{mount=\"{}\",method=\"{method}\",status=\"{status}\"}} {}",
                escape(mount),
                s.count.load(Relaxed)
            );
        });
        header(
            &mut out,
            "strongroom_http_request_duration_seconds",
            "histogram",
            "Time from receiving a request to answering it, by mount, method and status.",
        );
        self.each_series(|mount, method, status, s| {
            let labels = format!(
                "mount=\"{}\",method=\"{method}\",status=\"{status}\"",
                escape(mount)
            );
            let mut cumulative = 0u64;
            for (i, bound) in BUCKETS_MICROS.iter().enumerate() {
                cumulative += s.buckets.get(i).map_or(0, |b| b.load(Relaxed));
                let _ = writeln!(
                    out,
                    "strongroom_http_request_duration_seconds_bucket{{{labels},le=\"{}\"}} {cumulative}",
                    seconds(*bound)
                );
            }
            let count = s.count.load(Relaxed);
            let _ = writeln!(
                out,
                "strongroom_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "strongroom_http_request_duration_seconds_sum{{{labels}}} {}",
                seconds(s.sum_micros.load(Relaxed))
            );
            let _ = writeln!(
                out,
                "strongroom_http_request_duration_seconds_count{{{labels}}} {count}"
            );
        });
        header(
            &mut out,
            "strongroom_http_requests_in_flight",
            "gauge",
            "Requests being handled now.",
        );
        let _ = writeln!(
            out,
            "strongroom_http_requests_in_flight {}",
            self.in_flight.load(Relaxed).max(0)
        );
        header(
            &mut out,
            "strongroom_http_requests_rejected_total",
            "counter",
            "Requests refused because too many were in flight (overload, 503) or that ran past max_request_duration (timeout, 500).",
        );
        let _ = writeln!(
            out,
            "strongroom_http_requests_rejected_total{{reason=\"overload\"}} {}",
            self.overload.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "strongroom_http_requests_rejected_total{{reason=\"timeout\"}} {}",
            self.timeout.load(Relaxed)
        );
        engine_prometheus(&mut out, engine);
        header(
            &mut out,
            "strongroom_uptime_seconds",
            "gauge",
            "Seconds since the server started.",
        );
        let _ = writeln!(
            out,
            "strongroom_uptime_seconds {}",
            self.uptime().as_secs_f64()
        );
        if let Some(rss) = resident_bytes() {
            header(
                &mut out,
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
            );
            let _ = writeln!(out, "process_resident_memory_bytes {rss}");
        }
        out
    }

    /// OpenBao's JSON metrics shape (go-metrics' in-memory sink: `Timestamp`, `Gauges`,
    /// `Points`, `Counters`, `Samples`). Counters are cumulative since start (`Rate` is per
    /// second over the uptime); samples are request latencies in milliseconds.
    pub fn json(&self, engine: &EngineMetrics) -> Value {
        let uptime = self.uptime().as_secs_f64().max(1e-9);
        let mut gauges = Vec::new();
        let mut counters = Vec::new();
        let mut samples = Vec::new();
        let counter = |name: &str, n: u64, labels: Value| {
            let (one, mean) = if n > 0 { (1, 1) } else { (0, 0) };
            json!({
                "Name": name, "Count": n, "Rate": n as f64 / uptime, "Sum": n,
                "Min": one, "Max": one, "Mean": mean, "Stddev": 0, "Labels": labels,
            })
        };
        self.each_series(|mount, method, status, s| {
            let labels = json!({"mount": mount, "method": method, "status": status});
            let count = s.count.load(Relaxed);
            counters.push(counter("strongroom.http.requests", count, labels.clone()));
            let ms = |micros: u64| micros as f64 / 1000.0;
            let sum = ms(s.sum_micros.load(Relaxed));
            let mean = if count > 0 { sum / count as f64 } else { 0.0 };
            samples.push(json!({
                "Name": "strongroom.http.request_duration",
                "Count": count,
                "Rate": sum / (uptime * 1000.0),
                "Sum": sum,
                "Min": ms(match s.min_micros.load(Relaxed) {
                    u64::MAX => 0,
                    m => m,
                }),
                "Max": ms(s.max_micros.load(Relaxed)),
                "Mean": mean,
                "Stddev": histogram_stddev_ms(s, mean),
                "Labels": labels,
            }));
        });
        counters.push(counter(
            "strongroom.http.requests_rejected",
            self.overload.load(Relaxed),
            json!({"reason": "overload"}),
        ));
        counters.push(counter(
            "strongroom.http.requests_rejected",
            self.timeout.load(Relaxed),
            json!({"reason": "timeout"}),
        ));
        let gauge =
            |name: &str, v: f64, labels: Value| json!({"Name": name, "Value": v, "Labels": labels});
        gauges.push(gauge(
            "strongroom.http.requests_in_flight",
            self.in_flight.load(Relaxed).max(0) as f64,
            json!({}),
        ));
        gauges.push(gauge("strongroom.uptime_seconds", uptime, json!({})));
        for f in engine_figures(engine) {
            match f.kind {
                Kind::Counter => counters.push(counter(&f.dotted(), f.value, f.labels_json())),
                Kind::Gauge => gauges.push(gauge(&f.dotted(), f.value as f64, f.labels_json())),
            }
        }
        json!({
            "Timestamp": go_timestamp(),
            "Gauges": gauges,
            "Points": [],
            "Counters": counters,
            "Samples": samples,
        })
    }
}

/// Marks a request finished when dropped (see [`Metrics::start`]).
pub struct InFlight(Arc<Metrics>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// One engine figure: a name (without prefix, `_`-separated), labels and a value.
struct Figure {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: Vec<(&'static str, String)>,
    value: u64,
}

impl Figure {
    fn dotted(&self) -> String {
        format!("strongroom.{}", self.name.replacen('_', ".", 1))
    }

    fn labels_json(&self) -> Value {
        Value::Object(
            self.labels
                .iter()
                .map(|(k, v)| ((*k).to_string(), Value::String(v.clone())))
                .collect(),
        )
    }
}

/// The engine's figures, in a fixed order.
fn engine_figures(engine: &EngineMetrics) -> Vec<Figure> {
    let mut out = Vec::new();
    out.push(Figure {
        name: "core_sealed",
        help: "1 while the engine is sealed.",
        kind: Kind::Gauge,
        labels: Vec::new(),
        value: u64::from(engine.sealed),
    });
    if let Some(leases) = &engine.leases {
        for (field, name, help) in [
            (
                LeaseCount::Created,
                "leases_created_total",
                "Secret leases this process created, by mount.",
            ),
            (
                LeaseCount::Revoked,
                "leases_revoked_total",
                "Leases this process revoked, by mount.",
            ),
        ] {
            for m in &leases.by_mount {
                out.push(Figure {
                    name,
                    help,
                    kind: Kind::Counter,
                    labels: vec![("mount", m.mount.clone())],
                    value: match field {
                        LeaseCount::Created => m.created,
                        LeaseCount::Revoked => m.revoked,
                    },
                });
            }
        }
        let total: u64 = leases.irrevocable_by_mount.iter().map(|(_, n)| n).sum();
        for (mount, n) in &leases.irrevocable_by_mount {
            out.push(Figure {
                name: "leases_irrevocable",
                help: "Irrevocable leases in storage (revocation gave up), by mount.",
                kind: Kind::Gauge,
                labels: vec![("mount", mount.clone())],
                value: *n,
            });
        }
        out.push(Figure {
            name: "leases_irrevocable_total_count",
            help: "Irrevocable leases in storage, all mounts.",
            kind: Kind::Gauge,
            labels: Vec::new(),
            value: total,
        });
        out.push(Figure {
            name: "lease_revocations_in_flight",
            help: "Revocations this process is running now (the expiry queue being worked on).",
            kind: Kind::Gauge,
            labels: Vec::new(),
            value: u64::try_from(leases.revocations_in_flight).unwrap_or(u64::MAX),
        });
    }
    let figures: [AuditFigure; 6] = [
        (
            |d| d.written,
            "audit_written_total",
            "Audit lines written, by device.",
            Kind::Counter,
        ),
        (
            |d| d.failed,
            "audit_failed_total",
            "Audit lines that could not be written, by device.",
            Kind::Counter,
        ),
        (
            |d| d.dropped,
            "audit_dropped_total",
            "Audit lines dropped because a best-effort device's queue was full, by device.",
            Kind::Counter,
        ),
        (
            |d| d.timed_out,
            "audit_timed_out_total",
            "Times a caller stopped waiting for a required device, by device.",
            Kind::Counter,
        ),
        (
            |d| u64::try_from(d.queued).unwrap_or(u64::MAX),
            "audit_queued",
            "Audit lines waiting in a device's queue now.",
            Kind::Gauge,
        ),
        (
            |d| u64::from(d.stalled),
            "audit_stalled",
            "1 while a device has been stuck on one line for longer than its deadline.",
            Kind::Gauge,
        ),
    ];
    for (value, name, help, kind) in figures {
        for d in &engine.audit {
            out.push(Figure {
                name,
                help,
                kind,
                labels: vec![("device", d.path.clone())],
                value: value(d),
            });
        }
    }
    out
}

/// One per-device audit figure: how to read it from a device's counters, its name, help and
/// kind.
type AuditFigure = (
    fn(&AuditDeviceStats) -> u64,
    &'static str,
    &'static str,
    Kind,
);

/// Which per-mount lease counter a figure shows.
#[derive(Clone, Copy)]
enum LeaseCount {
    Created,
    Revoked,
}

fn engine_prometheus(out: &mut String, engine: &EngineMetrics) {
    let mut last = "";
    for f in engine_figures(engine) {
        let name = format!("strongroom_{}", f.name);
        if f.name != last {
            let kind = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            header(out, &name, kind, f.help);
            last = f.name;
        }
        let labels: Vec<String> = f
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {}", f.value);
        } else {
            let _ = writeln!(out, "{name}{{{}}} {}", labels.join(","), f.value);
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value as the exposition format requires: `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn seconds(micros: u64) -> String {
    let s = micros as f64 / 1_000_000.0;
    format!("{s}")
}

/// The standard deviation estimated from the histogram (each bucket's requests at its
/// midpoint), in milliseconds: exact sums of squares would cost another atomic per request.
fn histogram_stddev_ms(s: &Series, mean_ms: f64) -> f64 {
    let count = s.count.load(Relaxed);
    if count < 2 {
        return 0.0;
    }
    let mut acc = 0.0;
    let mut lower = 0u64;
    for (i, b) in s.buckets.iter().enumerate() {
        let n = b.load(Relaxed);
        let upper = BUCKETS_MICROS
            .get(i)
            .copied()
            .unwrap_or_else(|| s.max_micros.load(Relaxed).max(lower));
        let mid = (lower + upper) as f64 / 2000.0;
        acc += n as f64 * (mid - mean_ms).powi(2);
        lower = upper;
    }
    (acc / count as f64).sqrt()
}

/// go-metrics' timestamp: `2026-11-28 04:29:30 +0000 UTC`.
fn go_timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = now / 86_400;
    let rem = now % 86_400;
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The process's resident memory from `/proc/self/statm` (Linux), in bytes.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // Every Linux platform Strongroom builds for uses 4 KiB pages except a few arm64 kernels;
    // the figure is informational.
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_labels_escaped() {
        let m = Metrics::new();
        m.record("a\"b/", "GET", 200, Duration::from_micros(50));
        m.record("a\"b/", "GET", 200, Duration::from_micros(300));
        m.record("a\"b/", "GET", 200, Duration::from_secs(20));
        m.record("kv/", "BREW", 418, Duration::from_micros(1));
        let text = m.prometheus(&EngineMetrics::default());
        let l = r#"mount="a\"b/",method="GET",status="200""#;
        assert!(text.contains(&format!("strongroom_http_requests_total{{{l}}} 3")));
        assert!(text.contains(&format!(
            "strongroom_http_request_duration_seconds_bucket{{{l},le=\"0.0001\"}} 1"
        )));
        assert!(text.contains(&format!(
            "strongroom_http_request_duration_seconds_bucket{{{l},le=\"0.0005\"}} 2"
        )));
        assert!(text.contains(&format!(
            "strongroom_http_request_duration_seconds_bucket{{{l},le=\"10\"}} 2"
        )));
        assert!(text.contains(&format!(
            "strongroom_http_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} 3"
        )));
        assert!(text.contains(&format!(
            "strongroom_http_request_duration_seconds_sum{{{l}}} 20.00035"
        )));
        assert!(text.contains(
            r#"strongroom_http_requests_total{mount="kv/",method="other",status="other"} 1"#
        ));
        let j = m.json(&EngineMetrics::default());
        let sample = &j["Samples"][0];
        assert_eq!(sample["Count"], 3);
        assert_eq!(sample["Min"], 0.05);
        assert_eq!(sample["Max"], 20000.0);
    }

    #[test]
    fn mount_labels_are_capped_and_pruned() {
        let m = Metrics::new();
        for i in 0..MAX_MOUNT_SERIES + 50 {
            m.record(&format!("m{i}/"), "GET", 200, Duration::from_micros(1));
        }
        m.record(UNKNOWN_MOUNT, "GET", 403, Duration::from_micros(1));
        // The cap, plus the overflow label, plus `unknown` (always allowed).
        assert_eq!(m.mount_labels(), MAX_MOUNT_SERIES + 1 + 1);
        let text = m.prometheus(&EngineMetrics::default());
        assert!(text.contains(
            r#"strongroom_http_requests_total{mount="other",method="GET",status="200"} 50"#
        ));
        assert!(text.contains(r#"{mount="unknown",method="GET",status="403"} 1"#));
        m.retain_mounts(|mount| mount == "m0/");
        assert_eq!(m.mount_labels(), 3);
        let text = m.prometheus(&EngineMetrics::default());
        assert!(text.contains(r#"mount="m0/""#));
        assert!(!text.contains(r#"mount="m1/""#));
        assert!(text.contains(r#"mount="unknown""#));
    }

    /// Two mounts, two devices: every engine figure, in the order it is rendered.
    async fn fixture() -> EngineMetrics {
        let dir = tempfile::tempdir().unwrap();
        let sr = strongroom::Strongroom::open(
            strongroom::Config::dev()
                .audit(strongroom::AuditDevice::file(
                    "file",
                    dir.path().join("a.log").display().to_string(),
                ))
                .audit(strongroom::AuditDevice::file(
                    "second",
                    dir.path().join("b.log").display().to_string(),
                )),
        )
        .await
        .unwrap();
        let mut engine = sr.metrics().await.unwrap();
        assert_eq!(engine.audit.len(), 2);
        let mut leases = strongroom::LeaseStats::default();
        for (mount, created, revoked) in [("database/", 5, 2), ("pki/", 9, 0)] {
            let mut m = strongroom::MountLeaseStats::default();
            m.mount = mount.into();
            m.created = created;
            m.revoked = revoked;
            leases.by_mount.push(m);
        }
        leases.revocations_in_flight = 1;
        leases.irrevocable_by_mount = vec![("database/".into(), 1), ("pki/".into(), 4)];
        engine.leases = Some(leases);
        engine.audit[0].written = 7;
        engine.audit[0].dropped = 3;
        engine.audit[0].stalled = true;
        engine.audit[1].failed = 2;
        engine.audit[1].timed_out = 1;
        engine.audit[1].queued = 6;
        engine
    }

    #[tokio::test]
    async fn engine_figures_render() {
        let engine = fixture().await;
        let text = Metrics::new().prometheus(&engine);
        for line in [
            "strongroom_core_sealed 0",
            r#"strongroom_leases_created_total{mount="database/"} 5"#,
            r#"strongroom_leases_revoked_total{mount="database/"} 2"#,
            r#"strongroom_leases_irrevocable{mount="database/"} 1"#,
            "strongroom_lease_revocations_in_flight 1",
            r#"strongroom_audit_dropped_total{device="file/"} 3"#,
            r#"strongroom_audit_stalled{device="file/"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        // One TYPE line per metric name.
        assert_eq!(
            text.matches("# TYPE strongroom_audit_written_total ")
                .count(),
            1
        );
        let j = Metrics::new().json(&engine);
        assert!(
            j["Counters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["Name"] == "strongroom.audit.dropped_total" && c["Count"] == 3)
        );
    }

    /// The engine's share of the Prometheus text, whole: the typed figures render exactly as
    /// the JSON ones they replaced did (checked against that code when it was replaced).
    #[tokio::test]
    async fn engine_prometheus_text_is_pinned() {
        let engine = fixture().await;
        let mut text = String::new();
        engine_prometheus(&mut text, &engine);
        assert_eq!(text, EXPECTED_ENGINE_TEXT);
    }

    const EXPECTED_ENGINE_TEXT: &str = "\
# HELP strongroom_core_sealed 1 while the engine is sealed.\n\
# TYPE strongroom_core_sealed gauge\n\
strongroom_core_sealed 0\n\
# HELP strongroom_leases_created_total Secret leases this process created, by mount.\n\
# TYPE strongroom_leases_created_total counter\n\
strongroom_leases_created_total{mount=\"database/\"} 5\n\
strongroom_leases_created_total{mount=\"pki/\"} 9\n\
# HELP strongroom_leases_revoked_total Leases this process revoked, by mount.\n\
# TYPE strongroom_leases_revoked_total counter\n\
strongroom_leases_revoked_total{mount=\"database/\"} 2\n\
strongroom_leases_revoked_total{mount=\"pki/\"} 0\n\
# HELP strongroom_leases_irrevocable Irrevocable leases in storage (revocation gave up), by mount.\n\
# TYPE strongroom_leases_irrevocable gauge\n\
strongroom_leases_irrevocable{mount=\"database/\"} 1\n\
strongroom_leases_irrevocable{mount=\"pki/\"} 4\n\
# HELP strongroom_leases_irrevocable_total_count Irrevocable leases in storage, all mounts.\n\
# TYPE strongroom_leases_irrevocable_total_count gauge\n\
strongroom_leases_irrevocable_total_count 5\n\
# HELP strongroom_lease_revocations_in_flight Revocations this process is running now (the expiry queue being worked on).\n\
# TYPE strongroom_lease_revocations_in_flight gauge\n\
strongroom_lease_revocations_in_flight 1\n\
# HELP strongroom_audit_written_total Audit lines written, by device.\n\
# TYPE strongroom_audit_written_total counter\n\
strongroom_audit_written_total{device=\"file/\"} 7\n\
strongroom_audit_written_total{device=\"second/\"} 0\n\
# HELP strongroom_audit_failed_total Audit lines that could not be written, by device.\n\
# TYPE strongroom_audit_failed_total counter\n\
strongroom_audit_failed_total{device=\"file/\"} 0\n\
strongroom_audit_failed_total{device=\"second/\"} 2\n\
# HELP strongroom_audit_dropped_total Audit lines dropped because a best-effort device's queue was full, by device.\n\
# TYPE strongroom_audit_dropped_total counter\n\
strongroom_audit_dropped_total{device=\"file/\"} 3\n\
strongroom_audit_dropped_total{device=\"second/\"} 0\n\
# HELP strongroom_audit_timed_out_total Times a caller stopped waiting for a required device, by device.\n\
# TYPE strongroom_audit_timed_out_total counter\n\
strongroom_audit_timed_out_total{device=\"file/\"} 0\n\
strongroom_audit_timed_out_total{device=\"second/\"} 1\n\
# HELP strongroom_audit_queued Audit lines waiting in a device's queue now.\n\
# TYPE strongroom_audit_queued gauge\n\
strongroom_audit_queued{device=\"file/\"} 0\n\
strongroom_audit_queued{device=\"second/\"} 6\n\
# HELP strongroom_audit_stalled 1 while a device has been stuck on one line for longer than its deadline.\n\
# TYPE strongroom_audit_stalled gauge\n\
strongroom_audit_stalled{device=\"file/\"} 1\n\
strongroom_audit_stalled{device=\"second/\"} 0\n\
";

    #[test]
    fn go_timestamps() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_785), (2026, 11, 28));
        assert!(go_timestamp().ends_with(" +0000 UTC"));
    }
}
