/*
 * sched.c: the run queue and the resume loop, and driving the loop from the
 * main chunk (run, stop, sleep, yield; hosts that own the loop: host.c).
 *
 * Contract
 * - Ready processes are resumed in FIFO order from a libuv idle handle, in
 *   batches, so I/O and luv callbacks interleave with process work. A batch
 *   runs under lua_pcall (pogo_guard): an error in the scheduler's own work
 *   (out of memory) ends the batch, logged, never the interpreter.
 * - A batch ends after BATCH_BUDGET resumes, after BATCH_NS (10 ms) of
 *   resumes, when the run queue is empty, or after a preempted slice
 *   (preempt.c: it ran a whole time slice): a process that spins cannot keep
 *   the loop from I/O, timers and signals, and neither can processes that
 *   keep yielding (pogo.yield, sleep 0) or messaging each other in short
 *   slices (20,000 slices of 0.1 ms held the loop 2 s before the time bound).
 * - While a process runs, allocations are strict (mem.c): past max_memory
 *   they fail in that process, which exits "out of memory" (LUA_ERRMEM).
 * - A process's first run gives it its coroutine (from the pool of proc.c, or
 *   a new one, in strict mode: if memory fails there it exits "out of
 *   memory"); until then its body and arguments wait in N->threads.
 * - A process's Lua error, its return, or an exit aimed at it ends that process
 *   only; the scheduler turns it into an exit reason ("normal", the pending
 *   reason, or a crash {error=, traceback=}).
 * - Blocking calls from the main chunk drive the loop with UV_RUN_ONCE until
 *   their condition holds; from a luv callback (pogo's or luv's own uv.run)
 *   they raise an error instead of re-entering the loop, and so they do from
 *   host code once a host owns the loop (pogo_host_embedded, host.c).
 * - Others may hold a caller back (the transport, while a connection's
 *   backlog is too big): pogo_sched_block_mode says how the caller can wait; a
 *   process is suspended (pogo_sched_suspend, no timer) until
 *   pogo_sched_resume, the main chunk drives the loop (pogo_sched_drive_while).
 */
#include <stdlib.h>
#include <string.h>
#include <luv.h>

#include "runtime.h"

#define BATCH_BUDGET 20000
#define BATCH_NS 10000000ull /* ... or after this long (looked at every BATCH_LOOK resumes) */
#define BATCH_LOOK 64

static int batch_fn(lua_State *L, void *arg) {
  (void)L;
  pogo_sched_run_batch(arg, BATCH_BUDGET);
  return 0;
}

static void idle_cb(uv_idle_t *h) {
  pogo_node *N = h->data;
  if (!N || N->closed) return;
  pogo_guard(N, batch_fn, N, "running processes", NULL, 0);
  pogo_mem_tidy(N);
}

/* The crash reason of a process whose coroutine failed (error value on co). */
static int crash_fn(lua_State *L, void *arg) {
  pogo_node *N = pogo_node_of(L);
  pogo_crash_push(N, L, arg);
  return 1;
}

void pogo_sched_enqueue(pogo_node *N, pogo_proc *p) {
  if (p->flags & (PF_IN_RUNQ | PF_EXTERNAL)) return;
  if (N->rq_len == N->rq_cap) {
    uint32_t ncap = N->rq_cap ? N->rq_cap * 2 : 256;
    pogo_rq_entry *nq = malloc(ncap * sizeof *nq);
    if (!nq) return; /* out of memory: the process stays blocked */
    for (uint32_t i = 0; i < N->rq_len; i++) nq[i] = N->rq[(N->rq_head + i) % N->rq_cap];
    free(N->rq);
    N->rq = nq;
    N->rq_cap = ncap;
    N->rq_head = 0;
  }
  uint32_t at = N->rq_head + N->rq_len;
  if (at >= N->rq_cap) at -= N->rq_cap;
  N->rq[at].serial = p->serial;
  N->rq[at].slot = p->slot;
  N->rq_len++;
  p->flags |= PF_IN_RUNQ;
  p->state = PS_RUNNABLE;
  if (!N->idle_active && N->uvh) {
    uv_idle_start(&N->uvh->idle, idle_cb);
    N->idle_active = 1;
  }
  if (N->host) pogo_host_wake(N); /* host code spawned or sent: wake the host */
}

