/*
 * proc.c: the process table: slots, spawn, exit and its fan-out (links,
 * monitors, names), and the external process that stands for the main chunk.
 *
 * Contract
 * - A process lives in a slot; its pid carries (serial, slot) so lookups are
 *   O(1) and a reused slot never matches an old pid.
 * - A process exits exactly once: pogo_proc_finish runs the fan-out (exit
 *   signals to links, DOWN to monitors, names released; for links and
 *   monitors on other nodes through remote.h) and frees the slot.
 * - Exits caused by exits (links) are queued and drained iteratively, so long
 *   link chains never recurse on the C stack.
 * - The running process is never torn down under its own feet: a kill aimed at
 *   it is recorded (PF_PENDING_EXIT) and carried out when it yields back to the
 *   scheduler.
 * - A process's coroutine is made when it first runs (sched.c). When its body
 *   returns, the coroutine (then empty, as a new one) goes to a pool of at
 *   most pool_max (set_thread_pool, default POGO_DEFAULT_THREAD_POOL) and
 *   runs the next process that starts: making and collecting a coroutine
 *   was half the cost of a short process (measured: README). So
 *   coroutine.running() of a process that has returned may be the coroutine
 *   of a later one: per-process data is keyed by pogo.self(). A coroutine
 *   that ended otherwise (crash, kill) is closed and left to the collector.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime.h"
#include "remote.h"

static uint32_t slot_alloc(pogo_node *N) {
  if (N->nfree) return N->free_slots[--N->nfree];
  if (N->nslots + 1 >= N->cap) {
    uint32_t ncap = N->cap ? N->cap * 2 : 256;
    pogo_proc **np = realloc(N->procs, ncap * sizeof *np);
    if (!np) return 0;
    memset(np + N->cap, 0, (ncap - N->cap) * sizeof *np);
    N->procs = np;
    N->cap = ncap;
  }
  return ++N->nslots;
}

static void slot_free(pogo_node *N, uint32_t slot) {
  N->procs[slot] = NULL;
  if (N->nfree == N->free_cap) {
    uint32_t ncap = N->free_cap ? N->free_cap * 2 : 256;
    uint32_t *nf = realloc(N->free_slots, ncap * sizeof *nf);
    if (!nf) return; /* the slot is simply not reused */
    N->free_slots = nf;
    N->free_cap = ncap;
  }
  N->free_slots[N->nfree++] = slot;
}

pogo_proc *pogo_proc_get(pogo_node *N, const pogo_id *pid) {
  if (pid->node != 0 || pid->creation != N->creation || pid->kind != POGO_KIND_PID) return NULL;
  if (pid->slot == 0 || pid->slot > N->nslots) return NULL;
  pogo_proc *p = N->procs[pid->slot];
  if (!p || p->serial != pid->serial || p->state == PS_EXITING) return NULL;
  return p;
}

void pogo_proc_id(pogo_node *N, pogo_proc *p, pogo_id *out) {
  out->serial = p->serial;
  out->node = 0;
  out->creation = N->creation;
  out->slot = p->slot;
  out->kind = POGO_KIND_PID;
}

void pogo_proc_push_pid(pogo_node *N, lua_State *L, pogo_proc *p) {
  pogo_chunks_push(L, &N->pids);
  pogo_chunks_get(L, lua_gettop(L), p->slot);
  lua_remove(L, -2);
}

/* New process record with its pid, left on the stack; NULL on allocation
 * failure (nothing pushed). */
static pogo_proc *proc_new(pogo_node *N, lua_State *L) {
  pogo_proc *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  uint32_t slot = slot_alloc(N);
  if (!slot) { free(p); return NULL; }
  p->serial = N->next_serial++;
  p->slot = slot;
  p->heap_pos = -1;
  p->mb_head = p->mb_tail = 1;
  N->procs[slot] = p;
  if (++N->live > N->live_high) {
    N->live_high = N->live;
    N->live_high_at = uv_now(N->loop);
  }
  pogo_id id;
  pogo_proc_id(N, p, &id);
  pogo_chunks_push(L, &N->pids);
  pogo_ident_push_new_pid(N, L, &id); /* (a new serial: not in the cache) */
  lua_pushvalue(L, -1);
  pogo_chunks_set(L, &N->pids, -3, slot);
  lua_remove(L, -2);
  return p;
}

