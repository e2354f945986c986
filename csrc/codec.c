/*
 * codec.c: Lua values <-> canonical msgpack bytes (see codec.h for the contract).
 *
 * Choices made here
 * - Empty table: encoded as an empty array (0x90). A table is an array when its
 *   keys are exactly 1..n (n >= 0, so {} is the empty array); any other table is
 *   a map. Decoding an empty array or an empty map both give {}.
 * - Canonical form: map entries are sorted by the bytes of their encoded key
 *   (ties, which only happen for distinct table/userdata keys with equal
 *   encodings, are broken by the value bytes so the output stays deterministic);
 *   integers use the smallest msgpack form (msgpack_pack_int64 does that: 0..127
 *   fixint, larger positives uint8/16/32/64, negatives fixint/int8/16/32/64);
 *   every float is a float64 with its exact bits (so 1.0 and 1 differ, -0.0 and
 *   NaN payloads survive); strings are msgpack str (bin is accepted on decode).
 * - Tables are read raw (lua_next, lua_rawlen): metatables are ignored.
 * - Cycles: a table that is already on the current path (root to here) is a
 *   cycle. The same table reached twice through siblings is not; it is encoded
 *   twice.
 * - Depth: a table nested in POGO_CODEC_MAX_DEPTH tables (root = level 1, the
 *   65th level fails) is an error on encode, and a container at the same depth
 *   is an error on decode, so everything that encodes also decodes.
 * - Errors name the path: root, then .name for identifier string keys,
 *   ["str"] (%q-like quoting) for other strings, [n] for integers and array
 *   indexes, [1.5] for floats, [true], [<table>] for other keys, and [<key>]
 *   while the key itself is being encoded (a function used as a key, say).
 * - On error nothing is appended to the caller's packer (short of running out
 *   of memory): tables are encoded into a scratch arena first.
 * - Messages (pogo_codec_encode_msg) skip the sort, which only equality of
 *   bytes needs (group names, ids, ring keys), and stop at a size limit: the
 *   arena holds what the output will (a map's key and value bytes, an
 *   array's values), so every write checks it against the limit.
 * - pogo_codec_estimate prices a decode before it is made, with Lua 5.4's
 *   sizes on 64-bit: a table 56 bytes, an array slot 16, a hash node 24
 *   (hash parts are powers of two), a string 24 + length + 1, a pid or ref
 *   96 (its userdata and its entry in the interning cache).
 *
 * Encoding: one traversal of each table with lua_next, each value encoded
 * once, into a scratch arena that starts as a 512-byte buffer on the C stack
 * (only bigger messages touch the heap; freed on every path; no Lua
 * allocation). Array-like tables are written in place; maps collect (key
 * bytes, value bytes) entries, sort them (insertion sort when small, merge
 * sort otherwise) and are emitted at the arena's end then moved down over
 * their scratch region (the root table goes to the caller's packer
 * directly). See enc_table. Scalars are written by small inline writers that
 * produce exactly what msgpack_pack_int64/_double/_str/_array/_map produce
 * (the fuzz target checks this against msgpack-c); extension hooks get a
 * msgpack_packer writing into the same arena. Lua stack use: 2 slots per
 * nesting level (lua_checkstack'ed), restored on return.
 *
 * Decoding: a hand-written reader, not msgpack_unpack_next, because every
 * remote message is decoded: it pushes Lua values directly while reading (no
 * msgpack_zone, no intermediate msgpack_object tree, no C heap allocation), every length is checked against the bytes left before it is used,
 * and container counts are checked against the bytes left (an element takes at
 * least one byte) before any table is created. Table preallocation is bounded
 * by a budget equal to the input size, so a hostile header cannot make us
 * allocate much more than a few times the input. Map keys that are nil or NaN,
 * duplicate keys and uint64 values above INT64_MAX are errors.
 */
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec.h"
#include "be.h"

/* ------------------------------------------------------------------------ */
/* Growable byte buffer with optional inline (stack) storage.                */

typedef struct {
  char *p;
  size_t len, cap;
  int heap; /* p was malloc'ed by us */
} cbuf;

static void cbuf_init(cbuf *b, char *inl, size_t cap) {
  b->p = inl;
  b->len = 0;
  b->cap = cap;
  b->heap = 0;
}

static void cbuf_free(cbuf *b) {
  if (b->heap) free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
  b->heap = 0;
}

/* Make room for `extra` more bytes. */
static int cbuf_reserve(cbuf *b, size_t extra) {
  if (extra <= b->cap - b->len) return 0;
  if (extra > SIZE_MAX / 4 - b->len) return -1;
  size_t need = b->len + extra;
  size_t ncap = b->cap ? b->cap : 256;
  while (ncap < need) ncap *= 2;
  char *np;
  if (b->heap) {
    np = realloc(b->p, ncap);
  } else {
    np = malloc(ncap);
    if (np && b->len) memcpy(np, b->p, b->len);
  }
  if (!np) return -1;
  b->p = np;
  b->cap = ncap;
  b->heap = 1;
  return 0;
}