void pogo_sched_wake(pogo_node *N, pogo_proc *p) {
  if (p->flags & PF_EXTERNAL) {
    N->ext_woken = 1;
    return;
  }
  pogo_timer_cancel(N, p);
  pogo_sched_enqueue(N, p);
}

static int new_thread_fn(lua_State *L) {
  lua_newthread(L);
  pogo_nested_mark_process(L);
  return 1;
}

/* The first run of p: take a coroutine from the pool (proc.c) or make one
 * (in strict mode: it is the process's own memory), and move its body and
 * arguments (N->threads, at thr_idx) onto it. NULL if memory fails; p is
 * then left as it was. */
static lua_State *start_thread(pogo_node *N, lua_State *L, pogo_proc *p, int thr_idx) {
  int strict = pogo_mem_strict(N, 1);
  lua_State *co = pogo_proc_pooled_thread(N, L);
  if (!co) {
    lua_pushcfunction(L, new_thread_fn);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK) goto out; /* the error is popped below */
    co = lua_tothread(L, -1);
  }
  int n = p->nargs + 1;
  if (!lua_checkstack(co, n + 1)) {
    co = NULL;
    goto out;
  }
  pogo_preempt_arm(N, co);
  pogo_chunks_get(L, thr_idx, p->slot);
  if (lua_type(L, -1) == LUA_TFUNCTION) {
    lua_xmove(L, co, 1);
  } else { /* {body, args...} */
    for (int i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
    lua_xmove(L, co, n);
    lua_pop(L, 1);
  }
  lua_pushvalue(L, -1);
  pogo_chunks_set(L, &N->threads, thr_idx, p->slot);
  p->co = co;
out:
  lua_pop(L, 1);
  pogo_mem_strict(N, strict);
  return co;
}

