/*
 * preempt.c: preemption. A process whose slice (one resume of its coroutine)
 * runs longer than the time slice (preempt_ms, default 0.5 ms: slices of
 * 0.5 to 1 ms, measured in README) without blocking yields to the others,
 * as Erlang's reductions make a process do.
 *
 * How
 * - A count hook would do it alone, but in Lua 5.4 any count hook sends every
 *   VM instruction through the hook dispatch (luaG_traceexec): measured, it
 *   costs message passing about 18% and arithmetic loops 1.75x. So the hook
 *   is armed only on a slice that overruns, from a signal handler:
 *   - the scheduler publishes the number of the running slice (N->slice) for
 *     the handler (two plain stores per resume);
 *   - two POSIX timers of the node send one real-time signal to the loop
 *     thread (timer_create, SIGEV_THREAD_ID, with the watchdog's fields as
 *     the value, so the handler needs no global state):
 *     - the calm watch, the tick: every CALM_FACTOR time slices (4 ms) of the
 *       loop thread's CPU time (its CPU clock, pthread_getcpuclockid; the
 *       kernel checks such timers at its tick, 250 times a second here). A
 *       slice that was running at the previous tick too has run at least
 *       that long, so the first slice of a new spinner runs 4 to 8 ms. A
 *       node that waits uses no CPU time and gets no tick;
 *     - the close watch: a one-shot timer on the clock, started as a slice
 *       of a process whose last slice was preempted (PF_PREEMPTED: a
 *       spinner, likely) begins, and stopped as it ends (two system calls
 *       for such a slice only). When it fires, the slice has run for a time
 *       slice if the loop thread used at least half of it in CPU time;
 *       else it waited for the core or in a system call, and the timer looks
 *       again a time slice later. So a process that spins is preempted
 *       every one to two time slices;
 *     CPU time, not the time on the clock: on a busy machine (several nodes
 *     per core, a shared VM) the system often takes the core away from the
 *     loop thread in the middle of a short slice, and counting that wait
 *     preempted slices that had run for microseconds (measured with a node
 *     pinned to a shared core: 335 preemptions in a run of pogo.call, and
 *     the rate 25 % lower; with CPU time none, and the rate within 5 % of
 *     the rate with preemption off). A slice that waits in a blocking
 *     system call uses no CPU time either: it goes on when the call
 *     returns, until it has used its time slice;
 *   - the handler, on the loop thread, arms a count hook of 1 on the running
 *     process's coroutine with lua_sethook: the way lua.c stops a script on
 *     SIGINT, which ldebug.c documents as safe to call from a signal. (Arming
 *     it from another thread was rejected: lua_sethook walks the coroutine's
 *     CallInfo list while the VM changes it and the GC frees parts of it,
 *     luaE_shrinkCI.) A signal may interrupt a system call of the loop
 *     thread: the handler is SA_RESTART, and the calls that are never
 *     restarted, such as epoll_wait, return EINTR, which libuv and the hosts'
 *     loops retry. A host that moves the loop to another thread gets new
 *     timers there at the next batch (pogo_preempt_batch);
 *   - the hook, at the next instruction, yields the coroutine (lua_yield from
 *     a count hook); the scheduler disarms it, puts the process at the back of
 *     the run queue and ends its batch, so I/O, timers, heartbeats and signals
 *     (SIGTERM) are served, and exit(pid, "kill") finds the spinner waiting.
 *   A slice that blocks or ends before a watch catches it is never
 *   interrupted: short slices (a server answering a call) stay as atomic as
 *   they were; preemption changes nothing for them.
 * - Why timers: a watchdog thread of the node used to look (every time slice
 *   during a spinner's slice, every CALM_FACTOR while the loop thread was
 *   busy, backing off to 100 ms on an idle node) and signal the loop thread.
 *   Its wake-ups were the cost: on this VM each is an entry into the kernel
 *   that flushes the TLB, and on 2 cores often a context switch away from a
 *   loop thread. 50 nodes forming a mesh spent 2.2-3.9 s of CPU after all
 *   listened with preemption off, 3.6-5.1 s with the watchdog, and 4.2-4.9 s
 *   with it looking but never signalling. Placing 10,000 children on 5 nodes
 *   (bench/scale.lua, same hour, alternating), a node that neither requests
 *   nor runs them spent 30-34 us of CPU a child with the watchdog, 28-32 with
 *   the tick instead of its calm looks, and 31-32 with the close timer too
 *   (the requesting and running nodes 52-56 / 59-62 us against 53-58 /
 *   60-64 with the tick alone). Beside a spinner, ping-pong's latency p50 /
 *   p99 went from 1.30-1.32 / 1.61-1.62 ms to 1.06 / 1.08 ms.
 *   The close watch follows the process, not the node: it used to last 200
 *   looks (100 ms) after any preemption, and a collection that took a few
 *   ms inside some slice (a major one, after a burst of garbage) got that
 *   slice preempted and the node watched closely for 100 ms: pogo.call after
 *   900,000 spawns ran 7 to 20 % slower than with preemption off on a node
 *   pinned to one core; the preempted process's next slice, a short one, now
 *   ends the close watch.
 * - If the signal or the timers cannot be used (another handler owns each
 *   candidate signal, the loop thread blocks it, or the thread has no CPU
 *   clock), every process gets a permanent count hook
 *   instead (FALLBACK_COUNT instructions; it yields at its second firing in
 *   one slice), with the cost above. pogo.core.preempt_info() says which.
 * - Reductions (process_info): one per resume, plus about one per microsecond
 *   of a preempted slice: a spinning process's count grows by about 10^6 a
 *   second, one that handles messages by one per message.
 *
 * Critical sections: a module whose state is shared by the processes of a
 * node (pg's outbox, the registry's tables) brackets a change that must look
 * atomic to the others with core.critical_enter() / core.critical_leave()
 * (they nest). The hook then leaves the process alone and tries again every
 * HOOK_RETRY instructions until the section is left. A section also ends
 * with its slice (a receive, a send that waits, an error that ends the
 * process): one left open by an error does not outlive the slice.
 *
 * Coroutines nested in a process (coroutine.wrap, an iterator): pogo's
 * coroutine.resume (nested.c) tells the node which one runs (p->inner), the
 * hook is set on that one, and it yields with a mark (p->inner_preempted)
 * that the resume passes up, yielding its own coroutine the same way, up to
 * the process.
 *
 * Where preemption cannot apply (the slice goes on until the code returns
 * somewhere it can yield; the node is frozen meanwhile, as before, but see
 * the bound below):
 * - a coroutine resumed from C (by a C library's lua_resume);
 * - a call from C that cannot yield: the comparator of table.sort, the
 *   function of string.gsub, a metamethod called from C (__gc, __close), the
 *   message handler of xpcall, the body of a module being required, any Lua
 *   function called by a C library through lua_call (the hook keeps trying
 *   every HOOK_RETRY instructions until the code can yield);
 * - long C functions (a string.rep of a gigabyte, encoding a huge message);
 * - the main chunk and plain luv callbacks, which are not processes.
 * The bound: a process that the hook finds where it cannot yield for
 * POGO_STUCK_MS of the loop thread's CPU time (2 s, well within the links'
 * default timeout of 5 s; a
 * __tostring that loops under tostring or print, a comparator of table.sort
 * that never returns) gets an error there, "preempted: ran 2000 ms where it
 * could not yield ...", which ends it as any error does (a pcall inside the
 * C call that catches it gets another one 2 s later; one that ends the
 * process leaves its hooks off, as Lua does after a hook raised, so its
 * __close handlers are not run: PF_NO_CLOSE, proc.c). The node's own
 * critical sections are left whole. An ended process's __close handlers,
 * which run from C when it is closed (killed, or crashed), are cut short
 * the same way after POGO_STUCK_MS (closing_hook). Not bounded: __gc
 * metamethods (Lua runs them with hooks off), long C functions, and
 * coroutines resumed from C.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime.h"

#ifndef sigev_notify_thread_id /* glibc before 2.41 names the field only */
#define sigev_notify_thread_id _sigev_un._tid
#endif