/* msgpack_packer_write callback */
static int cbuf_write(void *data, const char *buf, size_t len) {
  cbuf *b = data;
  if (len > b->cap - b->len && cbuf_reserve(b, len)) return -1;
  if (len) memcpy(b->p + b->len, buf, len);
  b->len += len;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Encoder                                                                   */

typedef struct {
  size_t koff, klen, voff, vlen; /* encoded key and value, offsets into the arena */
  lua_Integer ikey;              /* the key if it is an integer in 1..rawlen, else 0 */
} entry;

enum { SEG_INDEX, SEG_KEYOF, SEG_KEYSELF };

typedef struct {
  int kind;
  int slot;          /* SEG_KEYOF: stack slot of the key */
  lua_Integer index; /* SEG_INDEX */
} seg;

#define INLINE_ARENA 512
#define INLINE_ENTS 32

typedef struct {
  lua_State *L;
  const pogo_codec_ext *ext;
  const char *root;
  char *err;
  msgpack_packer *upk; /* caller's packer; NULL when only the arena is wanted */
  msgpack_packer apk;  /* writes into *arena */
  cbuf *arena;
  entry *ents;
  size_t nents, capents;
  int ents_heap;
  int depth; /* tables on the current path */
  int canonical; /* sort map keys */
  size_t max;    /* most bytes of output (0: no limit) */
  int too_large; /* the output passed max */
  size_t out;    /* bytes written to upk */
  int nseg;
  const void *tables[POGO_CODEC_MAX_DEPTH];
  seg segs[POGO_CODEC_MAX_DEPTH + 1];
  entry ents_inline[INLINE_ENTS];
} enc;

static void enc_init(enc *e, lua_State *L, const pogo_codec_ext *ext, const char *root,
                     char *err, msgpack_packer *upk, cbuf *arena) {
  e->L = L;
  e->ext = ext;
  e->root = root ? root : "value";
  e->err = err;
  e->upk = upk;
  e->arena = arena;
  msgpack_packer_init(&e->apk, arena, cbuf_write);
  e->ents = e->ents_inline;
  e->nents = 0;
  e->capents = INLINE_ENTS;
  e->ents_heap = 0;
  e->depth = 0;
  e->canonical = 1;
  e->max = 0;
  e->too_large = 0;
  e->out = 0;
  e->nseg = 0;
}

static void enc_free(enc *e) {
  if (e->ents_heap) free(e->ents);
  e->ents = NULL;
  e->ents_heap = 0;
}

static int ents_reserve(enc *e, size_t extra) {
  if (extra <= e->capents - e->nents) return 0;
  if (extra > SIZE_MAX / (4 * sizeof(entry)) - e->nents) return -1;
  size_t need = e->nents + extra, ncap = e->capents;
  while (ncap < need) ncap *= 2;
  entry *np;
  if (e->ents_heap) {
    np = realloc(e->ents, ncap * sizeof(entry));
  } else {
    np = malloc(ncap * sizeof(entry));
    if (np) memcpy(np, e->ents, e->nents * sizeof(entry));
  }
  if (!np) return -1;
  e->ents = np;
  e->capents = ncap;
  e->ents_heap = 1;
  return 0;
}

/* --- error paths --- */

typedef struct {
  char *p;
  size_t len, cap; /* cap includes the NUL */
  int trunc;
} sbuf;

static void sb_putn(sbuf *s, const char *str, size_t n) {
  if (s->trunc) return;
  if (n >= s->cap - s->len) {
    n = s->cap - s->len - 1;
    s->trunc = 1;
  }
  memcpy(s->p + s->len, str, n);
  s->len += n;
  s->p[s->len] = '\0';
}

static void sb_puts(sbuf *s, const char *str) { sb_putn(s, str, strlen(str)); }

static int is_ident(const char *s, size_t len) {
  static const char *const reserved[] = {
      "and",  "break", "do",     "else", "elseif", "end",   "false", "for",
      "function", "goto", "if",  "in",   "local",  "nil",   "not",   "or",
      "repeat", "return", "then", "true", "until", "while", NULL};
  if (len == 0 || len > 64) return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return 0;
  }
  for (int i = 0; reserved[i]; i++)
    if (strlen(reserved[i]) == len && memcmp(reserved[i], s, len) == 0) return 0;
  return 1;
}

/* ["..."] with %q-like escapes; long strings are cut with "..." */
static void sb_quoted(sbuf *s, const char *str, size_t len) {
  char tmp[8];
  size_t shown = len > 40 ? 40 : len;
  sb_puts(s, "[\"");
  for (size_t i = 0; i < shown; i++) {
    unsigned char c = (unsigned char)str[i];
    switch (c) {
    case '"': sb_puts(s, "\\\""); break;
    case '\\': sb_puts(s, "\\\\"); break;
    case '\n': sb_puts(s, "\\n"); break;
    case '\r': sb_puts(s, "\\r"); break;
    case '\t': sb_puts(s, "\\t"); break;
    default:
      if (c < 0x20 || c == 0x7f) {
        snprintf(tmp, sizeof tmp, "\\%u", (unsigned)c);
        sb_puts(s, tmp);
      } else {
        sb_putn(s, (const char *)&str[i], 1);
      }
    }
  }
  if (shown < len) sb_puts(s, "...");
  sb_puts(s, "\"]");
}

static void sb_key(sbuf *s, lua_State *L, int slot) {
  char tmp[64];
  switch (lua_type(L, slot)) {
  case LUA_TSTRING: {
    size_t len;
    const char *k = lua_tolstring(L, slot, &len); /* a string: no conversion */
    if (is_ident(k, len)) {
      sb_puts(s, ".");
      sb_putn(s, k, len);
    } else {
      sb_quoted(s, k, len);
    }
    return;
  }
  case LUA_TNUMBER:
    if (lua_isinteger(L, slot))
      snprintf(tmp, sizeof tmp, "[" LUA_INTEGER_FMT "]", lua_tointeger(L, slot));
    else
      snprintf(tmp, sizeof tmp, "[%.14g]", (double)lua_tonumber(L, slot));
    sb_puts(s, tmp);
    return;
  case LUA_TBOOLEAN:
    sb_puts(s, lua_toboolean(L, slot) ? "[true]" : "[false]");
    return;
  default:
    snprintf(tmp, sizeof tmp, "[<%s>]", lua_typename(L, lua_type(L, slot)));
    sb_puts(s, tmp);
    return;
  }
}

/* Format "<path>: <message>" into e->err; returns -1. */
static int efail(enc *e, const char *fmt, ...) {
  char path[POGO_CODEC_ERRLEN - 74];
  char msg[72];
  sbuf s = {path, 0, sizeof path, 0};
  path[0] = '\0';
  sb_puts(&s, e->root);
  for (int i = 0; i < e->nseg && !s.trunc; i++) {
    const seg *g = &e->segs[i];
    char tmp[40];
    switch (g->kind) {
    case SEG_INDEX:
      snprintf(tmp, sizeof tmp, "[" LUA_INTEGER_FMT "]", g->index);
      sb_puts(&s, tmp);
      break;
    case SEG_KEYSELF: sb_puts(&s, "[<key>]"); break;
    default: sb_key(&s, e->L, g->slot); break;
    }
  }
  if (s.trunc) memcpy(path + sizeof path - 4, "...", 4);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(e->err, POGO_CODEC_ERRLEN, "%s: %s", path, msg);
  return -1;
}

static int oom(enc *e) {
  if (e->too_large) {
    snprintf(e->err, POGO_CODEC_ERRLEN, "%s: too large to be sent (more than %zu bytes)", e->root, e->max);
    return -1;
  }
  return efail(e, "out of memory while encoding");
}


