/* The shared conformance scenarios (tests/conformance/NAME.json, specified in its README)
 * replayed through the C ABI. Each call name maps onto the typed sr_* functions (sr_request
 * for what the C ABI has no typed call for: token and AppRole endpoints, and login auth
 * blocks, as the Python runner does); results are compared as JSON.
 *
 *   conformance tests/conformance/NAME.json ...
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "strongroom.h"

static const char *postgres_url(void) {
  const char *u = getenv("STRONGROOM_TEST_POSTGRES_URL");
  return u && *u ? u : "postgres://postgres@127.0.0.1:5432/postgres";
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = jalloc((size_t)n + 1);
  if (fread(s, 1, (size_t)n, f) != (size_t)n) { fclose(f); free(s); return NULL; }
  fclose(f);
  s[n] = 0;
  return s;
}

/* Go-style duration (`1h30m`, `90s`) or a number, in seconds. */
static uint64_t seconds_of(const jval *v) {
  if (!v) return 0;
  if (v->t == J_NUM) return (uint64_t)v->n;
  if (v->t != J_STR) return 0;
  uint64_t total = 0, num = 0;
  for (const char *p = v->s; *p; p++) {
    if (*p >= '0' && *p <= '9') { num = num * 10 + (uint64_t)(*p - '0'); continue; }
    total += num * (*p == 'h' ? 3600 : *p == 'm' ? 60 : 1);
    num = 0;
  }
  return total + num;
}

typedef struct {
  sr_strongroom *sr;
  sr_clock *clock;
  char *root;
  jval *vars; /* saved results */
  size_t nclients;
  char *tokens[32];
  sr_client *clients[32];
} run;

static jval *lookup(run *r, const char *expr) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", expr);
  char *save = NULL, *head = strtok_r(buf, ".", &save);
  if (!head) return jnull();
  if (strcmp(head, "root") == 0) return jstr(r->root);
  if (strcmp(head, "env") == 0) return jstr(postgres_url());
  jval *v = jget(r->vars, head);
  for (char *p = strtok_r(NULL, ".", &save); p && v; p = strtok_r(NULL, ".", &save)) {
    if (v->t == J_ARR) { size_t i = (size_t)atoi(p); v = i < v->len ? v->items[i] : NULL; }
    else v = jget(v, p);
  }
  return jcopy(v);
}

/* A copy of `v` with every `${...}` reference replaced. */
static jval *interpolate(run *r, const jval *v) {
  if (!v) return jnull();
  if (v->t == J_STR) {
    const char *s = v->s;
    size_t n = strlen(s);
    if (n > 3 && strncmp(s, "${", 2) == 0 && s[n - 1] == '}' && !strstr(s + 2, "${") && strchr(s, '}') == s + n - 1) {
      char expr[256];
      snprintf(expr, sizeof expr, "%.*s", (int)(n - 3), s + 2);
      return lookup(r, expr);
    }
    jbuf b = {NULL, 0, 0};
    jb_put(&b, "%s", "");
    while (*s) {
      const char *start = strstr(s, "${");
      const char *end = start ? strchr(start, '}') : NULL;
      if (!start || !end) { jb_put(&b, "%s", s); break; }
      jb_put(&b, "%.*s", (int)(start - s), s);
      char expr[256];
      snprintf(expr, sizeof expr, "%.*s", (int)(end - start - 2), start + 2);
      jval *x = lookup(r, expr);
      if (x->t == J_STR) jb_put(&b, "%s", x->s);
      else { char *d = jdump(x); jb_put(&b, "%s", d); free(d); }
      jfree(x);
      s = end + 1;
    }
    jval *out = jstr(b.s);
    free(b.s);
    return out;
  }
  jval *c = jnew(v->t);
  c->b = v->b; c->n = v->n;
  if (v->s) c->s = jstrdup(v->s);
  for (size_t i = 0; i < v->len; i++) jpush(c, v->keys ? v->keys[i] : NULL, interpolate(r, v->items[i]));
  return c;
}

