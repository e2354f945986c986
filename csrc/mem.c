/*
 * mem.c: the node's memory: a counting allocator on its Lua state, the
 * max_memory limit, and a reserve for when malloc itself fails.
 *
 * Contract
 * - pogo_mem_install wraps the Lua state's allocator (lua_setallocf, the
 *   original function and its ud kept); `used` starts at the bytes Lua had
 *   already allocated (lua_gc COUNT/COUNTB) and follows every allocation,
 *   so it always equals collectgarbage("count") in bytes. pogo_mem_uninstall
 *   (the node's __gc, during lua_close) puts the original back before Lua
 *   frees the rest: blocks allocated through the wrapper are the original's.
 *   If another wrapper was installed over this one, it stays (and so does
 *   this record, which that wrapper may still call).
 * - max_memory (0: none) bounds the Lua heap. Allocations are "strict" while
 *   a process runs or a frame is decoded (pogo_mem_strict): one that would
 *   pass the limit fails (Lua then runs an emergency collection and retries,
 *   and raises "not enough memory" if that does not help), so the process
 *   that made it exits "out of memory" (at the end of its slice, even if it
 *   caught the error with pcall and went on: PF_OOM, sched.c; an allocation
 *   that Lua's retry after its emergency collection gets does not count) and
 *   a message too big is dropped.
 *   Otherwise (the scheduler's and the transport's own work, the main
 *   chunk) allocations may go `headroom` past it, so exits, DOWN messages,
 *   restarts and log lines can still be made once a process hit the limit.
 *   Shrinking never fails (Lua relies on it).
 * - When malloc returns NULL outside strict mode, the reserve (RESERVE bytes
 *   of address space taken at install) is freed and the allocation retried:
 *   the node's own work goes on under `ulimit -v` too, while processes fail
 *   alone. The reserve is taken back (pogo_mem_tidy, after each batch) once
 *   malloc can give it again; its release is logged there, not in the
 *   allocator.
 * - A message from another node is admitted before it is decoded
 *   (pogo_mem_admit): when the heap plus what decoding it may take passes
 *   max_memory, a full collection runs (at most every ADMIT_GC_MS) and, if
 *   that does not make room, the message is dropped undecoded. Otherwise each
 *   message of a flood to a process that does not read its mailbox failed
 *   an allocation, and Lua ran an emergency full collection of the whole
 *   heap for each one: the node froze.
 * - Transport buffers and other C allocations are not Lua heap: max_memory
 *   does not count them (each connection's backlog has its own bound).
 * - Memory the collector freed goes back to the system (glibc's malloc_trim,
 *   from pogo_mem_tidy after a batch): malloc keeps freed blocks for reuse,
 *   so without it a node's RSS stays at the highest its heap ever reached
 *   (a burst of messages, a major collection that came late) and grows with
 *   fragmentation under churn. A trim runs when the heap has shrunk by
 *   TRIM_MIN bytes and a quarter since its high point after the last trim,
 *   at most once every TRIM_EVERY_MS: a heap that only grows, or moves by
 *   small steps, never pays for it. Elsewhere than glibc it does nothing.
 * - What many ended processes leave is collected at once: when ENDED_MIN or
 *   more processes were alive at once, ENDED_AGE_MS or more ago, and three
 *   quarters of them have ended since, pogo_mem_tidy runs a full collection
 *   once no process is ready to run (100,000 that end in a stream of
 *   batches make one or two), unless the host stopped the collector; counted in
 *   memory().collections. A burst (300,000 spawns queued and run within a
 *   few hundred ms) is left to the collector's own pace: a full collection
 *   inside it made it twice as slow. In Lua's generational mode
 *   (lua.c's default) processes that lived through collections are old, and
 *   old garbage waits for a major collection, which comes when the heap has
 *   doubled since the last: after 100,000 idle processes ended, 108 MiB of
 *   its 113 MiB heap were theirs (live: 4.9), and as minor collections are sized
 *   on the whole heap, the node spawned about a quarter slower meanwhile
 *   (bench/local.lua: 1.57-1.60 M/s, 1.97-2.17 with this collection; its
 *   pogo.call 0.49 M/s, 0.58-0.65 with it). Processes
 *   that come and go in smaller numbers die young and cost nothing here.
 */
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "runtime.h"

#define RESERVE (8u << 20)
#define MIN_HEADROOM ((size_t)4 << 20)
#define RETAKE_MS 100
#define ADMIT_GC_MS 100 /* pogo_mem_admit collects at most this often */
#define TRIM_MIN ((size_t)4 << 20)
#define TRIM_EVERY_MS 250
#define ENDED_MIN 10000   /* processes alive at once, most of them ended since: a full collection */
#define ENDED_AGE_MS 1000 /* ... if that many were alive at least this long ago */

