/*
 * ring.c: consistent hash ring with virtual nodes (see ring.h, lua/pogo/ring.lua).
 *
 * Layout
 * - Nodes are kept sorted by name bytes (memcmp order, then length), so a
 *   node's index is its rank and is the same whatever order nodes were added in.
 * - Points live in two parallel arrays sorted by (hash, node rank): `hash`
 *   (uint64, contiguous for the search) and `owner` (uint32 node rank). Since
 *   rank order is name order, ties break on name bytes, deterministically.
 * - Point i of a node (0 <= i < round(vnodes * weight)) has the hash
 *   XXH3_64bits_withSeed(name .. be32(i), 0): bytes built explicitly, so the
 *   ring is the same on every machine and endianness. A weight change keeps the
 *   first points, so only the difference moves.
 * - A key hashes to pogo_codec_hash(key, seed 0) and belongs to the first point
 *   whose hash is >= the key's, wrapping around to the first point.
 * - A bucket index over the top bits of the hash (two to four points per
 *   bucket, 1 to 2 bytes per point) narrows the binary search to a bucket, so
 *   a lookup touches a few cache lines whatever the ring size (1.6x faster
 *   than a plain binary search at 100 nodes).
 * - The userdata's user value is a table: [rank] = name (the anchored Lua
 *   string, pushed without allocating on lookups) and [name] = rank.
 * - add and remove change the nodes at once (a node added is `pending`, one
 *   removed `removed`, and has no [name] entry any more); the points follow
 *   at the first call that needs them (ring_settle), for every node added
 *   and removed since in one pass. Lookups only need the added ones: they
 *   step over a removed node's points while those are a quarter or less.
 * - C memory comes from the Lua state's allocator and is freed in __gc.
 *   The collector does not count it: a full collection runs when the rings
 *   have grown by the Lua heap's size since the last (ring_owe), and a
 *   failed allocation gets a full collection and a retry, as Lua's own do.
 * - Mutations do every step that may fail (allocations, new table slots)
 *   before changing anything, so an error leaves the ring as it was.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <xxhash.h>

#include "be.h"
#include "codec.h"
#include "ring.h"

#define RING_MT "pogo.ring"
#define RING_DEFAULT_VNODES 2048 /* chosen by measurement, see lua/pogo/ring.lua */
#define RING_MAX_VNODES (1u << 20)
#define RING_MAX_NODE_POINTS (1u << 24) /* round(vnodes * weight) per node */
#define RING_MAX_POINTS (1u << 30)      /* whole ring; owners and index are uint32 */
#define RING_MAX_INDEX_BITS 24
#define RING_INDEX_SPARSE 1 /* 2^SPARSE to 2^(SPARSE+1) points per bucket */
#define RING_KEY_SEED 0
#define RING_POINT_SEED 0
#define RING_GONE UINT32_MAX /* ring_settle's map: the node was removed */

typedef struct ring_node {
  const char *name; /* bytes of the Lua string anchored in the user value */
  size_t len;
  double weight;
  uint32_t npoints;
  uint32_t stamp;  /* key_to_nodes: last walk that saw this node */
  uint8_t pending; /* added, its points not yet on the ring (ring_settle) */
  uint8_t removed; /* removed, its points still on the ring, skipped (ring_settle) */
} ring_node;

typedef struct pogo_ring {
  uint64_t *hash;  /* point hashes, sorted */
  uint32_t *owner; /* node rank of each point */
  size_t count, hash_cap, owner_cap;
  ring_node *nodes; /* sorted by name */
  uint32_t nnodes, nodecap;
  uint32_t *index; /* (1 << index_bits) + 1 entries when count > 0 */
  size_t index_cap;
  unsigned index_bits;
  uint32_t vnodes;
  uint32_t stamp;
  size_t pending;      /* points of the pending nodes */
  uint32_t nremoved;   /* removed nodes still in `nodes` */
  size_t dead;         /* their points, still in the arrays */
  size_t pending_len;  /* the longest pending name */
  void *scratch;       /* room to settle them (ring_settle), reserved by add */
  size_t scratch_cap;  /* bytes */
} pogo_ring;

/* ---- memory (the Lua state's allocator) ---- */

static void *ring_realloc(lua_State *L, void *p, size_t osize, size_t nsize) {
  void *ud;
  lua_Alloc f = lua_getallocf(L, &ud);
  return f(ud, p, osize, nsize);
}

/* The registry's key of the bytes rings have grown by since the last full
 * collection they asked for (one count per Lua state). */
static const char RING_OWED_KEY = 'o';

/* Counts `bytes` more of the rings' C memory, and runs a full collection
 * once they pass the Lua heap. The collector counts only its own blocks: a
 * program that made and dropped rings (0.3 MiB each at 10 nodes) grew to
 * hundreds of MiB over a heap of one before it freed them, and in the
 * generational mode a debt (LUA_GCSTEP) only brings minor collections,
 * which never free a userdata with a finalizer. So the rings' growth weighs
 * as the heap's own growth does on a major collection: one when it has
 * doubled. */
