/*
 * runtime.h: the per-Lua-state node runtime: processes, mailboxes, links and
 * monitors, the scheduler, timers, registered names, pids and refs
 * (node.c, chunks.c, ident.c, nodenames.c, crash.c, proc.c, sched.c, preempt.c,
 * host.c, timer.c, mailbox.c, links.c, names.c, via.c, sets.c, remote.c, mem.c,
 * guard.c, node_stats.c).
 *
 * Contract
 * - One pogo_node per Lua state, owned by a userdata anchored in the registry;
 *   no C global or static mutable state, so several Lua states in one OS
 *   process each run their own node.
 * - A process is a Lua coroutine plus a pogo_proc record in a slot table.
 *   Lua-side objects of a process (its coroutine, mailbox table, pid userdata)
 *   live in Lua tables indexed by slot, in chunks (chunks.c), reached through
 *   registry refs. Its coroutine is made (or taken from a pool of coroutines
 *   whose body returned) when it first runs (proc.c, sched.c).
 * - The scheduler runs ready processes from a libuv idle handle on luv's loop;
 *   timers for sleep/receive timeouts live in one binary heap driven by one
 *   uv_timer.
 * - Nothing here raises a Lua error on behalf of a peer or a process: errors of a
 *   process end that process only. Every entry from libuv into Lua runs under
 *   lua_pcall (pogo_guard, guard.c), so an error there (out of memory) is
 *   logged and never reaches uv_run or the interpreter.
 * - Processes are preempted (preempt.c): a count hook yields a process's
 *   coroutine once a slice has run a budget of VM instructions.
 * - The Lua state's allocator counts bytes (mem.c): with max_memory, an
 *   allocation made while a process runs fails past the limit (that process
 *   exits "out of memory"); the node's own bookkeeping has headroom beyond it.
 * - The runtime knows no transport. It reaches other nodes only through the
 *   ops table of remote.h, which a transport (csrc/dist/) fills in; with none,
 *   every other node is simply not connected. A transport calls into the
 *   runtime only through the functions declared here (and remote.h's), and
 *   of pogo_node it reads L, loop, creation, ext, closed (once the Lua state
 *   closes, its log lines go to stderr, not into Lua: dist/log.c) and
 *   remote with remote_ctx (its own context, when `remote` is its own table:
 *   dist/dist.c), nothing else; it writes none of them (pogo_remote_set
 *   installs its table). The runtime builds and is tested without csrc/dist/
 *   (csrc/ctest/runtime_alone.c).
 */
#ifndef POGO_RUNTIME_H
#define POGO_RUNTIME_H

#include <stdint.h>
#include <stddef.h>
#include <uv.h>
#include <lua.h>
#include <lauxlib.h>

#include "codec.h"

/* Process states. */
enum {
  PS_FREE = 0,
  PS_RUNNABLE,  /* in (or about to enter) the run queue */
  PS_RUNNING,   /* its coroutine is executing */
  PS_WAITING,   /* blocked in receive/wait, woken by a message or its timer */
  PS_SLEEPING,  /* blocked in sleep, woken by its timer only */
  PS_EXITING    /* exit decided, not yet cleaned up */
};

/* What the scheduler hands a process when it resumes it. */
enum {
  RK_NONE = 0, /* nothing */
  RK_START,    /* first run: body and arguments are already on its stack */
  RK_MSG,      /* the head of the mailbox, or nothing if the timer fired */
  RK_WAKE,     /* true if a message arrived, false if the timer fired */
  RK_HANDED    /* the message it waited for is on its stack already (mailbox.c) */
};

