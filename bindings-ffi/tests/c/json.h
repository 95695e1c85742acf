/* A minimal JSON reader, writer and matcher for the C tests (no dependencies). Enough for the
 * conformance scenarios: objects keep their key order; numbers are doubles. Every value is
 * owned by its parent; jfree() frees a whole tree. */
#ifndef SR_TEST_JSON_H
#define SR_TEST_JSON_H

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
  jtype t;
  int b;
  double n;
  char *s;
  size_t len;          /* items of an array or object */
  struct jval **items; /* values */
  char **keys;         /* object keys (NULL for arrays) */
} jval;

static inline void *jalloc(size_t n) {
  void *p = calloc(1, n ? n : 1);
  if (!p) { fprintf(stderr, "out of memory\n"); abort(); }
  return p;
}

static inline char *jstrdup(const char *s) {
  size_t n = strlen(s);
  char *d = jalloc(n + 1);
  memcpy(d, s, n + 1);
  return d;
}

static inline jval *jnew(jtype t) { jval *v = jalloc(sizeof *v); v->t = t; return v; }
static inline jval *jnull(void) { return jnew(J_NULL); }
static inline jval *jbool(int b) { jval *v = jnew(J_BOOL); v->b = b; return v; }
static inline jval *jnum(double n) { jval *v = jnew(J_NUM); v->n = n; return v; }
static inline jval *jstr(const char *s) { jval *v = jnew(J_STR); v->s = jstrdup(s); return v; }
static inline jval *jarr(void) { return jnew(J_ARR); }
static inline jval *jobj(void) { return jnew(J_OBJ); }

static inline void jfree(jval *v) {
  if (!v) return;
  for (size_t i = 0; i < v->len; i++) {
    jfree(v->items[i]);
    if (v->keys) free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  free(v->s);
  free(v);
}

static inline void jpush(jval *a, const char *key, jval *x) {
  a->items = realloc(a->items, (a->len + 1) * sizeof *a->items);
  if (!a->items) abort();
  if (a->t == J_OBJ) {
    a->keys = realloc(a->keys, (a->len + 1) * sizeof *a->keys);
    if (!a->keys) abort();
    a->keys[a->len] = jstrdup(key);
  }
  a->items[a->len++] = x;
}

/* Set `key` of an object (replacing an existing value). */
static inline void jset(jval *o, const char *key, jval *x) {
  for (size_t i = 0; i < o->len; i++) {
    if (strcmp(o->keys[i], key) == 0) { jfree(o->items[i]); o->items[i] = x; return; }
  }
  jpush(o, key, x);
}

static inline jval *jget(const jval *o, const char *key) {
  if (!o || o->t != J_OBJ) return NULL;
  for (size_t i = 0; i < o->len; i++)
    if (strcmp(o->keys[i], key) == 0) return o->items[i];
  return NULL;
}

static inline const char *jgets(const jval *o, const char *key) {
  jval *v = jget(o, key);
  return v && v->t == J_STR ? v->s : NULL;
}

static inline jval *jcopy(const jval *v) {
  if (!v) return jnull();
  jval *c = jnew(v->t);
  c->b = v->b; c->n = v->n;
  if (v->s) c->s = jstrdup(v->s);
  for (size_t i = 0; i < v->len; i++) jpush(c, v->keys ? v->keys[i] : NULL, jcopy(v->items[i]));
  return c;
}

/* ---- parsing ---- */

typedef struct { const char *p; int err; } jparser;

static inline void jws(jparser *ps) { while (*ps->p && isspace((unsigned char)*ps->p)) ps->p++; }

static inline void jutf8(char **out, size_t *n, size_t *cap, unsigned cp) {
  char buf[4]; size_t k;
  if (cp < 0x80) { buf[0] = (char)cp; k = 1; }
  else if (cp < 0x800) { buf[0] = (char)(0xC0 | (cp >> 6)); buf[1] = (char)(0x80 | (cp & 0x3F)); k = 2; }
  else if (cp < 0x10000) { buf[0] = (char)(0xE0 | (cp >> 12)); buf[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); buf[2] = (char)(0x80 | (cp & 0x3F)); k = 3; }
  else { buf[0] = (char)(0xF0 | (cp >> 18)); buf[1] = (char)(0x80 | ((cp >> 12) & 0x3F)); buf[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); buf[3] = (char)(0x80 | (cp & 0x3F)); k = 4; }
  while (*n + k + 1 > *cap) { *cap *= 2; *out = realloc(*out, *cap); if (!*out) abort(); }
  memcpy(*out + *n, buf, k); *n += k;
}

static inline unsigned jhex4(jparser *ps) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = *ps->p++;
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else { ps->err = 1; return 0; }
  }
  return v;
}