static sr_client *client_for(run *r, const char *token) {
  for (size_t i = 0; i < r->nclients; i++)
    if (strcmp(r->tokens[i], token) == 0) return r->clients[i];
  if (r->nclients == 32) abort();
  sr_client *c = NULL;
  if (sr_client_new(r->sr, token, &c) != SR_OK) { fprintf(stderr, "client: %s\n", sr_error_message()); abort(); }
  r->tokens[r->nclients] = jstrdup(token);
  r->clients[r->nclients++] = c;
  return c;
}

/* Parse a JSON string the library handed out, then free it; NULL out -> JSON null. */
static jval *take_json(char *s) {
  if (!s) return jnull();
  jval *v = jparse(s);
  sr_string_free(s);
  if (!v) { fprintf(stderr, "the library returned invalid JSON\n"); abort(); }
  return v;
}

static const char *arg(const jval *a, const char *k) {
  const char *s = jgets(a, k);
  return s ? s : "";
}

/* sr_request with `body` (or none) -> the parsed response. */
static sr_result request(sr_client *c, const char *op, const char *path, const jval *body, jval **out) {
  char *b = body ? jdump(body) : NULL, *o = NULL;
  sr_result rc = sr_request(c, op, path, b, &o);
  free(b);
  *out = take_json(o);
  return rc;
}

static jval *pick(const jval *from, const char *const *keys, const char *const *as) {
  jval *o = jobj();
  for (size_t i = 0; keys[i]; i++) jset(o, as[i], jcopy(jget(from, keys[i])));
  return o;
}

static int key_version(const char *ct) {
  return strncmp(ct, "vault:v", 7) == 0 ? atoi(ct + 7) : 0;
}