/* Process flags. */
#define PF_TRAP_EXIT 0x01u
#define PF_IN_RUNQ 0x02u
#define PF_EXTERNAL 0x04u /* the main chunk's process: no coroutine, always traps */
#define PF_NAMED 0x08u
#define PF_TIMER_FIRED 0x10u
#define PF_PENDING_EXIT 0x20u /* an exit signal killed it while it was running */
#define PF_RETURNED 0x40u /* its body returned: its coroutine has nothing left to close */
#define PF_MBOX 0x80u     /* it has a mailbox table (mailbox.c) */
#define PF_PENDING 0x100u /* an exit reason waits for it in ref_pending */
#define PF_PREEMPTED 0x200u /* its last slice was preempted: its next one is watched closely (preempt.c) */
#define PF_OOM 0x400u       /* an allocation of its slice failed at max_memory: it exits "out of memory" (mem.c) */
#define PF_STUCK 0x800u     /* preempt.c's hook raised its 2 s bound in it (the error may have been caught) */
#define PF_NO_CLOSE 0x1000u /* it ended by that error, raised in a hook: Lua left its hooks off, so its
                               __close handlers could not be bounded and are not run (proc.c) */

/* Identity kinds (pid and ref userdata). */
#define POGO_KIND_PID 1
#define POGO_KIND_REF 2

/* A pid or ref by value. node 0 is this node; others index the node-name table. */
typedef struct pogo_id {
  uint64_t serial;
  uint32_t node;
  uint32_t creation;
  uint32_t slot; /* pids: the slot on their node (0 for refs) */
  uint32_t kind;
} pogo_id;

/* Sets (sets.c): an array plus a hash index once they grow. */
typedef struct pogo_idset {
  pogo_id *v;
  uint32_t n, cap;
  uint32_t *ix; /* positions + 1, open addressing; NULL while small */
  uint32_t ixcap;
} pogo_idset;

/* A monitor as seen by one side: the ref and the process on the other side. */
typedef struct pogo_mon {
  uint64_t ref;
  pogo_id other;
} pogo_mon;

typedef struct pogo_monset {
  pogo_mon *v;
  uint32_t n, cap;
  uint32_t *ix;
  uint32_t ixcap;
} pogo_monset;

/* Refs of calls that timed out: their late replies {ref, ...} are dropped on
 * delivery (as Erlang's aliases do). A small ring; the oldest is forgotten. */
#define POGO_ABANDONED_MAX 32
typedef struct pogo_abandoned {
  uint64_t ref[POGO_ABANDONED_MAX];
  uint32_t n, next;
} pogo_abandoned;

typedef struct pogo_proc {
  uint64_t serial;
  lua_State *co;      /* NULL for the external (main chunk) process, and until the first run */
  uint32_t slot;
  uint8_t state;
  uint8_t resume;     /* RK_* */
  uint16_t flags;
  int32_t nargs;      /* RK_START: number of arguments */
  int32_t heap_pos;   /* index in the timer heap, -1 if no timer */
  uint32_t mb_head, mb_tail; /* mailbox holds keys [mb_head, mb_tail) */
  uint64_t deadline;  /* timer deadline (uv_now ms) */
  pogo_idset links;
  pogo_monset watchers; /* monitors others hold on this process */
  pogo_monset watching; /* monitors this process holds on others */
  pogo_abandoned *abandoned; /* NULL until a call of this process times out */
  uint64_t reductions;  /* one per resume, one per µs of a preempted slice (preempt.c) */
  uint32_t hook_slice;  /* the slice in which the fallback count hook last fired */
  uint32_t critical;    /* > 0: inside critical_enter/leave, not preempted (preempt.c) */
  lua_State *volatile inner; /* the coroutine nested in it that runs now, NULL: its own (preempt.c) */
  uint8_t inner_preempted;   /* the nested coroutine that yielded last was preempted (preempt.c) */
} pogo_proc;

typedef struct pogo_rq_entry {
  uint64_t serial;
  uint32_t slot;
} pogo_rq_entry;

/* uv handles live in their own block, freed by their close callbacks, so the
 * node can be finalized before luv closes the loop. */
typedef struct pogo_uvh {
  uv_idle_t idle;
  uv_timer_t timer;
  int open;
} pogo_uvh;

/* A table of Lua values split into chunks (chunks.c). */
typedef struct pogo_chunks {
  int ref;          /* registry ref of the top-level table */
  int weak;         /* weak values (the pid cache) */
  uint64_t *idx;    /* weak: the indexes of its chunks */
  uint32_t n, cap, cursor;
  uint64_t newest;  /* weak: the chunk made last */
} pogo_chunks;