#define WD_MAGIC 0x706f676fu    /* the tick's value points at `magic` */
#define CLOSE_MAGIC 0x636c6f73u /* the close timer's value points at `close_magic` */
#define CALM_FACTOR 8  /* the tick: every 8 time slices of CPU */
#define HOOK_RETRY 1000
#define FALLBACK_COUNT 20000

struct pogo_watchdog {
  uint32_t magic;             /* WD_MAGIC (first: the tick's value is the watchdog itself) */
  uint32_t close_magic;       /* CLOSE_MAGIC */
  pogo_node *N;
  int signo;                  /* 0: the permanent count hook instead */
  int timers;                 /* the tick and the close timer exist */
  pthread_t loop_thread;      /* the thread they signal, whose CPU clock the tick counts */
  timer_t tick;               /* the calm watch: CPU time of the loop thread */
  timer_t close;              /* the close watch: time on the clock, one shot */
  uint64_t period_ns;         /* preempt_ms (up to 60 s: more than 32 bits of ns) */
  volatile uint32_t slice;    /* the running slice, 0 between slices */
  volatile uint32_t close_slice; /* the slice the close timer watches, 0: none */
  uint64_t close_cpu;         /* the loop thread's CPU time when that slice began */
  uint32_t tick_last;         /* the slice running at the last tick (handler) */
  uint64_t seen_ns;           /* when the slice being watched was first seen */
  uint32_t stuck_slice;       /* the slice the hook last found where it cannot yield */
  uint64_t stuck_since;       /* since when (uv_hrtime) */
  uint64_t preemptions;       /* slices preempted */
  volatile sig_atomic_t armed; /* low bits of the slice the handler hooked (handler) */
  _Atomic uint64_t signals;   /* slices hooked by either watch (handler) */
  _Atomic uint64_t looks;     /* firings of the close timer (handler) */
  _Atomic uint64_t ticks;     /* ticks that found a slice running (handler) */
};