pogo_proc *pogo_proc_external(pogo_node *N, lua_State *L) {
  if (N->external) return N->external;
  pogo_proc *p = proc_new(N, L);
  if (!p) luaL_error(L, "pogo: out of memory");
  lua_pop(L, 1);
  p->flags = PF_EXTERNAL | PF_TRAP_EXIT;
  p->state = PS_WAITING;
  N->external = p;
  return p;
}

/* The calling process: the running one (L is its coroutine or a coroutine
 * nested in it), or the external process when called from the main chunk.
 * *is_main is set accordingly. Raises inside a bare luv callback only when
 * `blocking` is asked for by the caller (see pogo_proc_blocking). */
pogo_proc *pogo_proc_current(pogo_node *N, lua_State *L, int *is_main) {
  if (N->current) {
    if (is_main) *is_main = 0;
    return N->current;
  }
  if (is_main) *is_main = 1;
  return pogo_proc_external(N, L);
}

/* ---- exits ---- */

static void exq_push(pogo_node *N, pogo_proc *p) {
  if (N->exq_len == N->exq_cap) {
    uint32_t ncap = N->exq_cap ? N->exq_cap * 2 : 64;
    pogo_rq_entry *nq = realloc(N->exq, ncap * sizeof *nq);
    if (!nq) return; /* cannot happen in practice; the process then stays */
    N->exq = nq;
    N->exq_cap = ncap;
  }
  N->exq[N->exq_len].serial = p->serial;
  N->exq[N->exq_len].slot = p->slot;
  N->exq_len++;
}

static void set_pending(pogo_node *N, lua_State *L, pogo_proc *p, int reason_idx) {
  reason_idx = lua_absindex(L, reason_idx);
  pogo_node_push_ref(L, N->ref_pending);
  lua_pushvalue(L, reason_idx);
  lua_rawseti(L, -2, p->slot);
  lua_pop(L, 1);
  p->flags |= PF_PENDING;
}

void pogo_proc_kill(pogo_node *N, lua_State *L, pogo_proc *p, int reason_idx) {
  if (p->flags & PF_EXTERNAL) return; /* the main chunk cannot be killed */
  if (p->state == PS_EXITING || (p->flags & PF_PENDING_EXIT)) return;
  set_pending(N, L, p, reason_idx);
  if (p == N->current) {
    p->flags |= PF_PENDING_EXIT;
    return;
  }
  p->state = PS_EXITING;
  pogo_timer_cancel(N, p);
  exq_push(N, p);
  pogo_proc_drain_exits(N, L);
}

void pogo_proc_drain_exits(pogo_node *N, lua_State *L) {
  if (N->exiting_drain) return;
  N->exiting_drain = 1;
  while (N->exq_len) {
    pogo_rq_entry e = N->exq[--N->exq_len];
    pogo_proc *p = e.slot <= N->nslots ? N->procs[e.slot] : NULL;
    if (!p || p->serial != e.serial) continue;
    lua_checkstack(L, 8);
    pogo_node_push_ref(L, N->ref_pending);
    lua_rawgeti(L, -1, p->slot);
    lua_remove(L, -2);
    pogo_proc_finish(N, L, p, -1);
    lua_pop(L, 1);
  }
  N->exiting_drain = 0;
}

static void close_thread(lua_State *co, lua_State *from) {
#if LUA_VERSION_RELEASE_NUM >= 50406
  lua_closethread(co, from);
#else
  (void)from;
  lua_resetthread(co);
#endif
}