/* Direct writers into the arena. They produce exactly what msgpack_pack_int64,
 * _double, _str, _array and _map produce (smallest forms), without the
 * per-call indirection of a packer callback; extension hooks still get a
 * msgpack_packer (e->apk) writing into the same arena. */
/* Room for a write of at most n bytes. Past max (less the room a write may
 * reserve and not use, SLACK: the exact size is checked at the end) the
 * output is too large. */
#define SLACK 16
static inline unsigned char *w_room(enc *e, size_t n) {
  cbuf *a = e->arena;
  if (e->max && a->len + n > e->max + SLACK) {
    e->too_large = 1;
    return NULL;
  }
  if (n > a->cap - a->len && cbuf_reserve(a, n)) return NULL;
  return (unsigned char *)a->p + a->len;
}

/* Integer in its smallest form (same choice as msgpack_pack_int64). */
static size_t put_int(unsigned char *p, int64_t d) {
  if (d < -32) {
    if (d >= -128) { p[0] = 0xd0; p[1] = (unsigned char)(uint8_t)d; return 2; }
    if (d >= -32768) { p[0] = 0xd1; pogo_be_put16(p + 1, (uint16_t)d); return 3; }
    if (d >= INT32_MIN) { p[0] = 0xd2; pogo_be_put32(p + 1, (uint32_t)d); return 5; }
    p[0] = 0xd3; pogo_be_put64(p + 1, (uint64_t)d); return 9;
  }
  if (d < 128) { p[0] = (unsigned char)(uint8_t)d; return 1; }
  if (d < 256) { p[0] = 0xcc; p[1] = (unsigned char)d; return 2; }
  if (d < 65536) { p[0] = 0xcd; pogo_be_put16(p + 1, (uint16_t)d); return 3; }
  if (d <= (int64_t)UINT32_MAX) { p[0] = 0xce; pogo_be_put32(p + 1, (uint32_t)d); return 5; }
  p[0] = 0xcf; pogo_be_put64(p + 1, (uint64_t)d); return 9;
}

/* Header of a str (fix 0xa0), array (fix 0x90) or map (fix 0x80); n < 2^32. */
static size_t put_hdr(unsigned char *p, unsigned fix, size_t n) {
  unsigned c8 = 0xd9, c16 = fix == 0xa0 ? 0xda : fix == 0x90 ? 0xdc : 0xde;
  size_t fixmax = fix == 0xa0 ? 32 : 16;
  if (n < fixmax) { p[0] = (unsigned char)(fix | n); return 1; }
  if (fix == 0xa0 && n < 256) { p[0] = (unsigned char)c8; p[1] = (unsigned char)n; return 2; }
  if (n < 65536) { p[0] = (unsigned char)c16; pogo_be_put16(p + 1, (uint16_t)n); return 3; }
  p[0] = (unsigned char)(c16 + 1); pogo_be_put32(p + 1, (uint32_t)n); return 5;
}

static int w_hdr(enc *e, unsigned fix, size_t n) {
  unsigned char *p = w_room(e, 5);
  if (!p) return oom(e);
  e->arena->len += put_hdr(p, fix, n);
  return 0;
}

static int enc_value(enc *e, int idx, int type);

/* Compare two entries by key bytes, then value bytes. */
static int ent_cmp(const char *base, const entry *a, const entry *b) {
  size_t la = a->klen, lb = b->klen;
  int c = memcmp(base + a->koff, base + b->koff, la < lb ? la : lb);
  if (c) return c;
  if (la != lb) return la < lb ? -1 : 1;
  la = a->vlen;
  lb = b->vlen;
  c = memcmp(base + a->voff, base + b->voff, la < lb ? la : lb);
  if (c) return c;
  return la < lb ? -1 : la > lb;
}

static void sort_insertion(const char *base, entry *v, size_t n) {
  for (size_t i = 1; i < n; i++) {
    entry x = v[i];
    size_t j = i;
    while (j > 0 && ent_cmp(base, &x, &v[j - 1]) < 0) {
      v[j] = v[j - 1];
      j--;
    }
    v[j] = x;
  }
}

/* Bottom-up merge sort of v[0..n) with scratch tmp[0..n); result in v. */
static void sort_merge(const char *base, entry *v, entry *tmp, size_t n) {
  const size_t run = 16;
  for (size_t i = 0; i < n; i += run) sort_insertion(base, v + i, n - i < run ? n - i : run);
  entry *src = v, *dst = tmp;
  for (size_t w = run; w < n; w *= 2) {
    for (size_t lo = 0; lo < n; lo += 2 * w) {
      size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
      size_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) dst[k++] = ent_cmp(base, &src[j], &src[i]) < 0 ? src[j++] : src[i++];
      while (i < mid) dst[k++] = src[i++];
      while (j < hi) dst[k++] = src[j++];
    }
    entry *t = src;
    src = dst;
    dst = t;
  }
  if (src != v) memcpy(v, src, n * sizeof(entry));
}

static const unsigned char *skip_value(const unsigned char *p, const unsigned char *end, int depth);

static int push_entry(enc *e, size_t koff, size_t klen, size_t voff, size_t vlen, lua_Integer ikey) {
  if (ents_reserve(e, 1)) return oom(e);
  entry *en = &e->ents[e->nents++];
  en->koff = koff;
  en->klen = klen;
  en->voff = voff;
  en->vlen = vlen;
  en->ikey = ikey;
  return 0;
}

/* The values of t[1..seq] were encoded in order at arena[body..]: turn them
 * into entries with integer keys (appended to the arena), in one scan. */
static int seq_to_entries(enc *e, size_t body, lua_Integer seq) {
  cbuf *a = e->arena;
  size_t off = body;
  for (lua_Integer j = 1; j <= seq; j++) {
    const unsigned char *base = (const unsigned char *)a->p;
    const unsigned char *q = skip_value(base + off, base + a->len, 0);
    if (!q) return efail(e, "extension encoder wrote invalid msgpack");
    size_t vlen = (size_t)(q - (base + off));
    unsigned char *kp = w_room(e, 9);
    if (!kp) return oom(e);
    size_t koff = a->len;
    a->len += put_int(kp, (int64_t)j);
    if (push_entry(e, koff, a->len - koff, off, vlen, j)) return -1;
    off += vlen;
  }
  return 0;
}

/* Write the collected entries e0.. as an array (in key order) or as a map
 * (sorted by key bytes), replacing arena[start..]. */
