/* Throughput of the C ABI, one thread: transit encrypt of 64 B (a string handed out and freed,
 * and into a caller's buffer), KV get, opening a dev store.
 * Build against the release library (scripts/bench-c.sh does):
 *   cc -O2 bench.c -I../include ../../target/release/libstrongroom_ffi.a -lpthread -ldl -lm */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "strongroom.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of the process: on a shared machine, calls per CPU-second is the figure that says
 * what a call costs (the wall rate also counts the time other processes held the CPU). */
static double cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void check(sr_result rc, const char *what) {
  if (rc != SR_OK) {
    fprintf(stderr, "%s: %s: %s\n", what, sr_result_name(rc), sr_error_message());
    exit(1);
  }
}

static sr_strongroom *open_dev(void) {
  sr_config *cfg = NULL;
  sr_strongroom *sr = NULL;
  check(sr_config_dev(&cfg), "config");
  check(sr_open(cfg, &sr), "open");
  sr_config_free(cfg);
  return sr;
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 2.0;

  /* Opening a dev store (in memory, unsealed, secret/ mounted, a root token). */
  const int opens = argc > 2 ? atoi(argv[2]) : 50;
  double open_total = 0;
  for (int i = 0; i < (opens ? opens + 5 : 0); i++) {
    double t0 = now();
    sr_strongroom *sr = open_dev();
    double t1 = now();
    if (i >= 5) open_total += t1 - t0; /* the first opens start the runtime */
    check(sr_close(sr), "close");
  }
  if (opens) printf("open a dev store: %.2f ms (mean of %d)\n", open_total / opens * 1e3, opens);

  sr_strongroom *sr = open_dev();
  char *token = NULL, *out = NULL;
  sr_client *c = NULL;
  check(sr_dev_root_token(sr, &token), "token");
  check(sr_client_new(sr, token, &c), "client");
  sr_string_free(token);
  check(sr_request(c, "write", "sys/mounts/transit", "{\"type\":\"transit\"}", &out), "mount");
  sr_string_free(out);
  check(sr_transit_create_key(c, "transit", "k", NULL), "key");

  uint8_t pt[64];
  memset(pt, 'x', sizeof pt);
  long n = 0;
  double c0 = cpu();
  double t0 = now(), t;
  do {
    for (int i = 0; i < 1000; i++) {
      char *ct = NULL;
      check(sr_transit_encrypt(c, "transit", "k", pt, sizeof pt, &ct), "encrypt");
      sr_string_free(ct);
    }
    n += 1000;
    t = now();
  } while (t - t0 < seconds);
  printf("transit encrypt 64 B, one thread: %.0f calls/s (%.0f ns/call), %.0f calls per CPU-second\n",
         n / (t - t0), (t - t0) / n * 1e9, n / (cpu() - c0));

  /* The same into a caller's buffer: nothing handed out, nothing to free. */
  char buf[256];
  n = 0;
  c0 = cpu();
  t0 = now();
  do {
    for (int i = 0; i < 1000; i++) {
      size_t len = 0;
      check(sr_transit_encrypt_into(c, "transit", "k", pt, sizeof pt, buf, sizeof buf, &len), "encrypt_into");
    }
    n += 1000;
    t = now();
  } while (t - t0 < seconds);
  printf("transit encrypt_into 64 B, one thread: %.0f calls/s (%.0f ns/call), %.0f calls per CPU-second\n",
         n / (t - t0), (t - t0) / n * 1e9, n / (cpu() - c0));

  uint64_t v = 0;
  check(sr_kv_put(c, "secret", "app/db", "{\"username\":\"app\",\"password\":\"0123456789abcdef\"}", &v), "put");
  n = 0;
  c0 = cpu();
  t0 = now();
  do {
    for (int i = 0; i < 1000; i++) {
      char *json = NULL;
      check(sr_kv_get(c, "secret", "app/db", &json), "get");
      sr_string_free(json);
    }
    n += 1000;
    t = now();
  } while (t - t0 < seconds);
  printf("KV v2 get (memory, root token), one thread: %.0f calls/s (%.0f ns/call), %.0f calls per CPU-second\n",
         n / (t - t0), (t - t0) / n * 1e9, n / (cpu() - c0));

  sr_client_free(c);
  check(sr_close(sr), "close");
  return 0;
}