static void ring_owe(lua_State *L, size_t bytes) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &RING_OWED_KEY);
  size_t owed = (size_t)lua_tointeger(L, -1) + bytes;
  lua_pop(L, 1);
  size_t heap = (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
  if (owed > heap && lua_gc(L, LUA_GCISRUNNING)) { /* (unless the host stopped the collector) */
    lua_gc(L, LUA_GCCOLLECT);
    owed = 0;
  }
  lua_pushinteger(L, (lua_Integer)(owed > (size_t)LUA_MAXINTEGER ? (size_t)LUA_MAXINTEGER : owed));
  lua_rawsetp(L, LUA_REGISTRYINDEX, &RING_OWED_KEY);
}

/* Grows *p (elem bytes each) to hold need elements if it holds fewer, with
 * an eighth more room; raises on failure leaving *p untouched. The room is
 * less than ring_trim gives back, and it spares most adds a realloc: one of
 * a big block is an mremap (a TLB flush on every core) and fresh pages to
 * clear, about a twentieth of each add in a 50-node mesh when every add
 * grew the arrays to the exact size. */
static void ring_grow(lua_State *L, void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return;
  if (need < SIZE_MAX / 2 / elem) need += need / 8;
  size_t osize = *cap * elem, nsize = need * elem;
  void *np = ring_realloc(L, *p, osize, nsize);
  if (np == NULL) { /* as Lua does for its own blocks: a full collection, one retry */
    lua_gc(L, LUA_GCCOLLECT);
    np = ring_realloc(L, *p, osize, nsize);
  }
  if (np == NULL) luaL_error(L, "ring: not enough memory");
  *p = np;
  *cap = need;
  ring_owe(L, nsize - osize);
}

/* Shrinks *p to n elements (the allocator never fails when shrinking). */
static void ring_shrink(lua_State *L, void **p, size_t *cap, size_t n, size_t elem) {
  if (n >= *cap) return;
  *p = ring_realloc(L, *p, *cap * elem, n * elem);
  if (n == 0) *p = NULL;
  *cap = n;
}

/* ---- helpers ---- */

static pogo_ring *ring_check(lua_State *L) {
  pogo_ring *r = (pogo_ring *)lua_touserdata(L, 1);
  /* Identity of the metatable (upvalue 1) rather than a registry lookup. */
  if (r == NULL || !lua_getmetatable(L, 1) || !lua_rawequal(L, -1, lua_upvalueindex(1)))
    luaL_typeerror(L, 1, RING_MT);
  lua_pop(L, 1);
  return r;
}

static int name_cmp(const char *a, size_t alen, const char *b, size_t blen) {
  int c = memcmp(a, b, alen < blen ? alen : blen);
  if (c != 0) return c;
  return alen < blen ? -1 : alen > blen;
}

static const char *ring_checkname(lua_State *L, int idx, size_t *len) {
  if (lua_type(L, idx) != LUA_TSTRING)
    luaL_argerror(L, idx, lua_pushfstring(L, "node name must be a string, got %s",
                                           luaL_typename(L, idx)));
  const char *s = lua_tolstring(L, idx, len);
  if (*len == 0) luaL_argerror(L, idx, "node name must not be empty");
  return s;
}

static uint64_t ring_keyhash(lua_State *L, int idx) {
  char err[POGO_CODEC_ERRLEN];
  uint64_t h;
  if (lua_isnoneornil(L, idx)) luaL_argerror(L, idx, "key must not be nil");
  /* upvalue 2: the node's codec hooks, so pids and refs are keys too */
  const pogo_codec_ext *ext = (const pogo_codec_ext *)lua_touserdata(L, lua_upvalueindex(2));
  if (pogo_codec_hash(L, idx, RING_KEY_SEED, &h, ext, err) != 0)
    luaL_argerror(L, idx, lua_pushfstring(L, "invalid key: %s", err));
  return h;
}

/* Index of the first point with hash >= h, wrapping to 0. count > 0. */
static size_t ring_find(const pogo_ring *r, uint64_t h) {
  size_t j = r->index_bits ? (size_t)(h >> (64 - r->index_bits)) : 0;
  size_t lo = r->index[j], hi = r->index[j + 1];
  const uint64_t *hash = r->hash;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (hash[mid] < h) lo = mid + 1;
    else hi = mid;
  }
  return lo == r->count ? 0 : lo;
}

static unsigned ring_index_bits(size_t count) {
  unsigned b = 0;
  while (b < RING_MAX_INDEX_BITS && ((size_t)2 << (b + RING_INDEX_SPARSE)) <= count) b++;
  return b; /* floor(log2(count)) - RING_INDEX_SPARSE */
}