static int emit_entries(enc *e, size_t start, size_t e0, int as_array) {
  cbuf *a = e->arena;
  size_t n = e->nents - e0;
  if (n > UINT32_MAX) return efail(e, "table too large to be sent");
  if (as_array) {
    /* keys are exactly 1..n: place entry with key k at slot k-1 */
    if (ents_reserve(e, n)) return oom(e);
    entry *v = e->ents + e0, *slot = v + n;
    for (size_t i = 0; i < n; i++) slot[v[i].ikey - 1] = v[i];
    memcpy(v, slot, n * sizeof(entry));
  } else if (n > 1 && e->canonical) {
    if (n <= 16) {
      sort_insertion(a->p, e->ents + e0, n);
    } else {
      if (ents_reserve(e, n)) return oom(e);
      sort_merge(a->p, e->ents + e0, e->ents + e0 + n, n);
    }
  }
  const entry *v = e->ents + e0;
  unsigned fix = as_array ? 0x90 : 0x80;
  size_t tmp_end = a->len;
  if (e->upk && e->depth == 1) {
    /* the root table: straight to the caller's packer */
    msgpack_packer *pk = e->upk;
    unsigned char hdr[5];
    size_t h = put_hdr(hdr, fix, n), total = h;
    for (size_t i = 0; i < n; i++) total += (as_array ? 0 : v[i].klen) + v[i].vlen;
    if (e->max && total > e->max) {
      e->too_large = 1;
      return oom(e);
    }
    if (pk->callback(pk->data, (const char *)hdr, h)) return oom(e);
    for (size_t i = 0; i < n; i++) {
      if (!as_array && pk->callback(pk->data, a->p + v[i].koff, v[i].klen)) return oom(e);
      if (pk->callback(pk->data, a->p + v[i].voff, v[i].vlen)) return oom(e);
    }
    e->out += total;
    a->len = start;
  } else {
    if (cbuf_reserve(a, 5 + (tmp_end - start))) return oom(e);
    char *p = a->p; /* stable: capacity reserved above */
    size_t len = a->len + put_hdr((unsigned char *)p + a->len, fix, n);
    for (size_t i = 0; i < n; i++) {
      if (!as_array) {
        memcpy(p + len, p + v[i].koff, v[i].klen);
        len += v[i].klen;
      }
      memcpy(p + len, p + v[i].voff, v[i].vlen);
      len += v[i].vlen;
    }
    memmove(p + start, p + tmp_end, len - tmp_end);
    a->len = start + (len - tmp_end);
  }
  e->nents = e0;
  return 0;
}

/* A table is an array iff its keys are exactly 1..n, n = rawlen (n = 0: {}).
 * One traversal with lua_next. lua_next visits the array part first and in
 * order, so a proper array usually yields 1, 2, ..., n: those values are
 * written in place after an array header. At the first other key the table
 * switches to collecting entries (key bytes, value bytes), reusing the values
 * already written, and at the end it is emitted as a map, or as an array if
 * its keys turned out to be 1..n after all (built out of order). Each value
 * is encoded exactly once. */
static int enc_table(enc *e, int idx) {
  lua_State *L = e->L;
  const void *tp = lua_topointer(L, idx);
  for (int i = 0; i < e->depth; i++)
    if (e->tables[i] == tp) return efail(e, "cycle cannot be sent");
  if (e->depth >= POGO_CODEC_MAX_DEPTH)
    return efail(e, "nesting deeper than %d cannot be sent", POGO_CODEC_MAX_DEPTH);
  if (!lua_checkstack(L, 4)) return efail(e, "Lua stack overflow while encoding");
  e->tables[e->depth++] = tp;

  cbuf *a = e->arena;
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  size_t start = a->len, e0 = e->nents, body = start;
  int kslot = lua_gettop(L) + 1, vslot = kslot + 1;
  int seq_mode = n > 0 && (lua_Unsigned)n <= UINT32_MAX;
  lua_Integer seq = 0, inrange = 0;
  if (seq_mode) {
    if (w_hdr(e, 0x90, (size_t)n)) return -1;
    body = a->len;
  }
  seg *g = &e->segs[e->nseg++];
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int isint = lua_isinteger(L, kslot);
    lua_Integer k = isint ? lua_tointeger(L, kslot) : 0;
    if (seq_mode) {
      if (isint && k == seq + 1 && seq < n) {
        g->kind = SEG_INDEX;
        g->index = ++seq;
        if (enc_value(e, vslot, lua_type(L, vslot))) return -1;
        lua_settop(L, kslot);
        continue;
      }
      seq_mode = 0;
      if (seq_to_entries(e, body, seq)) return -1;
      inrange = seq;
    }
    lua_Integer ikey = isint && k >= 1 && k <= n ? k : 0;
    inrange += ikey != 0;
    size_t koff = a->len;
    g->kind = SEG_KEYSELF;
    if (enc_value(e, kslot, lua_type(L, kslot))) return -1;
    size_t voff = a->len;
    g->kind = SEG_KEYOF;
    g->slot = kslot;
    if (enc_value(e, vslot, lua_type(L, vslot))) return -1;
    if (push_entry(e, koff, voff - koff, voff, a->len - voff, ikey)) return -1;
    lua_settop(L, kslot);
  }
  e->nseg--;
  int r;
  if (seq_mode && seq == n) {
    r = 0; /* a proper array, already in place */
  } else {
    if (seq_mode && seq_to_entries(e, body, seq)) return -1; /* (cannot happen) */
    if (seq_mode) inrange = seq;
    size_t count = e->nents - e0;
    r = emit_entries(e, start, e0, (lua_Integer)count == n && inrange == n);
  }
  if (r) return r;
  e->depth--;
  return 0;
}