static inline char *jparse_str(jparser *ps) {
  size_t cap = 16, n = 0;
  char *out = jalloc(cap);
  ps->p++; /* opening quote */
  while (*ps->p && *ps->p != '"') {
    unsigned cp = (unsigned char)*ps->p++;
    if (cp == '\\') {
      char e = *ps->p++;
      switch (e) {
        case '"': cp = '"'; break; case '\\': cp = '\\'; break; case '/': cp = '/'; break;
        case 'b': cp = '\b'; break; case 'f': cp = '\f'; break; case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break; case 't': cp = '\t'; break;
        case 'u':
          cp = jhex4(ps);
          if (cp >= 0xD800 && cp < 0xDC00 && ps->p[0] == '\\' && ps->p[1] == 'u') {
            ps->p += 2;
            unsigned lo = jhex4(ps);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          break;
        default: ps->err = 1; free(out); return NULL;
      }
      jutf8(&out, &n, &cap, cp);
    } else {
      if (n + 2 > cap) { cap *= 2; out = realloc(out, cap); if (!out) abort(); }
      out[n++] = (char)cp;
    }
  }
  if (*ps->p != '"') { ps->err = 1; free(out); return NULL; }
  ps->p++;
  out[n] = 0;
  return out;
}

static inline jval *jparse_val(jparser *ps) {
  jws(ps);
  char c = *ps->p;
  if (c == '{' || c == '[') {
    jval *v = jnew(c == '{' ? J_OBJ : J_ARR);
    char close = c == '{' ? '}' : ']';
    ps->p++;
    jws(ps);
    if (*ps->p == close) { ps->p++; return v; }
    for (;;) {
      char *key = NULL;
      jws(ps);
      if (v->t == J_OBJ) {
        if (*ps->p != '"') { ps->err = 1; break; }
        key = jparse_str(ps);
        if (!key) break;
        jws(ps);
        if (*ps->p != ':') { ps->err = 1; free(key); break; }
        ps->p++;
      }
      jval *x = jparse_val(ps);
      if (!x) { free(key); break; }
      jpush(v, key, x);
      free(key);
      jws(ps);
      if (*ps->p == ',') { ps->p++; continue; }
      if (*ps->p == close) { ps->p++; return v; }
      ps->err = 1;
      break;
    }
    jfree(v);
    return NULL;
  }
  if (c == '"') { char *s = jparse_str(ps); if (!s) return NULL; jval *v = jnew(J_STR); v->s = s; return v; }
  if (strncmp(ps->p, "null", 4) == 0) { ps->p += 4; return jnull(); }
  if (strncmp(ps->p, "true", 4) == 0) { ps->p += 4; return jbool(1); }
  if (strncmp(ps->p, "false", 5) == 0) { ps->p += 5; return jbool(0); }
  char *end;
  double d = strtod(ps->p, &end);
  if (end == ps->p) { ps->err = 1; return NULL; }
  ps->p = end;
  return jnum(d);
}

/* Parse a whole document; NULL when it is not valid JSON. */
static inline jval *jparse(const char *text) {
  jparser ps = {text, 0};
  jval *v = jparse_val(&ps);
  jws(&ps);
  if (!v || ps.err || *ps.p) { jfree(v); return NULL; }
  return v;
}

/* ---- writing ---- */

typedef struct { char *s; size_t n, cap; } jbuf;

static inline void jb_put(jbuf *b, const char *fmt, ...) {
  va_list ap;
  for (;;) {
    va_start(ap, fmt);
    int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
    va_end(ap);
    if (k < 0) abort();
    if (b->s && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
    b->cap = (b->cap + (size_t)k + 1) * 2;
    b->s = realloc(b->s, b->cap);
    if (!b->s) abort();
  }
}

static inline void jb_str(jbuf *b, const char *s) {
  jb_put(b, "\"");
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') jb_put(b, "\\%c", c);
    else if (c == '\n') jb_put(b, "\\n");
    else if (c == '\t') jb_put(b, "\\t");
    else if (c == '\r') jb_put(b, "\\r");
    else if (c < 0x20) jb_put(b, "\\u%04x", c);
    else jb_put(b, "%c", c);
  }
  jb_put(b, "\"");
}

static inline void jb_val(jbuf *b, const jval *v) {
  switch (v->t) {
    case J_NULL: jb_put(b, "null"); break;
    case J_BOOL: jb_put(b, v->b ? "true" : "false"); break;
    case J_NUM:
      if (v->n == floor(v->n) && fabs(v->n) < 9007199254740992.0) jb_put(b, "%lld", (long long)v->n);
      else jb_put(b, "%.17g", v->n);
      break;
    case J_STR: jb_str(b, v->s); break;
    case J_ARR: case J_OBJ:
      jb_put(b, v->t == J_ARR ? "[" : "{");
      for (size_t i = 0; i < v->len; i++) {
        if (i) jb_put(b, ",");
        if (v->t == J_OBJ) { jb_str(b, v->keys[i]); jb_put(b, ":"); }
        jb_val(b, v->items[i]);
      }
      jb_put(b, v->t == J_ARR ? "]" : "}");
      break;
  }
}

/* The JSON text of `v` (malloc'd). */
static inline char *jdump(const jval *v) {
  jbuf b = {NULL, 0, 0};
  jb_val(&b, v);
  if (!b.s) return jstrdup("null");
  return b.s;
}

/* ---- matching (tests/conformance/README.md) ---- */

static inline int jis_null(const jval *v) { return !v || v->t == J_NULL; }

/* Whether `got` matches `want`; on a mismatch, `why` says where. */
static inline int jmatch(const jval *want, const jval *got, const char *at, char *why, size_t whylen) {
  if (want->t == J_STR && want->s[0] == '$') {
    const char *w = want->s;
    int ok;
    if (strcmp(w, "$any") == 0) ok = !jis_null(got);
    else if (strcmp(w, "$absent") == 0) ok = jis_null(got);
    else if (strcmp(w, "$nonempty") == 0)
      ok = got && ((got->t == J_STR && got->s[0]) || ((got->t == J_ARR || got->t == J_OBJ) && got->len > 0));
    else if (strncmp(w, "$prefix:", 8) == 0) ok = got && got->t == J_STR && strncmp(got->s, w + 8, strlen(w + 8)) == 0;
    else if (strncmp(w, "$contains:", 10) == 0) ok = got && got->t == J_STR && strstr(got->s, w + 10) != NULL;
    else { snprintf(why, whylen, "%s: unknown matcher %s", at, w); return 0; }
    if (!ok) {
      char *g = got ? jdump(got) : jstrdup("(missing)");
      snprintf(why, whylen, "%s: %s does not hold for %s", at, w, g);
      free(g);
    }
    return ok;
  }
  if (want->t == J_NULL) {
    if (jis_null(got)) return 1;
  } else if (got && want->t == got->t) {
    if (want->t == J_OBJ) {
      for (size_t i = 0; i < want->len; i++) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s.%s", at, want->keys[i]);
        if (!jmatch(want->items[i], jget(got, want->keys[i]), sub, why, whylen)) return 0;
      }
      return 1;
    }
    if (want->t == J_ARR && want->len == got->len) {
      for (size_t i = 0; i < want->len; i++) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s[%zu]", at, i);
        if (!jmatch(want->items[i], got->items[i], sub, why, whylen)) return 0;
      }
      return 1;
    }
    if (want->t == J_STR && strcmp(want->s, got->s) == 0) return 1;
    if (want->t == J_NUM && want->n == got->n) return 1;
    if (want->t == J_BOOL && want->b == got->b) return 1;
  }
  char *w = jdump(want), *g = got ? jdump(got) : jstrdup("(missing)");
  snprintf(why, whylen, "%s: wanted %s, got %s", at, w, g);
  free(w);
  free(g);
  return 0;
}

#endif