/* ---- the hook ---- */

#define STUCK_NS ((uint64_t)POGO_STUCK_MS * 1000000u)

static uint64_t thread_cpu_ns(void);

/* Whether slice s has been found where it cannot yield for POGO_STUCK_MS of CPU time;
 * the count starts again then (a process that catches the error and goes
 * on gets another one as long after). */
static int stuck(pogo_watchdog *w, uint32_t s) {
  uint64_t now = thread_cpu_ns(); /* (CPU time: a suspended host or a starved core is not the process's) */
  if (w->stuck_slice != s) {
    w->stuck_slice = s;
    w->stuck_since = now;
    return 0;
  }
  if (now - w->stuck_since < STUCK_NS) return 0;
  w->stuck_since = now;
  return 1;
}

static void preempt_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  pogo_node *N = pogo_node_of(L);
  pogo_watchdog *w = N ? N->wd : NULL;
  pogo_proc *p = N && !N->closed ? N->current : NULL;
  int nested = p && p->inner == L && L != p->co;
  if (!w || !p || (p->co != L && !nested)) { /* not the running process's own coroutine, nor its inner one */
    if (!w || w->signo) lua_sethook(L, NULL, 0, 0);
    return;
  }
  if (w->signo) {
    if ((uint32_t)w->armed != N->slice) { /* armed for a slice that has ended */
      lua_sethook(L, NULL, 0, 0);
      return;
    }
  } else if (p->hook_slice != N->slice) { /* permanent hook: first firing in this slice */
    p->hook_slice = N->slice;
    return;
  }
  if (p->critical || !lua_isyieldable(L)) { /* a critical section, or a call from C: try again a little later */
    if (w->signo) lua_sethook(L, preempt_hook, LUA_MASKCOUNT, HOOK_RETRY);
    if (!p->critical && stuck(w, N->slice)) { /* (the node's own sections are short, and must stay whole) */
      p->flags |= PF_STUCK;
      luaL_error(L, POGO_STUCK_MSG " %d ms where it could not yield (a Lua function called from C: a metamethod, "
                    "a comparator, a callback of a C library)", POGO_STUCK_MS);
    }
    return;
  }
  if (nested) { /* to the resume that runs it (nested.c), which yields its own coroutine in turn */
    p->inner_preempted = 1;
    lua_yield(L, 0);
    return;
  }
  N->preempted = 1;
  lua_yield(L, 0);
}