static int enc_value(enc *e, int idx, int type) {
  lua_State *L = e->L;
  unsigned char *p;
  switch (type) {
  case LUA_TNIL:
  case LUA_TBOOLEAN:
    if (!(p = w_room(e, 1))) return oom(e);
    p[0] = type == LUA_TNIL ? 0xc0 : lua_toboolean(L, idx) ? 0xc3 : 0xc2;
    e->arena->len++;
    return 0;
  case LUA_TNUMBER:
    if (!(p = w_room(e, 9))) return oom(e);
    if (lua_isinteger(L, idx)) {
      e->arena->len += put_int(p, (int64_t)lua_tointeger(L, idx));
    } else {
      double d = (double)lua_tonumber(L, idx);
      uint64_t u;
      memcpy(&u, &d, sizeof u);
      p[0] = 0xcb;
      pogo_be_put64(p + 1, u);
      e->arena->len += 9;
    }
    return 0;
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (len > UINT32_MAX) return efail(e, "string too long to be sent");
    if (len > SIZE_MAX - 8 || !(p = w_room(e, len + 5))) return oom(e);
    size_t h = put_hdr(p, 0xa0, len);
    memcpy(p + h, s, len);
    e->arena->len += h + len;
    return 0;
  }
  case LUA_TTABLE: return enc_table(e, idx);
  case LUA_TUSERDATA:
  case LUA_TLIGHTUSERDATA:
    if (e->ext && e->ext->encode) {
      if (!lua_checkstack(L, LUA_MINSTACK)) return efail(e, "Lua stack overflow while encoding");
      int top = lua_gettop(L);
      size_t before = e->arena->len;
      int r = e->ext->encode(e->ext->ud, L, idx, &e->apk);
      lua_settop(L, top);
      if (r == 1) {
        if (e->arena->len == before) return efail(e, "extension encoder wrote nothing");
        return 0;
      }
      e->arena->len = before;
    }
    return efail(e, "userdata cannot be sent");
  case LUA_TFUNCTION: return efail(e, "function cannot be sent");
  case LUA_TTHREAD: return efail(e, "coroutine cannot be sent");
  default: return efail(e, "%s cannot be sent", lua_typename(L, type));
  }
}

/* Encode the value at idx into *arena (appending); on error the arena and the
 * Lua stack are restored. When upk is set, a root map goes straight to upk.
 * max: most bytes (0: none); canonical: sort map keys. */
static int encode_into(lua_State *L, int idx, cbuf *arena, msgpack_packer *upk,
                       const pogo_codec_ext *ext, const char *root, char *err,
                       size_t max, int canonical) {
  enc e;
  int top = lua_gettop(L);
  size_t len0 = arena->len;
  enc_init(&e, L, ext, root, err, upk, arena);
  e.max = max;
  e.canonical = canonical;
  idx = lua_absindex(L, idx);
  int r = enc_value(&e, idx, lua_type(L, idx));
  if (r == 0 && max && e.out + (arena->len - len0) > max) { /* the exact size (w_room allows SLACK) */
    e.too_large = 1;
    r = oom(&e);
  }
  enc_free(&e);
  if (r) {
    arena->len = len0;
    lua_settop(L, top);
  }
  return r;
}

static int encode_to(lua_State *L, int idx, msgpack_packer *pk, const pogo_codec_ext *ext,
                     const char *root, size_t max, int canonical, char err[POGO_CODEC_ERRLEN]) {
  if (lua_type(L, idx) == LUA_TSTRING) {
    /* common, and possibly big: no detour through the arena */
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    unsigned char hb[5];
    if (len > UINT32_MAX || (max && len + put_hdr(hb, 0xa0, len) > max)) {
      if (len > UINT32_MAX) snprintf(err, POGO_CODEC_ERRLEN, "%s: string too long to be sent", root ? root : "value");
      else snprintf(err, POGO_CODEC_ERRLEN, "%s: too large to be sent (more than %zu bytes)", root ? root : "value", max);
      return -1;
    }
    if (msgpack_pack_str(pk, len) || msgpack_pack_str_body(pk, s, len)) {
      snprintf(err, POGO_CODEC_ERRLEN, "%s: out of memory while encoding", root ? root : "value");
      return -1;
    }
    return 0;
  }
  char inl[INLINE_ARENA];
  cbuf arena;
  cbuf_init(&arena, inl, sizeof inl);
  int r = encode_into(L, idx, &arena, pk, ext, root, err, max, canonical);
  if (r == 0 && arena.len && pk->callback(pk->data, arena.p, arena.len)) {
    snprintf(err, POGO_CODEC_ERRLEN, "%s: out of memory while encoding", root ? root : "value");
    r = -1;
  }
  cbuf_free(&arena);
  return r;
}

int pogo_codec_encode(lua_State *L, int idx, msgpack_packer *pk, const pogo_codec_ext *ext,
                      const char *root, char err[POGO_CODEC_ERRLEN]) {
  return encode_to(L, idx, pk, ext, root, 0, 1, err);
}

int pogo_codec_encode_msg(lua_State *L, int idx, msgpack_packer *pk, const pogo_codec_ext *ext,
                          const char *root, size_t max_bytes, char err[POGO_CODEC_ERRLEN]) {
  return encode_to(L, idx, pk, ext, root, max_bytes, 0, err);
}

/* ------------------------------------------------------------------------ */
/* Hash                                                                      */

#define HASH_STREAM_MIN 256 /* strings at least this long are streamed */

int pogo_codec_hash(lua_State *L, int idx, uint64_t seed, uint64_t *out,
                    const pogo_codec_ext *ext, char err[POGO_CODEC_ERRLEN]) {
  if (lua_type(L, idx) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (len >= HASH_STREAM_MIN) {
      unsigned char hdr[5];
      if (len > UINT32_MAX) {
        snprintf(err, POGO_CODEC_ERRLEN, "value: string too long to be sent");
        return -1;
      }
      size_t h = put_hdr(hdr, 0xa0, len);
      XXH3_state_t st; /* on the stack: XXH_STATIC_LINKING_ONLY, no malloc */
      XXH3_INITSTATE(&st);
      XXH3_64bits_reset_withSeed(&st, seed);
      XXH3_64bits_update(&st, hdr, h);
      XXH3_64bits_update(&st, s, len);
      *out = XXH3_64bits_digest(&st);
      return 0;
    }
  }
  char inl[INLINE_ARENA];
  cbuf arena;
  cbuf_init(&arena, inl, sizeof inl);
  int r = encode_into(L, idx, &arena, NULL, ext, "value", err, 0, 1);
  if (r == 0) *out = XXH3_64bits_withSeed(arena.p, arena.len, seed);
  cbuf_free(&arena);
  return r;
}

/* ------------------------------------------------------------------------ */
/* Decoder                                                                   */

typedef struct {
  lua_State *L;
  const unsigned char *p, *start, *end;
  const pogo_codec_ext *ext;
  char *err;
  size_t budget; /* table slots we may still preallocate */
} dec;