static void resume_one(pogo_node *N, lua_State *L, pogo_proc *p, int mbox_idx) {
  lua_State *co = p->co;
  int nargs = 0;
  switch (p->resume) {
    case RK_START:
      co = start_thread(N, L, p, mbox_idx + 1);
      if (!co) {
        lua_pushliteral(L, "out of memory");
        pogo_proc_finish(N, L, p, -1);
        lua_pop(L, 1);
        return;
      }
      nargs = p->nargs;
      break;
    case RK_MSG:
      if (p->mb_head < p->mb_tail) {
        lua_rawgeti(L, mbox_idx, p->slot);
        lua_rawgeti(L, -1, p->mb_head);
        lua_pushnil(L);
        lua_rawseti(L, -3, p->mb_head);
        if (++p->mb_head == p->mb_tail) p->mb_head = p->mb_tail = 1;
        lua_xmove(L, co, 1);
        lua_pop(L, 1);
        nargs = 1;
      }
      break;
    case RK_HANDED: /* mailbox.c put the message on its stack */
      nargs = 1;
      break;
    case RK_WAKE:
      lua_pushboolean(co, p->mb_tail != (uint32_t)p->nargs);
      nargs = 1;
      break;
    default:
      break;
  }
  p->resume = RK_NONE;
  p->flags &= (uint16_t)~PF_TIMER_FIRED;
  p->state = PS_RUNNING;
  p->reductions++;
  if (++N->slice == 0) N->slice = 1;
  N->current = p;
  p->critical = 0; /* a critical section ends when its slice does (preempt.c) */
  int nres = 0;
  int strict = pogo_mem_strict(N, 1);
  pogo_preempt_slice_begin(N);
  pogo_profile_slice_begin(N, co);
  int st = lua_resume(co, L, nargs, &nres);
  pogo_profile_slice_end(N);
  N->current = NULL;
  pogo_preempt_slice_end(N, p, co);
  pogo_mem_strict(N, strict);
  if (p->flags & PF_PENDING_EXIT) {
    p->flags &= (uint16_t)~(PF_PENDING_EXIT | PF_OOM);
    if (st == LUA_YIELD || st == LUA_OK) lua_pop(co, nres);
    pogo_node_push_ref(L, N->ref_pending);
    lua_rawgeti(L, -1, p->slot);
    pogo_proc_finish(N, L, p, -1);
    lua_pop(L, 2);
    return;
  }
  if (p->flags & PF_OOM) { /* it passed max_memory, caught the error and went on: it ends as it should have */
    p->flags &= (uint16_t)~PF_OOM;
    if (st == LUA_YIELD || st == LUA_OK) {
      lua_pop(co, nres);
      lua_pushliteral(L, "out of memory");
      pogo_proc_finish(N, L, p, -1);
      lua_pop(L, 1);
      return;
    }
  }
  if (st == LUA_YIELD) {
    lua_pop(co, nres);
    if (p->state == PS_RUNNING) pogo_sched_enqueue(N, p); /* plain coroutine.yield() */
  } else if (st == LUA_OK) {
    lua_pop(co, nres);
    p->flags |= PF_RETURNED;
    lua_pushliteral(L, "normal");
    pogo_proc_finish(N, L, p, -1);
    lua_pop(L, 1);
  } else {
    /* ended by preempt.c's bound, raised in a hook and not caught: Lua left
     * the coroutine's hooks off, so its __close handlers could not be cut
     * short; they are not run (proc.c) */
    if ((p->flags & PF_STUCK) && lua_type(co, -1) == LUA_TSTRING &&
        strncmp(lua_tostring(co, -1), POGO_STUCK_MSG, sizeof POGO_STUCK_MSG - 1) == 0)
      p->flags |= PF_NO_CLOSE;
    /* the crash reason (it allocates: guarded, "out of memory" if it cannot be made) */
    int top = lua_gettop(L);
    if (st == LUA_ERRMEM || pogo_guard(N, crash_fn, co, "recording a crash", NULL, 0) != LUA_OK) {
      lua_settop(L, top);
      lua_pushliteral(L, "out of memory");
    } /* else the crash reason is on L (N->L): pogo_guard keeps fn's results */
    pogo_proc_finish(N, L, p, -1);
    lua_pop(L, 1);
  }
}

int pogo_sched_run_batch(pogo_node *N, int budget) {
  lua_State *L = N->L;
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 20)) return 0;
  pogo_node_push_ref(L, N->ref_mbox);
  int mbox_idx = lua_gettop(L);
  pogo_chunks_push(L, &N->threads); /* at mbox_idx + 1 */
  int n = 0;
  uint64_t t0 = uv_hrtime();
  pogo_preempt_batch(N);
  while (N->rq_len && n < budget) {
    if (n && n % BATCH_LOOK == 0 && uv_hrtime() - t0 >= BATCH_NS) break; /* the loop's turn */
    pogo_rq_entry e = N->rq[N->rq_head];
    if (++N->rq_head == N->rq_cap) N->rq_head = 0;
    N->rq_len--;
    pogo_proc *p = e.slot <= N->nslots ? N->procs[e.slot] : NULL;
    if (!p || p->serial != e.serial) continue;
    p->flags &= (uint16_t)~PF_IN_RUNQ;
    if (p->state != PS_RUNNABLE) continue;
    N->preempted = 0;
    resume_one(N, L, p, mbox_idx);
    n++;
    if (N->preempted) break; /* a slice ran a whole time slice: the loop's turn */
    if (N->host) {
      if (pogo_host_out_of_time(N)) break; /* the host's step is over (host.c) */
    } else if (N->ext_woken && N->driving) {
      break; /* the main chunk waits in pogo_sched_drive for its message */
    }
  }
  lua_settop(L, top);
  if (!N->rq_len && N->idle_active && N->uvh) {
    uv_idle_stop(&N->uvh->idle);
    N->idle_active = 0;
  }
  return n;
}

