//! The Rust typed API doing what `bench/bench.c` does through the C ABI (transit encrypt of
//! 64 B and KV get, one thread), so the two are measured on the same machine at the same time:
//! `cargo run --release -p strongroom-ffi --example typed_bench`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program"
)]
#![allow(unsafe_code, reason = "clock_gettime for the process's CPU time")]

use std::time::{Duration, Instant};

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

unsafe extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// CPU time of the process in seconds (`CLOCK_PROCESS_CPUTIME_ID`, as bench.c measures it): on
/// a shared machine, calls per CPU-second is the figure that says what a call costs.
fn cpu() -> f64 {
    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec (two 64-bit fields on 64-bit Linux).
    unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let transit = rt.block_on(async {
        let sr = strongroom::Strongroom::open(strongroom::Config::dev())
            .await
            .unwrap();
        let client = sr.client(sr.dev_root_token().unwrap());
        client
            .sys()
            .enable_mount("transit", "transit", &[])
            .await
            .unwrap();
        let transit = client.transit("transit");
        transit
            .create_key("k", &strongroom::KeyConfig::default())
            .await
            .unwrap();
        let pt = [b'x'; 64];
        let budget = Duration::from_secs_f64(seconds);
        let (mut n, t0, c0) = (0u64, Instant::now(), cpu());
        while t0.elapsed() < budget {
            for _ in 0..1000 {
                std::hint::black_box(transit.encrypt("k", &pt).await.unwrap());
            }
            n += 1000;
        }
        let el = t0.elapsed().as_secs_f64();
        println!(
            "typed API: transit encrypt 64 B, one task: {:.0} calls/s ({:.0} ns/call), {:.0} calls \
             per CPU-second",
            n as f64 / el,
            el / n as f64 * 1e9,
            n as f64 / (cpu() - c0)
        );
        let kv = client.kv("secret");
        let data = strongroom::data(
            serde_json::json!({"username": "app", "password": "0123456789abcdef"}),
        );
        kv.put("app/db", &data).await.unwrap();
        let (mut n, t0, c0) = (0u64, Instant::now(), cpu());
        while t0.elapsed() < budget {
            for _ in 0..1000 {
                std::hint::black_box(kv.get("app/db").await.unwrap());
            }
            n += 1000;
        }
        let el = t0.elapsed().as_secs_f64();
        println!(
            "typed API: KV v2 get, one task: {:.0} calls/s ({:.0} ns/call), {:.0} calls per \
             CPU-second",
            n as f64 / el,
            el / n as f64 * 1e9,
            n as f64 / (cpu() - c0)
        );
        transit
    });
    // What a blocking caller of the typed API does (as the C ABI does): one `block_on` per
    // call, from a thread outside the runtime.
    let pt = [b'x'; 64];
    let budget = Duration::from_secs_f64(seconds);
    let (mut n, t0, c0) = (0u64, Instant::now(), cpu());
    while t0.elapsed() < budget {
        for _ in 0..1000 {
            std::hint::black_box(rt.block_on(transit.encrypt("k", &pt)).unwrap());
        }
        n += 1000;
    }
    let el = t0.elapsed().as_secs_f64();
    println!(
        "typed API: transit encrypt 64 B, one block_on per call: {:.0} calls/s ({:.0} ns/call), \
         {:.0} calls per CPU-second",
        n as f64 / el,
        el / n as f64 * 1e9,
        n as f64 / (cpu() - c0)
    );
}