static int dfail(dec *d, const char *fmt, ...) {
  char msg[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(d->err, POGO_CODEC_ERRLEN, "malformed message: %s at offset %zu", msg,
           (size_t)(d->p - d->start));
  return -1;
}

#define LEFT(d) ((size_t)((d)->end - (d)->p))

/* The header of one msgpack value. */
enum { MP_SCALAR, MP_STR, MP_EXT, MP_ARRAY, MP_MAP };
typedef struct mp_hdr {
  int kind;
  size_t n;     /* bytes after the header (a scalar's, a string's, an extension's with its type byte) */
  size_t items; /* an array's elements, a map's entries */
} mp_hdr;

/* Read the header at p (before end): the byte after it, or NULL if it is
 * malformed or truncated. The n bytes after it are not checked. */
static const unsigned char *mp_header(const unsigned char *p, const unsigned char *end, mp_hdr *h) {
  size_t w = 0;
  h->n = h->items = 0;
  h->kind = MP_SCALAR;
  if (p >= end) return NULL;
  unsigned c = *p++;
  if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) return p;
  if (c >= 0xa0 && c <= 0xbf) {
    h->kind = MP_STR;
    h->n = c & 0x1f;
    return p;
  }
  if (c >= 0x80 && c <= 0x9f) {
    h->kind = c < 0x90 ? MP_MAP : MP_ARRAY;
    h->items = c & 0x0f;
    return p;
  }
  switch (c) {
  case 0xc4: case 0xd9: case 0xc7: w = 1; break;
  case 0xc5: case 0xda: case 0xc8: case 0xdc: case 0xde: w = 2; break;
  case 0xc6: case 0xdb: case 0xc9: case 0xdd: case 0xdf: w = 4; break;
  case 0xca: case 0xce: case 0xd2: h->n = 4; return p;
  case 0xcb: case 0xcf: case 0xd3: h->n = 8; return p;
  case 0xcc: case 0xd0: h->n = 1; return p;
  case 0xcd: case 0xd1: h->n = 2; return p;
  case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
    h->kind = MP_EXT;
    h->n = 1 + ((size_t)1 << (c - 0xd4));
    return p;
  default: return NULL;
  }
  if ((size_t)(end - p) < w) return NULL;
  size_t n = w == 1 ? p[0] : w == 2 ? pogo_be_get16(p) : pogo_be_get32(p);
  p += w;
  if (c >= 0xdc) { /* array16/32, map16/32 */
    h->kind = c >= 0xde ? MP_MAP : MP_ARRAY;
    h->items = n;
  } else if (c >= 0xc7 && c <= 0xc9) {
    h->kind = MP_EXT;
    h->n = n + 1; /* and the type byte */
  } else {
    h->kind = MP_STR;
    h->n = n;
  }
  return p;
}

/* Skip one msgpack value in p[0..end): returns the byte after it, or NULL if
 * it is malformed or truncated. Used on the encoder's own output. */
static const unsigned char *skip_value(const unsigned char *p, const unsigned char *end, int depth) {
  mp_hdr h;
  if (depth > 4 * POGO_CODEC_MAX_DEPTH || !(p = mp_header(p, end, &h))) return NULL;
  if ((size_t)(end - p) < h.n) return NULL;
  p += h.n;
  size_t items = h.kind == MP_MAP ? 2 * h.items : h.items;
  for (size_t i = 0; i < items; i++)
    if (!(p = skip_value(p, end, depth + 1))) return NULL;
  return p;
}

/* Read a big-endian length of w bytes (1, 2 or 4). */
static int rdlen(dec *d, int w, size_t *n) {
  if (LEFT(d) < (size_t)w) return dfail(d, "truncated length");
  *n = w == 1 ? d->p[0] : w == 2 ? pogo_be_get16(d->p) : pogo_be_get32(d->p);
  d->p += w;
  return 0;
}

static int dec_value(dec *d, int depth);

static int dec_str(dec *d, size_t n) {
  if (n > LEFT(d)) return dfail(d, "string of %zu bytes exceeds input", n);
  lua_pushlstring(d->L, (const char *)d->p, n);
  d->p += n;
  return 0;
}

static int dec_ext(dec *d, size_t n) {
  if (LEFT(d) < 1) return dfail(d, "truncated extension");
  int8_t type = (int8_t)d->p[0];
  d->p++;
  if (n > LEFT(d)) return dfail(d, "extension of %zu bytes exceeds input", n);
  if (!d->ext || !d->ext->decode) return dfail(d, "extension type %d not supported", type);
  lua_State *L = d->L;
  if (!lua_checkstack(L, LUA_MINSTACK)) return dfail(d, "Lua stack overflow");
  int top = lua_gettop(L);
  int r = d->ext->decode(d->ext->ud, L, type, (const char *)d->p, n);
  if (r != 0 || lua_gettop(L) != top + 1) {
    lua_settop(L, top);
    return dfail(d, "invalid extension value of type %d", type);
  }
  d->p += n;
  return 0;
}

static int dec_array(dec *d, size_t n, int depth) {
  lua_State *L = d->L;
  if (depth >= POGO_CODEC_MAX_DEPTH) return dfail(d, "nesting deeper than %d", POGO_CODEC_MAX_DEPTH);
  if (n > LEFT(d)) return dfail(d, "array of %zu elements exceeds input", n);
  if (!lua_checkstack(L, 4)) return dfail(d, "Lua stack overflow");
  size_t pre = n <= d->budget ? n : d->budget;
  if (pre > ((size_t)1 << 24)) pre = (size_t)1 << 24;
  d->budget -= pre;
  lua_createtable(L, (int)pre, 0);
  for (size_t i = 1; i <= n; i++) {
    if (dec_value(d, depth + 1)) return -1;
    lua_rawseti(L, -2, (lua_Integer)i);
  }
  return 0;
}

