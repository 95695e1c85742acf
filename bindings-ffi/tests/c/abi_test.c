/* The C ABI from C: error paths, ownership and double frees, the engine's lifecycle on memory,
 * SQLite (with a key file) and PostgreSQL storage, logins, transit (with batches), database
 * credentials with lease events through a callback, and many threads at once. Built with
 * -Wall -Werror -fsanitize=address,undefined by scripts/test-c.sh, so a leak, a double free or
 * a use after free fails it.
 *
 * Needs STRONGROOM_TEST_POSTGRES_URL (a server for the database engine) and
 * SR_FFI_PG_STORAGE_URL (an empty database for storage); scripts/test-c.sh sets both. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "strongroom.h"

static int failures = 0;

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__, __LINE__, \
              #cond, sr_error_message());                                            \
      failures++;                                                                    \
    }                                                                                \
  } while (0)

#define OK(call) CHECK((call) == SR_OK)

static const char *env_or_die(const char *name) {
  const char *v = getenv(name);
  if (!v || !*v) {
    fprintf(stderr, "%s is not set: run this test through scripts/test-c.sh\n", name);
    exit(2);
  }
  return v;
}

static sr_strongroom *open_dev(sr_clock *clock) {
  sr_config *cfg = NULL;
  sr_strongroom *sr = NULL;
  OK(sr_config_dev(&cfg));
  if (clock) OK(sr_config_set_clock(cfg, clock));
  OK(sr_open(cfg, &sr));
  sr_config_free(cfg);
  return sr;
}

static sr_client *root_client(sr_strongroom *sr) {
  char *root = NULL;
  sr_client *c = NULL;
  OK(sr_dev_root_token(sr, &root));
  CHECK(root && strncmp(root, "s.", 2) == 0);
  OK(sr_client_new(sr, root, &c));
  sr_string_free(root);
  return c;
}

static void write_json(sr_client *c, const char *path, const char *body) {
  char *out = NULL;
  sr_result rc = sr_request(c, "write", path, body, &out);
  if (rc != SR_OK) fprintf(stderr, "write %s: %s\n", path, sr_error_message());
  CHECK(rc == SR_OK);
  sr_string_free(out);
}

/* ---- error paths: typed statuses, messages, nothing written ---- */
static void test_errors(void) {
  sr_strongroom *sr = open_dev(NULL);
  sr_client *c = root_client(sr);
  char *out = (char *)"sentinel";
  uint64_t version = 99;

  CHECK(sr_kv_get(NULL, "secret", "x", &out) == SR_INVALID_INPUT);
  CHECK(strstr(sr_error_message(), "sr_client is NULL") != NULL);
  CHECK(out == (char *)"sentinel"); /* the client was checked first: nothing touched */
  CHECK(sr_kv_get(c, NULL, "x", &out) == SR_INVALID_INPUT);
  CHECK(strstr(sr_error_message(), "`mount` is NULL") != NULL);
  CHECK(sr_kv_get(c, "secret", "x", NULL) == SR_INVALID_INPUT);
  CHECK(strstr(sr_error_message(), "out-parameter") != NULL);
  /* A missing key is SR_OK with NULL out. */
  OK(sr_kv_get(c, "secret", "missing", &out));
  CHECK(out == NULL);
  CHECK(strcmp(sr_error_message(), "") == 0);
  /* Bad JSON and non-object JSON. */
  CHECK(sr_kv_put(c, "secret", "k", "{not json", &version) == SR_INVALID_INPUT);
  CHECK(strstr(sr_error_message(), "not valid JSON") != NULL);
  CHECK(version == 0); /* out-parameters are reset first */
  CHECK(sr_kv_put(c, "secret", "k", "[1,2]", &version) == SR_INVALID_INPUT);
  OK(sr_kv_get(c, "secret", "k", &out));
  CHECK(out == NULL); /* nothing was written */
  /* Invalid UTF-8. */
  CHECK(sr_kv_get(c, "secret", "\xff\xfe", &out) == SR_INVALID_INPUT);
  CHECK(strstr(sr_error_message(), "UTF-8") != NULL);
  /* Unknown method, unknown mount, permission denied, sealed. */
  CHECK(sr_request(c, "FROB", "secret/data/x", NULL, &out) == SR_INVALID_INPUT);
  CHECK(sr_kv_get(c, "nowhere", "x", &out) == SR_UNSUPPORTED_PATH);
  sr_client *nobody = NULL;
  OK(sr_client_new(sr, "s.not-a-token", &nobody));
  CHECK(sr_kv_get(nobody, "secret", "x", &out) == SR_PERMISSION_DENIED);
  CHECK(strcmp(sr_result_name(SR_PERMISSION_DENIED), "permission_denied") == 0);
  CHECK(strcmp(sr_result_name(SR_OK), "ok") == 0);
  CHECK(strcmp(sr_result_name(4242), "unknown") == 0);
  CHECK(strlen(sr_version()) > 0);
  /* Transit on a key that does not exist, a bad ciphertext. */
  write_json(c, "sys/mounts/transit", "{\"type\":\"transit\"}");
  OK(sr_transit_create_key(c, "transit", "k", NULL));
  uint8_t *pt = (uint8_t *)"x";
  size_t len = 7;
  CHECK(sr_transit_decrypt(c, "transit", "k", "vault:v1:not-base64!", &pt, &len) == SR_INVALID_INPUT);
  CHECK(pt == NULL && len == 0);
  CHECK(sr_transit_encrypt(c, "transit", "k", NULL, 5, &out) == SR_INVALID_INPUT);
  /* Errors are per thread: a success here clears this thread's message. */
  OK(sr_kv_get(c, "secret", "missing", &out));
  CHECK(sr_error_message()[0] == 0);
  OK(sr_seal(sr));
  CHECK(sr_kv_get(c, "secret", "x", &out) == SR_SEALED);
  CHECK(strcmp(sr_error_message(), "Vault is sealed") == 0);
  sr_client_free(nobody);
  sr_client_free(c);
  OK(sr_close(sr));
}