/* Ensures the index can hold the buckets for `count` points (may raise). */
static void ring_index_reserve(lua_State *L, pogo_ring *r, size_t count) {
  size_t need = ((size_t)1 << ring_index_bits(count)) + 1;
  ring_grow(L, (void **)&r->index, &r->index_cap, need, sizeof(uint32_t));
}

/* Rebuilds the index (capacity reserved beforehand; never fails): index[j]
 * is the number of points in the buckets before j, counted and summed
 * without a branch per point or bucket (a walk that compared each bucket's
 * start with the next point mispredicted about once a bucket: 0.35 ms of a
 * 0.6 ms remove at 50 nodes). */
static void ring_index_build(pogo_ring *r) {
  if (r->count == 0) return;
  unsigned b = ring_index_bits(r->count);
  size_t buckets = (size_t)1 << b;
  r->index_bits = b;
  if (b == 0) {
    r->index[0] = 0;
    r->index[1] = (uint32_t)r->count;
    return;
  }
  memset(r->index, 0, (buckets + 1) * sizeof *r->index);
  for (size_t p = 0; p < r->count; p++) r->index[(r->hash[p] >> (64 - b)) + 1]++;
  for (size_t j = 1; j <= buckets; j++) r->index[j] += r->index[j - 1];
}

/* Gives back the unused part of *p, down to the room ring_grow leaves, when
 * it is more than a quarter of it: a node leaving a ring of many gives back
 * little, and a realloc of a big block (mremap) costs a TLB flush on every
 * core. */
static void ring_trim(lua_State *L, void **p, size_t *cap, size_t n, size_t elem) {
  size_t keep = n + n / 8; /* the room ring_grow leaves */
  if (keep < *cap - *cap / 4) ring_shrink(L, p, cap, keep, elem);
}

/* After a change: gives back unused memory (never fails), rebuilds the index. */
static void ring_fit(lua_State *L, pogo_ring *r) {
  size_t buckets = r->count ? ((size_t)1 << ring_index_bits(r->count)) + 1 : 0;
  ring_trim(L, (void **)&r->hash, &r->hash_cap, r->count, sizeof(uint64_t));
  ring_trim(L, (void **)&r->owner, &r->owner_cap, r->count, sizeof(uint32_t));
  ring_trim(L, (void **)&r->index, &r->index_cap, buckets, sizeof(uint32_t));
  size_t ncap = r->nodecap;
  ring_shrink(L, (void **)&r->nodes, &ncap, r->nnodes, sizeof(ring_node));
  r->nodecap = (uint32_t)ncap;
  ring_index_build(r);
}

/* Sorts a[0..n) with tmp[0..n) as scratch: LSD radix, a byte a pass (8
 * passes, so the result ends in a). A node's 2048 points sort in about a
 * tenth of qsort's time, which compares through a function pointer. If pa
 * is not NULL, pa[i] (ptmp its scratch) moves with a[i]; the sort is
 * stable, so equal hashes keep the order they had. */
static void ring_sort_u64(uint64_t *a, uint64_t *tmp, uint32_t *pa, uint32_t *ptmp, size_t n) {
  uint64_t *src = a, *dst = tmp;
  uint32_t *psrc = pa, *pdst = ptmp;
  for (unsigned shift = 0; shift < 64; shift += 8) {
    size_t count[256] = {0};
    for (size_t i = 0; i < n; i++) count[(src[i] >> shift) & 255]++;
    size_t sum = 0;
    for (unsigned b = 0; b < 256; b++) {
      size_t c = count[b];
      count[b] = sum;
      sum += c;
    }
    if (psrc) {
      for (size_t i = 0; i < n; i++) {
        size_t j = count[(src[i] >> shift) & 255]++;
        dst[j] = src[i];
        pdst[j] = psrc[i];
      }
      uint32_t *t = psrc;
      psrc = pdst;
      pdst = t;
    } else {
      for (size_t i = 0; i < n; i++) dst[count[(src[i] >> shift) & 255]++] = src[i];
    }
    uint64_t *t = src;
    src = dst;
    dst = t;
  }
}

/* Hashes of points 0..n-1 of a node into out (unsorted); buf holds len + 4 bytes. */
static void ring_hash_points(const char *name, size_t len, uint32_t n, uint64_t *out, unsigned char *buf) {
  memcpy(buf, name, len);
  for (uint32_t i = 0; i < n; i++) {
    pogo_be_put32(buf + len, i); /* the point's number, big-endian: hashes the same on every host */
    out[i] = XXH3_64bits_withSeed(buf, len + 4, RING_POINT_SEED);
  }
}

/* Hashes of points 0..n-1 of a node, sorted, into out; tmp holds n more, and
 * buf len + 4 bytes. */
