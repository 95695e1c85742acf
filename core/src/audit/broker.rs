//! The audit broker: formats each entry for every device and hands the line to the device's
//! writer thread through a bounded queue, then applies the devices' failure policies.
//!
//! * [`FailurePolicy::Required`]: the caller waits for the write, but only until the device's
//!   deadline. A call fails (`internal error`, HTTP 500) when at least one required device
//!   exists and none of them logged the entry in time. A required device whose writer has been
//!   stuck on one write for longer than its deadline fails calls at once (and its queue still
//!   holds their entries, so they are written if it recovers).
//! * [`FailurePolicy::BestEffort`]: the caller never waits. When the queue is full the entry is
//!   dropped and counted.
//!
//! Writer threads are plain OS threads, so a socket or pipe blocked in `write(2)` holds only
//! its own thread, never an async worker; they end when their device is dropped and their
//! queue drains.
//!
//! A required file device that is idle (nothing queued, nobody writing) is written by the
//! caller itself: one `write(2)` to the page cache, returned before the call goes on, so
//! nothing the call was answered for is lost on `kill -9`. Handing the line to the writer
//! thread and waiting for its answer cost a wake-up and a context switch on each side, more
//! than the write (an audited HTTP request cost ~25 µs of CPU more than an unaudited one). The
//! trade: a file write that itself blocks in the kernel (a hung disk or network file system)
//! holds the one call that made it, as it would hold the writer thread; every other call
//! finds the device busy, queues its line and fails at the deadline as before.
//!
//! The hand-off is cheap on purpose: a writer takes every queued line at once and writes
//! them with one system call (group commit), a writer that just wrote naps briefly so
//! best-effort lines share a write, a writer whose last batch held several lines gathers the
//! next one for a moment without being woken by each line, and callers wake a sleeping
//! writer only when they wait for it (a required line) or when it has gone idle. Nobody
//! spins: on a machine with more runnable threads than cores, callers spinning and yielding
//! for their acknowledgement took the CPU the writer needed (an audited HTTP request cost
//! ~90 µs of CPU, most of it in `sched_yield`, and waited ~45 ms at 32 connections on 2
//! cores).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, TryLockError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Notify;

use super::config::{AuditDevice, AuditKind, FailurePolicy, FormatOptions, Settings};
use super::entry::{AuditInput, EntryKind, write_entry_reusing};
use super::salt::Salt;
use super::sink::{self, Sink};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::request::Data;
use crate::storage::Backend;

/// What one audit device has done since the engine opened. `written + failed + dropped` counts
/// the entries that reached a final state; a timed-out entry is still written (or failed)
/// later, so it also appears in one of those.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditDeviceStats {
    /// The device path (`audit/`).
    pub path: String,
    /// `file` or `socket`.
    pub kind: AuditKind,
    /// Its failure policy.
    pub failure: FailurePolicy,
    /// Lines written.
    pub written: u64,
    /// Lines that could not be formatted or written (after OpenBao's one reopen/reconnect).
    pub failed: u64,
    /// Lines dropped because the queue was full.
    pub dropped: u64,
    /// Times a caller stopped waiting for this (required) device: deadline passed, or the
    /// device was already stuck.
    pub timed_out: u64,
    /// Lines waiting in the queue now.
    pub queued: usize,
    /// Whether the writer has been busy with one line for longer than the deadline.
    pub stalled: bool,
    /// The last write error (an I/O message; never entry content).
    pub last_error: Option<String>,
}

/// Counters and flags shared between the broker and a writer thread.
struct Shared {
    written: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    timed_out: AtomicU64,
    queued: AtomicUsize,
    /// Nanoseconds since `epoch` (plus one) when the current write started; 0 = idle.
    busy_since: AtomicU64,
    /// Set by `reopen()`, honoured by the writer before its next line.
    reopen: AtomicBool,
    /// Whether the last write succeeded (to log state changes once, not every line).
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
    epoch: Instant,
}

impl Shared {
    fn new(epoch: Instant) -> Shared {
        Shared {
            written: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
            busy_since: AtomicU64::new(0),
            reopen: AtomicBool::new(false),
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(None),
            epoch,
        }
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether the writer has been on one write for longer than `deadline`.
    fn stalled(&self, deadline: Duration) -> bool {
        let since = self.busy_since.load(Ordering::Acquire);
        if since == 0 {
            return false;
        }
        let busy = self.now_nanos().saturating_sub(since - 1);
        u128::from(busy) > deadline.as_nanos()
    }

    fn record_failure(&self, path: &str, lines: u64, message: String) {
        self.failed.fetch_add(lines, Ordering::Relaxed);
        if self.healthy.swap(false, Ordering::AcqRel) {
            tracing::warn!(device = path, error = %message, "audit device cannot write");
        }
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(message);
        }
    }

    fn record_success(&self, path: &str, lines: u64) {
        self.written.fetch_add(lines, Ordering::Relaxed);
        if !self.healthy.swap(true, Ordering::AcqRel) {
            tracing::info!(device = path, "audit device writes again");
        }
    }
}

const PENDING: u8 = 0;
const WRITTEN: u8 = 1;
const FAILED: u8 = 2;

/// What the caller of one `log` waits on: one slot per device it waits for, set by the
/// writers, and a wake-up.
struct CallAck {
    slots: Vec<AtomicU8>,
    notify: Notify,
}

/// Tells the caller how a line it waits for went.
struct Ack {
    call: Arc<CallAck>,
    slot: usize,
}

impl Ack {
    fn send(self, ok: bool) {
        if let Some(s) = self.call.slots.get(self.slot) {
            s.store(if ok { WRITTEN } else { FAILED }, Ordering::Release);
        }
        // Stores a permit when the caller is not waiting yet; harmless when it gave up.
        self.call.notify.notify_one();
    }
}

enum Job {
    Line { line: Vec<u8>, ack: Option<Ack> },
    Reopen,
    Flush(Ack),
}

/// How the writer sleeps, which tells callers whether to wake it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sleep {
    /// Working: it will see new jobs by itself.
    Awake,
    /// Just finished a batch and naps briefly: best-effort lines wait for the nap to end and
    /// go out together; a line someone waits for wakes it.
    Napping,
    /// Idle: any new job wakes it.
    Idle,
    /// Just wrote a batch of several lines, so more are on their way from other callers: it
    /// waits [`GATHER`] for them without being woken by each one, then writes them together.
    Gathering,
}

struct QueueState {
    jobs: Vec<Job>,
    sleep: Sleep,
    closed: bool,
}