/* ---- ownership: every _free zeroes, frees once, and ignores NULL and second frees ---- */
static void test_ownership(void) {
  sr_strongroom *sr = open_dev(NULL);
  sr_client *c = root_client(sr);
  write_json(c, "sys/mounts/transit", "{\"type\":\"transit\"}");
  OK(sr_transit_create_key(c, "transit", "k", NULL));

  char *ct = NULL;
  OK(sr_transit_encrypt(c, "transit", "k", (const uint8_t *)"top secret", 10, &ct));
  CHECK(ct && strncmp(ct, "vault:v1:", 9) == 0);
  uint8_t *pt = NULL;
  size_t len = 0;
  OK(sr_transit_decrypt(c, "transit", "k", ct, &pt, &len));
  CHECK(len == 10 && memcmp(pt, "top secret", 10) == 0);
  sr_bytes_free(pt);
  sr_bytes_free(pt); /* second free: nothing happens */
  sr_string_free(ct);
  sr_string_free(ct);
  sr_string_free(NULL);
  sr_bytes_free(NULL);
  /* Pointers the library never handed out are ignored, not freed. */
  char *mine = malloc(8);
  strcpy(mine, "mine");
  sr_string_free(mine);
  sr_bytes_free((uint8_t *)mine);
  CHECK(strcmp(mine, "mine") == 0);
  free(mine);
  /* An empty plaintext is NULL / 0. */
  OK(sr_transit_encrypt(c, "transit", "k", NULL, 0, &ct));
  OK(sr_transit_decrypt(c, "transit", "k", ct, &pt, &len));
  CHECK(pt == NULL && len == 0);
  sr_string_free(ct);

  /* Handles: free twice, free NULL, close twice. */
  sr_config *cfg = NULL;
  OK(sr_config_memory(&cfg));
  sr_config_free(cfg);
  sr_config_free(cfg);
  sr_config_free(NULL);
  sr_clock *clock = NULL;
  OK(sr_clock_new(&clock));
  sr_clock_free(clock);
  sr_clock_free(clock);
  /* A handle of another type passed to a _free is not freed as that type. */
  sr_client *c2 = NULL;
  OK(sr_client_new(sr, "s.x", &c2));
  sr_config_free((sr_config *)c2);
  char *tok = NULL;
  OK(sr_client_token(c2, &tok)); /* still alive */
  CHECK(tok && strcmp(tok, "s.x") == 0);
  sr_string_free(tok);
  sr_client_free(c2);
  sr_client_free(c2);

  /* Batches. */
  sr_slice in[3] = {{(const uint8_t *)"a", 1}, {(const uint8_t *)"bb", 2}, {NULL, 0}};
  sr_batch *b = NULL;
  OK(sr_transit_encrypt_batch(c, "transit", "k", in, 3, &b));
  CHECK(sr_batch_len(b) == 3);
  const char *cts[4];
  for (size_t i = 0; i < 3; i++) {
    sr_result st = SR_INTERNAL;
    const uint8_t *d = NULL;
    size_t n = 0;
    OK(sr_batch_item(b, i, &st, &d, &n, NULL));
    CHECK(st == SR_OK && n > 9 && strlen((const char *)d) == n);
    cts[i] = (const char *)d;
  }
  cts[3] = "vault:v1:AAAA";
  CHECK(sr_batch_item(b, 3, NULL, NULL, NULL, NULL) == SR_INVALID_INPUT);
  sr_batch *p = NULL;
  OK(sr_transit_decrypt_batch(c, "transit", "k", cts, 4, &p));
  CHECK(sr_batch_len(p) == 4);
  const uint8_t *d = NULL;
  size_t n = 0;
  sr_result st = SR_INTERNAL;
  const char *msg = NULL;
  OK(sr_batch_item(p, 1, &st, &d, &n, &msg));
  CHECK(st == SR_OK && n == 2 && memcmp(d, "bb", 2) == 0);
  OK(sr_batch_item(p, 2, &st, &d, &n, &msg));
  CHECK(st == SR_OK && n == 0);
  OK(sr_batch_item(p, 3, &st, &d, &n, &msg));
  CHECK(st != SR_OK && msg && msg[0] != 0); /* one bad item fails alone */
  sr_batch_free(b);
  sr_batch_free(b);
  sr_batch_free(p);
  CHECK(sr_batch_len(NULL) == 0);

  /* Sign / verify / HMAC. */
  OK(sr_transit_create_key(c, "transit", "signer", "ed25519"));
  char *sig = NULL, *mac = NULL;
  bool valid = false;
  OK(sr_transit_sign(c, "transit", "signer", (const uint8_t *)"v1.0", 4, &sig));
  OK(sr_transit_verify(c, "transit", "signer", (const uint8_t *)"v1.0", 4, sig, &valid));
  CHECK(valid);
  OK(sr_transit_verify(c, "transit", "signer", (const uint8_t *)"v1.1", 4, sig, &valid));
  CHECK(!valid);
  OK(sr_transit_hmac(c, "transit", "k", (const uint8_t *)"m", 1, &mac));
  OK(sr_transit_verify_hmac(c, "transit", "k", (const uint8_t *)"m", 1, mac, &valid));
  CHECK(valid);
  uint32_t latest = 0;
  OK(sr_transit_rotate(c, "transit", "k", &latest));
  CHECK(latest == 2);
  sr_string_free(sig);
  sr_string_free(mac);

  sr_client_free(c);
  OK(sr_close(sr));
  CHECK(sr_close(sr) == SR_INVALID_INPUT); /* closing twice is refused, not a double free */
  CHECK(strstr(sr_error_message(), "not a live sr_strongroom") != NULL);
}

