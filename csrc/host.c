/*
 * host.c: running a node inside a host that owns its event loop (Prosody,
 * a cqueues program, a C server with its own epoll loop): pogo.fd(),
 * pogo.timeout(), pogo.step(), the wake-up of the host when host code makes
 * work, and the rule that host code never blocks.
 *
 * The node runs on luv's libuv loop; the host never runs that loop itself.
 * It watches one descriptor and keeps one timer:
 *   fd()       libuv's backend descriptor (an epoll fd on Linux): readable
 *              whenever one of the loop's sockets, or its async wake-up, is.
 *   timeout()  ms until the loop's next timer (pogo's process timers, the
 *              transport's heartbeats, luv timers), -1 for none, 0 when work
 *              is ready now.
 *   step()     does every piece of work that is ready without blocking and
 *              returns whether more is ready at once.
 *
 * Contract
 * - The first call of fd(), timeout() or step() makes the node hosted: from
 *   then on the main chunk is host code. A call that would wait (receive or
 *   wait with a timeout other than 0, sleep, run, and through them call, rpc,
 *   connect) raises "cannot block in host code" when made outside a process
 *   (sched.c asks pogo_host_embedded); processes block as always. Scripts
 *   and specs that never call these three keep driving the loop from the
 *   main chunk.
 * - A step runs libuv passes (UV_RUN_NOWAIT: timers, idle = the run queue,
 *   prepare = the transport's batched writes, a poll of 0 ms, check, close)
 *   for as long as work is ready at once: processes in the run queue, writes
 *   queued after the pass's prepare phase (the transport reports them with
 *   pogo_host_io_queued), descriptors started since the last poll (libuv
 *   registers them with epoll only when it polls, and until then fd() could
 *   not report them), due timers, idle handles, pending callbacks, closing
 *   handles. So a message that arrives is read, its process runs, and what it
 *   sends is written in one step. Bound: at most STEP_PASSES passes, no new
 *   pass once STEP_BUDGET_US have gone, and no process resumed past that
 *   time either (the scheduler asks pogo_host_out_of_time between two
 *   resumes; a process itself runs until it blocks, yields or is preempted);
 *   step() then returns true and the host calls it again after its own
 *   work.
 * - Host code that makes work wakes the host: spawning, or sending to a
 *   waiting process (pogo_sched_enqueue), and queueing bytes for another node
 *   (pogo_host_io_queued) send a uv_async, whose eventfd makes fd() readable;
 *   timeout() is 0 until the next step. Inside a step nothing is signalled.
 * - The async handle is created with the host state, freed by its close
 *   callback (pogo_host_close, from the node's __gc). No global state.
 */
#include <stdlib.h>
#include <luv.h>

#include "runtime.h"

#define STEP_PASSES 64
#define STEP_BUDGET_US 2000

struct pogo_host {
  uv_async_t async; /* its eventfd is in the loop's epoll set: sending it makes fd() readable */
  int registered;   /* the loop has polled since the async was created */
  int woken;        /* the async was sent and no step ran since */
  int io;           /* the transport queued I/O since the last pass began */
  uint64_t deadline; /* uv_hrtime at which the running step stops running processes, 0: none */
};

static void async_cb(uv_async_t *a) { (void)a; /* the step that runs it does the work */ }

static void host_close_cb(uv_handle_t *h) { free(h->data); }

int pogo_host_embedded(pogo_node *N) { return N->host != NULL; }

void pogo_host_wake(pogo_node *N) {
  pogo_host *h = N->host;
  if (!h || N->driving) return;
  h->woken = 1;
  uv_async_send(&h->async);
}

void pogo_host_io_queued(pogo_node *N) {
  pogo_host *h = N->host;
  if (!h) return;
  /* A process runs in the idle phase, before this pass's prepare phase
   * writes what it queued: only I/O queued elsewhere needs another pass. */
  if (!N->current) h->io = 1;
  pogo_host_wake(N);
}

int pogo_host_out_of_time(pogo_node *N) {
  pogo_host *h = N->host;
  return h && h->deadline && uv_hrtime() >= h->deadline;
}