/* ---- the signal ---- */

static uint64_t ns_of(const struct timespec *ts) {
  return (uint64_t)ts->tv_sec * 1000000000ull + (uint64_t)ts->tv_nsec;
}

/* The calling thread's CPU time (ns). clock_gettime is async-signal-safe. */
static uint64_t thread_cpu_ns(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
  return ns_of(&ts);
}

/* uv_hrtime's clock, read the async-signal-safe way. */
static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ns_of(&ts);
}

static struct timespec ts_of(uint64_t ns) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ns / 1000000000ull);
  ts.tv_nsec = (long)(ns % 1000000000ull);
  return ts;
}

/* Start timer t to fire once in ns (0: stop it). Async-signal-safe. */
static int timer_once(timer_t t, uint64_t ns) {
  struct itimerspec its;
  its.it_value = ts_of(ns);
  its.it_interval = ts_of(0);
  return timer_settime(t, 0, &its, NULL);
}

/* The running process of slice s, if s is still running. */
static pogo_proc *running(pogo_watchdog *w, uint32_t s) {
  pogo_node *N = w->N;
  pogo_proc *p = N->current;
  if (s == 0 || !p || !p->co || N->slice != s) return NULL;
  return p;
}

/* Hook slice s of p: the process yields at its next instruction. */
static void hook(pogo_watchdog *w, pogo_proc *p, uint32_t s) {
  atomic_fetch_add_explicit(&w->signals, 1, memory_order_relaxed);
  w->armed = (sig_atomic_t)s;
  lua_State *inner = p->inner;
  lua_sethook(inner ? inner : p->co, preempt_hook, LUA_MASKCOUNT, 1);
}

/* The calm watch's tick: the loop thread has used another CALM_FACTOR time
 * slices of CPU. A slice that was running at the last tick as well has run
 * at least that long: hook it. */
static void on_tick(pogo_watchdog *w) {
  uint32_t s = w->slice;
  pogo_proc *p = running(w, s);
  if (!p) {
    w->tick_last = 0;
    return;
  }
  atomic_fetch_add_explicit(&w->ticks, 1, memory_order_relaxed);
  if (s != w->tick_last) {
    w->tick_last = s;
    if (w->close_slice != s) w->seen_ns = mono_ns();
    return;
  }
  hook(w, p, s);
}

/* The close watch's timer: a time slice on the clock since a spinner's slice
 * began (or since the last look). It has run that long if the loop thread
 * used at least half of it in CPU time; else it waited for the core, or in
 * a system call: look again a time slice later. */
static void on_close(pogo_watchdog *w) {
  atomic_fetch_add_explicit(&w->looks, 1, memory_order_relaxed);
  uint32_t s = w->slice;
  pogo_proc *p = running(w, s);
  if (!p || w->close_slice != s) return;
  if (thread_cpu_ns() - w->close_cpu < w->period_ns / 2) {
    timer_once(w->close, w->period_ns);
    return;
  }
  hook(w, p, s);
}

static void on_signal(int sig, siginfo_t *si, void *uc) {
  (void)sig;
  (void)uc;
  if (!si || si->si_code != SI_TIMER || !si->si_value.sival_ptr) return;
  uint32_t *tag = si->si_value.sival_ptr;
  pogo_watchdog *w = NULL;
  if (*tag == WD_MAGIC) w = (pogo_watchdog *)(void *)tag;
  else if (*tag == CLOSE_MAGIC) w = (pogo_watchdog *)(void *)((char *)tag - offsetof(pogo_watchdog, close_magic));
  /* a signal of the timers of a thread that no longer runs the loop (the
   * host moved it, pogo_preempt_batch): that thread must not touch the VM */
  if (!w || !pthread_equal(pthread_self(), w->loop_thread)) return;
  int saved = errno; /* the interrupted code may be about to read it */
  if (*tag == WD_MAGIC) on_tick(w);
  else on_close(w);
  errno = saved;
}