typedef struct pogo_mem {
  lua_Alloc f; /* the allocator this one wraps */
  void *ud;
  pogo_node *N;
  size_t used;     /* bytes of Lua heap */
  size_t peak;     /* highest `used` seen */
  size_t high;     /* highest `used` since the last trim */
  uint64_t trim_at; /* no trim before (loop time, ms) */
  uint64_t trims;   /* malloc_trim calls */
  uint64_t collections; /* full collections after processes ended */
  size_t limit;    /* max_memory, 0 = none */
  size_t headroom; /* beyond the limit, outside strict mode (N->mem_strict) */
  void *reserve;
  int released;      /* the reserve was given up and not yet logged */
  uint64_t refused;  /* allocations failed by the limit */
  uint64_t failed;   /* allocations malloc failed */
  uint64_t retake_at;
  uint64_t admit_gc_at; /* no collection for pogo_mem_admit before (loop time, ms) */
  void *refused_ptr;    /* the last allocation refused to a process (its block and new size): */
  size_t refused_size;  /* refused twice in a row, it raises (Lua's retry) */
} pogo_mem;

/* An allocation of the running process failed (the limit, or malloc). Lua
 * retries one once, after an emergency collection: failed again, it raises
 * the memory error, and the process ends "out of memory" even if it catches
 * it (PF_OOM, sched.c). */
static void refused(pogo_mem *m, void *ptr, size_t nsize) {
  pogo_proc *p = m->N ? m->N->current : NULL;
  if (!p) return;
  if (m->refused_size == nsize && m->refused_ptr == ptr) {
    p->flags |= PF_OOM;
    m->refused_size = 0; /* (the next refusal, of any process, is a first try) */
    return;
  }
  m->refused_ptr = ptr;
  m->refused_size = nsize;
}

static void *mem_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  pogo_mem *m = ud;
  size_t old = ptr ? osize : 0; /* for a new block osize is a type tag */
  if (nsize == 0) {
    m->f(m->ud, ptr, osize, 0);
    m->used -= old;
    return NULL;
  }
  int strict = m->N ? m->N->mem_strict : 0;
  if (nsize > old && m->limit) {
    size_t cap = strict ? m->limit : m->limit + m->headroom;
    if (m->used + (nsize - old) > cap) {
      m->refused++;
      if (strict) refused(m, ptr, nsize);
      return NULL;
    }
  }
  void *np = m->f(m->ud, ptr, osize, nsize);
  if (!np) {
    m->failed++;
    if (strict) refused(m, ptr, nsize); /* (under ulimit -v: else it holds what the reserve gave back) */
    if (strict || !m->reserve) return NULL;
    free(m->reserve);
    m->reserve = NULL;
    m->released = 1;
    np = m->f(m->ud, ptr, osize, nsize);
    if (!np) return NULL;
  }
  if (m->refused_size && ptr == m->refused_ptr && nsize == m->refused_size) m->refused_size = 0; /* a retry that did */
  m->used = m->used - old + nsize;
  if (m->used > m->high) {
    m->high = m->used;
    if (m->used > m->peak) m->peak = m->used;
  }
  return np;
}

void pogo_mem_install(pogo_node *N, lua_State *L) {
  if (N->mem) return;
  pogo_mem *m = calloc(1, sizeof *m);
  if (!m) return; /* the node runs without a limit or a reserve */
  m->N = N;
  m->f = lua_getallocf(L, &m->ud);
  m->used = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
  m->peak = m->high = m->used;
  m->reserve = malloc(RESERVE);
  lua_setallocf(L, mem_alloc, m);
  N->mem = m;
}

void pogo_mem_uninstall(pogo_node *N, lua_State *L) {
  pogo_mem *m = N->mem;
  if (!m) return;
  N->mem = NULL;
  void *ud = NULL;
  if (lua_getallocf(L, &ud) != mem_alloc || ud != m) {
    m->limit = 0; /* wrapped by someone else: it may still call us (the node goes) */
    m->N = NULL;
    return;
  }
  lua_setallocf(L, m->f, m->ud);
  free(m->reserve);
  free(m);
}

size_t pogo_mem_limit(pogo_node *N) { return N->mem ? N->mem->limit : 0; }

int pogo_mem_admit(pogo_node *N, size_t need) {
  pogo_mem *m = N->mem;
  if (!m || !m->limit || m->used + need <= m->limit) return 1;
  uint64_t now = uv_now(N->loop);
  if (now < m->admit_gc_at || !lua_gc(N->L, LUA_GCISRUNNING)) return 0;
  m->admit_gc_at = now + ADMIT_GC_MS;
  lua_gc(N->L, LUA_GCCOLLECT);
  return m->used + need <= m->limit;
}

size_t pogo_mem_room(pogo_node *N) {
  pogo_mem *m = N->mem;
  if (!m || !m->limit) return SIZE_MAX;
  return m->used < m->limit ? m->limit - m->used : 0;
}