static void ring_node_points(const char *name, size_t len, uint32_t n, uint64_t *out,
                             uint64_t *tmp, unsigned char *buf) {
  ring_hash_points(name, len, n, out, buf);
  ring_sort_u64(out, tmp, NULL, NULL, n);
}

/* Removes the points of node `rank` (a weight change; removes go through
 * ring_settle, which drops and renumbers in one pass). */
static void ring_drop_points(pogo_ring *r, uint32_t rank) {
  size_t o = 0;
  /* without a branch per point: each point is written, and kept (o moves
   * on) unless it is the node's; the node's points are spread over the
   * whole ring, so a branch on them mispredicts often */
  for (size_t i = 0; i < r->count; i++) {
    uint32_t w = r->owner[i];
    r->hash[o] = r->hash[i];
    r->owner[o] = w;
    o += (w != rank);
  }
  r->count = o;
}

/* Merges m sorted points into the ring (capacity reserved): point k is of
 * node ranks[k], or of node `rank` for every k if ranks is NULL. If map is
 * not NULL, the old points' owners are old ranks, renumbered through it.
 * Backward merge, in place: the old points that go after a new one move up
 * by the new ones still to place. Ordered by (hash, rank). */
static void ring_merge_points(pogo_ring *r, const uint64_t *pts, const uint32_t *ranks, uint32_t rank,
                              size_t m, const uint32_t *map) {
  size_t i = r->count, k = m, out = r->count + m;
  while (k > 0) {
    uint32_t rk = ranks ? ranks[k - 1] : rank;
    if (i > 0) {
      uint32_t w = map ? map[r->owner[i - 1]] : r->owner[i - 1];
      uint64_t h = r->hash[i - 1];
      /* the old point goes last if it is greater */
      if (h > pts[k - 1] || (h == pts[k - 1] && w > rk)) {
        out--;
        i--;
        r->hash[out] = h;
        r->owner[out] = w;
        continue;
      }
    }
    out--;
    k--;
    r->hash[out] = pts[k];
    r->owner[out] = rk;
  }
  if (map)
    for (size_t j = 0; j < i; j++) r->owner[j] = map[r->owner[j]];
  r->count += m;
}

/* The bytes ring_settle needs for `points` pending points whose longest
 * name is `len` bytes, among `nodes` nodes: hashes and ranks, each with the
 * radix sort's room, the map of old ranks to new, and the name buffer. */
static size_t ring_scratch_bytes(size_t points, size_t nodes, size_t len) {
  return points * (2 * sizeof(uint64_t) + 2 * sizeof(uint32_t)) + nodes * sizeof(uint32_t) + len + 4;
}

/* Brings the points up to date with the nodes: drops the points of the
 * nodes removed since the last call, and puts those of the nodes added
 * since on the ring, all in one merge. Adding nodes one by one merged each
 * node's points into all those already there: O(points) per node, and a
 * 50-node mesh, whose every node adds the 49 others (mostly one at a time,
 * as their links come up, but several at once when their supervisors'
 * groups come in together: placement.lua), spent a sixth of its CPU there
 * (perf). A remove only marks the node: lookups skip its points until
 * then, so the failover of a node does not go through the whole ring on
 * every other node (its points are a few in a hundred: a lookup that lands
 * on one steps to the next). Until then the points name the ranks the
 * nodes had at the last call; the map renumbers them. Never fails: add and
 * remove reserved the room (arrays, index, scratch). */
static void ring_settle(lua_State *L, pogo_ring *r) {
  if (r->pending == 0 && r->nremoved == 0) return;
  size_t m = r->pending;
  uint64_t *pts = r->scratch, *tmp = pts + m;
  uint32_t *ranks = (uint32_t *)(tmp + m), *rtmp = ranks + m, *map = rtmp + m;
  unsigned char *buf = (unsigned char *)(map + r->nnodes);
  size_t k = 0;
  uint32_t old = 0, now = 0;
  for (uint32_t i = 0; i < r->nnodes; i++) { /* in rank order: a stable sort keeps ties in it */
    ring_node *n = &r->nodes[i];
    if (n->removed) {
      map[old++] = RING_GONE;
    } else if (!n->pending) {
      map[old++] = now++;
    } else {
      ring_hash_points(n->name, n->len, n->npoints, pts + k, buf);
      for (uint32_t j = 0; j < n->npoints; j++) ranks[k + j] = now;
      k += n->npoints;
      now++;
    }
  }
  if (r->nremoved) { /* drop and renumber without a branch per point (they are in no order) */
    size_t o = 0;
    for (size_t i = 0; i < r->count; i++) {
      uint32_t w = map[r->owner[i]];
      r->hash[o] = r->hash[i];
      r->owner[o] = w;
      o += (w != RING_GONE);
    }
    r->count = o;
  }
  if (m) {
    ring_sort_u64(pts, tmp, ranks, rtmp, m);
    ring_merge_points(r, pts, ranks, 0, m, r->nremoved ? NULL : map);
  }
  if (r->nremoved) { /* the nodes and the names table (overwrites and deletions never allocate) */
    lua_getiuservalue(L, 1, 1);
    int names = lua_gettop(L);
    uint32_t o = 0;
    for (uint32_t i = 0; i < r->nnodes; i++) {
      if (r->nodes[i].removed) continue;
      r->nodes[o] = r->nodes[i];
      if (o != i) {
        lua_rawgeti(L, names, (lua_Integer)i + 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, names, (lua_Integer)o + 1);
        lua_pushinteger(L, (lua_Integer)o + 1);
        lua_rawset(L, names);
      }
      o++;
    }
    for (uint32_t i = o; i < r->nnodes; i++) {
      lua_pushnil(L);
      lua_rawseti(L, names, (lua_Integer)i + 1);
    }
    lua_pop(L, 1);
    r->nnodes = o;
    r->nremoved = 0;
    r->dead = 0;
  }
  for (uint32_t i = 0; i < r->nnodes; i++) r->nodes[i].pending = 0;
  r->pending = 0;
  r->pending_len = 0;
  r->scratch = ring_realloc(L, r->scratch, r->scratch_cap, 0);
  r->scratch_cap = 0;
  ring_fit(L, r);
}