/* ---- sr_transit_encrypt_into: the caller's buffer, its size, and every failure ---- */
static void test_encrypt_into(void) {
  sr_strongroom *sr = open_dev(NULL);
  sr_client *c = root_client(sr);
  write_json(c, "sys/mounts/transit", "{\"type\":\"transit\"}");
  OK(sr_transit_create_key(c, "transit", "k", NULL));
  OK(sr_transit_create_key(c, "transit", "x", "xchacha20-poly1305"));
  const uint8_t *secret = (const uint8_t *)"top secret";

  /* Written with its NUL; *len_out leaves the NUL out; it decrypts back. */
  char buf[512];
  size_t len = 99;
  OK(sr_transit_encrypt_into(c, "transit", "k", secret, 10, buf, sizeof buf, &len));
  CHECK(strncmp(buf, "vault:v1:", 9) == 0 && strlen(buf) == len);
  uint8_t *pt = NULL;
  size_t n = 0;
  OK(sr_transit_decrypt(c, "transit", "k", buf, &pt, &n));
  CHECK(n == 10 && memcmp(pt, secret, 10) == 0);
  sr_bytes_free(pt);

  /* The documented size suffices for the AEAD types, the longest nonce included. */
  static uint8_t big[3000];
  memset(big, 'b', sizeof big);
  size_t sizes[] = {0, 1, 2, 3, 10, 64, 1000, 2999};
  const char *keys[] = {"k", "x"};
  for (size_t k = 0; k < 2; k++) {
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      size_t cap = sizes[i] / 3 * 4 + 80;
      char *out = malloc(cap);
      CHECK(out != NULL);
      OK(sr_transit_encrypt_into(c, "transit", keys[k], sizes[i] ? big : NULL, sizes[i], out, cap, &len));
      CHECK(len + 1 <= cap && strlen(out) == len);
      free(out);
    }
  }

  /* Exactly the size needed fits; one byte less is SR_INVALID_INPUT, *len_out the length
   * needed, the buffer an empty string, and the message names sizes, never the plaintext. */
  OK(sr_transit_encrypt_into(c, "transit", "k", secret, 10, buf, sizeof buf, &len));
  size_t need = len + 1;
  char *exact = malloc(need);
  CHECK(exact != NULL);
  OK(sr_transit_encrypt_into(c, "transit", "k", secret, 10, exact, need, &len));
  CHECK(len + 1 == need && strlen(exact) == len);
  len = 0;
  CHECK(sr_transit_encrypt_into(c, "transit", "k", secret, 10, exact, need - 1, &len) == SR_INVALID_INPUT);
  CHECK(len + 1 == need);
  CHECK(exact[0] == 0);
  CHECK(strstr(sr_error_message(), "buffer") != NULL);
  CHECK(strstr(sr_error_message(), "top secret") == NULL);
  free(exact);
  /* A capacity of 0: nothing is written at all. */
  char one = 'z';
  len = 0;
  CHECK(sr_transit_encrypt_into(c, "transit", "k", secret, 10, &one, 0, &len) == SR_INVALID_INPUT);
  CHECK(one == 'z' && len + 1 == need);

  /* NULL arguments: refused; the buffer is left an empty string. */
  memcpy(buf, "junk", 5);
  len = 99;
  CHECK(sr_transit_encrypt_into(c, "transit", "k", secret, 10, NULL, sizeof buf, &len) == SR_INVALID_INPUT);
  CHECK(strstr(sr_error_message(), "`ciphertext` is NULL") != NULL);
  CHECK(len == 0);
  CHECK(sr_transit_encrypt_into(c, "transit", "k", secret, 10, buf, sizeof buf, NULL) == SR_INVALID_INPUT);
  CHECK(strstr(sr_error_message(), "out-parameter") != NULL);
  CHECK(buf[0] == 0);
  memcpy(buf, "junk", 5);
  CHECK(sr_transit_encrypt_into(NULL, "transit", "k", secret, 10, buf, sizeof buf, &len) == SR_INVALID_INPUT);
  CHECK(buf[0] == 0);
  memcpy(buf, "junk", 5);
  CHECK(sr_transit_encrypt_into(c, "transit", "k", NULL, 10, buf, sizeof buf, &len) == SR_INVALID_INPUT);
  CHECK(buf[0] == 0);

  /* The engine's refusals: no such mount, a token without the policy. */
  memcpy(buf, "junk", 5);
  CHECK(sr_transit_encrypt_into(c, "nowhere", "k", secret, 10, buf, sizeof buf, &len) != SR_OK);
  CHECK(buf[0] == 0 && len == 0);
  sr_client *nobody = NULL;
  OK(sr_client_new(sr, "s.nobody", &nobody));
  memcpy(buf, "junk", 5);
  CHECK(sr_transit_encrypt_into(nobody, "transit", "k", secret, 10, buf, sizeof buf, &len) == SR_PERMISSION_DENIED);
  CHECK(buf[0] == 0 && len == 0);
  CHECK(strstr(sr_error_message(), "top secret") == NULL);
  sr_client_free(nobody);

  /* A client keeps handles for 8 mounts; calls on more mounts than that still work. */
  for (int round = 0; round < 2; round++) {
    for (int m = 0; m < 10; m++) {
      char mount[16], path[40];
      snprintf(mount, sizeof mount, "t%d", m);
      if (round == 0) {
        snprintf(path, sizeof path, "sys/mounts/%s", mount);
        write_json(c, path, "{\"type\":\"transit\"}");
        OK(sr_transit_create_key(c, mount, "k", NULL));
      }
      OK(sr_transit_encrypt_into(c, mount, "k", secret, 10, buf, sizeof buf, &len));
      OK(sr_transit_decrypt(c, mount, "k", buf, &pt, &n));
      CHECK(n == 10 && memcmp(pt, secret, 10) == 0);
      sr_bytes_free(pt);
    }
  }

  /* Names longer than the short-name path and non-ASCII UTF-8 names go the general way. */
  const char *long_name = "a-key-name-longer-than-sixty-four-bytes-0123456789-0123456789-0123456789";
  OK(sr_transit_create_key(c, "transit", long_name, NULL));
  OK(sr_transit_encrypt_into(c, "transit", long_name, secret, 10, buf, sizeof buf, &len));
  CHECK(strncmp(buf, "vault:v1:", 9) == 0);
  CHECK(sr_transit_encrypt_into(c, "transit", "k\xff", secret, 10, buf, sizeof buf, &len) == SR_INVALID_INPUT);
  CHECK(strstr(sr_error_message(), "UTF-8") != NULL);

  sr_client_free(c);
  OK(sr_close(sr));
}