/* A real-time signal for the timers: ours already, or one nobody handles. */
static int claim_signal(void) {
  for (int s = SIGRTMAX - 4; s >= SIGRTMIN + 4 && s > SIGRTMAX - 12; s--) {
    struct sigaction old;
    if (sigaction(s, NULL, &old) != 0) continue;
    if ((old.sa_flags & SA_SIGINFO) && old.sa_sigaction == on_signal) return s;
    if (old.sa_handler != SIG_DFL) continue;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(s, &sa, NULL) == 0) return s;
  }
  return 0;
}

/* ---- the timers ---- */

/* Set the tick's period to CALM_FACTOR time slices of CPU. */
static int tick_period(pogo_watchdog *w) {
  struct itimerspec its;
  its.it_value = its.it_interval = ts_of(CALM_FACTOR * w->period_ns);
  return timer_settime(w->tick, 0, &its, NULL);
}

/* A timer on clock that sends the signal to the calling thread, with
 * `value` as the signal's value. */
static int timer_here(pogo_watchdog *w, clockid_t clock, void *value, timer_t *t) {
  struct sigevent ev;
  memset(&ev, 0, sizeof ev);
  ev.sigev_notify = SIGEV_THREAD_ID;
  ev.sigev_signo = w->signo;
  ev.sigev_value.sival_ptr = value;
  ev.sigev_notify_thread_id = gettid();
  return timer_create(clock, &ev, t);
}

static void timers_delete(pogo_watchdog *w) {
  if (!w->timers) return;
  timer_delete(w->tick);
  timer_delete(w->close);
  w->timers = 0;
  w->close_slice = 0;
  /* a signal they sent may still be pending for this thread: take it here */
  sigset_t one, old;
  sigemptyset(&one);
  sigaddset(&one, w->signo);
  if (pthread_sigmask(SIG_BLOCK, &one, &old) == 0) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&one, NULL, &zero) > 0) {}
    pthread_sigmask(SIG_SETMASK, &old, NULL);
  }
}

/* Make both timers for the calling thread, the loop thread from now on.
 * Returns whether they run. */
static int timers_make(pogo_watchdog *w) {
  timers_delete(w);
  w->loop_thread = pthread_self();
  w->tick_last = 0;
  clockid_t cpu;
  if (pthread_getcpuclockid(w->loop_thread, &cpu) != 0) return 0;
  if (timer_here(w, cpu, &w->magic, &w->tick) != 0) return 0;
  if (timer_here(w, CLOCK_MONOTONIC, &w->close_magic, &w->close) != 0) {
    timer_delete(w->tick);
    return 0;
  }
  w->timers = 1;
  if (tick_period(w) != 0) {
    timers_delete(w);
    return 0;
  }
  return 1;
}

static pogo_watchdog *wd_new(pogo_node *N) {
  pogo_watchdog *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->magic = WD_MAGIC;
  w->close_magic = CLOSE_MAGIC;
  w->N = N;
  atomic_init(&w->signals, 0);
  atomic_init(&w->looks, 0);
  atomic_init(&w->ticks, 0);
  w->period_ns = (uint64_t)N->preempt_us * 1000u;
  sigset_t cur;
  int sig = claim_signal();
  if (sig && pthread_sigmask(SIG_BLOCK, NULL, &cur) == 0 && !sigismember(&cur, sig)) w->signo = sig;
  if (w->signo && !timers_make(w)) w->signo = 0; /* the permanent count hook */
  return w;
}

static void wd_free(pogo_watchdog *w) {
  timers_delete(w);
  w->magic = w->close_magic = 0;
  free(w);
}

/* ---- the scheduler's side ---- */

static void arm_all(pogo_node *N);