/* One call; the result as the README specifies it in *out. */
static sr_result call(run *r, sr_client *c, const char *name, const jval *a, jval **out) {
  sr_result rc = SR_OK;
  char path[512];
  *out = NULL;
  if (strcmp(name, "request") == 0) {
    return request(c, arg(a, "op"), arg(a, "path"), jget(a, "data"), out);
  }
  if (strcmp(name, "kv.put") == 0 || strcmp(name, "kv.patch") == 0) {
    uint64_t version = 0;
    char *d = jdump(jget(a, "data"));
    rc = (name[3] == 'p' && name[4] == 'u' ? sr_kv_put : sr_kv_patch)(c, arg(a, "mount"), arg(a, "key"), d, &version);
    free(d);
    if (rc == SR_OK) { *out = jobj(); jset(*out, "version", jnum((double)version)); }
    return rc;
  }
  if (strcmp(name, "kv.get") == 0) {
    char *o = NULL;
    jval *v = jget(a, "version");
    rc = v ? sr_kv_get_version(c, arg(a, "mount"), arg(a, "key"), (uint64_t)v->n, &o)
           : sr_kv_get(c, arg(a, "mount"), arg(a, "key"), &o);
    *out = take_json(o);
    return rc;
  }
  if (strcmp(name, "kv.delete") == 0) return sr_kv_delete(c, arg(a, "mount"), arg(a, "key"));
  if (strcmp(name, "kv.list") == 0) {
    char *o = NULL;
    rc = sr_kv_list(c, arg(a, "mount"), arg(a, "prefix"), &o);
    if (rc == SR_OK) { *out = jobj(); jset(*out, "keys", take_json(o)); }
    return rc;
  }
  if (strcmp(name, "kv.metadata") == 0) {
    char *o = NULL;
    rc = sr_kv_metadata(c, arg(a, "mount"), arg(a, "key"), &o);
    jval *m = take_json(o);
    if (rc == SR_OK && m->t == J_OBJ) {
      static const char *const keys[] = {"current_version", "oldest_version", "max_versions", NULL};
      *out = pick(m, keys, keys);
      jval *versions = jarr(), *vs = jget(m, "versions");
      for (size_t i = 0; vs && i < vs->len; i++) jpush(versions, NULL, jstr(vs->keys[i]));
      jset(*out, "versions", versions);
      jfree(m);
    } else {
      *out = m;
    }
    return rc;
  }
  if (strncmp(name, "transit.", 8) == 0) {
    const char *op = name + 8, *mount = arg(a, "mount"), *key = arg(a, "key");
    const char *input = arg(a, "input");
    char *text = NULL;
    if (strcmp(op, "encrypt") == 0) {
      const char *pt = arg(a, "plaintext");
      rc = sr_transit_encrypt(c, mount, key, (const uint8_t *)pt, strlen(pt), &text);
      if (rc == SR_OK) {
        *out = jobj();
        jset(*out, "ciphertext", jstr(text));
        jset(*out, "key_version", jnum(key_version(text)));
      }
    } else if (strcmp(op, "decrypt") == 0) {
      uint8_t *pt = NULL;
      size_t len = 0;
      rc = sr_transit_decrypt(c, mount, key, arg(a, "ciphertext"), &pt, &len);
      if (rc == SR_OK) {
        char *s = jalloc(len + 1);
        if (len) memcpy(s, pt, len);
        *out = jobj();
        jset(*out, "plaintext", jstr(s));
        free(s);
      }
      sr_bytes_free(pt);
    } else if (strcmp(op, "rotate") == 0) {
      uint32_t latest = 0;
      rc = sr_transit_rotate(c, mount, key, &latest);
      if (rc == SR_OK) { *out = jobj(); jset(*out, "latest_version", jnum(latest)); }
    } else if (strcmp(op, "hmac") == 0 || strcmp(op, "sign") == 0) {
      int hmac = op[0] == 'h';
      rc = (hmac ? sr_transit_hmac : sr_transit_sign)(c, mount, key, (const uint8_t *)input, strlen(input), &text);
      if (rc == SR_OK) { *out = jobj(); jset(*out, hmac ? "hmac" : "signature", jstr(text)); }
    } else if (strcmp(op, "verify") == 0) {
      bool valid = false;
      rc = sr_transit_verify(c, mount, key, (const uint8_t *)input, strlen(input), arg(a, "signature"), &valid);
      if (rc == SR_OK) { *out = jobj(); jset(*out, "valid", jbool(valid)); }
    } else {
      fprintf(stderr, "unknown call %s\n", name);
      abort();
    }
    sr_string_free(text);
    return rc;
  }
  if (strcmp(name, "token.create") == 0) {
    jval *body = jobj(), *resp = NULL;
    static const char *const keys[] = {"policies", "ttl", "num_uses", "type", NULL};
    for (size_t i = 0; keys[i]; i++)
      if (jget(a, keys[i])) jset(body, keys[i], jcopy(jget(a, keys[i])));
    rc = request(c, "write", "auth/token/create", body, &resp);
    jfree(body);
    *out = jcopy(jget(resp, "auth"));
    jfree(resp);
    return rc;
  }
  if (strcmp(name, "token.lookup_self") == 0) {
    jval *resp = NULL;
    rc = request(c, "read", "auth/token/lookup-self", NULL, &resp);
    static const char *const keys[] = {"policies", "ttl", "num_uses", "orphan", "renewable", "type", "path", NULL};
    *out = pick(jget(resp, "data"), keys, keys);
    jfree(resp);
    return rc;
  }
  if (strcmp(name, "token.revoke_self") == 0) {
    jval *resp = NULL;
    rc = request(c, "write", "auth/token/revoke-self", NULL, &resp);
    jfree(resp);
    return rc;
  }
  if (strcmp(name, "auth.userpass.login") == 0 || strcmp(name, "auth.approle.login") == 0) {
    jval *body = jobj(), *resp = NULL;
    if (name[5] == 'u') {
      snprintf(path, sizeof path, "auth/%s/login/%s", arg(a, "mount"), arg(a, "username"));
      jset(body, "password", jstr(arg(a, "password")));
    } else {
      snprintf(path, sizeof path, "auth/%s/login", arg(a, "mount"));
      jset(body, "role_id", jstr(arg(a, "role_id")));
      jset(body, "secret_id", jstr(arg(a, "secret_id")));
    }
    rc = request(c, "write", path, body, &resp);
    jfree(body);
    *out = jcopy(jget(resp, "auth"));
    jfree(resp);
    return rc;
  }
  if (strcmp(name, "auth.approle.role_id") == 0) {
    jval *resp = NULL;
    snprintf(path, sizeof path, "auth/%s/role/%s/role-id", arg(a, "mount"), arg(a, "role"));
    rc = request(c, "read", path, NULL, &resp);
    static const char *const keys[] = {"role_id", NULL};
    *out = pick(jget(resp, "data"), keys, keys);
    jfree(resp);
    return rc;
  }
  if (strcmp(name, "auth.approle.secret_id") == 0) {
    jval *resp = NULL;
    snprintf(path, sizeof path, "auth/%s/role/%s/secret-id", arg(a, "mount"), arg(a, "role"));
    rc = request(c, "write", path, NULL, &resp);
    static const char *const keys[] = {"secret_id", "secret_id_accessor", NULL};
    static const char *const as[] = {"secret_id", "accessor", NULL};
    *out = pick(jget(resp, "data"), keys, as);
    jfree(resp);
    return rc;
  }
  if (strcmp(name, "leases.lookup") == 0) {
    char *o = NULL;
    rc = sr_lease_lookup(c, arg(a, "lease_id"), &o);
    *out = take_json(o);
    return rc;
  }
  if (strcmp(name, "leases.renew") == 0) {
    uint64_t ttl = 0;
    rc = sr_lease_renew(c, arg(a, "lease_id"), seconds_of(jget(a, "increment")), &ttl);
    if (rc == SR_OK) {
      *out = jobj();
      jset(*out, "lease_id", jstr(arg(a, "lease_id")));
      jset(*out, "ttl", jnum((double)ttl));
    }
    return rc;
  }
  if (strcmp(name, "leases.revoke") == 0) return sr_lease_revoke(c, arg(a, "lease_id"));
  if (strcmp(name, "leases.revoke_prefix") == 0) return sr_lease_revoke_prefix(c, arg(a, "prefix"));
  if (strcmp(name, "database.creds") == 0) {
    sr_db_credential cred;
    rc = sr_database_creds(c, arg(a, "mount"), arg(a, "role"), &cred);
    if (rc == SR_OK) {
      *out = jobj();
      jset(*out, "username", jstr(cred.username));
      jset(*out, "has_password", jbool(cred.password && cred.password[0]));
      jset(*out, "lease_id", jstr(cred.lease_id));
      jset(*out, "lease_duration", jnum((double)cred.lease_duration));
      jset(*out, "renewable", jbool(cred.renewable));
    }
    sr_db_credential_free(&cred);
    return rc;
  }
  if (strcmp(name, "sys.seal") == 0) return sr_seal(r->sr);
  fprintf(stderr, "unknown call `%s`\n", name);
  abort();
}