/* ---- lifecycle on memory storage: init, unseal, seal ---- */
static void test_memory_lifecycle(void) {
  sr_config *cfg = NULL;
  sr_strongroom *sr = NULL;
  OK(sr_config_memory(&cfg));
  OK(sr_open(cfg, &sr));
  sr_config_free(cfg);
  bool b = true;
  OK(sr_is_initialized(sr, &b));
  CHECK(!b);
  char *init = NULL;
  OK(sr_init(sr, 1, 1, &init));
  jval *j = jparse(init);
  sr_string_free(init);
  CHECK(j && jget(j, "keys") && jget(j, "keys")->len == 1 && jgets(j, "root_token"));
  OK(sr_is_sealed(sr, &b));
  CHECK(b);
  bool sealed = true;
  OK(sr_unseal(sr, jget(j, "keys")->items[0]->s, &sealed));
  CHECK(!sealed);
  sr_client *c = NULL;
  OK(sr_client_new(sr, jgets(j, "root_token"), &c));
  write_json(c, "sys/mounts/secret", "{\"type\":\"kv\",\"options\":{\"version\":\"2\"}}");
  uint64_t v = 0;
  OK(sr_kv_put(c, "secret", "a", "{\"x\":\"1\"}", &v));
  CHECK(v == 1);
  OK(sr_kv_put_cas(c, "secret", "a", "{\"x\":\"2\"}", 1, &v));
  CHECK(sr_kv_put_cas(c, "secret", "a", "{\"x\":\"3\"}", 1, &v) == SR_CONFLICT);
  OK(sr_seal(sr));
  CHECK(sr_kv_put(c, "secret", "a", "{}", &v) == SR_SEALED);
  CHECK(sr_unseal(sr, "not-a-key", &sealed) == SR_INVALID_INPUT);
  OK(sr_unseal(sr, jget(j, "keys")->items[0]->s, &sealed));
  char *out = NULL;
  OK(sr_kv_get(c, "secret", "a", &out));
  CHECK(out && strstr(out, "\"x\":\"2\""));
  sr_string_free(out);
  jfree(j);
  sr_client_free(c);
  OK(sr_close(sr));
}