void pogo_preempt_batch(pogo_node *N) {
  pogo_watchdog *w = N->wd;
  if (!w || !w->timers || pthread_equal(pthread_self(), w->loop_thread)) return;
  if (timers_make(w)) return; /* the host runs the loop on another thread now */
  w->signo = 0; /* no timers there: the permanent count hook */
  arm_all(N);
}

void pogo_preempt_slice_begin(pogo_node *N) {
  atomic_signal_fence(memory_order_seq_cst); /* the handler sees N->current and N->slice set */
  pogo_watchdog *w = N->wd;
  if (!w || !w->signo) return;
  w->slice = N->slice;
  pogo_proc *p = N->current;
  if (p && (p->flags & PF_PREEMPTED)) { /* a spinner, likely: watch this slice from its start */
    w->close_cpu = thread_cpu_ns();
    w->seen_ns = uv_hrtime();
    w->close_slice = N->slice;
    atomic_signal_fence(memory_order_seq_cst);
    timer_once(w->close, w->period_ns);
  }
}

void pogo_preempt_slice_end(pogo_node *N, pogo_proc *p, lua_State *co) {
  atomic_signal_fence(memory_order_seq_cst); /* the handler sees N->current cleared */
  if (N->preempted) p->flags |= PF_PREEMPTED;
  else p->flags &= (uint16_t)~PF_PREEMPTED;
  p->inner = NULL; /* (a slice ends in the process's own coroutine) */
  p->inner_preempted = 0;
  pogo_watchdog *w = N->wd;
  if (!w || !w->signo) return;
  w->slice = 0;
  if (w->close_slice) {
    w->close_slice = 0;
    atomic_signal_fence(memory_order_seq_cst);
    timer_once(w->close, 0);
  }
  if (w->armed) {
    w->armed = 0;
    lua_sethook(co, NULL, 0, 0);
  }
  if (N->preempted) {
    w->preemptions++;
    uint64_t now = uv_hrtime();
    p->reductions += (now > w->seen_ns ? now - w->seen_ns : 0) / 1000 + w->period_ns / 1000;
  }
}

void pogo_preempt_arm(pogo_node *N, lua_State *co) {
  if (!N->wd && N->preempt_us > 0) N->wd = wd_new(N); /* with the first process */
  pogo_watchdog *w = N->wd;
  if (w && !w->signo && N->preempt_us > 0) lua_sethook(co, preempt_hook, LUA_MASKCOUNT, FALLBACK_COUNT);
  else if (lua_gethook(co)) lua_sethook(co, NULL, 0, 0); /* a coroutine inherits its creator's hook */
}

/* Give every process but the running one the hook the setting asks for. */
static void arm_all(pogo_node *N) {
  for (uint32_t s = 1; s <= N->nslots; s++) {
    pogo_proc *p = N->procs[s];
    if (p && p->co && p->state != PS_EXITING && p != N->current) pogo_preempt_arm(N, p->co);
  }
}

int pogo_preempt_hook_free(pogo_node *N) {
  if (N->preempt_us == 0) return 1;
  if (!N->wd) N->wd = wd_new(N); /* (made with the first process otherwise) */
  return N->wd && N->wd->signo;
}

/* The hook of a coroutine being closed: its __close handlers run from C
 * (lua_closethread), where nothing can yield; past the deadline each gets
 * an error, and the close goes on to the next. */
static void closing_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  pogo_node *N = pogo_node_of(L);
  if (!N || N->closing != L) {
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  if (uv_hrtime() >= N->closing_deadline)
    luaL_error(L, "a __close handler ran %d ms after its process ended: cut short", POGO_STUCK_MS);
}

void pogo_preempt_closing(pogo_node *N, lua_State *co, int on) {
  if (on) {
    N->closing = co;
    N->closing_deadline = uv_hrtime() + STUCK_NS;
    lua_sethook(co, closing_hook, LUA_MASKCOUNT, HOOK_RETRY);
  } else {
    N->closing = NULL;
    lua_sethook(co, NULL, 0, 0);
  }
}

void pogo_preempt_close(pogo_node *N) {
  if (!N->wd) return;
  wd_free(N->wd);
  N->wd = NULL;
}