struct pogo_remote_ops; /* remote.h */
struct pogo_mem;         /* mem.c */
typedef struct pogo_watchdog pogo_watchdog; /* preempt.c */
typedef struct pogo_profile pogo_profile;   /* profile.c */
typedef struct pogo_host pogo_host; /* host.c */

typedef struct pogo_node {
  lua_State *L;       /* main thread */
  uv_loop_t *loop;
  pogo_uvh *uvh;
  uint32_t creation;
  int closed;         /* not set up yet, or the Lua state is closing: no call into Lua (read by the transport too) */

  /* process slots; slot 0 is never used */
  pogo_proc **procs;
  uint32_t nslots, cap;
  uint32_t *free_slots;
  uint32_t nfree, free_cap;
  uint64_t next_serial;
  uint64_t next_ref;
  uint32_t live;
  uint32_t live_high;    /* most processes alive at once since the last collection of ended ones (mem.c) */
  uint64_t live_high_at; /* loop time (ms) it was last reached */
  uint64_t delivered; /* messages put in local mailboxes, ever (node_stats.c) */

  /* run queue (ring buffer) */
  pogo_rq_entry *rq;
  uint32_t rq_head, rq_len, rq_cap;
  int idle_active;

  /* timer heap of processes ordered by deadline */
  pogo_proc **heap;
  uint32_t heap_len, heap_cap;
  uint64_t timer_due; /* deadline the uv timer is set for, 0 if stopped */

  pogo_proc *current;  /* process whose coroutine runs now */
  uint32_t slice;      /* numbers the slices (resumes); never 0 */
  int preempt_us;      /* the time slice, µs: a slice running longer is preempted; 0: off (preempt.c) */
  int preempted;       /* the last resume ended in a preemption */
  struct pogo_watchdog *wd; /* preempt.c */
  lua_State *closing;        /* the coroutine of an ended process being closed (preempt.c) */
  uint64_t closing_deadline; /* when its __close handlers are cut short (uv_hrtime, ns) */
  struct pogo_profile *prof; /* the running profile, or NULL (profile.c) */
  struct pogo_mem *mem; /* the counting allocator (mem.c) */
  int mem_strict;      /* allocations fail past max_memory (mem.c; pogo_mem_strict) */
  pogo_proc *external; /* the main chunk's process, created on demand */
  int driving;         /* >0 while a blocking call from the main chunk drives the loop */
  int ext_woken;       /* the external process got something while driving */
  int stop_requested;
  int exiting_drain;   /* guards re-entry into the exit queue drain */

  /* deferred exits (cascading links), slots with serials */
  pogo_rq_entry *exq;
  uint32_t exq_len, exq_cap;

  /* registry refs of Lua tables */
  pogo_chunks threads; /* slot -> coroutine (before the first run: body, or {body, args...}) */
  int ref_mbox;        /* slot -> mailbox table (made once per process, on its first queued message: not chunked) */
  pogo_chunks pids;    /* slot -> pid userdata */
  pogo_chunks pidcache; /* weak: serial -> pid userdata of this node */
  pogo_chunks refcache; /* weak: serial -> ref userdata of this node */
  int ref_pool;     /* coroutines whose body returned, for the next processes (proc.c) */
  uint32_t npool, pool_max;
  int ref_idents;   /* weak-valued cache: key -> pid or ref userdata of another node */
  int ref_names;    /* name -> pid userdata */
  int ref_slotname; /* slot -> registered name */
  int ref_pending;  /* slot -> pending exit reason */
  int ref_nodenames;/* index -> node name, name -> index */
  int ref_crash_mt; /* metatable of crash reasons */
  int ref_namemon;  /* remote monitors by name: ref serial -> {name, node} */
  uint32_t nnodes;  /* entries in the node-name table (index 0 = this node) */

  pogo_codec_ext ext;
  /* how other nodes are reached (remote.h): NULL until a transport starts;
   * set by pogo_remote_set, read by the transport to find its context */
  const struct pogo_remote_ops *remote;
  void *remote_ctx;
  /* set once a host that owns the loop uses pogo.fd/timeout/step (host.c) */
  pogo_host *host;
} pogo_node;