/// A device's bounded job queue.
struct Queue {
    state: Mutex<QueueState>,
    wake: Condvar,
    /// Jobs waiting (mirrors `state.jobs.len()`).
    waiting: AtomicUsize,
    capacity: usize,
}

/// How long a writer naps after a batch before it looks again (best-effort lines written
/// within this long of each other share one write).
const NAP: Duration = Duration::from_millis(2);

/// How long a writer whose last batch held several lines gathers the next one before it
/// writes (see [`Queue::take`]).
const GATHER: Duration = Duration::from_micros(50);

/// A batch of at least this many jobs makes the writer gather the next one.
const GATHER_AFTER: usize = 2;

impl Queue {
    fn new(capacity: usize) -> Queue {
        Queue {
            state: Mutex::new(QueueState {
                jobs: Vec::new(),
                sleep: Sleep::Awake,
                closed: false,
            }),
            wake: Condvar::new(),
            waiting: AtomicUsize::new(0),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a job without blocking; gives it back when the queue is full (lines only: control
    /// jobs always fit) or closed.
    fn push(&self, job: Job, urgent: bool) -> std::result::Result<(), Job> {
        let mut s = self.lock();
        if s.closed || (matches!(job, Job::Line { .. }) && s.jobs.len() >= self.capacity) {
            return Err(job);
        }
        s.jobs.push(job);
        self.waiting.store(s.jobs.len(), Ordering::Release);
        let wake = match s.sleep {
            Sleep::Awake | Sleep::Gathering => false,
            Sleep::Napping => urgent,
            Sleep::Idle => true,
        };
        if wake {
            s.sleep = Sleep::Awake;
        }
        drop(s);
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Every queued job, waiting for some first; `None` once closed and drained.
    ///
    /// `gather`: the last batch held lines from several callers, so others are likely on
    /// their way. The writer then waits up to [`GATHER`] without being woken by each new line
    /// (each wake-up is a context switch on both sides, the largest part of what an audited
    /// request cost), and writes what gathered in one go. A writer that gathered nothing goes
    /// back to waking for every line someone waits for, so a lone caller never waits for a
    /// gathering.
    fn take(&self, gather: bool) -> Option<Vec<Job>> {
        let mut s = self.lock();
        if gather && s.jobs.is_empty() && !s.closed {
            s.sleep = Sleep::Gathering;
            s = self
                .wake
                .wait_timeout(s, GATHER)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
            // Woken early only by close (spurious wake-ups aside): either way, look now.
            s.sleep = Sleep::Awake;
        }
        let mut napped = false;
        while s.jobs.is_empty() {
            if s.closed {
                return None;
            }
            if napped {
                s.sleep = Sleep::Idle;
                s = self.wake.wait(s).unwrap_or_else(|p| p.into_inner());
            } else {
                s.sleep = Sleep::Napping;
                s = self
                    .wake
                    .wait_timeout(s, NAP)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
                napped = true;
            }
        }
        s.sleep = Sleep::Awake;
        self.waiting.store(0, Ordering::Release);
        Some(std::mem::take(&mut s.jobs))
    }

    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }
}

/// A device's sink, shared by its writer thread and the callers that write inline.
struct SharedSink(Mutex<Box<dyn Sink>>);

impl SharedSink {
    fn lock(&self) -> MutexGuard<'_, Box<dyn Sink>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sink, unless someone is writing to it now.
    fn try_lock(&self) -> Option<MutexGuard<'_, Box<dyn Sink>>> {
        match self.0.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}

/// Reopen the sink first when `reopen()` asked for it (log rotation).
fn reopen_if_asked(path: &str, sink: &mut dyn Sink, shared: &Shared) {
    if shared.reopen.swap(false, Ordering::AcqRel) {
        if let Err(e) = sink.reopen() {
            shared.record_failure(path, 0, format!("cannot reopen: {e}"));
        }
    }
}

/// One configured device: how to format for it, and its queue.
struct Device {
    config: AuditDevice,
    format: FormatOptions,
    salt: RwLock<Option<Arc<Salt>>>,
    queue: Arc<Queue>,
    shared: Arc<Shared>,
    sink: Arc<SharedSink>,
    /// Whether a caller may write its own line when the device is idle (a file: see
    /// [`Sink::writes_inline`]).
    inline: bool,
    /// The length of the last line, to size the next one's buffer.
    line_hint: AtomicUsize,
}

impl Drop for Device {
    fn drop(&mut self) {
        // The writer drains what is queued, then ends.
        self.queue.close();
    }
}

impl Device {
    /// Queue a job without ever blocking; false (and counted as dropped) when full.
    fn enqueue(&self, job: Job, urgent: bool) -> bool {
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        match self.queue.push(job, urgent) {
            Ok(()) => true,
            Err(job) => {
                self.shared.queued.fetch_sub(1, Ordering::AcqRel);
                if let Job::Line { .. } = job {
                    if self.queue.lock().closed {
                        self.shared.record_failure(
                            self.config.path(),
                            1,
                            "the writer has stopped".into(),
                        );
                    } else {
                        self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                false
            }
        }
    }

    fn salt(&self) -> Option<Arc<Salt>> {
        self.salt.read().ok().and_then(|s| s.clone())
    }

    fn stats(&self) -> AuditDeviceStats {
        let s = &self.shared;
        AuditDeviceStats {
            path: self.config.path().to_string(),
            kind: self.config.kind(),
            failure: self.config.failure(),
            written: s.written.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            timed_out: s.timed_out.load(Ordering::Relaxed),
            queued: s.queued.load(Ordering::Acquire),
            stalled: s.stalled(self.config.deadline()),
            last_error: s.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }
}

/// The writer thread of one device: drains its queue into its sink, a batch at a time.
fn run_writer(path: String, sink: Arc<SharedSink>, queue: Arc<Queue>, shared: Arc<Shared>) {
    let batched = sink.lock().accepts_batches();
    let mut buf: Vec<u8> = Vec::new();
    let mut acks: Vec<Ack> = Vec::new();
    let mut gather = false;
    while let Some(jobs) = queue.take(gather) {
        shared.queued.fetch_sub(jobs.len(), Ordering::AcqRel);
        // Several callers' lines in one batch: more are coming, gather the next batch.
        gather = batched && jobs.len() >= GATHER_AFTER;
        let mut sink = sink.lock();
        reopen_if_asked(&path, sink.as_mut(), &shared);
        let mut lines = 0u64;
        for job in jobs {
            match job {
                Job::Line { line, ack } => {
                    if batched {
                        buf.extend_from_slice(&line);
                        lines += 1;
                        acks.extend(ack);
                    } else {
                        let ok = write(&path, sink.as_mut(), &shared, &line, 1);
                        if let Some(ack) = ack {
                            ack.send(ok);
                        }
                    }
                }
                Job::Reopen => {}
                Job::Flush(ack) => {
                    flush_batch(&path, sink.as_mut(), &shared, &mut buf, &mut acks, lines);
                    lines = 0;
                    ack.send(true);
                }
            }
        }
        flush_batch(&path, sink.as_mut(), &shared, &mut buf, &mut acks, lines);
        if buf.capacity() > 1 << 20 {
            // Do not keep a burst's buffer for ever.
            buf = Vec::new();
        }
    }
}

/// Write the lines gathered so far with one write, and tell whoever waits for them.
fn flush_batch(
    path: &str,
    sink: &mut dyn Sink,
    shared: &Shared,
    buf: &mut Vec<u8>,
    acks: &mut Vec<Ack>,
    lines: u64,
) {
    if lines == 0 {
        return;
    }
    let ok = write(path, sink, shared, buf, lines);
    buf.clear();
    for ack in acks.drain(..) {
        ack.send(ok);
    }
}

/// One write of `lines` lines, timed so callers can see a stalled device.
fn write(path: &str, sink: &mut dyn Sink, shared: &Shared, bytes: &[u8], lines: u64) -> bool {
    shared
        .busy_since
        .store(shared.now_nanos().saturating_add(1), Ordering::Release);
    let result = sink.write_line(bytes);
    shared.busy_since.store(0, Ordering::Release);
    match result {
        Ok(()) => {
            shared.record_success(path, lines);
            true
        }
        Err(e) => {
            shared.record_failure(path, lines, e.to_string());
            false
        }
    }
}

/// Every configured audit device, and the failure policy that ties them to calls.
pub(crate) struct AuditBroker {
    /// The devices, replaced as a whole when one is enabled or disabled at run time.
    devices: RwLock<Arc<Vec<Arc<Device>>>>,
    clock: SharedClock,
    epoch: Instant,
}

impl std::fmt::Debug for AuditBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditBroker")
            .field(
                "devices",
                &self
                    .devices()
                    .iter()
                    .map(|d| d.config.path().to_string())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl AuditBroker {
    /// Check every device's options, open its file or prepare its socket, and start its writer
    /// thread. Paths may not overlap (`path already in use`).
    pub(crate) fn new(devices: &[AuditDevice], clock: SharedClock) -> Result<AuditBroker> {
        let mut built = Vec::with_capacity(devices.len());
        for d in devices {
            let settings = Settings::parse(d)?;
            let sink = sink::open(&settings.target)?;
            built.push((d.clone(), settings.format, sink));
        }
        AuditBroker::from_sinks(built, clock)
    }

    /// Like [`AuditBroker::new`] with the sinks given (tests use in-memory and blocking ones).
    pub(crate) fn from_sinks(
        devices: Vec<(AuditDevice, FormatOptions, Box<dyn Sink>)>,
        clock: SharedClock,
    ) -> Result<AuditBroker> {
        let broker = AuditBroker {
            devices: RwLock::new(Arc::new(Vec::new())),
            clock,
            epoch: Instant::now(),
        };
        let mut out: Vec<Arc<Device>> = Vec::with_capacity(devices.len());
        for (config, format, sink) in devices {
            check_path_free(&out, config.path())?;
            out.push(Arc::new(broker.start(config, format, sink)?));
        }
        *broker.devices_mut()? = Arc::new(out);
        Ok(broker)
    }

    /// Start the writer thread of one device.
    fn start(
        &self,
        config: AuditDevice,
        format: FormatOptions,
        sink: Box<dyn Sink>,
    ) -> Result<Device> {
        let path = config.path().to_string();
        if path.is_empty() {
            return Err(Error::invalid_input("backend path must be specified"));
        }
        let queue = Arc::new(Queue::new(config.queue_capacity()));
        let shared = Arc::new(Shared::new(self.epoch));
        let inline = sink.writes_inline();
        let sink = Arc::new(SharedSink(Mutex::new(sink)));
        let (thread_queue, thread_shared) = (Arc::clone(&queue), Arc::clone(&shared));
        let thread_sink = Arc::clone(&sink);
        let thread_path = path.clone();
        std::thread::Builder::new()
            .name(thread_name(&path))
            .spawn(move || run_writer(thread_path, thread_sink, thread_queue, thread_shared))
            .map_err(|e| {
                Error::internal(format!("cannot start the writer of audit device `{path}`"))
                    .with_source(e)
            })?;
        Ok(Device {
            config,
            format,
            salt: RwLock::new(None),
            queue,
            shared,
            sink,
            inline,
            line_hint: AtomicUsize::new(1024),
        })
    }

    /// The devices now.
    fn devices(&self) -> Arc<Vec<Arc<Device>>> {
        match self.devices.read() {
            Ok(d) => Arc::clone(&d),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    fn devices_mut(&self) -> Result<std::sync::RwLockWriteGuard<'_, Arc<Vec<Arc<Device>>>>> {
        self.devices.write().or_else(crate::util::unpoison)
    }

    /// Whether no device is configured (then nothing is logged and nothing fails).
    pub(crate) fn is_empty(&self) -> bool {
        self.devices().is_empty()
    }

    /// Whether a device is enabled at `path` (normalised).
    pub(crate) fn contains(&self, path: &str) -> bool {
        let path = super::config::normalize_path(path);
        self.devices().iter().any(|d| d.config.path() == path)
    }

    /// Enable one more device at run time: check its options, open its sink, load (or create)
    /// its salt when `storage` is given (unsealed), and write OpenBao's test message. Nothing
    /// changes when any step fails.
    pub(crate) async fn add(
        &self,
        config: AuditDevice,
        storage: Option<&dyn Backend>,
    ) -> Result<()> {
        let settings = Settings::parse(&config)?;
        check_path_free(&self.devices(), config.path())?;
        let mut sink = sink::open(&settings.target)?;
        // OpenBao tries the device first and refuses one that cannot take a message (a file
        // was just opened; a socket must connect).
        if matches!(settings.target, super::config::Target::Socket { .. }) {
            sink.reopen().map_err(|e| {
                Error::invalid_input(format!("audit backend failed test message: {e}"))
            })?;
        }
        let salt = match storage {
            Some(s) => Some(Arc::new(Salt::load_or_create(s, config.path()).await?)),
            None => None,
        };
        let device = self.start(config, settings.format, sink)?;
        if let Ok(mut slot) = device.salt.write() {
            *slot = salt;
        }
        let mut guard = self.devices_mut()?;
        // Checked again under the lock: another call may have taken the path meanwhile.
        check_path_free(&guard, device.config.path())?;
        let mut next: Vec<Arc<Device>> = guard.iter().cloned().collect();
        next.push(Arc::new(device));
        *guard = Arc::new(next);
        Ok(())
    }

    /// Disable the device at `path`: it takes no more lines, writes what it queued, and its
    /// salt is forgotten (so is its storage entry, by the caller). False when there is none.
    pub(crate) fn remove(&self, path: &str) -> Result<bool> {
        let path = super::config::normalize_path(path);
        let mut guard = self.devices_mut()?;
        if !guard.iter().any(|d| d.config.path() == path) {
            return Ok(false);
        }
        let next: Vec<Arc<Device>> = guard
            .iter()
            .filter(|d| d.config.path() != path)
            .cloned()
            .collect();
        *guard = Arc::new(next);
        Ok(true)
    }

    /// Load (or create) every device's salt from the barrier; called after unseal.
    pub(crate) async fn setup(&self, storage: &dyn Backend) -> Result<()> {
        for d in self.devices().iter() {
            let salt = Salt::load_or_create(storage, d.config.path()).await?;
            let mut slot = d.salt.write().or_else(crate::util::unpoison)?;
            *slot = Some(Arc::new(salt));
        }
        Ok(())
    }

    /// Forget the salts (on seal).
    pub(crate) fn clear(&self) {
        for d in self.devices().iter() {
            if let Ok(mut slot) = d.salt.write() {
                *slot = None;
            }
        }
    }

    /// Log the request entry. Fails (`internal error`) when no required device logged it.
    pub(crate) async fn log_request(&self, input: &AuditInput<'_>) -> Result<()> {
        self.log(EntryKind::Request, input).await
    }

    /// Log the response entry. Fails (`internal error`) when no required device logged it,
    /// even though the operation already happened (as in OpenBao).
    pub(crate) async fn log_response(&self, input: &AuditInput<'_>) -> Result<()> {
        self.log(EntryKind::Response, input).await
    }

    async fn log(&self, kind: EntryKind, input: &AuditInput<'_>) -> Result<()> {
        let devices = self.devices();
        if devices.is_empty() {
            return Ok(());
        }
        let mut time = String::with_capacity(32);
        super::time::write_rfc3339_nanos(&mut time, self.clock.now());
        let start = Instant::now();
        let call = Arc::new(CallAck {
            slots: devices.iter().map(|_| AtomicU8::new(PENDING)).collect(),
            notify: Notify::new(),
        });
        // (device index, give-up time) of the required writes being waited for.
        let mut pending: Vec<(usize, Instant)> = Vec::new();
        let mut any_required = false;
        // A required device logged the line before this call returns (inline).
        let mut logged = false;
        for (index, d) in devices.iter().enumerate() {
            let required = d.config.failure() == FailurePolicy::Required;
            any_required |= required;
            let salt = d.salt();
            // Sized from the last line, so a line is formatted straight into its own buffer.
            let mut line = Vec::with_capacity(d.line_hint.load(Ordering::Relaxed) + 256);
            let key = Arc::as_ptr(d).addr();
            let memo = input.memo;
            let part = match kind {
                EntryKind::Response => memo.and_then(|m| m.take(key)),
                EntryKind::Request => None,
            };
            match write_entry_reusing(
                kind,
                input,
                &d.format,
                salt.as_deref(),
                &time,
                &mut line,
                part.as_deref(),
            ) {
                Ok(range) => {
                    if let (EntryKind::Request, Some(m)) = (kind, memo) {
                        m.put(key, line.get(range).unwrap_or_default());
                    }
                }
                Err(e) => {
                    d.shared
                        .record_failure(d.config.path(), 1, e.message().to_string());
                    continue;
                }
            }
            d.line_hint.store(line.len(), Ordering::Relaxed);
            if !required {
                d.enqueue(Job::Line { line, ack: None }, false);
                continue;
            }
            // An idle file device: write the line here, at the cost of the write alone.
            // Handing it to the writer thread and waiting for its answer costs a wake-up and
            // a context switch on each side, more than the write. Only when nothing is queued
            // (so the lines of one call stay in order) and nobody is writing (the writer
            // thread, another caller, or a write stuck past its deadline: then the line is
            // queued, and the deadline applies as for any queued line).
            if d.inline
                && d.queue.waiting.load(Ordering::Acquire) == 0
                && !d.shared.stalled(d.config.deadline())
            {
                if let Some(mut sink) = d.sink.try_lock() {
                    let path = d.config.path();
                    reopen_if_asked(path, sink.as_mut(), &d.shared);
                    // Checked again after a reopen: the path may now be a FIFO.
                    if sink.writes_inline() {
                        logged |= write(path, sink.as_mut(), &d.shared, &line, 1);
                        continue;
                    }
                }
            }
            if d.shared.stalled(d.config.deadline()) {
                // Stuck on an older line: do not make this call wait too. Keep the line so
                // it is written if the device recovers.
                d.shared.timed_out.fetch_add(1, Ordering::Relaxed);
                d.enqueue(Job::Line { line, ack: None }, false);
                continue;
            }
            let ack = Ack {
                call: Arc::clone(&call),
                slot: index,
            };
            if d.enqueue(
                Job::Line {
                    line,
                    ack: Some(ack),
                },
                true,
            ) {
                pending.push((index, later(start, d.config.deadline())));
            }
        }
        if logged || !any_required {
            return Ok(());
        }
        if wait_for_one(&call, &mut pending, &devices).await {
            return Ok(());
        }
        tracing::error!(
            entry = kind.as_str(),
            "no required audit device logged the entry; failing the call"
        );
        Err(Error::internal("internal error"))
    }

    /// `sys/audit-hash/:path`: the HMAC the device would log for `input`.
    pub(crate) fn hash(&self, path: &str, input: &str) -> Result<String> {
        let path = super::config::normalize_path(path);
        let devices = self.devices();
        let device = devices
            .iter()
            .find(|d| d.config.path() == path)
            .ok_or_else(|| Error::invalid_input(format!("unknown audit backend \"{path}\"")))?;
        let salt = device.salt().ok_or_else(Error::sealed)?;
        Ok(salt.hmac(input))
    }

    /// Reopen files and reconnect sockets (SIGHUP, after log rotation). Each writer does it
    /// before its next line; failures show in [`AuditBroker::stats`].
    pub(crate) fn reopen(&self) {
        for d in self.devices().iter() {
            d.shared.reopen.store(true, Ordering::Release);
            // Wake an idle writer so the file is reopened now.
            d.enqueue(Job::Reopen, true);
        }
    }

    /// Wait until every line queued so far has been handled, for at most `timeout` (shutdown,
    /// tests). Returns whether every device caught up.
    pub(crate) async fn flush(&self, timeout: Duration) -> bool {
        let deadline = later(Instant::now(), timeout);
        let devices = self.devices();
        let call = Arc::new(CallAck {
            slots: devices.iter().map(|_| AtomicU8::new(PENDING)).collect(),
            notify: Notify::new(),
        });
        for (index, d) in devices.iter().enumerate() {
            let ack = Ack {
                call: Arc::clone(&call),
                slot: index,
            };
            if !d.enqueue(Job::Flush(ack), true) {
                return false;
            }
        }
        loop {
            let done = call
                .slots
                .iter()
                .all(|s| s.load(Ordering::Acquire) != PENDING);
            if done {
                return true;
            }
            if tokio::time::timeout_at(deadline.into(), call.notify.notified())
                .await
                .is_err()
            {
                return call
                    .slots
                    .iter()
                    .all(|s| s.load(Ordering::Acquire) != PENDING);
            }
        }
    }

    /// Per-device counters.
    pub(crate) fn stats(&self) -> Vec<AuditDeviceStats> {
        self.devices().iter().map(|d| d.stats()).collect()
    }

    /// `GET sys/audit`: `{"<path>": {"type", "description", "options", "local", "path"}}`.
    pub(crate) fn list(&self) -> Data {
        self.devices()
            .iter()
            .map(|d| {
                let c = &d.config;
                let v: Value = json!({
                    "description": c.description(),
                    "local": false,
                    "options": c.options(),
                    "path": c.path(),
                    "type": c.kind().as_str(),
                });
                (c.path().to_string(), v)
            })
            .collect()
    }
}

/// OpenBao refuses nested device paths too (`a/` and `a/b/`).
fn check_path_free(devices: &[Arc<Device>], path: &str) -> Result<()> {
    if path.is_empty() {
        return Err(Error::invalid_input("backend path must be specified"));
    }
    if devices
        .iter()
        .any(|d| d.config.path().starts_with(path) || path.starts_with(d.config.path()))
    {
        return Err(Error::invalid_input("path already in use"));
    }
    Ok(())
}

/// Wait until one of the `pending` required writes succeeds (true), or each has failed or
/// passed its deadline (false). Sleeps until a writer answers (its `notify_one` leaves a
/// permit when it answers before the wait starts, so no answer is missed).
async fn wait_for_one(
    call: &CallAck,
    pending: &mut Vec<(usize, Instant)>,
    devices: &[Arc<Device>],
) -> bool {
    loop {
        let mut written = false;
        pending.retain(
            |(i, _)| match call.slots.get(*i).map(|s| s.load(Ordering::Acquire)) {
                Some(WRITTEN) => {
                    written = true;
                    false
                }
                Some(PENDING) => true,
                _ => false,
            },
        );
        if written {
            return true;
        }
        let Some(next) = pending.iter().map(|(_, t)| *t).min() else {
            return false;
        };
        let now = Instant::now();
        if now < next
            && tokio::time::timeout_at(next.into(), call.notify.notified())
                .await
                .is_ok()
        {
            continue;
        }
        let now = Instant::now();
        pending.retain(|(i, t)| {
            if *t > now {
                return true;
            }
            let still_pending = call
                .slots
                .get(*i)
                .is_some_and(|s| s.load(Ordering::Acquire) == PENDING);
            if still_pending {
                if let Some(d) = devices.get(*i) {
                    d.shared.timed_out.fetch_add(1, Ordering::Relaxed);
                }
                return false;
            }
            // Answered just now: looked at on the next round.
            true
        });
    }
}

/// `start + after`, without the overflow panic of `Instant + Duration` (deadlines are capped
/// at a day).
fn later(start: Instant, after: Duration) -> Instant {
    const CAP: Duration = Duration::from_secs(24 * 3600);
    start.checked_add(after.min(CAP)).unwrap_or(start)
}

/// `audit-<path>`, with anything unusual (a NUL would make `std` panic) replaced.
fn thread_name(path: &str) -> String {
    let safe: String = path
        .trim_end_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("audit-{safe}")
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::mpsc;

    use serde_json::json;

    use super::*;
    use crate::audit::{
        AuditAuth, AuditBroker, AuditInput, GrantingPolicy, PolicyResults, SocketType,
    };
    use crate::clock::SystemClock;
    use crate::error::ErrorCode;
    use crate::request::Request;
    use crate::storage::MemoryBackend;

    /// Keeps every line.
    #[derive(Clone, Default)]
    struct MemorySink(Arc<Mutex<Vec<String>>>);

    impl MemorySink {
        fn lines(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    impl Sink for MemorySink {
        fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
            self.0
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(line).into_owned());
            Ok(())
        }
    }

    /// Fails every write.
    struct FailingSink;

    impl Sink for FailingSink {
        fn write_line(&mut self, _line: &[u8]) -> io::Result<()> {
            Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
        }
    }

    /// Blocks every write until the test drops `release` (a device that hangs, like a full
    /// disk or a collector that stopped reading); reports each write it starts.
    struct BlockingSink {
        started: mpsc::Sender<()>,
        release: mpsc::Receiver<()>,
        written: Arc<AtomicU64>,
    }

    struct Blocker {
        started: mpsc::Receiver<()>,
        release: Option<mpsc::Sender<()>>,
        written: Arc<AtomicU64>,
    }

    impl Blocker {
        /// Wait until the device is stuck inside a write.
        fn wait_blocked(&self) {
            self.started.recv_timeout(Duration::from_secs(5)).unwrap();
        }
        fn release(&mut self) {
            self.release = None;
        }
    }

    fn blocking_sink() -> (Box<dyn Sink>, Blocker) {
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        let written = Arc::new(AtomicU64::new(0));
        let sink = BlockingSink {
            started: started_tx,
            release: release_rx,
            written: Arc::clone(&written),
        };
        let blocker = Blocker {
            started: started_rx,
            release: Some(release_tx),
            written,
        };
        (Box::new(sink), blocker)
    }

    impl Sink for BlockingSink {
        fn write_line(&mut self, _line: &[u8]) -> io::Result<()> {
            let _ = self.started.send(());
            // Returns (with an error) only once the test drops the sender.
            let _ = self.release.recv();
            self.written.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn broker(devices: Vec<(AuditDevice, Box<dyn Sink>)>) -> AuditBroker {
        let devices = devices
            .into_iter()
            .map(|(d, s)| {
                let format = Settings::parse(&d).unwrap().format;
                (d, format, s)
            })
            .collect();
        AuditBroker::from_sinks(devices, Arc::new(SystemClock)).unwrap()
    }

    async fn ready(devices: Vec<(AuditDevice, Box<dyn Sink>)>) -> AuditBroker {
        let b = broker(devices);
        b.setup(&MemoryBackend::new()).await.unwrap();
        b
    }

    /// Wait (bounded) until the first device's writer has been stuck past its deadline.
    async fn wait_until_stalled(b: &AuditBroker) {
        let give_up = Instant::now() + Duration::from_secs(5);
        while !b.stats()[0].stalled {
            assert!(Instant::now() < give_up, "the device never stalled");
            tokio::time::sleep(ms(2)).await;
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn request() -> Request {
        let mut req = Request::write(
            "secret/data/app",
            crate::data(json!({"data": {"password": "s3cret"}})),
        )
        .with_token("s.root");
        req.id = "req-1".into();
        req
    }

    fn is_internal_error(e: &Error) -> bool {
        e.code() == ErrorCode::Internal && e.message() == "internal error"
    }

    #[test]
    fn logging_futures_are_send_and_the_broker_is_shared() {
        fn assert_send<T: Send>(_: &T) {}
        fn assert_sync<T: Send + Sync>() {}
        assert_sync::<AuditBroker>();
        let b = broker(vec![]);
        let req = request();
        let input = AuditInput::new(&req);
        let fut = b.log_request(&input);
        assert_send(&fut);
        assert_send(&b.flush(ms(1)));
        assert_eq!(thread_name("kv-1.x/c d/"), "audit-kv-1.x/c_d");
        assert_eq!(thread_name("a\u{0}b/"), "audit-a_b");
        let now = Instant::now();
        assert!(later(now, Duration::MAX) > now);
    }

    #[tokio::test]
    async fn huge_deadlines_and_odd_paths_do_not_panic() {
        let mem = MemorySink::default();
        let b = ready(vec![(
            AuditDevice::stdout("odd\u{0}path").with_deadline(Duration::MAX),
            Box::new(mem.clone()),
        )])
        .await;
        let req = request();
        b.log_request(&AuditInput::new(&req)).await.unwrap();
        assert_eq!(mem.lines().len(), 1);
    }

    #[tokio::test]
    async fn zero_devices_log_nothing_and_never_fail() {
        let b = ready(vec![]).await;
        assert!(b.is_empty());
        let req = request();
        b.log_request(&AuditInput::new(&req)).await.unwrap();
        b.log_response(&AuditInput::new(&req)).await.unwrap();
        assert!(b.stats().is_empty());
        assert!(b.flush(ms(100)).await);
    }

    #[tokio::test]
    async fn request_and_response_lines_share_the_request_id() {
        let mem = MemorySink::default();
        let b = ready(vec![(AuditDevice::stdout("mem"), Box::new(mem.clone()))]).await;
        let req = request();
        let auth = AuditAuth {
            accessor: "acc".into(),
            policies: vec!["root".into()],
            token_type: "service".into(),
            policy_results: Some(PolicyResults {
                allowed: true,
                granting_policies: vec![GrantingPolicy {
                    name: "root".into(),
                    namespace_id: "root".into(),
                    policy_type: "acl".into(),
                    ..GrantingPolicy::default()
                }],
            }),
            ..AuditAuth::default()
        };
        let input = AuditInput::new(&req).with_auth(&auth);
        b.log_request(&input).await.unwrap();
        b.log_response(&input).await.unwrap();
        let lines = mem.lines();
        assert_eq!(lines.len(), 2);
        let first: Value = serde_json::from_str(&lines[0]).unwrap();
        let second: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(first["type"], "request");
        assert_eq!(second["type"], "response");
        assert_eq!(first["request"]["id"], "req-1");
        assert_eq!(second["request"]["id"], "req-1");
        assert_eq!(
            first["auth"]["policy_results"],
            json!({"allowed": true, "granting_policies": [
                {"name": "root", "namespace_id": "root", "type": "acl"}]})
        );
        assert!(!lines.concat().contains("s3cret"));
        assert!(!lines.concat().contains("s.root"));
        let stats = &b.stats()[0];
        assert_eq!((stats.written, stats.failed, stats.dropped), (2, 0, 0));
    }

    #[tokio::test]
    async fn best_effort_blocking_device_never_slows_the_caller() {
        let (sink, mut blocker) = blocking_sink();
        let b = ready(vec![(
            AuditDevice::stdout("slow")
                .best_effort()
                .with_queue_capacity(2),
            sink,
        )])
        .await;
        let req = request();
        let input = AuditInput::new(&req);
        b.log_request(&input).await.unwrap();
        blocker.wait_blocked();
        let start = Instant::now();
        for _ in 0..20 {
            b.log_request(&input).await.unwrap();
        }
        // A device that never returns: any bound proves the caller did not wait for it.
        assert!(start.elapsed() < ms(1000), "{:?}", start.elapsed());
        let stats = &b.stats()[0];
        assert_eq!(stats.queued, 2);
        assert_eq!(stats.dropped, 18);
        assert_eq!(stats.written, 0);
        assert_eq!(stats.timed_out, 0);
        // Once the device recovers, what was queued is written.
        blocker.release();
        assert!(b.flush(Duration::from_secs(5)).await);
        assert_eq!(blocker.written.load(Ordering::SeqCst), 3);
        assert_eq!(b.stats()[0].written, 3);
    }

    #[tokio::test]
    async fn required_blocking_device_fails_the_call_within_its_deadline() {
        let (sink, mut blocker) = blocking_sink();
        let deadline = ms(40);
        let b = ready(vec![(
            AuditDevice::stdout("slow")
                .required()
                .with_deadline(deadline),
            sink,
        )])
        .await;
        let req = request();
        let input = AuditInput::new(&req);
        let start = Instant::now();
        let err = b.log_request(&input).await.unwrap_err();
        let took = start.elapsed();
        assert!(is_internal_error(&err), "{err:?}");
        assert_eq!(err.code().http_status(), 500);
        assert!(took >= deadline, "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        blocker.wait_blocked();
        wait_until_stalled(&b).await;
        // Still stuck on that line: the next call fails at once instead of waiting again.
        let start = Instant::now();
        let err = b.log_response(&input).await.unwrap_err();
        assert!(is_internal_error(&err));
        assert!(start.elapsed() < deadline, "{:?}", start.elapsed());
        let stats = &b.stats()[0];
        assert_eq!(stats.timed_out, 2);
        assert!(stats.stalled);
        assert_eq!(stats.queued, 1);
        blocker.release();
        assert!(b.flush(Duration::from_secs(5)).await);
        assert_eq!(blocker.written.load(Ordering::SeqCst), 2);
        assert!(!b.stats()[0].stalled);
    }

    #[tokio::test]
    async fn other_devices_keep_working_when_one_blocks() {
        let (sink, mut blocker) = blocking_sink();
        let required_mem = MemorySink::default();
        let best_mem = MemorySink::default();
        let b = ready(vec![
            (AuditDevice::stdout("slow").with_deadline(ms(40)), sink),
            (AuditDevice::stdout("file"), Box::new(required_mem.clone())),
            (
                AuditDevice::stdout("siem").best_effort(),
                Box::new(best_mem.clone()),
            ),
        ])
        .await;
        let req = request();
        let start = Instant::now();
        // One required device logged it: the call goes on, without waiting for the slow one.
        b.log_request(&AuditInput::new(&req)).await.unwrap();
        assert!(start.elapsed() < Duration::from_secs(1));
        blocker.wait_blocked();
        b.log_response(&AuditInput::new(&req)).await.unwrap();
        assert_eq!(required_mem.lines().len(), 2);
        blocker.release();
        assert!(b.flush(Duration::from_secs(5)).await);
        assert_eq!(best_mem.lines().len(), 2);
        assert_eq!(blocker.written.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn best_effort_devices_still_get_the_line_when_the_call_fails() {
        let (sink, mut blocker) = blocking_sink();
        let best_mem = MemorySink::default();
        let b = ready(vec![
            (AuditDevice::stdout("slow").with_deadline(ms(30)), sink),
            (
                AuditDevice::stdout("siem").best_effort(),
                Box::new(best_mem.clone()),
            ),
        ])
        .await;
        let req = request();
        let err = b.log_request(&AuditInput::new(&req)).await.unwrap_err();
        assert!(is_internal_error(&err));
        blocker.release();
        assert!(b.flush(Duration::from_secs(5)).await);
        assert_eq!(best_mem.lines().len(), 1);
    }

    #[tokio::test]
    async fn a_call_fails_only_when_every_required_device_fails() {
        let req = request();
        let input = AuditInput::new(&req);
        let mem = MemorySink::default();
        let b = ready(vec![
            (AuditDevice::stdout("broken"), Box::new(FailingSink)),
            (AuditDevice::stdout("ok"), Box::new(mem.clone())),
        ])
        .await;
        b.log_request(&input).await.unwrap();
        assert_eq!(mem.lines().len(), 1);
        // The call returned on the first success; let the broken device finish failing.
        assert!(b.flush(Duration::from_secs(5)).await);
        let stats = b.stats();
        assert_eq!(stats[0].failed, 1);
        assert_eq!(stats[0].last_error.as_deref(), Some("disk full"));

        let b = ready(vec![(AuditDevice::stdout("broken"), Box::new(FailingSink))]).await;
        assert!(is_internal_error(&b.log_request(&input).await.unwrap_err()));

        // Best-effort failures are counted, never returned.
        let b = ready(vec![(
            AuditDevice::stdout("broken").best_effort(),
            Box::new(FailingSink),
        )])
        .await;
        b.log_request(&input).await.unwrap();
        assert!(b.flush(Duration::from_secs(5)).await);
        assert_eq!(b.stats()[0].failed, 1);
    }

    #[tokio::test]
    async fn salts_differ_per_device_and_hash_matches_the_log() {
        let a = MemorySink::default();
        let c = MemorySink::default();
        let b = broker(vec![
            (AuditDevice::stdout("a"), Box::new(a.clone())),
            (AuditDevice::stdout("c"), Box::new(c.clone())),
        ]);
        let req = request();
        // No salt before unseal: the entry cannot be hashed, so required devices fail.
        assert!(is_internal_error(
            &b.log_request(&AuditInput::new(&req)).await.unwrap_err()
        ));
        assert_eq!(b.hash("a", "s3cret").unwrap_err().code(), ErrorCode::Sealed);
        assert_eq!(
            b.stats()[0].last_error.as_deref(),
            Some("the audit salt is not loaded")
        );

        let storage = MemoryBackend::new();
        b.setup(&storage).await.unwrap();
        b.log_request(&AuditInput::new(&req)).await.unwrap();
        // The call returns once one required device logged it; wait for the other too.
        assert!(b.flush(Duration::from_secs(5)).await);
        let ha = b.hash("a/", "s3cret").unwrap();
        let hc = b.hash("/c", "s3cret").unwrap();
        assert_ne!(ha, hc);
        assert!(ha.starts_with("hmac-sha256:"));
        assert!(a.lines()[0].contains(&ha));
        assert!(!a.lines()[0].contains(&hc));
        assert!(c.lines()[0].contains(&hc));
        assert_eq!(
            b.hash("nope", "x").unwrap_err().to_string(),
            "unknown audit backend \"nope/\""
        );

        // The salt survives a restart (same storage), and is forgotten on seal.
        let again = broker(vec![(
            AuditDevice::stdout("a"),
            Box::new(MemorySink::default()),
        )]);
        again.setup(&storage).await.unwrap();
        assert_eq!(again.hash("a", "s3cret").unwrap(), ha);
        again.clear();
        assert_eq!(
            again.hash("a", "s3cret").unwrap_err().code(),
            ErrorCode::Sealed
        );
    }

    /// Writes like a file, and remembers which thread wrote each line.
    #[derive(Clone, Default)]
    struct InlineSink(Arc<Mutex<Vec<(std::thread::ThreadId, String)>>>);

    impl Sink for InlineSink {
        fn accepts_batches(&self) -> bool {
            true
        }
        fn writes_inline(&self) -> bool {
            true
        }
        fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
            self.0.lock().unwrap().push((
                std::thread::current().id(),
                String::from_utf8_lossy(line).into_owned(),
            ));
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_idle_required_file_device_is_written_by_the_caller() {
        let sink = InlineSink::default();
        let best = MemorySink::default();
        let b = ready(vec![
            (AuditDevice::stdout("file"), Box::new(sink.clone())),
            (
                AuditDevice::stdout("siem").best_effort(),
                Box::new(best.clone()),
            ),
        ])
        .await;
        let req = request();
        b.log_request(&AuditInput::new(&req)).await.unwrap();
        b.log_response(&AuditInput::new(&req)).await.unwrap();
        // Both lines written before the calls returned, in order, on this thread: no
        // writer thread, no wait for its answer.
        let lines = sink.0.lock().unwrap().clone();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|(t, _)| *t == std::thread::current().id()));
        assert!(lines[0].1.contains("\"type\":\"request\""));
        assert!(lines[1].1.contains("\"type\":\"response\""));
        // Best-effort devices still go through their writer thread.
        assert!(b.flush(Duration::from_secs(5)).await);
        assert_eq!(best.lines().len(), 2);
        assert_eq!(b.stats()[0].written, 2);
    }

    #[tokio::test]
    async fn log_raw_device_needs_no_salt() {
        let mem = MemorySink::default();
        let b = broker(vec![(
            AuditDevice::stdout("raw").option("log_raw", "true"),
            Box::new(mem.clone()),
        )]);
        let req = request();
        b.log_request(&AuditInput::new(&req)).await.unwrap();
        assert!(mem.lines()[0].contains("\"password\":\"s3cret\""));
    }

    #[tokio::test]
    async fn paths_must_not_overlap() {
        let err = AuditBroker::new(
            &[AuditDevice::discard("a"), AuditDevice::discard("a/b")],
            Arc::new(SystemClock),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "path already in use");
        let err = AuditBroker::new(
            &[AuditDevice::discard("a"), AuditDevice::discard("a")],
            Arc::new(SystemClock),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "path already in use");
        let err = AuditBroker::new(
            &[AuditDevice::stdout("a").option("format", "jsonx")],
            Arc::new(SystemClock),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("jsonx formatting has been removed")
        );
    }

    #[tokio::test]
    async fn list_shows_devices_like_sys_audit() {
        let b = AuditBroker::new(
            &[AuditDevice::discard("cfgfile").with_description("for tests")],
            Arc::new(SystemClock),
        )
        .unwrap();
        assert_eq!(
            Value::Object(b.list()),
            json!({"cfgfile/": {"description": "for tests", "local": false,
                "options": {"file_path": "discard"}, "path": "cfgfile/", "type": "file"}})
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn file_device_end_to_end() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/audit.log");
        let b = AuditBroker::new(
            &[AuditDevice::file("file", path.to_str().unwrap()).option("prefix", "audit: ")],
            Arc::new(SystemClock),
        )
        .unwrap();
        b.setup(&MemoryBackend::new()).await.unwrap();
        let req = request();
        b.log_request(&AuditInput::new(&req)).await.unwrap();
        b.log_response(&AuditInput::new(&req)).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.starts_with("audit: {")));
        let first: Value = serde_json::from_str(&lines[0]["audit: ".len()..]).unwrap();
        assert_eq!(
            first["request"]["data"]["data"]["password"],
            b.hash("file", "s3cret").unwrap()
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // Rotation: move the file away, SIGHUP, and the next lines go to a new file.
        let rotated = dir.path().join("logs/audit.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        b.reopen();
        assert!(b.flush(Duration::from_secs(5)).await);
        assert!(path.exists());
        b.log_request(&AuditInput::new(&req)).await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
        assert_eq!(
            std::fs::read_to_string(&rotated).unwrap().lines().count(),
            2
        );
    }

    fn read_line(conn: impl io::Read) -> Value {
        use std::io::BufRead;
        let mut line = String::new();
        io::BufReader::new(conn).read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    }

    #[tokio::test]
    async fn socket_devices_deliver_lines() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut devices = vec![
            AuditDevice::socket(
                "tcp",
                tcp.local_addr().unwrap().to_string(),
                SocketType::Tcp,
            ),
            AuditDevice::socket(
                "udp",
                udp.local_addr().unwrap().to_string(),
                SocketType::Udp,
            ),
        ];
        #[cfg(unix)]
        let dir = tempfile::tempdir().unwrap();
        #[cfg(unix)]
        let unix = {
            let p = dir.path().join("audit.sock");
            let l = std::os::unix::net::UnixListener::bind(&p).unwrap();
            devices.push(AuditDevice::socket(
                "unix",
                p.to_str().unwrap(),
                SocketType::Unix,
            ));
            l
        };
        let b = AuditBroker::new(&devices, Arc::new(SystemClock)).unwrap();
        b.setup(&MemoryBackend::new()).await.unwrap();
        let req = request();
        b.log_request(&AuditInput::new(&req)).await.unwrap();

        let (conn, _) = tcp.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let v = read_line(conn);
        assert_eq!(v["request"]["id"], "req-1");
        assert_eq!(
            v["request"]["data"]["data"]["password"],
            b.hash("tcp", "s3cret").unwrap()
        );

        let mut buf = vec![0u8; 65536];
        let n = udp.recv(&mut buf).unwrap();
        let v: Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(v["request"]["id"], "req-1");
        assert_eq!(buf[n - 1], b'\n');

        #[cfg(unix)]
        {
            let (conn, _) = unix.accept().unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            assert_eq!(read_line(conn)["request"]["id"], "req-1");
        }
        assert!(b.flush(Duration::from_secs(5)).await);
        assert!(b.stats().iter().all(|s| s.written == 1 && s.failed == 0));
    }

    /// A real collector that accepts and never reads: once the kernel's buffers are full the
    /// writer blocks in `write(2)`, and the required device fails calls after its deadline.
    #[cfg(unix)]
    #[tokio::test]
    async fn required_unix_socket_that_never_reads_fails_within_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("stuck.sock");
        let listener = std::os::unix::net::UnixListener::bind(&p).unwrap();
        let deadline = ms(50);
        let b = AuditBroker::new(
            &[
                AuditDevice::socket("stuck", p.to_str().unwrap(), SocketType::Unix)
                    .option("write_timeout", "30s")
                    // In clear, so each line really is 64 KiB (an HMAC would be 76 bytes).
                    .option("log_raw", "true")
                    .with_deadline(deadline),
            ],
            Arc::new(SystemClock),
        )
        .unwrap();
        b.setup(&MemoryBackend::new()).await.unwrap();
        // The collector accepts and then never reads.
        let (hold_tx, hold_rx) = mpsc::channel::<()>();
        let collector = std::thread::spawn(move || {
            let conn = listener.accept().map(|(c, _)| c);
            let _ = hold_rx.recv();
            drop(conn);
        });
        let big = "x".repeat(64 * 1024);
        let req = Request::write("kv/big", crate::data(json!({ "blob": big })));
        let mut succeeded = 0;
        let mut failed_after = None;
        for _ in 0..256 {
            let start = Instant::now();
            match b.log_request(&AuditInput::new(&req)).await {
                Ok(()) => succeeded += 1,
                Err(e) => {
                    assert!(is_internal_error(&e));
                    failed_after = Some(start.elapsed());
                    break;
                }
            }
        }
        drop(hold_tx);
        collector.join().unwrap();
        let took = failed_after.expect("the socket never filled up");
        assert!(
            took >= deadline && took < Duration::from_secs(2),
            "{took:?}"
        );
        // The kernel may have buffered a line or two before the socket filled up.
        assert!(succeeded < 256);
        assert!(b.stats()[0].timed_out >= 1);
    }
}