static int dec_map(dec *d, size_t n, int depth) {
  lua_State *L = d->L;
  if (depth >= POGO_CODEC_MAX_DEPTH) return dfail(d, "nesting deeper than %d", POGO_CODEC_MAX_DEPTH);
  if (n > LEFT(d) / 2) return dfail(d, "map of %zu entries exceeds input", n);
  if (!lua_checkstack(L, 4)) return dfail(d, "Lua stack overflow");
  size_t pre = n <= d->budget ? n : d->budget;
  if (pre > ((size_t)1 << 24)) pre = (size_t)1 << 24;
  d->budget -= pre;
  lua_createtable(L, 0, (int)pre);
  for (size_t i = 0; i < n; i++) {
    const unsigned char *kp = d->p;
    if (dec_value(d, depth + 1)) return -1;
    int kt = lua_type(L, -1);
    if (kt == LUA_TNIL || (kt == LUA_TNUMBER && !lua_isinteger(L, -1) && isnan(lua_tonumber(L, -1)))) {
      d->p = kp;
      return dfail(d, kt == LUA_TNIL ? "nil map key" : "NaN map key");
    }
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) != LUA_TNIL) {
      d->p = kp;
      return dfail(d, "duplicate map key");
    }
    lua_pop(L, 1);
    if (dec_value(d, depth + 1)) return -1;
    lua_rawset(L, -3);
  }
  return 0;
}

static int dec_value(dec *d, int depth) {
  lua_State *L = d->L;
  size_t n = 0;
  if (LEFT(d) < 1) return dfail(d, "truncated input");
  unsigned c = *d->p++;
  if (c <= 0x7f) {
    lua_pushinteger(L, (lua_Integer)c);
    return 0;
  }
  if (c >= 0xe0) {
    lua_pushinteger(L, (lua_Integer)(int8_t)c);
    return 0;
  }
  if (c >= 0xa0 && c <= 0xbf) return dec_str(d, c & 0x1f);
  if (c >= 0x90 && c <= 0x9f) return dec_array(d, c & 0x0f, depth);
  if (c <= 0x8f) return dec_map(d, c & 0x0f, depth);
  switch (c) {
  case 0xc0: lua_pushnil(L); return 0;
  case 0xc2: lua_pushboolean(L, 0); return 0;
  case 0xc3: lua_pushboolean(L, 1); return 0;
  case 0xc4: case 0xd9: return rdlen(d, 1, &n) ? -1 : dec_str(d, n);
  case 0xc5: case 0xda: return rdlen(d, 2, &n) ? -1 : dec_str(d, n);
  case 0xc6: case 0xdb: return rdlen(d, 4, &n) ? -1 : dec_str(d, n);
  case 0xc7: return rdlen(d, 1, &n) ? -1 : dec_ext(d, n);
  case 0xc8: return rdlen(d, 2, &n) ? -1 : dec_ext(d, n);
  case 0xc9: return rdlen(d, 4, &n) ? -1 : dec_ext(d, n);
  case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
    return dec_ext(d, (size_t)1 << (c - 0xd4));
  case 0xdc: return rdlen(d, 2, &n) ? -1 : dec_array(d, n, depth);
  case 0xdd: return rdlen(d, 4, &n) ? -1 : dec_array(d, n, depth);
  case 0xde: return rdlen(d, 2, &n) ? -1 : dec_map(d, n, depth);
  case 0xdf: return rdlen(d, 4, &n) ? -1 : dec_map(d, n, depth);
  default: break;
  }
  /* fixed-size scalars: 0xca..0xd3 */
  static const unsigned char width[10] = {4, 8, 1, 2, 4, 8, 1, 2, 4, 8};
  if (c < 0xca || c > 0xd3) {
    d->p--;
    return dfail(d, "invalid byte 0x%02x", c);
  }
  size_t w = width[c - 0xca];
  if (LEFT(d) < w) return dfail(d, "truncated number");
  const unsigned char *p = d->p;
  d->p += w;
  switch (c) {
  case 0xca: {
    uint32_t u = pogo_be_get32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    lua_pushnumber(L, (lua_Number)f);
    return 0;
  }
  case 0xcb: {
    uint64_t u = pogo_be_get64(p);
    double f;
    memcpy(&f, &u, sizeof f);
    lua_pushnumber(L, (lua_Number)f);
    return 0;
  }
  case 0xcc: lua_pushinteger(L, (lua_Integer)p[0]); return 0;
  case 0xcd: lua_pushinteger(L, (lua_Integer)pogo_be_get16(p)); return 0;
  case 0xce: lua_pushinteger(L, (lua_Integer)pogo_be_get32(p)); return 0;
  case 0xcf: {
    uint64_t u = pogo_be_get64(p);
    if (u > (uint64_t)INT64_MAX) {
      d->p = p - 1;
      return dfail(d, "integer out of range");
    }
    lua_pushinteger(L, (lua_Integer)u);
    return 0;
  }
  case 0xd0: lua_pushinteger(L, (lua_Integer)(int8_t)p[0]); return 0;
  case 0xd1: lua_pushinteger(L, (lua_Integer)(int16_t)pogo_be_get16(p)); return 0;
  case 0xd2: lua_pushinteger(L, (lua_Integer)(int32_t)pogo_be_get32(p)); return 0;
  default: lua_pushinteger(L, (lua_Integer)(int64_t)pogo_be_get64(p)); return 0; /* 0xd3 */
  }
}

/* ---- pricing a decode (pogo_codec_estimate) ---- */

#define EST_TABLE 56
#define EST_SLOT 16
#define EST_NODE 24
#define EST_STRING 25 /* header + terminating zero */
#define EST_EXT 96

static size_t sat_add(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

static size_t pow2_at_least(size_t n) {
  size_t p = 1;
  while (p < n && p <= SIZE_MAX / 2) p *= 2;
  return p;
}

/* Add the price of one value at *pp to *acc; advance *pp. -1 if malformed. */
static int est_value(const unsigned char **pp, const unsigned char *end, int depth, size_t *acc) {
  mp_hdr h;
  const unsigned char *p = *pp;
  if (depth > POGO_CODEC_MAX_DEPTH || !(p = mp_header(p, end, &h))) return -1;
  if ((size_t)(end - p) < h.n) return -1;
  p += h.n;
  if (h.kind == MP_STR) *acc = sat_add(*acc, EST_STRING + h.n);
  else if (h.kind == MP_EXT) *acc = sat_add(*acc, EST_EXT);
  else if (h.kind == MP_ARRAY || h.kind == MP_MAP) {
    /* a table: its array part, or a hash part of a power of two nodes */
    if (h.items > (size_t)(end - p)) return -1;
    size_t nodes = pow2_at_least(h.items);
    *acc = sat_add(*acc, EST_TABLE);
    *acc = sat_add(*acc, h.kind == MP_MAP ? (nodes > SIZE_MAX / EST_NODE ? SIZE_MAX : nodes * EST_NODE)
                                          : h.items * EST_SLOT);
    for (size_t i = 0; i < (h.kind == MP_MAP ? 2 * h.items : h.items); i++)
      if (est_value(&p, end, depth + 1, acc)) return -1;
  }
  *pp = p;
  return 0;
}

size_t pogo_codec_estimate(const char *data, size_t len) {
  const unsigned char *p = (const unsigned char *)data;
  size_t acc = 0;
  if (est_value(&p, p + len, 0, &acc)) return SIZE_MAX;
  return acc;
}

int pogo_codec_decode(lua_State *L, const char *data, size_t len, size_t *used,
                      const pogo_codec_ext *ext, char err[POGO_CODEC_ERRLEN]) {
  dec d;
  d.L = L;
  d.start = d.p = (const unsigned char *)data;
  d.end = d.start + len;
  d.ext = ext;
  d.err = err;
  d.budget = len;
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 4)) {
    snprintf(err, POGO_CODEC_ERRLEN, "malformed message: Lua stack overflow");
    return -1;
  }
  if (dec_value(&d, 0)) {
    lua_settop(L, top);
    return -1;
  }
  *used = (size_t)(d.p - d.start);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Lua bindings                                                              */