/* ---- node.c ---- */
uint64_t pogo_node_now(pogo_node *N); /* loop time in ms (updated) */
pogo_node *pogo_node_of(lua_State *L); /* the node of L's Lua state, or NULL */
void pogo_node_push_ref(lua_State *L, int ref);

/* ---- chunks.c ---- */
void pogo_chunks_init(lua_State *L, pogo_chunks *c, int weak);
void pogo_chunks_free(lua_State *L, pogo_chunks *c);
void pogo_chunks_push(lua_State *L, const pogo_chunks *c); /* the top-level table */
/* Push the value at key of the chunked table whose top level is at index t. */
void pogo_chunks_get(lua_State *L, int t, uint64_t key);
/* Pop a value and store it at key (t: the top level's index). */
void pogo_chunks_set(lua_State *L, pogo_chunks *c, int t, uint64_t key);

/* ---- ident.c ---- */
void pogo_ident_push(pogo_node *N, lua_State *L, const pogo_id *id); /* interned userdata */
void pogo_ident_push_new_pid(pogo_node *N, lua_State *L, const pogo_id *id); /* a new local pid, never pushed before */
int pogo_ident_get(lua_State *L, int idx, pogo_id *out);            /* 1 if idx is a pid/ref */
int pogo_ident_is_pid(lua_State *L, int idx, pogo_id *out);
void pogo_ident_setup(pogo_node *N, lua_State *L);
void pogo_ident_register(lua_State *L);

/* ---- nodenames.c ---- */
const char *pogo_nodenames_get(pogo_node *N, lua_State *L, uint32_t node); /* pushes nothing */
uint32_t pogo_nodenames_index(pogo_node *N, lua_State *L, const char *name, size_t len);
uint32_t pogo_nodenames_find(pogo_node *N, lua_State *L, const char *name, size_t len); /* 0: unknown */
void pogo_nodenames_setup(pogo_node *N, lua_State *L);
void pogo_nodenames_register(lua_State *L);

/* ---- crash.c ---- */
void pogo_crash_setup(pogo_node *N, lua_State *L);
/* Push a crash reason {error =, traceback =} for the error on top of co (popped). */
void pogo_crash_push(pogo_node *N, lua_State *L, lua_State *co);
/* The value at idx came from another node: if it is a crash reason, give it
 * back its metatable. */
void pogo_crash_restore(pogo_node *N, lua_State *L, int idx);
void pogo_crash_register(lua_State *L);

/* ---- proc.c ---- */
pogo_proc *pogo_proc_get(pogo_node *N, const pogo_id *pid); /* local live process or NULL */
pogo_proc *pogo_proc_current(pogo_node *N, lua_State *L, int *is_main);
pogo_proc *pogo_proc_external(pogo_node *N, lua_State *L);
void pogo_proc_push_pid(pogo_node *N, lua_State *L, pogo_proc *p);
void pogo_proc_id(pogo_node *N, pogo_proc *p, pogo_id *out);
/* Kill p with the reason at idx (deferred if p is running). */
void pogo_proc_kill(pogo_node *N, lua_State *L, pogo_proc *p, int reason_idx);
/* Finish p's exit now (p must not be running); reason at idx. */
void pogo_proc_finish(pogo_node *N, lua_State *L, pogo_proc *p, int reason_idx);
void pogo_proc_drain_exits(pogo_node *N, lua_State *L);
void pogo_proc_free_all(pogo_node *N, lua_State *L);
void pogo_proc_register(lua_State *L);
/* A coroutine for a process's first run, from the pool (pushed), or NULL. */
lua_State *pogo_proc_pooled_thread(pogo_node *N, lua_State *L);
#define POGO_DEFAULT_THREAD_POOL 64

/* ---- sched.c ---- */
void pogo_sched_enqueue(pogo_node *N, pogo_proc *p);
void pogo_sched_wake(pogo_node *N, pogo_proc *p); /* a waiting process got a message */
int pogo_sched_run_batch(pogo_node *N, int budget);
/* From the main chunk: drive the loop until *flag is set or the deadline passes.
 * Returns 0 when the flag was set, 1 on timeout, -1 if nothing can wake it. */
