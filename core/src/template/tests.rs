use super::*;
use serde_json::json;
use time::macros::datetime;

const SEED: &str = r#"{{- with secret "secret/data/production/api-service" -}}
DATABASE_URL={{ .Data.data.database_url }}
API_KEY={{ .Data.data.api_key }}
{{- end -}}
"#;

fn kv2(data: serde_json::Value) -> VaultSecret {
    VaultSecret::from_response(&json!({
        "request_id": "r1", "lease_id": "", "lease_duration": 0, "renewable": false,
        "data": {"data": data, "metadata": {"version": 3}}
    }))
    .unwrap()
}

fn seed_brain() -> Brain {
    let mut b = Brain::default();
    b.insert_secret(
        Dependency::secret("secret/data/production/api-service"),
        &kv2(json!({"database_url": "postgresql://user:pass@db:5432/app", "api_key": "sk_live_xxxxx"})),
    );
    b
}

fn render(src: &str, brain: &Brain) -> Result<String> {
    render_with(src, brain, &TemplateOptions::default())
}

fn render_with(src: &str, brain: &Brain, opts: &TemplateOptions) -> Result<String> {
    let t = Template::parse("t", src, opts)?;
    let r = t.render(brain, datetime!(2026-03-04 05:06:07 UTC))?;
    assert!(r.missing().is_empty(), "missing {:?}", r.missing());
    Ok(r.contents().unwrap().to_string())
}

#[test]
fn seed_template_renders_exact_lines() {
    let t = Template::parse("config", SEED, &TemplateOptions::default()).unwrap();
    let first = t
        .render(&Brain::default(), OffsetDateTime::UNIX_EPOCH)
        .unwrap();
    assert_eq!(first.contents(), None);
    assert_eq!(
        first.missing(),
        [Dependency::secret("secret/data/production/api-service")]
    );
    let done = t.render(&seed_brain(), OffsetDateTime::UNIX_EPOCH).unwrap();
    assert_eq!(
        done.contents(),
        Some("DATABASE_URL=postgresql://user:pass@db:5432/app\nAPI_KEY=sk_live_xxxxx")
    );
    assert_eq!(done.dependencies(), first.missing());
    assert!(!format!("{done:?}").contains("sk_live"));
}