static const char NESTED[] = "called from a coroutine nested in a process (only the process itself may block)";

/* Why the caller on L cannot block, or NULL: a process's own coroutine
 * yields, the main chunk drives the loop; host code, luv callbacks and
 * coroutines nested in a process cannot. */
static const char *cannot_block(pogo_node *N, lua_State *L) {
  if (N->current) {
    if (N->current->co != L) return NESTED;
    return lua_isyieldable(L) ? NULL
                              : "called where the process cannot yield (inside a Lua function called from C: a "
                                "metamethod, a table.sort comparator, a string.gsub function)";
  }
  if (pogo_host_code(N))
    return "cannot block in host code (the host owns the loop and calls pogo.step); spawn a process and block in it";
  if (N->driving) return "cannot block inside a luv callback (spawn a process instead)";
  luv_ctx_t *ctx = luv_context(L);
  if (ctx && ctx->mode != -1)
    return "cannot block inside a luv callback while uv.run is active (spawn a process instead)";
  return NULL;
}

/* Raise unless the caller may drive the loop (main chunk, loop not running). */
static void check_can_drive(pogo_node *N, lua_State *L, const char *what) {
  const char *why = N->current ? NESTED : cannot_block(N, L);
  if (why) luaL_error(L, "%s: %s", what, why);
}

/* check_block(what, level): raise, at the position `level` up the stack (as
 * error() counts), if the caller cannot block. A call that sends and then
 * waits (pogo.call, pogo.rpc, pogo.connect) asks first: otherwise its
 * request went out and only the wait raised. */
static int l_check_block(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  const char *what = luaL_checkstring(L, 1);
  int level = (int)luaL_optinteger(L, 2, 1);
  const char *why = cannot_block(N, L);
  if (!why) return 0;
  luaL_where(L, level);
  lua_pushfstring(L, "%s%s: %s", lua_tostring(L, -1), what, why);
  return lua_error(L);
}

int pogo_sched_drive(pogo_node *N, lua_State *L, pogo_proc *ext, uint32_t mb_tail0, int64_t timeout) {
  (void)L;
  ext->flags &= (uint16_t)~PF_TIMER_FIRED;
  if (timeout >= 0) pogo_timer_arm(N, ext, pogo_node_now(N) + (uint64_t)timeout);
  N->driving++;
  int result;
  for (;;) {
    N->ext_woken = 0;
    if (ext->mb_tail != mb_tail0) { result = 0; break; }
    if (ext->flags & PF_TIMER_FIRED) { result = 1; break; }
    int alive = uv_run(N->loop, UV_RUN_ONCE);
    if (!alive && !N->rq_len && ext->mb_tail == mb_tail0 && !(ext->flags & PF_TIMER_FIRED)) {
      result = -1;
      break;
    }
  }
  N->driving--;
  pogo_timer_cancel(N, ext);
  ext->flags &= (uint16_t)~PF_TIMER_FIRED;
  return result;
}

int pogo_sched_block_mode(pogo_node *N, lua_State *L) {
  if (N->current) return N->current->co == L && lua_isyieldable(L) ? POGO_BLOCK_YIELD : POGO_BLOCK_NONE;
  if (N->driving || pogo_host_embedded(N)) return POGO_BLOCK_NONE;
  luv_ctx_t *ctx = luv_context(L);
  if (ctx && ctx->mode != -1) return POGO_BLOCK_NONE;
  return POGO_BLOCK_DRIVE;
}

int pogo_sched_running(pogo_node *N, pogo_rq_entry *out) {
  if (!N->current) return -1;
  out->serial = N->current->serial;
  out->slot = N->current->slot;
  return 0;
}

void pogo_sched_suspend(pogo_node *N) {
  pogo_proc *p = N->current;
  if (!p) return;
  p->state = PS_SLEEPING;
  p->resume = RK_NONE;
}