/* ---- SQLite with a key file: initialise, then reopen unsealed from the key ---- */
static void test_sqlite_key_file(void) {
  char dir[] = "/tmp/sr-ffi-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char db[256], key[256];
  snprintf(db, sizeof db, "%s/store.db", dir);
  snprintf(key, sizeof key, "%s/unseal.key", dir);
  char *root = NULL;
  for (int round = 0; round < 2; round++) {
    sr_config *cfg = NULL;
    sr_strongroom *sr = NULL;
    OK(sr_config_sqlite(db, &cfg));
    OK(sr_config_unseal_key_file(cfg, key));
    OK(sr_open(cfg, &sr));
    sr_config_free(cfg);
    bool init = false;
    OK(sr_is_initialized(sr, &init));
    CHECK(init == (round == 1));
    if (round == 0) {
      OK(sr_init_with_key_file(sr, key, &root));
      CHECK(root != NULL);
      char *again = NULL;
      CHECK(sr_init_with_key_file(sr, key, &again) == SR_INVALID_INPUT); /* never overwrites a key */
      CHECK(again == NULL);
    }
    bool sealed = true;
    OK(sr_is_sealed(sr, &sealed));
    CHECK(!sealed);
    sr_client *c = NULL;
    OK(sr_client_new(sr, root, &c));
    if (round == 0) {
      write_json(c, "sys/mounts/secret", "{\"type\":\"kv\",\"options\":{\"version\":\"2\"}}");
      uint64_t v = 0;
      OK(sr_kv_put(c, "secret", "app/db", "{\"password\":\"pw\"}", &v));
    } else {
      char *out = NULL;
      OK(sr_kv_get(c, "secret", "app/db", &out));
      CHECK(out && strstr(out, "\"password\":\"pw\""));
      sr_string_free(out);
      OK(sr_kv_delete(c, "secret", "app/db"));
      OK(sr_kv_get(c, "secret", "app/db", &out));
      CHECK(out == NULL);
    }
    sr_client_free(c);
    OK(sr_close(sr));
  }
  sr_string_free(root);
  unlink(db);
  unlink(key);
  char wal[300];
  snprintf(wal, sizeof wal, "%s-wal", db);
  unlink(wal);
  snprintf(wal, sizeof wal, "%s-shm", db);
  unlink(wal);
  CHECK(rmdir(dir) == 0);
}