void pogo_host_close(pogo_node *N) {
  pogo_host *h = N->host;
  if (!h) return;
  N->host = NULL;
  h->async.data = h;
  uv_close((uv_handle_t *)&h->async, host_close_cb);
}

/* The host state, created (and the node made hosted) on first use. */
static pogo_host *host_of(pogo_node *N, lua_State *L) {
  if (N->host) return N->host;
  pogo_host *h = calloc(1, sizeof *h);
  if (!h) luaL_error(L, "pogo: out of memory");
  if (uv_async_init(N->loop, &h->async, async_cb) != 0) {
    free(h);
    luaL_error(L, "pogo: cannot create the host's wake-up handle");
  }
  N->host = h;
  return h;
}

/* libuv adds a descriptor started since its last poll (a socket just
 * accepted or connected, a write waiting for POLLOUT) to epoll only at its
 * next poll; until then fd() cannot report it. libuv has no public call for
 * that queue; on Unix it is a field of uv_loop_t, a list head of two pointers
 * (next, prev) in every libuv 1.x, empty when it points at itself. */
static int watchers_pending(uv_loop_t *loop) {
  void **q = (void **)&loop->watcher_queue;
  return q[0] != (void *)q;
}

/* Is there work that a pass would do at once? */
static int ready_now(pogo_node *N) {
  pogo_host *h = N->host;
  if (N->rq_len || h->io || h->woken || watchers_pending(N->loop)) return 1;
  uv_update_time(N->loop);
  return uv_backend_timeout(N->loop) == 0;
}

/* One libuv pass without waiting. */
static void pass(pogo_node *N) {
  pogo_host *h = N->host;
  h->io = 0;
  h->woken = 0;
  N->driving++;
  uv_run(N->loop, UV_RUN_NOWAIT);
  N->driving--;
  h->registered = 1;
}

int pogo_host_code(pogo_node *N) { return N->host && !N->current && !N->driving; }

static void check_host_code(pogo_node *N, lua_State *L, const char *what) {
  if (N->current) luaL_error(L, "%s: called from a process (only host code drives the node)", what);
  if (N->driving) luaL_error(L, "%s: called from inside the loop (a luv callback)", what);
  luv_ctx_t *ctx = luv_context(L);
  if (ctx && ctx->mode != -1) luaL_error(L, "%s: called while uv.run is active", what);
}

/* fd() -> integer: readable when the node has work (see the contract) */
static int l_fd(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  check_host_code(N, L, "pogo.fd");
  pogo_host *h = host_of(N, L);
  if (!h->registered) { /* put the async's eventfd in the epoll set */
    h->deadline = uv_hrtime() + (uint64_t)STEP_BUDGET_US * 1000;
    pass(N);
    h->deadline = 0;
  }
  int fd = uv_backend_fd(N->loop);
  if (fd < 0) return luaL_error(L, "pogo.fd: this platform's libuv has no backend descriptor");
  lua_pushinteger(L, fd);
  return 1;
}

/* timeout() -> ms until the next timer, -1 for none, 0 when work is ready now */
static int l_timeout(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  host_of(N, L);
  if (ready_now(N)) {
    lua_pushinteger(L, 0);
    return 1;
  }
  lua_pushinteger(L, uv_backend_timeout(N->loop));
  return 1;
}

/* step() -> boolean: do the ready work without blocking; true when more is ready at once */
static int l_step(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  check_host_code(N, L, "pogo.step");
  pogo_host *h = host_of(N, L);
  h->deadline = uv_hrtime() + (uint64_t)STEP_BUDGET_US * 1000;
  for (int i = 0; i < STEP_PASSES; i++) {
    pass(N);
    if (N->closed || !ready_now(N) || uv_hrtime() >= h->deadline) break;
  }
  h->deadline = 0;
  lua_pushboolean(L, !N->closed && ready_now(N));
  return 1;
}

void pogo_host_register(lua_State *L) {
  static const luaL_Reg fns[] = {{"fd", l_fd}, {"timeout", l_timeout}, {"step", l_step},
                                 {NULL, NULL}};
  pogo_node_setfuncs(L, fns);
}
