//! ACL decision benchmarks: one decision against a token holding 50 policies of 20 rules each
//! (exact, prefix and `+` rules mixed) [target: ≤ 1 µs warm], plus the compile step.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmarks"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use strongroom::bench_internals::{CompiledAcl, compile_acl};
use strongroom::{Data, Operation, data};

/// 50 policies × 20 rules. Rule `j` of policy `i` is exact, prefix or segment by `j % 3`;
/// every fifth rule constrains parameters.
fn policies() -> Vec<(String, String)> {
    (0..50)
        .map(|i| {
            let rules: String = (0..20)
                .map(|j| {
                    let path = match j % 3 {
                        0 => format!("secret/data/team{i}/app{j}/config"),
                        1 => format!("secret/data/team{i}/svc{j}/*"),
                        _ => format!("secret/data/+/team{i}/role{j}/+"),
                    };
                    let params = if j % 5 == 0 {
                        r#"allowed_parameters = { "plaintext" = [], "context" = ["ctx-*"], "key_version" = [] }"#
                    } else {
                        ""
                    };
                    format!(
                        "path \"{path}\" {{\n  capabilities = [\"read\", \"list\", \"update\", \"create\"]\n  {params}\n}}\n"
                    )
                })
                .collect();
            (format!("policy-{i:02}"), rules)
        })
        .collect()
}

fn acl() -> CompiledAcl {
    compile_acl(&policies()).unwrap()
}

fn decisions(c: &mut Criterion) {
    let acl = acl();
    let none = Data::new();
    let body = data(json!({"plaintext": "aGVsbG8=", "context": "ctx-42", "key_version": 3}));
    let cases: [(&str, Operation, &str, &Data, bool); 5] = [
        (
            "exact",
            Operation::Read,
            "secret/data/team37/app9/config",
            &none,
            true,
        ),
        (
            "prefix",
            Operation::Read,
            "secret/data/team37/svc10/deep/key",
            &none,
            true,
        ),
        (
            "segment",
            Operation::Read,
            "secret/data/east/team37/role11/x",
            &none,
            true,
        ),
        (
            "params",
            Operation::Update,
            "secret/data/team37/app15/config",
            &body,
            true,
        ),
        (
            "miss",
            Operation::Read,
            "secret/data/team99/nothing/here",
            &none,
            false,
        ),
    ];
    let mut group = c.benchmark_group("acl_decision_50x20");
    for (name, op, path, d, want) in cases {
        assert_eq!(acl.allow(op, path, d), want, "{name}");
        group.bench_function(name, |b| {
            b.iter(|| acl.allow(black_box(op), black_box(path), black_box(d)))
        });
    }
    group.finish();
}

fn compile(c: &mut Criterion) {
    let docs = policies();
    c.bench_function("acl_compile_50x20", |b| {
        b.iter(|| compile_acl(black_box(&docs)).unwrap())
    });
}

criterion_group!(benches, decisions, compile);
criterion_main!(benches);