int pogo_sched_drive(pogo_node *N, lua_State *L, pogo_proc *ext, uint32_t mb_tail0, int64_t timeout);
void pogo_sched_check_can_drive(pogo_node *N, lua_State *L, const char *what);
/* How a caller running on L can wait for something (e.g. a busy connection). */
enum {
  POGO_BLOCK_NONE = 0, /* it cannot: a luv callback (it just goes on) */
  POGO_BLOCK_YIELD,    /* a process: pogo_sched_suspend, then return lua_yield(L, 0) */
  POGO_BLOCK_DRIVE     /* the main chunk: pogo_sched_drive_while */
};
int pogo_sched_block_mode(pogo_node *N, lua_State *L);
/* The running process as a handle (slot, serial): 0, or -1 if none runs. */
int pogo_sched_running(pogo_node *N, pogo_rq_entry *out);
/* Suspend the running process with no timer: it must yield, and only
 * pogo_sched_resume (or an exit signal) wakes it. */
void pogo_sched_suspend(pogo_node *N);
/* Make the process `e` runnable again if it is still suspended. */
void pogo_sched_resume(pogo_node *N, const pogo_rq_entry *e);
/* From the main chunk: run the loop while busy(arg) holds and timeout_ms
 * (< 0: none) has not passed. */
void pogo_sched_drive_while(pogo_node *N, int (*busy)(void *arg), void *arg, int64_t timeout_ms);
void pogo_sched_register(lua_State *L);

/* ---- preempt.c ---- */
#define POGO_DEFAULT_PREEMPT_US 500 /* the time slice (measured: README) */
/* A process that runs this long where it cannot be preempted (a Lua
 * function called from C) gets an error there (preempt.c). */
#define POGO_STUCK_MS 2000
#define POGO_STUCK_MSG "preempted: ran" /* the start of that error's message */
/* A new process's coroutine: no hook inherited from its creator (or the
 * permanent count hook, when signals cannot be used). */
void pogo_preempt_arm(pogo_node *N, lua_State *co);
void pogo_preempt_batch(pogo_node *N); /* a batch of resumes starts on this thread */
void pogo_preempt_slice_begin(pogo_node *N);
/* After the resume of p (co): disarm, and count a preempted slice. */
void pogo_preempt_slice_end(pogo_node *N, pogo_proc *p, lua_State *co);
void pogo_preempt_close(pogo_node *N); /* stop the timers (node gc) */
/* co, the coroutine of a process that ended without returning (killed,
 * crashed), is about to be closed (on = 1; its __close handlers run, from
 * C), or was (on = 0): handlers still running after POGO_STUCK_MS are cut
 * short with an error (preempt.c). */
void pogo_preempt_closing(pogo_node *N, lua_State *co, int on);
void pogo_preempt_register(lua_State *L);
/* Coroutine co, nested in the running process, is about to run: it gets the
 * permanent count hook when that is the mechanism (preempt.c). */
void pogo_preempt_nested(pogo_node *N, lua_State *co);
void pogo_nested_register(lua_State *L); /* core.resume, core.wrap, core.close (nested.c) */
/* Marks the coroutine on top of L (it stays there) as a process's own (the
 * scheduler's, for its whole life: pooled too), which coroutine.resume and
 * coroutine.close refuse; may raise (memory). */
void pogo_nested_mark_process(lua_State *L);
/* Whether processes' coroutines are free of the permanent preemption hook
 * (signals work, or preemption is off), so another hook may use them. */
int pogo_preempt_hook_free(pogo_node *N);

/* ---- profile.c ---- */
/* A slice of co begins / ends: sample it while a profile runs. */
void pogo_profile_slice_begin(pogo_node *N, lua_State *co);
void pogo_profile_slice_end(pogo_node *N);
void pogo_profile_close(pogo_node *N); /* drop a running profile (node gc) */
void pogo_profile_register(lua_State *L);

/* ---- mem.c ---- */
/* Install the counting allocator on N->L (node open); remove it (node gc). */
void pogo_mem_install(pogo_node *N, lua_State *L);
void pogo_mem_uninstall(pogo_node *N, lua_State *L);
/* Whether allocations fail past max_memory (1: a process runs, or a frame
 * is decoded) or may use the headroom (0: the node's own bookkeeping).
 * Returns the previous mode. */