/* Give the memory the collector freed back to the system (see the contract). */
static void give_back(pogo_node *N, pogo_mem *m) {
#ifdef __GLIBC__
  size_t drop = m->high - m->used;
  if (drop < TRIM_MIN || drop < m->high / 4) return;
  uint64_t now = uv_now(N->loop);
  if (now < m->trim_at) return;
  m->trim_at = now + TRIM_EVERY_MS;
  m->high = m->used;
  m->trims++;
  malloc_trim(0);
#else
  (void)N;
  (void)m;
#endif
}

/* Collect what many ended processes left behind (see the contract). */
static void collect_ended(pogo_node *N, pogo_mem *m) {
  if (N->live_high < ENDED_MIN || N->live > N->live_high / 4 || N->rq_len > 0) return;
  if (uv_now(N->loop) - N->live_high_at < ENDED_AGE_MS) return; /* a burst: its processes died young */
  N->live_high = N->live;
  if (!lua_gc(N->L, LUA_GCISRUNNING)) return; /* the host stopped the collector */
  m->collections++;
  lua_gc(N->L, LUA_GCCOLLECT);
}

void pogo_mem_tidy(pogo_node *N) {
  pogo_mem *m = N->mem;
  if (!m) return;
  collect_ended(N, m);
  give_back(N, m);
  if (m->reserve) return;
  uint64_t now = uv_now(N->loop);
  if (m->released) {
    m->released = 0;
    pogo_node_log(N, "malloc failed: gave up the %u MiB reserve so the node's own work goes on", RESERVE >> 20);
  }
  if (now < m->retake_at) return;
  m->retake_at = now + RETAKE_MS;
  m->reserve = malloc(RESERVE);
}

/* ---- Lua API ---- */

/* memory() -> {total =, limit =, headroom =, peak =, refused =, malloc_failed =, reserve =, trims =, collections =,
 * malloc_in_use =, malloc_free =}: bytes of the Lua heap (total = collectgarbage("count") * 1024);
 * the last two (glibc 2.33 and later) are the whole process's malloc, from mallinfo2 */
static int l_memory(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_mem *m = N->mem;
  size_t used = m ? m->used : (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
  lua_createtable(L, 0, 12); /* (after reading the count: it is not in it) */
  lua_pushinteger(L, (lua_Integer)used);
  lua_setfield(L, -2, "total");
  if (!m) return 1;
  if (m->limit) {
    lua_pushinteger(L, (lua_Integer)m->limit);
    lua_setfield(L, -2, "limit");
    lua_pushinteger(L, (lua_Integer)m->headroom);
    lua_setfield(L, -2, "headroom");
  }
  lua_pushinteger(L, (lua_Integer)m->peak);
  lua_setfield(L, -2, "peak");
  lua_pushinteger(L, (lua_Integer)m->refused);
  lua_setfield(L, -2, "refused");
  lua_pushinteger(L, (lua_Integer)m->failed);
  lua_setfield(L, -2, "malloc_failed");
  lua_pushboolean(L, m->reserve != NULL);
  lua_setfield(L, -2, "reserve");
  lua_pushinteger(L, (lua_Integer)m->trims);
  lua_setfield(L, -2, "trims");
  lua_pushinteger(L, (lua_Integer)m->collections);
  lua_setfield(L, -2, "collections");
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  /* the process's malloc (every node of it, C and Lua alike) */
  struct mallinfo2 mi = mallinfo2();
  lua_pushinteger(L, (lua_Integer)(mi.uordblks + mi.hblkhd));
  lua_setfield(L, -2, "malloc_in_use");
  lua_pushinteger(L, (lua_Integer)mi.fordblks);
  lua_setfield(L, -2, "malloc_free");
#endif
  return 1;
}

/* set_max_memory(bytes | nil) -> previous limit (0 = none). The limit must
 * leave room above what the heap holds now. */
static int l_set_max_memory(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_mem *m = N->mem;
  if (!m) return luaL_error(L, "pogo: max_memory needs the counting allocator, which could not be installed");
  lua_Integer prev = (lua_Integer)m->limit;
  lua_Integer n = luaL_optinteger(L, 1, 0);
  if (n < 0) return luaL_argerror(L, 1, "max_memory: bytes (0 or nil: no limit)");
  if (n > 0 && (size_t)n <= m->used)
    return luaL_error(L, "max_memory: %I bytes is not above what the node uses now (%I bytes)", n,
                      (lua_Integer)m->used);
  m->limit = (size_t)n;
  m->headroom = m->limit / 8 > MIN_HEADROOM ? m->limit / 8 : MIN_HEADROOM;
  lua_pushinteger(L, prev);
  return 1;
}

void pogo_mem_register(lua_State *L) {
  static const luaL_Reg fns[] = {{"memory", l_memory}, {"set_max_memory", l_set_max_memory}, {NULL, NULL}};
  pogo_node_setfuncs(L, fns);
}
