//! Template rendering: the seed's template from a warm brain (every secret already fetched,
//! what a render costs on each refresh) [target: ≤ 50 µs], and parsing it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmarks"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use strongroom::template::{Brain, Dependency, Template, TemplateOptions, VaultSecret};

const SEED: &str = "{{- with secret \"secret/data/production/api-service\" -}}\nDATABASE_URL={{ .Data.data.database_url }}\nAPI_KEY={{ .Data.data.api_key }}\n{{- end -}}\n";

fn bench(c: &mut Criterion) {
    let template = Template::parse("config", SEED, &TemplateOptions::default()).unwrap();
    let mut brain = Brain::default();
    brain.insert_secret(
        Dependency::secret("secret/data/production/api-service"),
        &VaultSecret::from_response(&json!({
            "request_id": "r", "lease_id": "", "lease_duration": 0, "renewable": false,
            "data": {
                "data": {"database_url": "postgresql://user:pass@db:5432/app", "api_key": "sk_live_xxxxx"},
                "metadata": {"created_time": "2026-01-01T00:00:00Z", "version": 1, "destroyed": false}
            }
        }))
        .unwrap(),
    );
    let now = time::OffsetDateTime::now_utc();
    c.bench_function("template/render_seed_warm", |b| {
        b.iter(|| {
            let r = template.render(black_box(&brain), now).unwrap();
            black_box(r.contents().map(str::len))
        })
    });
    c.bench_function("template/parse_seed", |b| {
        b.iter(|| Template::parse("config", black_box(SEED), &TemplateOptions::default()).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