/* Replay one scenario file; the number of failed steps (0 = passed). */
static int replay(const char *file) {
  char *text = read_file(file);
  jval *sc = text ? jparse(text) : NULL;
  free(text);
  if (!sc) { fprintf(stderr, "%s: cannot read or parse\n", file); return 1; }
  const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
  if (!jgets(jget(sc, "open"), "config") || strcmp(jgets(jget(sc, "open"), "config"), "dev") != 0) {
    fprintf(stderr, "%s: only the dev config is supported\n", base);
    jfree(sc);
    return 1;
  }
  run r;
  memset(&r, 0, sizeof r);
  r.vars = jobj();
  sr_config *cfg = NULL;
  if (sr_clock_new(&r.clock) != SR_OK || sr_config_dev(&cfg) != SR_OK ||
      sr_config_set_clock(cfg, r.clock) != SR_OK || sr_open(cfg, &r.sr) != SR_OK ||
      sr_dev_root_token(r.sr, &r.root) != SR_OK || !r.root) {
    fprintf(stderr, "%s: open: %s\n", base, sr_error_message());
    abort();
  }
  sr_config_free(cfg);
  int failed = 0;
  jval *steps = jget(sc, "steps");
  for (size_t i = 0; steps && i < steps->len && !failed; i++) {
    jval *step = steps->items[i];
    char at[256];
    if (jget(step, "advance")) {
      if (sr_clock_advance(r.clock, seconds_of(jget(step, "advance"))) != SR_OK || sr_run_expiry(r.sr) != SR_OK) {
        fprintf(stderr, "%s step %zu: advance: %s\n", base, i, sr_error_message());
        failed++;
      }
      continue;
    }
    const char *name = jgets(step, "call");
    snprintf(at, sizeof at, "%s step %zu (%s)", base, i, name);
    jval *args = interpolate(&r, jget(step, "args"));
    jval *tok = jget(step, "token") ? interpolate(&r, jget(step, "token")) : jstr(r.root);
    sr_client *c = client_for(&r, tok->t == J_STR ? tok->s : "");
    jval *got = NULL;
    sr_result rc = call(&r, c, name, args, &got);
    const char *want_err = jgets(step, "expect_error");
    if (rc != SR_OK) {
      const char *msg = sr_error_message();
      if (!want_err) {
        fprintf(stderr, "%s: failed with %s: %s\n", at, sr_result_name(rc), msg);
        failed++;
      } else if (strcmp(want_err, sr_result_name(rc)) != 0) {
        fprintf(stderr, "%s: wanted %s, got %s: %s\n", at, want_err, sr_result_name(rc), msg);
        failed++;
      } else if (jgets(step, "error_contains") && !strstr(msg, jgets(step, "error_contains"))) {
        fprintf(stderr, "%s: message `%s` lacks `%s`\n", at, msg, jgets(step, "error_contains"));
        failed++;
      }
    } else if (want_err) {
      fprintf(stderr, "%s: wanted %s, but it succeeded\n", at, want_err);
      failed++;
    } else {
      if (jget(step, "expect")) {
        jval *want = interpolate(&r, jget(step, "expect"));
        char why[1024] = "";
        if (!jmatch(want, got ? got : NULL, "result", why, sizeof why)) {
          fprintf(stderr, "%s: %s\n", at, why);
          failed++;
        }
        jfree(want);
      }
      if (jgets(step, "save")) jset(r.vars, jgets(step, "save"), got ? jcopy(got) : jnull());
    }
    jfree(got);
    jfree(args);
    jfree(tok);
  }
  for (size_t i = 0; i < r.nclients; i++) { sr_client_free(r.clients[i]); free(r.tokens[i]); }
  if (sr_close(r.sr) != SR_OK) { fprintf(stderr, "%s: close: %s\n", base, sr_error_message()); failed++; }
  sr_clock_free(r.clock);
  sr_string_free(r.root);
  size_t n = steps ? steps->len : 0;
  jfree(r.vars);
  jfree(sc);
  printf("%-28s %s (%zu steps)\n", base, failed ? "FAILED" : "ok", n);
  return failed;
}

int main(int argc, char **argv) {
  int failed = 0;
  if (argc < 2) { fprintf(stderr, "usage: conformance SCENARIO.json...\n"); return 2; }
  for (int i = 1; i < argc; i++) failed += replay(argv[i]) ? 1 : 0;
  printf("conformance (C): %d passed, %d failed\n", argc - 1 - failed, failed);
  return failed ? 1 : 0;
}