/* ---- PostgreSQL storage ---- */
static void test_postgres_storage(void) {
  sr_config *cfg = NULL;
  sr_strongroom *sr = NULL;
  OK(sr_config_postgres(env_or_die("SR_FFI_PG_STORAGE_URL"), &cfg));
  OK(sr_open(cfg, &sr));
  sr_config_free(cfg);
  bool init = true;
  OK(sr_is_initialized(sr, &init));
  CHECK(!init);
  char *j = NULL;
  OK(sr_init(sr, 3, 2, &j));
  jval *v = jparse(j);
  sr_string_free(j);
  CHECK(v && jget(v, "keys")->len == 3);
  bool sealed = false;
  OK(sr_unseal(sr, jget(v, "keys")->items[0]->s, &sealed));
  CHECK(sealed); /* one share of two */
  OK(sr_unseal(sr, jget(v, "keys")->items[2]->s, &sealed));
  CHECK(!sealed);
  jfree(v);
  OK(sr_close(sr));
}

/* ---- logins ---- */
static void test_logins(void) {
  sr_strongroom *sr = open_dev(NULL);
  sr_client *root = root_client(sr);
  write_json(root, "sys/policies/acl/reader", "{\"policy\":\"path \\\"secret/data/*\\\" { capabilities = [\\\"read\\\"] }\"}");
  uint64_t v = 0;
  OK(sr_kv_put(root, "secret", "motd", "{\"text\":\"hello\"}", &v));
  write_json(root, "sys/auth/userpass", "{\"type\":\"userpass\"}");
  write_json(root, "auth/userpass/users/alice", "{\"password\":\"correct horse\",\"token_policies\":\"reader\"}");
  sr_client *alice = NULL;
  OK(sr_login_userpass(sr, "userpass", "alice", "correct horse", &alice));
  char *out = NULL;
  OK(sr_kv_get(alice, "secret", "motd", &out));
  CHECK(out && strstr(out, "hello"));
  sr_string_free(out);
  CHECK(sr_kv_put(alice, "secret", "motd", "{}", &v) == SR_PERMISSION_DENIED);
  sr_client *bad = NULL;
  CHECK(sr_login_userpass(sr, "userpass", "alice", "wrong", &bad) == SR_INVALID_INPUT);
  CHECK(bad == NULL);
  CHECK(strstr(sr_error_message(), "invalid username or password") != NULL);

  write_json(root, "sys/auth/approle", "{\"type\":\"approle\"}");
  write_json(root, "auth/approle/role/ci", "{\"token_policies\":\"reader\"}");
  jval *rid = NULL, *sid = NULL;
  char *o = NULL;
  OK(sr_request(root, "read", "auth/approle/role/ci/role-id", NULL, &o));
  rid = jparse(o);
  sr_string_free(o);
  OK(sr_request(root, "write", "auth/approle/role/ci/secret-id", NULL, &o));
  sid = jparse(o);
  sr_string_free(o);
  sr_client *ci = NULL;
  OK(sr_login_approle(sr, "approle", jgets(jget(rid, "data"), "role_id"), jgets(jget(sid, "data"), "secret_id"), &ci));
  OK(sr_kv_get(ci, "secret", "motd", &out));
  CHECK(out != NULL);
  sr_string_free(out);
  CHECK(sr_login_approle(sr, "approle", jgets(jget(rid, "data"), "role_id"), "nope", &bad) == SR_INVALID_INPUT);
  jfree(rid);
  jfree(sid);

  /* Kubernetes: no API server here, so only the refusal of an unconfigured mount is shown. */
  write_json(root, "sys/auth/kubernetes", "{\"type\":\"kubernetes\"}");
  sr_result rc = sr_login_kubernetes(sr, "kubernetes", "app", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", &bad);
  CHECK(rc != SR_OK && bad == NULL && sr_error_message()[0] != 0);
  CHECK(sr_login_kubernetes(sr, "kubernetes", NULL, "jwt", &bad) == SR_INVALID_INPUT);

  sr_client_free(alice);
  sr_client_free(ci);
  sr_client_free(root);
  OK(sr_close(sr));
}

/* ---- database credentials and lease events through a callback ---- */
typedef struct {
  pthread_mutex_t mu;
  int renewed, revoked, other;
  uint64_t renewed_ttl;
  char lease[256];
  int lookups_ok; /* the callback may call into the library */
  sr_client *client;
} events;

static void on_event(void *userdata, const sr_lease_event *e) {
  events *ev = userdata;
  char *o = NULL;
  sr_result rc = e->kind == SR_LEASE_RENEWED ? sr_lease_lookup(ev->client, e->lease_id, &o) : SR_OK;
  sr_string_free(o);
  pthread_mutex_lock(&ev->mu);
  if (e->kind == SR_LEASE_RENEWED) { ev->renewed++; ev->renewed_ttl = e->ttl_seconds; ev->lookups_ok += rc == SR_OK; }
  else if (e->kind == SR_LEASE_REVOKED) ev->revoked++;
  else ev->other++;
  snprintf(ev->lease, sizeof ev->lease, "%s", e->lease_id);
  pthread_mutex_unlock(&ev->mu);
}

static int wait_for(events *ev, int *field, int want) {
  for (int i = 0; i < 500; i++) {
    pthread_mutex_lock(&ev->mu);
    int n = *field;
    pthread_mutex_unlock(&ev->mu);
    if (n >= want) return 1;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return 0;
}

static void test_database_and_events(void) {
  sr_clock *clock = NULL;
  OK(sr_clock_new(&clock));
  sr_strongroom *sr = open_dev(clock);
  sr_client *c = root_client(sr);
  const char *pg = env_or_die("STRONGROOM_TEST_POSTGRES_URL");
  write_json(c, "sys/mounts/database", "{\"type\":\"database\"}");
  char body[1024];
  snprintf(body, sizeof body,
           "{\"plugin_name\":\"postgresql-database-plugin\",\"connection_url\":\"%s\",\"allowed_roles\":\"app\"}", pg);
  write_json(c, "database/config/pg", body);
  write_json(c, "database/roles/app",
             "{\"db_name\":\"pg\",\"creation_statements\":\"CREATE ROLE \\\"{{name}}\\\" WITH LOGIN PASSWORD "
             "'{{password}}' VALID UNTIL '{{expiration}}';\",\"default_ttl\":\"1h\",\"max_ttl\":\"24h\"}");

  events ev;
  memset(&ev, 0, sizeof ev);
  pthread_mutex_init(&ev.mu, NULL);
  ev.client = c;
  sr_subscription *sub = NULL;
  CHECK(sr_lease_subscribe(c, NULL, &ev, &sub) == SR_INVALID_INPUT);
  OK(sr_lease_subscribe(c, on_event, &ev, &sub));

  sr_db_credential cred;
  OK(sr_database_creds(c, "database", "app", &cred));
  CHECK(cred.username && strncmp(cred.username, "v-", 2) == 0);
  CHECK(cred.password && strlen(cred.password) > 10);
  CHECK(cred.lease_id && strncmp(cred.lease_id, "database/creds/app/", 19) == 0);
  CHECK(cred.lease_duration == 3600 && cred.renewable);
  OK(sr_clock_advance(clock, 1800));
  uint64_t ttl = 0;
  OK(sr_lease_renew(c, cred.lease_id, 7200, &ttl));
  CHECK(ttl == 7200);
  CHECK(wait_for(&ev, &ev.renewed, 1));
  pthread_mutex_lock(&ev.mu);
  CHECK(ev.renewed_ttl == 7200 && strcmp(ev.lease, cred.lease_id) == 0 && ev.lookups_ok == 1);
  pthread_mutex_unlock(&ev.mu);
  OK(sr_lease_revoke(c, cred.lease_id));
  CHECK(wait_for(&ev, &ev.revoked, 1));
  char *o = NULL;
  CHECK(sr_lease_lookup(c, cred.lease_id, &o) == SR_INVALID_INPUT);
  sr_db_credential_free(&cred);
  sr_db_credential_free(&cred); /* fields were set to NULL: nothing happens */
  CHECK(cred.password == NULL);

  /* Expiry through the virtual clock revokes too. */
  OK(sr_database_creds(c, "database", "app", &cred));
  OK(sr_clock_advance(clock, 3700));
  OK(sr_run_expiry(sr));
  CHECK(wait_for(&ev, &ev.revoked, 2));
  sr_db_credential_free(&cred);

  sr_subscription_free(sub);
  sr_subscription_free(sub);
  OK(sr_database_creds(c, "database", "app", &cred));
  OK(sr_lease_revoke_prefix(c, "database/creds/app"));
  sr_db_credential_free(&cred);
  pthread_mutex_lock(&ev.mu);
  CHECK(ev.revoked == 2); /* nothing delivered after sr_subscription_free */
  pthread_mutex_unlock(&ev.mu);
  pthread_mutex_destroy(&ev.mu);
  sr_client_free(c);
  OK(sr_close(sr));
  sr_clock_free(clock);
}

/* ---- many threads on one engine and one client ---- */
typedef struct {
  sr_client *c;
  int id;
  int errors;
} worker;

static void *work(void *arg) {
  worker *w = arg;
  char key[64], data[128], pt[64];
  for (int i = 0; i < 100; i++) {
    snprintf(key, sizeof key, "t%d/k%d", w->id, i % 5);
    snprintf(data, sizeof data, "{\"n\":\"%d-%d\"}", w->id, i);
    uint64_t v = 0;
    if (sr_kv_put(w->c, "secret", key, data, &v) != SR_OK) w->errors++;
    char *out = NULL;
    if (sr_kv_get(w->c, "secret", key, &out) != SR_OK || !out || !strstr(out, data + 5)) w->errors++;
    sr_string_free(out);
    snprintf(pt, sizeof pt, "payload %d/%d", w->id, i);
    char *ct = NULL;
    uint8_t *back = NULL;
    size_t len = 0;
    if (sr_transit_encrypt(w->c, "transit", "k", (const uint8_t *)pt, strlen(pt), &ct) != SR_OK) w->errors++;
    if (sr_transit_decrypt(w->c, "transit", "k", ct, &back, &len) != SR_OK || len != strlen(pt) ||
        memcmp(back, pt, len) != 0)
      w->errors++;
    sr_string_free(ct);
    sr_bytes_free(back);
    /* This thread's error message is its own. */
    if (sr_kv_get(w->c, "nowhere", key, &out) != SR_UNSUPPORTED_PATH || !strstr(sr_error_message(), "nowhere"))
      w->errors++;
  }
  return NULL;
}

static void test_threads(void) {
  sr_strongroom *sr = open_dev(NULL);
  sr_client *c = root_client(sr);
  write_json(c, "sys/mounts/transit", "{\"type\":\"transit\"}");
  OK(sr_transit_create_key(c, "transit", "k", NULL));
  enum { N = 8 };
  pthread_t t[N];
  worker w[N];
  for (int i = 0; i < N; i++) {
    w[i] = (worker){c, i, 0};
    CHECK(pthread_create(&t[i], NULL, work, &w[i]) == 0);
  }
  int errors = 0;
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    errors += w[i].errors;
  }
  CHECK(errors == 0);
  char *list = NULL;
  OK(sr_kv_list(c, "secret", "", &list));
  CHECK(list && strstr(list, "t7/"));
  sr_string_free(list);
  sr_client_free(c);
  OK(sr_close(sr));
}

int main(void) {
  struct { const char *name; void (*fn)(void); } tests[] = {
      {"errors", test_errors},
      {"ownership", test_ownership},
      {"encrypt_into", test_encrypt_into},
      {"memory_lifecycle", test_memory_lifecycle},
      {"sqlite_key_file", test_sqlite_key_file},
      {"postgres_storage", test_postgres_storage},
      {"logins", test_logins},
      {"database_and_events", test_database_and_events},
      {"threads", test_threads},
  };
  int failed = 0;
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
    int before = failures;
    tests[i].fn();
    int bad = failures != before;
    failed += bad;
    printf("%-22s %s\n", tests[i].name, bad ? "FAILED" : "ok");
  }
  printf("abi tests (C): %d passed, %d failed\n", (int)(sizeof tests / sizeof tests[0]) - failed, failed);
  return failed ? 1 : 0;
}