/* Reserves the scratch ring_settle needs, with `more` points and a node of
 * a `len`-byte name to come (may raise). */
static void ring_reserve_scratch(lua_State *L, pogo_ring *r, size_t more, size_t len) {
  size_t plen = len > r->pending_len ? len : r->pending_len;
  ring_grow(L, &r->scratch, &r->scratch_cap,
            ring_scratch_bytes(r->pending + more, (size_t)r->nnodes + (more ? 1 : 0), plen), 1);
}

/* ---- methods ---- */

static uint32_t ring_points_for(lua_State *L, const pogo_ring *r, double w) {
  double x = floor((double)r->vnodes * w + 0.5);
  if (!(x <= (double)RING_MAX_NODE_POINTS))
    luaL_argerror(L, 3, lua_pushfstring(L, "weight too large (at most %d points per node)",
                                        (int)RING_MAX_NODE_POINTS));
  return x < 1 ? 1 : (uint32_t)x;
}

/* r:add(node [, weight]) -> r. A new node goes among the nodes at once and
 * its points at the next call that needs them (ring_settle). */
static int ring_add(lua_State *L) {
  pogo_ring *r = ring_check(L);
  size_t len;
  const char *name = ring_checkname(L, 2, &len);
  double w = 1;
  if (!lua_isnoneornil(L, 3)) {
    if (lua_type(L, 3) != LUA_TNUMBER)
      luaL_argerror(L, 3, lua_pushfstring(L, "weight must be a number, got %s",
                                           luaL_typename(L, 3)));
    w = lua_tonumber(L, 3);
    if (!(w > 0) || isinf(w)) luaL_argerror(L, 3, "weight must be a positive finite number");
  }
  uint32_t np = ring_points_for(L, r, w);
  if (r->nremoved) ring_settle(L, r); /* (a removed node may come back: one entry per name) */
  lua_settop(L, 3);
  lua_getiuservalue(L, 1, 1); /* 4: names */
  lua_pushvalue(L, 2);
  if (lua_rawget(L, 4) != LUA_TNIL) { /* 5: rank + 1 */
    uint32_t rank = (uint32_t)lua_tointeger(L, 5) - 1;
    if (r->nodes[rank].npoints != np) {
      /* a weight change: the node's points move on a settled ring */
      ring_settle(L, r);
      size_t newcount = r->count - r->nodes[rank].npoints + np;
      if (newcount > RING_MAX_POINTS) luaL_error(L, "ring: too many points (at most %d)", (int)RING_MAX_POINTS);
      /* everything that may fail, before any change */
      uint64_t *pts = (uint64_t *)lua_newuserdatauv(L, (size_t)np * 16 + len + 4, 0);
      ring_node_points(name, len, np, pts, pts + np, (unsigned char *)(pts + 2 * (size_t)np));
      ring_grow(L, (void **)&r->hash, &r->hash_cap, newcount, sizeof(uint64_t));
      ring_grow(L, (void **)&r->owner, &r->owner_cap, newcount, sizeof(uint32_t));
      ring_index_reserve(L, r, newcount);
      ring_drop_points(r, rank);
      ring_merge_points(r, pts, NULL, rank, np, NULL);
      r->nodes[rank].npoints = np;
      ring_fit(L, r);
    }
    r->nodes[rank].weight = w;
    lua_settop(L, 1);
    return 1;
  }
  if (r->nnodes >= UINT32_MAX - 1) luaL_error(L, "ring: too many nodes");
  uint32_t lo = 0, hi = r->nnodes; /* rank: first node whose name is greater */
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (name_cmp(r->nodes[mid].name, r->nodes[mid].len, name, len) < 0) lo = mid + 1;
    else hi = mid;
  }
  uint32_t rank = lo;
  size_t total = r->count + r->pending + np;
  if (total > RING_MAX_POINTS) luaL_error(L, "ring: too many points (at most %d)", (int)RING_MAX_POINTS);

  /* Everything that may fail, before any change: the room ring_settle needs,
   * the node's entry and its two table slots (the shifts below only
   * overwrite existing keys). */
  size_t plen = len > r->pending_len ? len : r->pending_len;
  ring_grow(L, (void **)&r->hash, &r->hash_cap, total, sizeof(uint64_t));
  ring_grow(L, (void **)&r->owner, &r->owner_cap, total, sizeof(uint32_t));
  ring_index_reserve(L, r, total);
  ring_reserve_scratch(L, r, np, len);
  size_t ncap = r->nodecap;
  ring_grow(L, (void **)&r->nodes, &ncap, (size_t)r->nnodes + 1, sizeof(ring_node));
  r->nodecap = (uint32_t)ncap;
  lua_pushvalue(L, 2);
  lua_rawseti(L, 4, (lua_Integer)r->nnodes + 1);
  lua_pushvalue(L, 2);
  lua_pushinteger(L, (lua_Integer)rank + 1);
  lua_rawset(L, 4);

  /* Commit: nothing below raises. */
  for (uint32_t i = r->nnodes; i > rank; i--) { /* names[i+1] = names[i] */
    lua_rawgeti(L, 4, i);
    lua_pushvalue(L, -1);
    lua_rawseti(L, 4, (lua_Integer)i + 1);
    lua_pushinteger(L, (lua_Integer)i + 1);
    lua_rawset(L, 4);
  }
  lua_pushvalue(L, 2);
  lua_rawseti(L, 4, (lua_Integer)rank + 1);
  memmove(r->nodes + rank + 1, r->nodes + rank, (size_t)(r->nnodes - rank) * sizeof(ring_node));
  r->nnodes++;
  ring_node *n = &r->nodes[rank];
  lua_rawgeti(L, 4, (lua_Integer)rank + 1);
  n->name = lua_tolstring(L, -1, &n->len); /* anchored in the names table */
  lua_pop(L, 1);
  n->stamp = 0;
  n->weight = w;
  n->npoints = np;
  n->removed = 0;
  n->pending = 1; /* (the points on the ring are renumbered when it is settled) */
  r->pending += np;
  r->pending_len = plen;
  lua_settop(L, 1);
  return 1;
}