/* ---- Lua API ---- */

/* set_preempt_ms(ms | false) -> previous (0: off): a slice running longer
 * than this is preempted */
static int l_set_preempt_ms(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  lua_Number prev = N->preempt_us / 1000.0;
  if (lua_isnoneornil(L, 1)) {
    lua_pushnumber(L, prev);
    return 1;
  }
  lua_Number ms = lua_isboolean(L, 1) ? (lua_toboolean(L, 1) ? POGO_DEFAULT_PREEMPT_US / 1000.0 : 0) : luaL_checknumber(L, 1);
  if (!(ms >= 0 && ms <= 60000)) return luaL_argerror(L, 1, "preempt_ms: 0 (off) to 60000 ms, or a boolean");
  int us = (int)(ms * 1000);
  if (ms > 0 && us < 100) us = 100;
  N->preempt_us = us;
  pogo_watchdog *w = N->wd;
  if (w && w->signo) {
    if (us == 0) pogo_preempt_close(N); /* stop the timers; made again when turned on */
    else {
      w->period_ns = (uint64_t)us * 1000u;
      (void)tick_period(w); /* (cannot fail: a valid timer, a period of 0.1 ms to 8 minutes) */
    }
  } else if (w || us > 0) { /* the permanent hooks follow the setting */
    arm_all(N);
  }
  lua_pushnumber(L, prev);
  return 1;
}

/* critical_enter(): the running process is not preempted until the matching
 * critical_leave() (sections nest). Outside a process (the main chunk, a luv
 * callback) there is nothing to preempt: both do nothing. */
static int l_critical_enter(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_proc *p = N->current;
  if (p && p->co == L) p->critical++;
  return 0;
}

static int l_critical_leave(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_proc *p = N->current;
  if (p && p->co == L && p->critical > 0) p->critical--;
  return 0;
}

/* preempt_info() -> {preempt_ms =, mechanism = "signal" | "count hook" | "off" | "idle", signal =,
 * preemptions = slices preempted, signals = slices a watch hooked, looks = firings of the close
 * watch's timer, ticks = ticks of the calm watch that found a slice running} */
static int l_preempt_info(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_watchdog *w = N->wd;
  lua_createtable(L, 0, 3);
  lua_pushnumber(L, N->preempt_us / 1000.0);
  lua_setfield(L, -2, "preempt_ms");
  const char *how = N->preempt_us <= 0 ? "off" : !w ? "idle" : w->signo ? "signal" : "count hook";
  lua_pushstring(L, how);
  lua_setfield(L, -2, "mechanism");
  if (w && w->signo) {
    lua_pushinteger(L, w->signo);
    lua_setfield(L, -2, "signal");
    lua_pushinteger(L, (lua_Integer)w->preemptions);
    lua_setfield(L, -2, "preemptions");
    lua_pushinteger(L, (lua_Integer)atomic_load_explicit(&w->signals, memory_order_relaxed));
    lua_setfield(L, -2, "signals");
    lua_pushinteger(L, (lua_Integer)atomic_load_explicit(&w->looks, memory_order_relaxed));
    lua_setfield(L, -2, "looks");
    lua_pushinteger(L, (lua_Integer)atomic_load_explicit(&w->ticks, memory_order_relaxed));
    lua_setfield(L, -2, "ticks");
  }
  return 1;
}

void pogo_preempt_nested(pogo_node *N, lua_State *co) {
  pogo_watchdog *w = N->wd;
  if (w && !w->signo && N->preempt_us > 0 && !lua_gethook(co)) /* (the permanent count hook) */
    lua_sethook(co, preempt_hook, LUA_MASKCOUNT, FALLBACK_COUNT);
}

void pogo_preempt_register(lua_State *L) {
  static const luaL_Reg fns[] = {{"set_preempt_ms", l_set_preempt_ms}, {"preempt_info", l_preempt_info},
                                  {"critical_enter", l_critical_enter}, {"critical_leave", l_critical_leave},
                                  {NULL, NULL}};
  pogo_node_setfuncs(L, fns);
}