void pogo_proc_finish(pogo_node *N, lua_State *L, pogo_proc *p, int reason_idx) {
  reason_idx = lua_absindex(L, reason_idx);
  lua_checkstack(L, 12);
  /* the node's bookkeeping, even inside another process's slice: it may use
   * the headroom beyond max_memory (mem.c), so an exit is never half done */
  int strict = pogo_mem_strict(N, 0);
  p->state = PS_EXITING;
  pogo_timer_cancel(N, p);
  pogo_id me;
  pogo_proc_id(N, p, &me);
  /* (N->pids keeps its pid, the one the messages below name, until the end) */
  int top = lua_gettop(L);
  pogo_names_release(N, L, p);

  /* Detach the sets first: the fan-out may touch other processes' sets. */
  pogo_idset links = p->links;
  pogo_monset watchers = p->watchers, watching = p->watching;
  memset(&p->links, 0, sizeof p->links);
  memset(&p->watchers, 0, sizeof p->watchers);
  memset(&p->watching, 0, sizeof p->watching);

  for (uint32_t i = 0; i < watching.n; i++) {
    pogo_mon *m = &watching.v[i];
    pogo_proc *t = pogo_proc_get(N, &m->other);
    if (t) pogo_monset_remove_pair(&t->watchers, m->ref, &me);
    else if (m->other.node != 0) pogo_remote_demonitor(N, L, &me, m->ref, &m->other);
  }
  for (uint32_t i = 0; i < watchers.n; i++) {
    pogo_mon *m = &watchers.v[i];
    pogo_links_send_down(N, L, &m->other, m->ref, &me, reason_idx);
  }
  for (uint32_t i = 0; i < links.n; i++) {
    pogo_id *o = &links.v[i];
    if (o->node != 0) {
      pogo_remote_exit(N, L, &me, o, reason_idx, 1);
      continue;
    }
    pogo_proc *q = pogo_proc_get(N, o);
    if (!q) continue;
    pogo_idset_remove(&q->links, &me);
    pogo_links_signal_exit(N, L, q, &me, reason_idx, 1);
  }
  pogo_idset_free(&links);
  pogo_monset_free(&watchers);
  pogo_monset_free(&watching);

  /* Lua side */
  if (p->co && (p->flags & PF_NO_CLOSE)) {
    pogo_node_log(N, "a process (serial %llu) ended by the %d ms bound inside a call from C: its __close handlers "
                  "were not run (Lua had turned its hooks off, and a handler that looped would freeze the node)",
                  (unsigned long long)me.serial, POGO_STUCK_MS);
  } else if (p->co && p != N->current && !(p->flags & PF_RETURNED)) {
    pogo_chunks_push(L, &N->threads);
    pogo_chunks_get(L, lua_gettop(L), p->slot); /* keep the thread alive while closing it */
    pogo_preempt_closing(N, p->co, 1); /* (a __close that loops is cut short) */
    close_thread(p->co, L);
    pogo_preempt_closing(N, p->co, 0);
    lua_pop(L, 2);
  }
  /* its coroutine (or its body, if it never ran) */
  pogo_chunks_push(L, &N->threads);
  if (p->co && (p->flags & PF_RETURNED) && N->npool < N->pool_max) {
    pogo_node_push_ref(L, N->ref_pool);
    pogo_chunks_get(L, lua_gettop(L) - 1, p->slot);
    lua_rawseti(L, -2, ++N->npool); /* (the pool's array part is made for pool_max) */
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  pogo_chunks_set(L, &N->threads, -2, p->slot);
  lua_pop(L, 1);
  pogo_chunks_push(L, &N->pids);
  lua_pushnil(L);
  pogo_chunks_set(L, &N->pids, -2, p->slot);
  lua_pop(L, 1);
  if (p->flags & PF_MBOX) {
    pogo_node_push_ref(L, N->ref_mbox);
    lua_pushnil(L);
    lua_rawseti(L, -2, p->slot);
    lua_pop(L, 1);
  }
  if (p->flags & PF_PENDING) {
    pogo_node_push_ref(L, N->ref_pending);
    lua_pushnil(L);
    lua_rawseti(L, -2, p->slot);
    lua_pop(L, 1);
  }
  if (N->external == p) N->external = NULL;
  free(p->abandoned);
  slot_free(N, p->slot);
  N->live--;
  free(p);
  lua_settop(L, top);
  pogo_proc_drain_exits(N, L);
  pogo_mem_strict(N, strict);
}

void pogo_proc_free_all(pogo_node *N, lua_State *L) {
  (void)L;
  for (uint32_t s = 1; s <= N->nslots; s++) {
    pogo_proc *p = N->procs[s];
    if (!p) continue;
    pogo_idset_free(&p->links);
    pogo_monset_free(&p->watchers);
    pogo_monset_free(&p->watching);
    free(p->abandoned);
    free(p);
    N->procs[s] = NULL;
  }
  N->live = 0;
  N->external = NULL;
  N->rq_len = 0;
  N->heap_len = 0;
}

lua_State *pogo_proc_pooled_thread(pogo_node *N, lua_State *L) {
  if (!N->npool) return NULL;
  pogo_node_push_ref(L, N->ref_pool);
  lua_rawgeti(L, -1, N->npool);
  lua_pushnil(L);
  lua_rawseti(L, -3, N->npool--);
  lua_remove(L, -2);
  return lua_tothread(L, -1);
}

/* set_thread_pool(n) -> previous: keep up to n coroutines of returned
 * processes for new ones (0: none, every process gets a new coroutine) */
static int l_set_thread_pool(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  lua_Integer prev = N->pool_max;
  if (lua_isnoneornil(L, 1)) {
    lua_pushinteger(L, prev);
    return 1;
  }
  lua_Integer n = luaL_checkinteger(L, 1);
  if (n < 0 || n > 65536) return luaL_argerror(L, 1, "thread pool: 0 to 65536 coroutines");
  pogo_node_push_ref(L, N->ref_pool);
  while (N->npool > (uint32_t)n) { /* the surplus goes to the collector */
    lua_pushnil(L);
    lua_rawseti(L, -2, N->npool--);
  }
  lua_pop(L, 1);
  N->pool_max = (uint32_t)n;
  lua_pushinteger(L, prev);
  return 1;
}

/* ---- Lua API ---- */

/* spawn_impl(fn, ...) with optional link/monitor to the caller. The
 * coroutine is made when the process first runs (sched.c, start_thread):
 * until then its slot in N->threads holds the body, or {body, args...}. A
 * spawn then costs no coroutine, and a process that ends before the next
 * starts hands its memory on while it is still in the cache. */
static int spawn_impl(lua_State *L, int link, int monitor) {
  pogo_node *N = POGO_NODE(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  int n = lua_gettop(L);
  pogo_proc *parent = (link || monitor) ? pogo_proc_current(N, L, NULL) : NULL;
  pogo_proc *p = proc_new(N, L); /* its pid on the stack, at n + 1 */
  if (!p) return luaL_error(L, "pogo.spawn: out of memory");
  pogo_chunks_push(L, &N->threads);
  if (n == 1) {
    lua_pushvalue(L, 1);
  } else {
    lua_createtable(L, n, 0);
    for (int i = 1; i <= n; i++) {
      lua_pushvalue(L, i);
      lua_rawseti(L, -2, i);
    }
  }
  pogo_chunks_set(L, &N->threads, -2, p->slot);
  lua_settop(L, n + 1);
  p->nargs = n - 1;
  p->resume = RK_START;
  pogo_sched_enqueue(N, p);
  pogo_id cid;
  pogo_proc_id(N, p, &cid);
  if (link) {
    pogo_id pid;
    pogo_proc_id(N, parent, &pid);
    pogo_idset_add(&parent->links, &cid);
    pogo_idset_add(&p->links, &pid);
  }
  if (monitor) {
    pogo_id pid, ref = {.serial = N->next_ref++, .creation = N->creation, .kind = POGO_KIND_REF};
    pogo_proc_id(N, parent, &pid);
    pogo_monset_add(&p->watchers, ref.serial, &pid);
    pogo_monset_add(&parent->watching, ref.serial, &cid);
    pogo_ident_push(N, L, &ref);
    return 2;
  }
  return 1;
}

static int l_spawn(lua_State *L) { return spawn_impl(L, 0, 0); }
static int l_spawn_link(lua_State *L) { return spawn_impl(L, 1, 0); }
static int l_spawn_monitor(lua_State *L) { return spawn_impl(L, 0, 1); }

static int l_self(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_proc_push_pid(N, L, pogo_proc_current(N, L, NULL));
  return 1;
}

/* alive(pid) -> boolean (local pids; remote pids raise) */
static int l_alive(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_id id;
  if (!pogo_ident_is_pid(L, 1, &id)) return luaL_argerror(L, 1, "pid expected");
  if (id.node != 0) return luaL_error(L, "pogo.alive: %s is not a local pid", luaL_tolstring(L, 1, NULL));
  lua_pushboolean(L, pogo_proc_get(N, &id) != NULL);
  return 1;
}

/* processes() -> array of the pids of live processes */
static int l_processes(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  lua_createtable(L, (int)N->live, 0);
  lua_Integer i = 0;
  for (uint32_t s = 1; s <= N->nslots; s++) {
    pogo_proc *p = N->procs[s];
    if (!p || p->state == PS_EXITING) continue;
    pogo_proc_push_pid(N, L, p);
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

/* Push an array of the pids at the other end of p's links. */
static void push_links(pogo_node *N, lua_State *L, const pogo_proc *p) {
  lua_createtable(L, (int)p->links.n, 0);
  for (uint32_t i = 0; i < p->links.n; i++) {
    pogo_ident_push(N, L, &p->links.v[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* Push an array of the refs of a monitor set (the monitors p holds). */
static void push_refs(pogo_node *N, lua_State *L, const pogo_monset *s) {
  lua_createtable(L, (int)s->n, 0);
  for (uint32_t i = 0; i < s->n; i++) {
    pogo_id ref = {.serial = s->v[i].ref, .node = 0, .creation = N->creation, .slot = 0, .kind = POGO_KIND_REF};
    pogo_ident_push(N, L, &ref);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* process_info(pid) -> table | nil, with Erlang's names: status
 * ("runnable", "running", "waiting", "sleeping" or "exiting"),
 * message_queue_len, reductions (preempt.c), links (pids), monitors (refs of
 * the monitors it holds), monitored_by (pids of the processes monitoring
 * it), trap_exit, registered_name (when it has one); state and messages
 * are the older names of status and message_queue_len */
static int l_process_info(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_id id;
  if (!pogo_ident_is_pid(L, 1, &id)) return luaL_argerror(L, 1, "pid expected");
  pogo_proc *p = pogo_proc_get(N, &id);
  if (!p) return 0;
  static const char *const states[] = {"free", "runnable", "running", "waiting", "sleeping", "exiting"};
  lua_createtable(L, 0, 8);
  lua_pushstring(L, states[p->state]);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "status");
  lua_setfield(L, -2, "state"); /* the name before Erlang's */
  lua_pushinteger(L, p->mb_tail - p->mb_head + (p->resume == RK_HANDED));
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "message_queue_len");
  lua_setfield(L, -2, "messages"); /* the name before Erlang's */
  lua_pushinteger(L, (lua_Integer)p->reductions);
  lua_setfield(L, -2, "reductions");
  push_links(N, L, p);
  lua_setfield(L, -2, "links");
  push_refs(N, L, &p->watching);
  lua_setfield(L, -2, "monitors");
  lua_createtable(L, (int)p->watchers.n, 0);
  for (uint32_t i = 0; i < p->watchers.n; i++) {
    pogo_ident_push(N, L, &p->watchers.v[i].other);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "monitored_by");
  lua_pushboolean(L, (p->flags & PF_TRAP_EXIT) != 0);
  lua_setfield(L, -2, "trap_exit");
  pogo_node_push_ref(L, N->ref_slotname);
  if (lua_rawgeti(L, -1, p->slot) != LUA_TNIL) lua_setfield(L, -3, "registered_name");
  else lua_pop(L, 1);
  lua_pop(L, 1);
  return 1;
}

void pogo_proc_register(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"spawn", l_spawn}, {"spawn_link", l_spawn_link}, {"spawn_monitor", l_spawn_monitor},
    {"self", l_self}, {"alive", l_alive},
    {"processes", l_processes}, {"process_info", l_process_info},
    {"set_thread_pool", l_set_thread_pool}, {NULL, NULL}};
  pogo_node_setfuncs(L, fns);
}