/* r:remove(node) -> true | false (absent). The node leaves the nodes at
 * once and its points at the next call that needs them gone (ring_settle);
 * lookups skip them meanwhile. */
static int ring_remove(lua_State *L) {
  pogo_ring *r = ring_check(L);
  size_t len;
  ring_checkname(L, 2, &len);
  lua_settop(L, 2);
  lua_getiuservalue(L, 1, 1); /* 3: names */
  lua_pushvalue(L, 2);
  if (lua_rawget(L, 3) == LUA_TNIL) {
    lua_pushboolean(L, 0);
    return 1;
  }
  uint32_t rank = (uint32_t)lua_tointeger(L, 4) - 1;
  if (r->nodes[rank].pending) { /* added and removed before its points were placed: place them first */
    ring_settle(L, r);
    lua_settop(L, 3);
    lua_pushvalue(L, 2);
    lua_rawget(L, 3);
    rank = (uint32_t)lua_tointeger(L, 4) - 1;
  }
  ring_reserve_scratch(L, r, 0, 0); /* (may raise: before any change) */
  ring_node *n = &r->nodes[rank];
  n->removed = 1;
  r->nremoved++;
  r->dead += n->npoints;
  lua_pushvalue(L, 2); /* names[node] = nil; names[rank + 1] stays until settled */
  lua_pushnil(L);
  lua_rawset(L, 3);
  lua_pushboolean(L, 1);
  return 1;
}

/* Whether a lookup settles the ring first: when nodes were added (their
 * points are not there yet), or when a removed node's points are more than
 * a quarter of them (a lookup that lands on one steps to the next, which
 * cost a ring with 99 of 100 nodes removed 60 % of its speed). A few
 * removed points are stepped over, so the failover of one node of many
 * does not go through the whole ring on every node. */
static int ring_stale(const pogo_ring *r) {
  return r->pending || r->dead > r->count / 4;
}