static inline int pogo_mem_strict(pogo_node *N, int on) {
  int prev = N->mem_strict;
  N->mem_strict = on;
  return prev;
}
/* Bytes that allocations may still take in strict mode (SIZE_MAX: no limit). */
size_t pogo_mem_room(pogo_node *N);
size_t pogo_mem_limit(pogo_node *N); /* max_memory, 0 if none */
/* Whether `need` more bytes of Lua heap fit under max_memory (a collection,
 * at most every 100 ms, may make the room); 1 without a limit. */
int pogo_mem_admit(pogo_node *N, size_t need);
/* After a batch: take back the reserve released when malloc failed. */
void pogo_mem_tidy(pogo_node *N);
void pogo_mem_register(lua_State *L);

/* ---- guard.c ---- */
/* Run fn(L, arg) under lua_pcall on N->L; an error is logged (with `what`)
 * and its message returned in err (if given). Returns the lua_pcall status;
 * LUA_ERRMEM means out of memory. */
int pogo_guard(pogo_node *N, int (*fn)(lua_State *L, void *arg), void *arg, const char *what, char *err,
               size_t errlen);
/* Make luv run its callbacks into L's state through a runner that logs an
 * error and goes on, where luv's own ends the OS process. */
void pogo_guard_luv(lua_State *L);
/* A line "pogo[<node>]: <message>" on stderr; never raises, never allocates. */
void pogo_node_log(pogo_node *N, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- logline.c: one line of the core, to pogo.log or stderr ---- */
/* To pogo.log.emit(level, msg, {module =, [key] = value}), protected: 1 if
 * it took the line (key may be NULL). Only where a Lua call is safe. */
int pogo_logline_emit(pogo_node *N, const char *level, const char *module, const char *msg, const char *key,
                      const char *value);
/* The same line on stderr in pogo.log's format, without allocating. */
void pogo_logline_stderr(const char *node, const char *level, const char *module, const char *msg,
                         const char *key, const char *value);

/* ---- host.c: a host that owns the loop ---- */
/* The node is hosted: the main chunk is host code, which may not block. */
int pogo_host_embedded(pogo_node *N);
/* Host code made work (outside the loop): make pogo.fd() readable. */
void pogo_host_wake(pogo_node *N);
/* The transport queued I/O for the loop's next pass (bytes to write): a
 * step runs another pass, and host code wakes the host. */
void pogo_host_io_queued(pogo_node *N);
/* Whether the caller is host code of a hosted node (neither a process nor a
 * callback inside the loop), which may not block (sched.c raises). */
int pogo_host_code(pogo_node *N);
/* A step's time is up: the scheduler resumes no more processes in it. */
int pogo_host_out_of_time(pogo_node *N);
void pogo_host_close(pogo_node *N);
void pogo_host_register(lua_State *L);

/* ---- timer.c ---- */
void pogo_timer_arm(pogo_node *N, pogo_proc *p, uint64_t deadline);
void pogo_timer_cancel(pogo_node *N, pogo_proc *p);
void pogo_timer_cb(uv_timer_t *t);

/* ---- mailbox.c ---- */
/* Deliver the value at msg_idx to a local process (never copies). */
void pogo_mailbox_deliver(pogo_node *N, lua_State *L, pogo_proc *p, int msg_idx);
/* Deliver it to the local pid `to` if that process lives: 1, else 0. */
int pogo_mailbox_post(pogo_node *N, lua_State *L, const pogo_id *to, int msg_idx);
void pogo_mailbox_register(lua_State *L);

/* ---- node_stats.c ---- */
void pogo_node_stats_register(lua_State *L);

/* ---- sets.c ---- */
int pogo_idset_add(pogo_idset *s, const pogo_id *id);
void pogo_idset_remove_at(pogo_idset *s, uint32_t pos);
void pogo_idset_free(pogo_idset *s);
void pogo_monset_remove_at(pogo_monset *s, uint32_t pos);
void pogo_monset_free(pogo_monset *s);
int pogo_idset_remove(pogo_idset *s, const pogo_id *id);
int pogo_id_eq(const pogo_id *a, const pogo_id *b);
int pogo_monset_add(pogo_monset *s, uint64_t ref, const pogo_id *other);
int pogo_monset_remove(pogo_monset *s, uint64_t ref, pogo_mon *out);
/* Remove the monitor (ref, other): refs of different nodes may share a serial. */
int pogo_monset_remove_pair(pogo_monset *s, uint64_t ref, const pogo_id *other);

/* ---- via.c ---- */
int pogo_via_is(lua_State *L, int idx);        /* is idx {"via", module, name}? */
void pogo_via_whereis(lua_State *L, int idx);  /* push require(module).whereis(name): pid or nil */
void pogo_via_register(lua_State *L);

/* ---- links.c ---- */
/* Exit signal from `from` with the reason at idx to local process p.
 * `linked` is 1 for link propagation, 0 for an explicit exit(pid, reason). */
void pogo_links_signal_exit(pogo_node *N, lua_State *L, pogo_proc *p, const pogo_id *from, int reason_idx, int linked);
/* Push {"DOWN", ref, pid, reason} and deliver it to watcher. */
void pogo_links_send_down(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *who,
                          int reason_idx);
/* Deliver {"DOWN", ref, <value at who_idx>, <value at reason_idx>} to local
 * process w (who is a pid, or {name, node} for a monitor by name). */
void pogo_links_deliver_down(pogo_node *N, lua_State *L, pogo_proc *w, uint64_t ref, int who_idx, int reason_idx);
/* Deliver the DOWN of w's monitor `ref` of a process on another node: `who`
 * is its pid, or the placeholder (serial 0) of a monitor by name, reported
 * as {name, node}. The monitor must already be out of w's `watching` set. */
void pogo_links_remote_down(pogo_node *N, lua_State *L, pogo_proc *w, uint64_t ref, const pogo_id *who,
                            int reason_idx);
/* What processes on other nodes do to local ones (the transport applies a
 * peer's frames with these; `from`/`watcher` are remote, the others local). */
int pogo_links_peer_link(pogo_node *N, const pogo_id *from, const pogo_id *to); /* 0: `to` is not alive */
void pogo_links_peer_unlink(pogo_node *N, const pogo_id *from, const pogo_id *to);
void pogo_links_peer_exit(pogo_node *N, lua_State *L, const pogo_id *from, const pogo_id *to, int reason_idx,
                          int linked);
int pogo_links_peer_monitor(pogo_node *N, const pogo_id *watcher, uint64_t ref, const pogo_id *target); /* 0: noproc */
void pogo_links_peer_demonitor(pogo_node *N, const pogo_id *watcher, uint64_t ref, const pogo_id *target);
/* Node `node` reports that `who` (its pid) went down: local watcher's monitor ref fires. */
void pogo_links_peer_down(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, uint32_t node,
                          const pogo_id *who, int reason_idx);
/* Node `node` is gone: every local process's links to it get the exit signal
 * "noconnection", its monitors of processes there fire
 * {"DOWN", ref, pid, "noconnection"}, and monitors held from there are dropped. */
void pogo_links_node_down(pogo_node *N, lua_State *L, uint32_t node);
void pogo_links_register(lua_State *L);

/* ---- names.c ---- */
void pogo_names_release(pogo_node *N, lua_State *L, pogo_proc *p);
/* The live local process registered as name: 1 with its pid in *out, else 0. */
int pogo_names_whereis(pogo_node *N, lua_State *L, const char *name, size_t len, pogo_id *out);
void pogo_names_register(lua_State *L);

/* Helpers to build registered closures: each API function gets the node userdata
 * as upvalue 1. */
#define POGO_NODE(L) pogo_node_live(L)
static inline pogo_node *pogo_node_live(lua_State *L) {
  pogo_node *N = (pogo_node *)lua_touserdata(L, lua_upvalueindex(1));
  if (N->closed) luaL_error(L, "pogo: the node is closed (its Lua state is closing)");
  return N;
}
void pogo_node_setfuncs(lua_State *L, const luaL_Reg *fns); /* table at -2, node ud at -1 */

#endif
