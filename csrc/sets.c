/*
 * sets.c: the per-process sets of links (pogo_idset) and monitors
 * (pogo_monset).
 *
 * Contract
 * - A set is an unordered array (swap-remove) plus, once it holds
 *   POGO_SET_INDEX_MIN entries, an open-addressing hash index (linear probing,
 *   backward-shift deletion) from key to position. Small sets (the common case)
 *   cost no index; large ones (a supervisor linked to 10,000 children, a pg
 *   scope monitoring 10,000 members) add, find and remove in O(1).
 * - Link sets hold each id once; monitor sets may hold one ref twice when it
 *   comes from different nodes, so removal can name the other side too.
 * - pogo_*_remove_at(s, i) removes position i (the last entry moves to i);
 *   callers iterating by position must not advance past i after removing it.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

#define POGO_SET_INDEX_MIN 16u

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

static uint64_t id_hash(const pogo_id *id) {
  return mix64(id->serial ^ ((uint64_t)id->node << 40) ^ ((uint64_t)id->creation << 8) ^ id->kind);
}

int pogo_id_eq(const pogo_id *a, const pogo_id *b) {
  return a->serial == b->serial && a->node == b->node && a->creation == b->creation && a->kind == b->kind;
}

/* ---- the index, shared by both set kinds ---- */

typedef uint64_t (*hash_at_fn)(const void *v, uint32_t pos);

/* Rebuild ix for n entries of v (capacity: power of two >= 2n). -1 on OOM. */
static int ix_build(uint32_t **ix, uint32_t *ixcap, const void *v, uint32_t n, hash_at_fn hash_at) {
  uint32_t cap = 32;
  while (cap < 2 * n) cap *= 2;
  uint32_t *t = calloc(cap, sizeof *t);
  if (!t) return -1;
  for (uint32_t p = 0; p < n; p++) {
    uint32_t i = (uint32_t)hash_at(v, p) & (cap - 1);
    while (t[i]) i = (i + 1) & (cap - 1);
    t[i] = p + 1;
  }
  free(*ix);
  *ix = t;
  *ixcap = cap;
  return 0;
}

/* Remove slot i (backward-shift deletion). */
static void ix_delete_slot(uint32_t *ix, uint32_t cap, uint32_t i, const void *v, hash_at_fn hash_at) {
  uint32_t j = i;
  for (;;) {
    ix[i] = 0;
    for (;;) {
      j = (j + 1) & (cap - 1);
      if (!ix[j]) return;
      uint32_t home = (uint32_t)hash_at(v, ix[j] - 1) & (cap - 1);
      /* may the entry at j move to i? only if its home is not in (i, j] */
      int between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
      if (!between) break;
    }
    ix[i] = ix[j];
    i = j;
  }
}

/* Slot holding position pos, found through the hash of the entry at pos. */
static uint32_t ix_slot_of(const uint32_t *ix, uint32_t cap, uint32_t pos, uint64_t h) {
  uint32_t i = (uint32_t)h & (cap - 1);
  while (ix[i] != pos + 1) i = (i + 1) & (cap - 1);
  return i;
}

/* ---- links ---- */

static uint64_t idset_hash_at(const void *v, uint32_t pos) { return id_hash(&((const pogo_id *)v)[pos]); }

static int idset_find(const pogo_idset *s, const pogo_id *id) {
  if (!s->ix) {
    for (uint32_t i = 0; i < s->n; i++)
      if (pogo_id_eq(&s->v[i], id)) return (int)i;
    return -1;
  }
  uint32_t i = (uint32_t)id_hash(id) & (s->ixcap - 1);
  while (s->ix[i]) {
    if (pogo_id_eq(&s->v[s->ix[i] - 1], id)) return (int)(s->ix[i] - 1);
    i = (i + 1) & (s->ixcap - 1);
  }
  return -1;
}

int pogo_idset_add(pogo_idset *s, const pogo_id *id) {
  if (idset_find(s, id) >= 0) return 0;
  if (s->n == s->cap) {
    uint32_t ncap = s->cap ? s->cap * 2 : 2;
    pogo_id *nv = realloc(s->v, ncap * sizeof *nv);
    if (!nv) return -1;
    s->v = nv;
    s->cap = ncap;
  }
  s->v[s->n++] = *id;
  if (s->ix && 2 * s->n <= s->ixcap) {
    uint32_t i = (uint32_t)id_hash(id) & (s->ixcap - 1);
    while (s->ix[i]) i = (i + 1) & (s->ixcap - 1);
    s->ix[i] = s->n;
  } else if (s->n >= POGO_SET_INDEX_MIN) {
    if (ix_build(&s->ix, &s->ixcap, s->v, s->n, idset_hash_at) != 0) { free(s->ix); s->ix = NULL; s->ixcap = 0; }
  }
  return 1;
}