void pogo_sched_resume(pogo_node *N, const pogo_rq_entry *e) {
  pogo_proc *p = e->slot <= N->nslots ? N->procs[e->slot] : NULL;
  if (p && p->serial == e->serial && p->state == PS_SLEEPING && p->heap_pos < 0) pogo_sched_enqueue(N, p);
}

void pogo_sched_drive_while(pogo_node *N, int (*busy)(void *arg), void *arg, int64_t timeout_ms) {
  uint64_t deadline = timeout_ms >= 0 ? pogo_node_now(N) + (uint64_t)timeout_ms : 0;
  N->driving++;
  while (busy(arg) && (timeout_ms < 0 || pogo_node_now(N) < deadline)) uv_run(N->loop, UV_RUN_ONCE);
  N->driving--;
}

/* sleep(ms) */
static int l_sleep(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  lua_Number ms_f = luaL_checknumber(L, 1);
  if (!(ms_f >= 0)) return luaL_argerror(L, 1, "non-negative milliseconds expected");
  if (ms_f > 1e15) ms_f = 1e15;
  lua_Integer ms = (lua_Integer)ms_f;
  if ((lua_Number)ms < ms_f) ms++; /* fractions round up */
  if (N->current) {
    pogo_proc *p = N->current;
    if (p->co != L) return luaL_error(L, "pogo.sleep: called from a coroutine nested in a process");
    p->state = PS_SLEEPING;
    p->resume = RK_NONE;
    pogo_timer_arm(N, p, pogo_node_now(N) + (uint64_t)ms);
    return lua_yield(L, 0);
  }
  check_can_drive(N, L, "pogo.sleep");
  pogo_proc *ext = pogo_proc_external(N, L);
  /* a sleep ignores messages: drive until the timer fires */
  ext->flags &= (uint16_t)~PF_TIMER_FIRED;
  pogo_timer_arm(N, ext, pogo_node_now(N) + (uint64_t)ms);
  N->driving++;
  while (!(ext->flags & PF_TIMER_FIRED)) uv_run(N->loop, UV_RUN_ONCE);
  N->driving--;
  ext->flags &= (uint16_t)~PF_TIMER_FIRED;
  return 0;
}

/* yield(): let other ready processes run */
static int l_yield(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  if (N->current) {
    if (N->current->co != L) return luaL_error(L, "pogo.yield: called from a coroutine nested in a process");
    N->current->state = PS_RUNNING;
    return lua_yield(L, 0);
  }
  check_can_drive(N, L, "pogo.yield");
  N->driving++;
  uv_run(N->loop, UV_RUN_NOWAIT);
  N->driving--;
  return 0;
}

/* run(): drive the loop until stop() or until nothing can happen any more */
static int l_run(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  check_can_drive(N, L, "pogo.run");
  N->stop_requested = 0;
  N->driving++;
  while (!N->stop_requested) {
    if (!uv_run(N->loop, UV_RUN_DEFAULT) && !N->rq_len) break;
  }
  N->driving--;
  N->stop_requested = 0;
  return 0;
}

/* stop_loop(): make run() return */
static int l_stop_loop(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  N->stop_requested = 1;
  /* only while pogo drives the loop: a stop flag left set would make the next
   * uv.run (ours or the host's) return at once */
  if (N->driving) uv_stop(N->loop);
  return 0;
}

/* now() -> loop time in ms */
static int l_now(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  lua_pushinteger(L, (lua_Integer)pogo_node_now(N));
  return 1;
}

void pogo_sched_register(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"sleep", l_sleep}, {"yield", l_yield}, {"run", l_run},
    {"stop_loop", l_stop_loop}, {"now", l_now}, {"check_block", l_check_block}, {NULL, NULL}};
  pogo_node_setfuncs(L, fns);
}

void pogo_sched_check_can_drive(pogo_node *N, lua_State *L, const char *what) {
  check_can_drive(N, L, what);
}