/* Per-state scratch buffer for encode(), owned by a userdata so that nothing
 * leaks if pushing the result raises (out of memory). */
typedef struct {
  cbuf buf;
  int busy;
} scratch;

#define SCRATCH_KEEP (64 * 1024) /* larger buffers are released after use */

static int scratch_gc(lua_State *L) {
  scratch *s = lua_touserdata(L, 1);
  if (s) {
    free(s->buf.p);
    s->buf.p = NULL;
    s->buf.cap = s->buf.len = 0;
  }
  return 0;
}

static const pogo_codec_ext *ext_up(lua_State *L) {
  return (const pogo_codec_ext *)lua_touserdata(L, lua_upvalueindex(1));
}

/* encode(v [, root [, max_bytes [, message]]]): canonical bytes, or with
 * `message` true the form of pogo_codec_encode_msg (map keys in table
 * order); max_bytes (0: none) as there */
static int l_encode(lua_State *L) {
  const pogo_codec_ext *ext = ext_up(L);
  scratch *s = lua_touserdata(L, lua_upvalueindex(2));
  const char *root = luaL_optstring(L, 2, "value");
  lua_Integer max = luaL_optinteger(L, 3, 0);
  int canonical = !lua_toboolean(L, 4);
  char err[POGO_CODEC_ERRLEN];
  luaL_checkany(L, 1);
  if (max < 0) return luaL_argerror(L, 3, "max_bytes: 0 (none) or more");
  lua_settop(L, 2);
  if (s->busy) { /* re-entered from an extension hook: use a private buffer */
    char inl[INLINE_ARENA];
    cbuf b;
    cbuf_init(&b, inl, sizeof inl);
    if (encode_into(L, 1, &b, NULL, ext, root, err, (size_t)max, canonical)) {
      cbuf_free(&b);
      lua_pushstring(L, err);
      return lua_error(L);
    }
    if (b.heap) { /* move into a userdata so a failing push cannot leak it */
      char *u = lua_newuserdatauv(L, b.len ? b.len : 1, 0);
      memcpy(u, b.p, b.len);
      size_t n = b.len;
      cbuf_free(&b);
      lua_pushlstring(L, u, n);
      return 1;
    }
    lua_pushlstring(L, b.p, b.len);
    return 1;
  }
  s->busy = 1;
  s->buf.len = 0;
  int r = encode_into(L, 1, &s->buf, NULL, ext, root, err, (size_t)max, canonical);
  s->busy = 0;
  if (r) {
    lua_pushstring(L, err);
    return lua_error(L);
  }
  lua_pushlstring(L, s->buf.p, s->buf.len);
  if (s->buf.cap > SCRATCH_KEEP) {
    free(s->buf.p);
    s->buf.p = NULL;
    s->buf.cap = 0;
  }
  s->buf.len = 0;
  return 1;
}

static int l_decode(lua_State *L) {
  const pogo_codec_ext *ext = ext_up(L);
  size_t len, used = 0;
  const char *data = luaL_checklstring(L, 1, &len);
  char err[POGO_CODEC_ERRLEN];
  if (pogo_codec_decode(L, data, len, &used, ext, err)) {
    lua_pushstring(L, err);
    return lua_error(L);
  }
  if (used != len) {
    lua_pushfstring(L, "malformed message: %d trailing bytes at offset %d", (int)(len - used),
                    (int)used);
    return lua_error(L);
  }
  return 1;
}

/* estimate(s) -> bytes of Lua heap decoding s would take (nil if malformed) */
static int l_estimate(lua_State *L) {
  size_t len;
  const char *data = luaL_checklstring(L, 1, &len);
  size_t n = pogo_codec_estimate(data, len);
  if (n == SIZE_MAX) return 0;
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

static int l_hash(lua_State *L) {
  const pogo_codec_ext *ext = ext_up(L);
  uint64_t seed = (uint64_t)luaL_optinteger(L, 2, 0);
  uint64_t h;
  char err[POGO_CODEC_ERRLEN];
  luaL_checkany(L, 1);
  if (pogo_codec_hash(L, 1, seed, &h, ext, err)) {
    lua_pushstring(L, err);
    return lua_error(L);
  }
  lua_pushinteger(L, (lua_Integer)h);
  return 1;
}

void pogo_codec_register(lua_State *L, const pogo_codec_ext *ext) {
  int t = lua_absindex(L, -1);
  /* encode(v [, root]) */
  lua_pushlightuserdata(L, (void *)ext);
  scratch *s = lua_newuserdatauv(L, sizeof *s, 0);
  s->buf.p = NULL;
  s->buf.len = s->buf.cap = 0;
  s->buf.heap = 1;
  s->busy = 0;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, scratch_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushcclosure(L, l_encode, 2);
  lua_setfield(L, t, "encode");
  lua_pushlightuserdata(L, (void *)ext);
  lua_pushcclosure(L, l_decode, 1);
  lua_setfield(L, t, "decode");
  lua_pushlightuserdata(L, (void *)ext);
  lua_pushcclosure(L, l_hash, 1);
  lua_setfield(L, t, "hash");
  lua_pushcfunction(L, l_estimate);
  lua_setfield(L, t, "estimate");
}
