/* Strongroom quickstart in C: an embedded, encrypted secret store in ./strongroom-data.
 *
 * First run: creates the SQLite store, initialises it with one unseal key kept in
 * strongroom-data/unseal.key (mode 0600), mounts secret/ as KV v2. Later runs: unseal from that
 * key file. Every run writes a new version of secret/app/db and reads it back.
 *
 *   cc quickstart.c $(pkg-config --cflags --libs strongroom) -o quickstart && ./quickstart
 *
 * Keeping the unseal key next to the data (and the root token in a file) is for a demo only. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "strongroom.h"

/* Print the failed call's status and message, and leave. */
static void check(sr_result rc, const char *what) {
  if (rc != SR_OK) {
    fprintf(stderr, "%s failed: %s: %s\n", what, sr_result_name(rc), sr_error_message());
    exit(1);
  }
}

static int write_private(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return -1;
  ssize_t n = write(fd, text, strlen(text));
  close(fd);
  return n == (ssize_t)strlen(text) ? 0 : -1;
}

static char *read_token(const char *path) {
  char buf[256] = {0};
  FILE *f = fopen(path, "r");
  if (!f || !fgets(buf, sizeof buf, f)) { fprintf(stderr, "cannot read %s\n", path); exit(1); }
  fclose(f);
  buf[strcspn(buf, "\r\n")] = 0;
  return strdup(buf);
}

int main(void) {
  const char *dir = "strongroom-data", *db = "strongroom-data/strongroom.db";
  const char *key_file = "strongroom-data/unseal.key", *token_file = "strongroom-data/root.token";
  mkdir(dir, 0700);

  sr_config *config = NULL;
  sr_strongroom *sr = NULL;
  check(sr_config_sqlite(db, &config), "sr_config_sqlite");
  check(sr_config_unseal_key_file(config, key_file), "sr_config_unseal_key_file");
  check(sr_open(config, &sr), "sr_open");
  sr_config_free(config);

  bool initialized = false;
  char *token = NULL;
  check(sr_is_initialized(sr, &initialized), "sr_is_initialized");
  if (initialized) {
    printf("unsealed an existing store in %s (key from %s)\n", dir, key_file);
    token = read_token(token_file);
  } else {
    char *root = NULL;
    check(sr_init_with_key_file(sr, key_file, &root), "sr_init_with_key_file");
    if (write_private(token_file, root) != 0) { fprintf(stderr, "cannot write %s\n", token_file); return 1; }
    token = strdup(root);
    sr_string_free(root); /* zeroed as it is freed */
    sr_client *admin = NULL;
    char *out = NULL;
    check(sr_client_new(sr, token, &admin), "sr_client_new");
    check(sr_request(admin, "write", "sys/mounts/secret", "{\"type\":\"kv\",\"options\":{\"version\":\"2\"}}", &out),
          "mount secret/");
    sr_string_free(out);
    sr_client_free(admin);
    printf("initialised a new store in %s (unseal key in %s, root token in %s, both mode 0600)\n", dir, key_file,
           token_file);
  }

  sr_client *client = NULL;
  check(sr_client_new(sr, token, &client), "sr_client_new");
  memset(token, 0, strlen(token));
  free(token);

  /* A random password from transit-free randomness: the process id and time are enough for a demo. */
  char data[256];
  snprintf(data, sizeof data, "{\"username\":\"app\",\"password\":\"pw-%ld-%d\"}", (long)time(NULL), (int)getpid());
  uint64_t version = 0;
  check(sr_kv_put(client, "secret", "app/db", data, &version), "sr_kv_put");
  memset(data, 0, sizeof data);
  printf("wrote secret/app/db version %llu\n", (unsigned long long)version);

  char *secret = NULL;
  check(sr_kv_get(client, "secret", "app/db", &secret), "sr_kv_get");
  if (!secret) { fprintf(stderr, "secret/app/db vanished\n"); return 1; }
  printf("read secret/app/db: %s\n", strstr(secret, "\"username\":\"app\"") ? "username=app, password=<not printed>"
                                                                             : "unexpected contents");
  sr_string_free(secret);

  char *meta = NULL;
  check(sr_kv_metadata(client, "secret", "app/db", &meta), "sr_kv_metadata");
  /* Count the versions: keys of the "versions" object look like "1":{...}. */
  int versions = 0;
  const char *v = meta ? strstr(meta, "\"versions\":{") : NULL;
  for (const char *p = v; p && (p = strstr(p, "\"created_time\"")); p++) versions++;
  printf("secret/app/db keeps %d versions (current %llu)\n", versions, (unsigned long long)version);
  sr_string_free(meta);

  sr_client_free(client);
  check(sr_close(sr), "sr_close");
  return 0;
}