#[test]
fn go_language_features() {
    let mut b = seed_brain();
    b.insert_secret(
        Dependency::secret("secret/data/list"),
        &kv2(json!({"b": "2", "a": "1", "hosts": ["h1", "h2"], "n": 3, "on": true})),
    );
    let cases: &[(&str, &str)] = &[
        // variables, range over a map in key order, trim markers
        (
            r#"{{ $s := secret "secret/data/list" }}{{ range $k, $v := $s.Data.data }}{{ if ne $k "hosts" }}{{ $k }}={{ $v }};{{ end }}{{ end }}"#,
            "a=1;b=2;n=3;on=true;",
        ),
        (
            r#"{{- range $i, $h := (secret "secret/data/list").Data.data.hosts }}
{{ $i }}:{{ $h }}
{{- end }}"#,
            "\n0:h1\n1:h2",
        ),
        (
            r#"{{ with secret "secret/data/list" }}{{ if eq .Data.data.n 1 }}one{{ else if eq .Data.data.n 3 }}three{{ else }}other{{ end }}{{ end }}"#,
            "three",
        ),
        (r#"{{ if .Missing }}x{{ else }}y{{ end }}"#, "y"),
        (
            r#"{{ with secret "secret/data/list" }}{{ .Data.metadata.version }} {{ len .Data.data.hosts }} {{ index .Data.data.hosts 1 }}{{ end }}"#,
            "3 2 h2",
        ),
        (
            r#"{{ printf "%s-%d" "a" 7 }} {{ "x" | printf "%q" }}"#,
            "a-7 \"x\"",
        ),
        ("{{/* a comment */}}ok", "ok"),
        (r#"{{ $x := 1 }}{{ $x = 2 }}{{ $x }}"#, "2"),
        (
            r#"{{ range (secret "secret/data/list").Data.data.hosts }}{{ . }}{{ else }}none{{ end }}"#,
            "h1h2",
        ),
        (
            r#"{{ range .Nothing }}{{ . }}{{ else }}none{{ end }}"#,
            "none",
        ),
        (
            r#"{{ and true "x" }} {{ or false "" "y" }} {{ not false }}"#,
            "x y true",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(render(src, &b).unwrap(), *want, "template {src}");
    }
}

#[test]
fn custom_delimiters() {
    let opts = TemplateOptions {
        left_delimiter: "[[".into(),
        right_delimiter: "]]".into(),
        error_on_missing_key: false,
    };
    let src = r#"{{ not an action }} [[ with secret "secret/data/production/api-service" ]][[ .Data.data.api_key ]][[ end ]]"#;
    assert_eq!(
        render_with(src, &seed_brain(), &opts).unwrap(),
        "{{ not an action }} sk_live_xxxxx"
    );
}

#[test]
fn helper_functions() {
    let b = seed_brain();
    let cases: &[(&str, &str)] = &[
        (
            r#"{{ with secret "secret/data/production/api-service" }}{{ .Data.data | toJSON }}{{ end }}"#,
            r#"{"api_key":"sk_live_xxxxx","database_url":"postgresql://user:pass@db:5432/app"}"#,
        ),
        (r#"{{ "a<b" | toJSON }}"#, r#""a\u003cb""#),
        (
            r#"{{ with secret "secret/data/production/api-service" }}{{ .Data.data | toJSONPretty }}{{ end }}"#,
            "{\n  \"api_key\": \"sk_live_xxxxx\",\n  \"database_url\": \"postgresql://user:pass@db:5432/app\"\n}",
        ),
        (
            r#"{{ with secret "secret/data/production/api-service" }}{{ .Data.data | toYAML }}{{ end }}"#,
            "api_key: sk_live_xxxxx\ndatabase_url: postgresql://user:pass@db:5432/app",
        ),
        (
            r#"{{ with parseJSON "{\"a\":{\"b\":[1,2]}}" }}{{ index .a.b 1 }}{{ end }}"#,
            "2",
        ),
        (
            r#"{{ "hello" | base64Encode }} {{ "aGVsbG8=" | base64Decode }}"#,
            "aGVsbG8= hello",
        ),
        (
            r#"{{ "??>" | base64URLEncode }} {{ "Pz8-" | base64URLDecode }}"#,
            "Pz8- ??>",
        ),
        (
            r#"{{ range split "," "a,b,c" }}[{{ . }}]{{ end }}{{ len (split "," "  ") }}"#,
            "[a][b][c]0",
        ),
        (r#"{{ split "," "a,b" | join "+" }}"#, "a+b"),
        (r#"{{ "a.b.c" | replaceAll "." "_" }}"#, "a_b_c"),
        (
            r#"{{ split "," "x,prod" | contains "prod" }} {{ "team-prod" | contains "dev" }}"#,
            "true false",
        ),
        (
            r#"[{{ "  x y  " | trimSpace }}] {{ "MiXed" | toLower }} {{ "MiXed" | toUpper }}"#,
            "[x y] mixed MIXED",
        ),
        ("{{ \"a\\nb\" | indent 2 }}", "  a\n  b"),
        (
            r#"{{ timestamp }} {{ timestamp "2006-01-02" }}"#,
            "2026-03-04T05:06:07Z 2026-03-04",
        ),
        (
            r#"{{ env "STRONGROOM_TEMPLATE_TEST_UNSET_VAR" }}|{{ env "PATH" | len | lt 0 }}"#,
            "|true",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(render(src, &b).unwrap(), *want, "template {src}");
    }
}

#[test]
fn file_function_reads_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f.txt");
    std::fs::write(&p, "from file").unwrap();
    let src = format!("{{{{ file \"{}\" }}}}", p.display());
    assert_eq!(render(&src, &Brain::default()).unwrap(), "from file");
    let err = render(
        r#"{{ file "/nonexistent/strongroom-x" }}"#,
        &Brain::default(),
    )
    .unwrap_err();
    assert!(
        err.message()
            .contains("cannot read `/nonexistent/strongroom-x`"),
        "{err}"
    );
}

#[test]
fn secret_with_parameters_secrets_and_pki_cert() {
    let t = Template::parse(
        "t",
        r#"{{ with secret "pki/issue/web" "common_name=a.example.com" "ttl=1h" }}{{ .Data.serial_number }}{{ end }}|{{ range secrets "secret/metadata/app/" }}{{ . }},{{ end }}|{{ with pkiCert "pki/issue/web" "common_name=b.example.com" }}{{ .Cert }}/{{ .Key }}/{{ .CA }}{{ end }}"#,
        &TemplateOptions::default(),
    )
    .unwrap();
    let first = t
        .render(&Brain::default(), OffsetDateTime::UNIX_EPOCH)
        .unwrap();
    let write = Dependency::Secret {
        path: "pki/issue/web".into(),
        params: vec![
            ("common_name".into(), "a.example.com".into()),
            ("ttl".into(), "1h".into()),
        ],
    };
    let list = Dependency::Secrets {
        path: "secret/metadata/app/".into(),
    };
    let cert = Dependency::PkiCert {
        path: "pki/issue/web".into(),
        params: vec![("common_name".into(), "b.example.com".into())],
    };
    assert_eq!(first.missing(), [write.clone(), list.clone(), cert.clone()]);
    assert!(write.is_write() && cert.is_write() && !list.is_write());
    assert_eq!(
        write.to_string(),
        "secret `pki/issue/web` common_name=… ttl=…"
    );
    let mut b = Brain::default();
    b.insert_secret(
        write,
        &VaultSecret::from_response(&json!({"data": {"serial_number": "1a:2b"}})).unwrap(),
    );
    b.insert_list(list, vec!["db".into(), "api".into()]);
    b.insert_secret(
        cert,
        &VaultSecret::from_response(
            &json!({"data": {"certificate": "C", "private_key": "K", "issuing_ca": "A"}}),
        )
        .unwrap(),
    );
    let done = t.render(&b, OffsetDateTime::UNIX_EPOCH).unwrap();
    assert_eq!(done.contents(), Some("1a:2b|api,db,|C/K/A"));
}

#[test]
fn parse_errors_name_line_and_column() {
    let err = Template::parse(
        "config",
        "line one\n{{ with secret \"x\" }}\n{{ .Data | }}\n{{ end }}",
        &TemplateOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), crate::ErrorCode::InvalidInput);
    assert!(err.message().starts_with("template: config:3:"), "{err}");
    let err =
        Template::parse("config", "{{ nosuchfunc 1 }}", &TemplateOptions::default()).unwrap_err();
    assert_eq!(
        err.message(),
        "template: config:1:4: function \"nosuchfunc\" not defined"
    );
    let err = Template::parse(
        "config",
        "ok\n{{ with secret \"a\" }}\n  {{ .Data | toJSON | nope }}{{ end }}",
        &TemplateOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.message(),
        "template: config:3:23: function \"nope\" not defined"
    );
    // Unbalanced blocks (gotmpl alone would accept these and render a truncated file).
    let cases = [
        (
            "{{ if true }}",
            "template: c:1:1: unexpected EOF: {{if}} has no {{end}}",
        ),
        (
            "a\n{{ with secret \"x\" }}{{ range .Data }}{{ end }}",
            "template: c:2:1: unexpected EOF: {{with}} has no {{end}}",
        ),
        ("a{{ end }}b", "template: c:1:5: unexpected {{end}}"),
        ("x\n {{- else -}}", "template: c:2:6: unexpected {{else}}"),
    ];
    for (src, want) in cases {
        assert_eq!(
            Template::parse("c", src, &TemplateOptions::default())
                .unwrap_err()
                .message(),
            want,
            "{src}"
        );
    }
    // Delimiters inside strings and comments do not count; balanced blocks parse.
    let ok = r#"{{ if eq "}}" "{{ end }}" }}{{/* {{ end }} */}}{{ else if true }}{{ range $i := `}}` }}{{ end }}{{ end }}{{ define "x" }}{{ end }}"#;
    Template::parse("c", ok, &TemplateOptions::default()).unwrap();
    assert!(
        Template::parse(
            "c",
            "x",
            &TemplateOptions {
                left_delimiter: String::new(),
                ..TemplateOptions::default()
            }
        )
        .is_err()
    );
}

#[test]
fn execution_errors_are_clear_and_carry_no_secret() {
    let opts = TemplateOptions {
        error_on_missing_key: true,
        ..TemplateOptions::default()
    };
    let err = render_with(
        r#"{{ with secret "secret/data/production/api-service" }}{{ .Data.data.password }}{{ end }}"#,
        &seed_brain(),
        &opts,
    )
    .unwrap_err();
    assert!(err.message().contains("password"), "{err}");
    // Without error_on_missing_key, Go's `<no value>`.
    assert_eq!(
        render(r#"{{ with secret "secret/data/production/api-service" }}{{ .Data.data.password }}{{ end }}"#, &seed_brain()).unwrap(),
        "<no value>"
    );
    // Go quotes the value in this error; the secret must not appear.
    let mut b = Brain::default();
    b.insert_secret(Dependency::secret("s"), &kv2(json!({"n": 123456})));
    let err = render(
        r#"{{ range $a, $b := (secret "s").Data.data.n }}{{ end }}"#,
        &b,
    )
    .unwrap_err();
    assert!(
        !err.message().contains("123456") && err.message().contains("<redacted>"),
        "{err}"
    );
    let mut b = Brain::default();
    b.insert_secret(
        Dependency::secret("s"),
        &kv2(json!({"k": "topsecretvalue"})),
    );
    let err = render(r#"{{ (secret "s").Data.data.k | base64Decode }}"#, &b).unwrap_err();
    assert!(!err.message().contains("topsecretvalue"), "{err}");
    assert!(err.message().contains("base64Decode"), "{err}");
    // Bad parameters are reported even before the secret is fetched.
    let t = Template::parse(
        "t",
        r#"{{ secret "pki/issue/x" "no-equals" }}"#,
        &TemplateOptions::default(),
    )
    .unwrap();
    let err = t
        .render(&Brain::default(), OffsetDateTime::UNIX_EPOCH)
        .unwrap_err();
    assert!(err.message().contains("key=value"), "{err}");
}

#[test]
fn hostile_input_never_panics() {
    let srcs = [
        "{{",
        "}}",
        "{{ end }}",
        "{{ else }}",
        "{{ $x }}",
        "{{ index 1 2 }}",
        "{{ slice \"abc\" 5 9 }}",
        "{{ printf \"%d %s %v\" }}",
        "{{ indent -1 \"x\" }}",
        "{{ indent 99999 \"x\" }}",
        "{{ len 3 }}",
        "{{ secret }}",
        "{{ secret 1 }}",
        "{{ secrets \"a\" \"b\" }}",
        "{{ timestamp 1 2 }}",
        "{{ define \"a\" }}{{ template \"a\" }}{{ end }}{{ template \"a\" }}",
        "{{ range 100000000 }}{{ end }}",
        "{{ call 1 }}",
        "{{ (((((( }}",
        "{{ \"\\xff\" }}",
        "{{ join \",\" 3 }}",
        "{{ parseJSON \"{\" }}",
        "{{ 99999999999999999999 }}",
        "{{ 'x' }}",
        "{{ -}}",
        "{{- }}",
        "{{ .a.b.c.d }}",
    ];
    for src in srcs {
        if let Ok(t) = Template::parse("t", src, &TemplateOptions::default()) {
            let _ = t.render(&seed_brain(), OffsetDateTime::UNIX_EPOCH);
        }
    }
}

#[test]
fn execution_errors_name_line_and_column() {
    let opts = TemplateOptions {
        error_on_missing_key: true,
        ..TemplateOptions::default()
    };
    // Go (bao agent 2.7.2): template: :3:12: executing "" at <.Data.data.password>: map has no
    // entry for key "password" (Go's column points inside the field chain; ours at its start).
    let src = "# app\n{{ with secret \"secret/data/production/api-service\" }}\n  x={{ .Data.data.password }}\n{{ end }}";
    let err = render_with(src, &seed_brain(), &opts).unwrap_err();
    assert!(
        err.message()
            .starts_with("template: t:3:8: executing \"t\" at <.Data.data.password>: "),
        "{err}"
    );
    assert!(
        err.message()
            .ends_with(": map has no entry for key \"password\""),
        "{err}"
    );
    // Inside a range, a define and after trimmed text; a helper's failure.
    let mut b = Brain::default();
    b.insert_secret(
        Dependency::secret("s"),
        &kv2(json!({"list": ["aGk=", "!!"]})),
    );
    let src = "{{ define \"dec\" }}{{ . | base64Decode }}{{ end -}}\nok\n{{- range (secret \"s\").Data.data.list }}\n[{{ template \"dec\" . }}]{{ end }}";
    let err = render(src, &b).unwrap_err();
    assert!(
        err.message()
            .starts_with("template: t:1:22: executing \"dec\" at <. | base64Decode>: "),
        "{err}"
    );
    assert!(!err.message().contains("!!"), "{err}");
    // A Vault function's own failure (bad parameters), on line 2.
    let t = Template::parse(
        "t",
        "a\n b {{ secret \"pki/issue/x\" \"no-equals\" }}",
        &TemplateOptions::default(),
    )
    .unwrap();
    let err = t
        .render(&Brain::default(), OffsetDateTime::UNIX_EPOCH)
        .unwrap_err();
    assert!(
        err.message().starts_with(
            "template: t:2:7: executing \"t\" at <secret \"pki/issue/x\" \"no-equals\">: "
        ) && err.message().contains("key=value"),
        "{err}"
    );
    // A render that succeeds costs no replay and says nothing about positions.
    assert_eq!(render(SEED, &seed_brain()).unwrap().lines().count(), 2);
}

/// Runaway and hostile templates stop with a clear error, quickly and in bounded memory (the
/// fuzz target `template` found a short source that ran for minutes and took 1.9 GB).
#[test]
fn runaway_templates_stop_at_the_render_budget() {
    let brain = Brain::default();
    let refused = |src: &str, expect: &str| {
        let e = render(src, &brain).unwrap_err().to_string();
        assert!(e.contains(expect), "{src}\n  gave: {e}");
    };
    // A string squared four times (7 -> 49 -> 2401 -> 5.8 Mi -> 2^45 bytes) is refused before
    // it is built.
    refused(
        r#"{{ $x := "aaaaaaa" }}{{ $x = replaceAll "a" $x $x }}{{ $x = replaceAll "a" $x $x }}{{ $x = replaceAll "a" $x $x }}{{ $x = replaceAll "a" $x $x }}{{ len $x }}"#,
        "replaceAll: the result would be larger than 16 MiB",
    );
    // Exponentially many template calls from a short source, with no function and no range.
    let mut chain = String::from(r#"{{ define "d30" }}x{{ end }}"#);
    for i in (0..30).rev() {
        let next = i + 1;
        chain.push_str(&format!(
            r#"{{{{ define "d{i}" }}}}{{{{ template "d{next}" }}}}{{{{ template "d{next}" }}}}{{{{ end }}}}"#
        ));
    }
    chain.push_str(r#"{{ template "d0" }}"#);
    refused(&chain, "used up its work budget");
    // A big value written a million times: the output limit.
    refused(
        r#"{{ $x := printf "%60000d" 1 }}{{ range 1000000 }}{{ $x }}{{ end }}"#,
        "rendered output is larger than 64 MiB",
    );
    // Comparing big strings a million times: built-ins are metered too.
    refused(
        r#"{{ $x := printf "%60000d" 1 }}{{ range 1000000 }}{{ if eq $x $x }}{{ end }}{{ end }}"#,
        "eq: the template used up its work budget",
    );
    // printf widths that would allocate gigabytes.
    refused(
        r#"{{ $a := "aaaaaaaaaaaaaaaa" }}{{ $a = replaceAll "a" $a $a }}{{ $a = replaceAll "a" $a $a }}{{ $f := replaceAll "a" "%65535d" $a }}{{ printf $f }}"#,
        "printf: the result would be larger than 16 MiB",
    );
    // A string cut into millions of one-character values, or parsed into millions of lists.
    // ($a: 64 Ki, $b: 4 Mi characters.)
    let big = r#"{{ $a := "aaaaaaaaaaaaaaaa" }}{{ $a = replaceAll "a" $a $a }}{{ $a = replaceAll "a" $a $a }}{{ $b := replaceAll "a" (printf "%064d" 0) $a }}"#;
    refused(
        &format!(r#"{big}{{{{ len (split "" $b) }}}}"#),
        "split: the result would be larger than 16 MiB",
    );
    refused(
        &format!(r#"{big}{{{{ parseJSON (replaceAll "0" "[]" $b) }}}}"#),
        "parseJSON: the result would be larger than 16 MiB",
    );
    // A file that never ends.
    refused(r#"{{ file "/dev/zero" }}"#, "is larger than 16 MiB");
    // The same built-ins, metered, still answer as Go's do.
    assert_eq!(
        render(
            r#"{{ eq 1 1 }} {{ ne "a" "b" }} {{ lt 1 2 }} {{ printf "%05d|%s" 42 "x" }} {{ print 1 "a" 2 }} {{ slice "hello" 1 3 }} {{ html "<a>" }} {{ js "'" }} {{ urlquery "a b" }} {{ len (slice (split "," "a,b,c") 1) }}"#,
            &brain
        )
        .unwrap(),
        r#"true true true 00042|x 1a2 el &lt;a&gt; \' a+b 2"#
    );
    // An error inside a metered built-in is the built-in's own.
    let e = render(r#"{{ eq (split "," "a") 1 }}"#, &brain)
        .unwrap_err()
        .to_string();
    assert!(e.contains("eq"), "{e}");
}