void pogo_idset_remove_at(pogo_idset *s, uint32_t pos) {
  uint32_t last = s->n - 1;
  if (s->ix) {
    ix_delete_slot(s->ix, s->ixcap, ix_slot_of(s->ix, s->ixcap, pos, id_hash(&s->v[pos])), s->v, idset_hash_at);
    if (pos != last) s->ix[ix_slot_of(s->ix, s->ixcap, last, id_hash(&s->v[last]))] = pos + 1;
  }
  s->v[pos] = s->v[last];
  s->n--;
  if (s->n == 0) pogo_idset_free(s);
}

int pogo_idset_remove(pogo_idset *s, const pogo_id *id) {
  int pos = idset_find(s, id);
  if (pos < 0) return 0;
  pogo_idset_remove_at(s, (uint32_t)pos);
  return 1;
}

void pogo_idset_free(pogo_idset *s) {
  free(s->v);
  free(s->ix);
  memset(s, 0, sizeof *s);
}

/* ---- monitors ---- */

static uint64_t monset_hash_at(const void *v, uint32_t pos) { return mix64(((const pogo_mon *)v)[pos].ref); }

int pogo_monset_add(pogo_monset *s, uint64_t ref, const pogo_id *other) {
  if (s->n == s->cap) {
    uint32_t ncap = s->cap ? s->cap * 2 : 2;
    pogo_mon *nv = realloc(s->v, ncap * sizeof *nv);
    if (!nv) return -1;
    s->v = nv;
    s->cap = ncap;
  }
  s->v[s->n].ref = ref;
  s->v[s->n].other = *other;
  s->n++;
  if (s->ix && 2 * s->n <= s->ixcap) {
    uint32_t i = (uint32_t)mix64(ref) & (s->ixcap - 1);
    while (s->ix[i]) i = (i + 1) & (s->ixcap - 1);
    s->ix[i] = s->n;
  } else if (s->n >= POGO_SET_INDEX_MIN) {
    if (ix_build(&s->ix, &s->ixcap, s->v, s->n, monset_hash_at) != 0) { free(s->ix); s->ix = NULL; s->ixcap = 0; }
  }
  return 0;
}

/* Position of the monitor ref (and other, when given), or -1. */
static int monset_find(const pogo_monset *s, uint64_t ref, const pogo_id *other) {
  if (!s->ix) {
    /* newest first: short-lived monitors (calls) are usually at the end */
    for (uint32_t i = s->n; i-- > 0;)
      if (s->v[i].ref == ref && (!other || pogo_id_eq(&s->v[i].other, other))) return (int)i;
    return -1;
  }
  uint32_t i = (uint32_t)mix64(ref) & (s->ixcap - 1);
  while (s->ix[i]) {
    const pogo_mon *m = &s->v[s->ix[i] - 1];
    if (m->ref == ref && (!other || pogo_id_eq(&m->other, other))) return (int)(s->ix[i] - 1);
    i = (i + 1) & (s->ixcap - 1);
  }
  return -1;
}

void pogo_monset_remove_at(pogo_monset *s, uint32_t pos) {
  uint32_t last = s->n - 1;
  if (s->ix) {
    ix_delete_slot(s->ix, s->ixcap, ix_slot_of(s->ix, s->ixcap, pos, mix64(s->v[pos].ref)), s->v, monset_hash_at);
    if (pos != last) s->ix[ix_slot_of(s->ix, s->ixcap, last, mix64(s->v[last].ref))] = pos + 1;
  }
  s->v[pos] = s->v[last];
  s->n--;
  if (s->n == 0) pogo_monset_free(s);
}

int pogo_monset_remove(pogo_monset *s, uint64_t ref, pogo_mon *out) {
  int pos = monset_find(s, ref, NULL);
  if (pos < 0) return 0;
  if (out) *out = s->v[pos];
  pogo_monset_remove_at(s, (uint32_t)pos);
  return 1;
}

int pogo_monset_remove_pair(pogo_monset *s, uint64_t ref, const pogo_id *other) {
  int pos = monset_find(s, ref, other);
  if (pos < 0) return 0;
  pogo_monset_remove_at(s, (uint32_t)pos);
  return 1;
}

void pogo_monset_free(pogo_monset *s) {
  free(s->v);
  free(s->ix);
  memset(s, 0, sizeof *s);
}