/* r:key_to_node(key) -> node | nil, "empty ring" */
static int ring_key_to_node(lua_State *L) {
  pogo_ring *r = ring_check(L);
  if (ring_stale(r)) ring_settle(L, r);
  uint64_t h = ring_keyhash(L, 2);
  if (r->count == r->dead) {
    lua_pushnil(L);
    lua_pushliteral(L, "empty ring");
    return 2;
  }
  size_t p = ring_find(r, h);
  while (r->nodes[r->owner[p]].removed) /* a removed node's point: the next one */
    if (++p == r->count) p = 0;
  lua_getiuservalue(L, 1, 1);
  lua_rawgeti(L, -1, (lua_Integer)r->owner[p] + 1);
  return 1;
}

/* r:key_to_nodes(key, n) -> {node, ...} (up to n distinct, clockwise) | nil, "empty ring" */
static int ring_key_to_nodes(lua_State *L) {
  pogo_ring *r = ring_check(L);
  if (ring_stale(r)) ring_settle(L, r);
  uint64_t h = ring_keyhash(L, 2);
  lua_Integer n = luaL_checkinteger(L, 3);
  if (n < 1) luaL_argerror(L, 3, "n must be at least 1");
  if (r->count == r->dead) {
    lua_pushnil(L);
    lua_pushliteral(L, "empty ring");
    return 2;
  }
  uint32_t live = r->nnodes - r->nremoved;
  uint32_t want = n < (lua_Integer)live ? (uint32_t)n : live;
  if (++r->stamp == 0) { /* wrapped: forget old stamps */
    for (uint32_t i = 0; i < r->nnodes; i++) r->nodes[i].stamp = 0;
    r->stamp = 1;
  }
  lua_settop(L, 3);
  lua_getiuservalue(L, 1, 1); /* 4 */
  lua_createtable(L, (int)want, 0); /* 5 */
  size_t p = ring_find(r, h);
  uint32_t got = 0;
  for (size_t seen = 0; got < want && seen < r->count; seen++) {
    uint32_t w = r->owner[p];
    if (r->nodes[w].stamp != r->stamp && !r->nodes[w].removed) {
      r->nodes[w].stamp = r->stamp;
      lua_rawgeti(L, 4, (lua_Integer)w + 1);
      lua_rawseti(L, 5, ++got);
    }
    if (++p == r->count) p = 0;
  }
  return 1;
}

/* r:nodes() -> sorted array of node names */
static int ring_nodes(lua_State *L) {
  pogo_ring *r = ring_check(L);
  ring_settle(L, r);
  lua_getiuservalue(L, 1, 1);
  lua_createtable(L, (int)r->nnodes, 0);
  for (uint32_t i = 1; i <= r->nnodes; i++) {
    lua_rawgeti(L, -2, i);
    lua_rawseti(L, -2, i);
  }
  return 1;
}

/* r:shares() -> {[node] = fraction of the hash space it owns}: point i owns
 * the arc from the point before it (exclusive) to itself (inclusive), the
 * first point the arc that wraps round from the last one. */
static int ring_shares(lua_State *L) {
  pogo_ring *r = ring_check(L);
  ring_settle(L, r);
  lua_getiuservalue(L, 1, 1);
  lua_createtable(L, 0, (int)r->nnodes);
  if (r->count == 0) return 1;
  double *share = lua_newuserdatauv(L, r->nnodes * sizeof *share, 0);
  for (uint32_t i = 0; i < r->nnodes; i++) share[i] = 0;
  const double full = 18446744073709551616.0; /* 2^64 */
  for (size_t i = 0; i < r->count; i++) {
    uint64_t prev = r->hash[i == 0 ? r->count - 1 : i - 1];
    uint64_t arc = r->hash[i] - prev; /* mod 2^64: the wrap round for i == 0 */
    share[r->owner[i]] += r->count == 1 ? full : (double)arc;
  }
  for (uint32_t i = 0; i < r->nnodes; i++) {
    lua_rawgeti(L, -3, (lua_Integer)i + 1);
    lua_pushnumber(L, share[i] / full);
    lua_rawset(L, -4);
  }
  lua_pop(L, 1);
  return 1;
}

/* r:weight(node) -> weight | nil */
static int ring_weight(lua_State *L) {
  pogo_ring *r = ring_check(L);
  size_t len;
  ring_checkname(L, 2, &len);
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, -2) == LUA_TNIL) return 1;
  lua_pushnumber(L, r->nodes[lua_tointeger(L, -1) - 1].weight);
  return 1;
}

/* r:size() / #r -> number of nodes */
static int ring_size(lua_State *L) {
  pogo_ring *r = ring_check(L);
  lua_pushinteger(L, r->nnodes - r->nremoved);
  return 1;
}

/* r:points() -> number of points on the ring */
static int ring_points(lua_State *L) {
  pogo_ring *r = ring_check(L);
  ring_settle(L, r);
  lua_pushinteger(L, (lua_Integer)r->count);
  return 1;
}

/* r:point(i) -> hash, node: the i-th point in ring order (1-based), its hash
 * as a Lua integer holding the 64 bits (compare with math.ult); for specs and
 * tools. Out of range -> nil. */
static int ring_point(lua_State *L) {
  pogo_ring *r = ring_check(L);
  ring_settle(L, r);
  lua_Integer i = luaL_checkinteger(L, 2);
  if (i < 1 || (lua_Unsigned)i > r->count) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushinteger(L, (lua_Integer)r->hash[i - 1]);
  lua_getiuservalue(L, 1, 1);
  lua_rawgeti(L, -1, (lua_Integer)r->owner[i - 1] + 1);
  lua_remove(L, -2);
  return 2;
}

/* r:vnodes() -> points per node of weight 1 */
static int ring_vnodes(lua_State *L) {
  pogo_ring *r = ring_check(L);
  lua_pushinteger(L, r->vnodes);
  return 1;
}

/* r:memory() -> bytes of C memory held (arrays as allocated, excluding the names table) */
static int ring_memory(lua_State *L) {
  pogo_ring *r = ring_check(L);
  ring_settle(L, r);
  size_t bytes = sizeof *r + r->hash_cap * sizeof(uint64_t) + r->owner_cap * sizeof(uint32_t) +
                 (size_t)r->nodecap * sizeof(ring_node) + r->index_cap * sizeof(uint32_t);
  lua_pushinteger(L, (lua_Integer)bytes);
  return 1;
}

static int ring_tostring(lua_State *L) {
  pogo_ring *r = ring_check(L);
  ring_settle(L, r);
  lua_pushfstring(L, "pogo.ring (%d nodes, %d points, vnodes %d)", (int)r->nnodes,
                  (int)r->count, (int)r->vnodes);
  return 1;
}

static int ring_gc(lua_State *L) {
  pogo_ring *r = ring_check(L);
  ring_realloc(L, r->hash, r->hash_cap * sizeof(uint64_t), 0);
  ring_realloc(L, r->owner, r->owner_cap * sizeof(uint32_t), 0);
  ring_realloc(L, r->nodes, (size_t)r->nodecap * sizeof(ring_node), 0);
  ring_realloc(L, r->index, r->index_cap * sizeof(uint32_t), 0);
  ring_realloc(L, r->scratch, r->scratch_cap, 0);
  memset(r, 0, sizeof *r);
  r->vnodes = 1;
  return 0;
}

/* ring_new([opts]) -> ring; opts.vnodes (default RING_DEFAULT_VNODES) */
static int ring_new(lua_State *L) {
  lua_Integer vnodes = RING_DEFAULT_VNODES;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "vnodes");
    if (!lua_isnil(L, -1)) {
      int isint;
      vnodes = lua_tointegerx(L, -1, &isint);
      if (!isint || lua_type(L, -1) != LUA_TNUMBER || vnodes < 1 || vnodes > (lua_Integer)RING_MAX_VNODES)
        luaL_argerror(L, 1, lua_pushfstring(L, "vnodes must be an integer in 1..%d",
                                             (int)RING_MAX_VNODES));
    }
    lua_pop(L, 1);
  }
  pogo_ring *r = (pogo_ring *)lua_newuserdatauv(L, sizeof *r, 1);
  memset(r, 0, sizeof *r);
  r->vnodes = (uint32_t)vnodes;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_setmetatable(L, -2);
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

void pogo_ring_register(lua_State *L, const pogo_codec_ext *ext) {
  static const luaL_Reg methods[] = {
    {"add", ring_add}, {"remove", ring_remove}, {"key_to_node", ring_key_to_node},
    {"key_to_nodes", ring_key_to_nodes}, {"nodes", ring_nodes}, {"weight", ring_weight}, {"shares", ring_shares},
    {"size", ring_size}, {"points", ring_points}, {"point", ring_point}, {"vnodes", ring_vnodes},
    {"memory", ring_memory}, {NULL, NULL}};
  static const luaL_Reg meta[] = {
    {"__len", ring_size}, {"__tostring", ring_tostring}, {"__gc", ring_gc}, {NULL, NULL}};
  luaL_newmetatable(L, RING_MT); /* mt (its __name names the type in errors) */
  lua_newtable(L);               /* mt, methods */
  lua_pushvalue(L, -2);
  lua_pushlightuserdata(L, (void *)ext);
  luaL_setfuncs(L, methods, 2);
  lua_setfield(L, -2, "__index");
  lua_pushvalue(L, -1);
  lua_pushlightuserdata(L, (void *)ext);
  luaL_setfuncs(L, meta, 2);
  lua_pushliteral(L, "not a public metatable");
  lua_setfield(L, -2, "__metatable");
  lua_pushcclosure(L, ring_new, 1); /* consumes mt */
  lua_setfield(L, -2, "ring_new");
  lua_pushinteger(L, RING_DEFAULT_VNODES);
  lua_setfield(L, -2, "ring_default_vnodes");
}
