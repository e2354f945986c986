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
 *   is armed only on a slice that overruns:
 *   - the scheduler publishes the number of the running slice (N->slice) to a
 *     watchdog thread of the node (two plain stores per resume);
 *   - the watchdog looks every preempt_ms (see below); a slice it sees at two
 *     looks in a row, and in which the loop thread has used at least half
 *     of preempt_ms of CPU time since the first of them, has run at least
 *     that long: it sends the loop thread a real-time signal (pthread_sigqueue,
 *     with the watchdog as its value, so the handler needs no global state).
 *     CPU time, not the time on the clock: on a busy machine (several nodes
 *     per core, a shared VM) the system often takes the core away from the
 *     loop thread in the middle of a short slice, and counting that wait
 *     preempted slices that had run for microseconds (measured with a node
 *     pinned to a shared core: 335 preemptions in a run of pogo.call, and
 *     the rate 25 % lower; with CPU time none, and the rate within 5 % of
 *     the rate with preemption off). A slice that waits in
 *     a blocking system call uses no CPU time either: it goes on when the
 *     call returns, until it has used its time slice. The thread's CPU clock
 *     is pthread_getcpuclockid's; without one, the time on the clock counts;
 *   - the handler, on the loop thread, arms a count hook of 1 on the running
 *     process's coroutine with lua_sethook: the way lua.c stops a script on
 *     SIGINT, which ldebug.c documents as safe to call from a signal. (Calling
 *     lua_sethook from the watchdog thread itself was rejected: it walks the
 *     coroutine's CallInfo list while the VM changes it and the GC frees parts
 *     of it, luaE_shrinkCI.)
 *   - the hook, at the next instruction, yields the coroutine (lua_yield from
 *     a count hook); the scheduler disarms it, puts the process at the back of
 *     the run queue and ends its batch, so I/O, timers, heartbeats and signals
 *     (SIGTERM) are served, and exit(pid, "kill") finds the spinner waiting.
 *   A slice that blocks or ends before the watchdog sees it twice is never
 *   interrupted: short slices (a server answering a call) stay as atomic as
 *   they were; preemption changes nothing for them.
 * - The calm watch is a timer, not the watchdog: a POSIX timer on the loop
 *   thread's CPU clock (timer_create, SIGEV_THREAD_ID) sends the same signal
 *   to the loop thread every CALM_FACTOR time slices of its CPU time (4 ms;
 *   the kernel checks CPU timers at its tick, 250 times a second here). The
 *   handler (on_tick) hooks a slice that was running at the previous tick
 *   too, so the first slice of a new spinner runs 4 to 8 ms. A node that
 *   waits uses no CPU time and gets no tick, and a busy node's ticks come on
 *   the thread that runs anyway: no other thread wakes up. (A tick may
 *   interrupt a system call of that thread: the handler is SA_RESTART, and
 *   the calls that are never restarted, such as epoll_wait, return EINTR,
 *   which libuv and the hosts' loops retry.) The watchdog
 *   thread only looks closely, every preempt_ms, during a slice of a process
 *   whose last slice was preempted (PF_PREEMPTED: a spinner; the scheduler
 *   wakes the watchdog as that slice begins, so a process that spins is
 *   preempted every one to two time slices), and else waits up to TICKED_NS.
 *   Before the tick the watchdog kept the calm watch itself, looking every
 *   CALM_FACTOR time slices while the loop thread was busy (250 wake-ups a
 *   second of a second thread, each an entry into the kernel that flushes
 *   this VM's TLB, and often a context switch away from a loop thread):
 *   10,000 children placed on 5 nodes (bench/scale.lua, same hour,
 *   alternating, 4 runs each) took 206-237 us of the nodes' CPU a child with
 *   the tick (median 228), 209-261 with the looks (median 235); a node that
 *   neither requests nor runs them 28-32 us against 30-34. Without a tick (no CPU clock, or timer_create fails) the
 *   watchdog keeps the calm watch as it did: every CALM_FACTOR time
 *   slices while the loop thread is busy (a slice runs when it
 *   looks, or the thread used a quarter or more of the time since the last
 *   look); each look that finds the thread less busy than that and no slice
 *   running doubles the wait, up to 100 ms. That back-off came from the
 *   mesh: a node whose processes run often but briefly used to count as
 *   busy as soon as one look in a hundred fell in a slice, and each of 50
 *   nodes on 2 cores woke its watchdog 250 times a second while the mesh
 *   formed: the wake-ups cost a quarter of the nodes' CPU (2.2-3.9 s after
 *   all listened with preemption off, 3.6-5.1 s on, 4.2-4.9 s with the
 *   watchdog looking but never signalling).
 *   Without a CPU clock for the loop thread, the wait becomes 100 ms once no
 *   slice ran at IDLE_LOOKS looks in a row, as before.
 *   The close watch follows the process, not the node: it used to last 200
 *   looks (100 ms) after any preemption, and a collection that took a few
 *   ms inside some slice (a major one, after a burst of garbage) got that
 *   slice preempted and the node watched closely for 100 ms, waking the
 *   watchdog 2,000 times a second: pogo.call after 900,000 spawns ran 7 to
 *   20 % slower than with preemption off on a node pinned to one core (about
 *   100 preemptions during the calls; now 1 to 4, and 0 to 7 % slower); the
 *   preempted process's next slice, a short one, now ends the close watch.
 * - If the signal cannot be used (another handler owns each candidate signal,
 *   or the loop thread blocks it), every process gets a permanent count hook
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
 * Where preemption cannot apply (the slice goes on until the code returns
 * somewhere it can yield; the node is frozen meanwhile, as before):
 * - a coroutine nested in the process (coroutine.wrap, an iterator): only the
 *   process's own coroutine is hooked, and yielding a nested one would look
 *   like a coroutine.yield to the code that resumed it;
 * - a call from C that cannot yield: the comparator of table.sort, the
 *   function of string.gsub, a metamethod called from C (__gc, __close), the
 *   message handler of xpcall, the body of a module being required, any Lua
 *   function called by a C library through lua_call (the hook keeps trying
 *   every HOOK_RETRY instructions until the code can yield);
 * - long C functions (a string.rep of a gigabyte, encoding a huge message);
 * - the main chunk and plain luv callbacks, which are not processes.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime.h"

#ifndef sigev_notify_thread_id /* glibc before 2.41 names the field only */
#define sigev_notify_thread_id _sigev_un._tid
#endif

#define WD_MAGIC 0x706f676fu
#define IDLE_LOOKS 100
#define IDLE_NS 100000000ull
#define TICKED_NS 1000000000ull /* with the tick, the longest wait between looks */
#define CALM_FACTOR 8  /* otherwise every 8 periods */
#define HOOK_RETRY 1000
#define FALLBACK_COUNT 20000

struct pogo_watchdog {
  uint32_t magic;
  pogo_node *N;
  int signo; /* 0: the permanent count hook instead */
  uv_thread_t thread;
  int started;
  uv_mutex_t mu;
  uv_cond_t cv;
  int stop;                   /* under mu */
  pthread_t loop_thread;      /* under mu */
  clockid_t loop_cpu;         /* its CPU-time clock (under mu) */
  int has_cpu;                /* loop_cpu is valid (under mu) */
  _Atomic uint32_t slice;     /* the running slice, 0 between slices */
  _Atomic uint32_t target;    /* the slice the watchdog asked to preempt */
  _Atomic uint32_t hot;       /* a slice of a process preempted last time: looked at every period */
  _Atomic uint64_t seen_ns;   /* when the watchdog first saw the running slice */
  _Atomic uint32_t period_ns; /* preempt_ms */
  uint64_t preemptions;       /* slices preempted (loop thread) */
  _Atomic uint64_t signals;   /* signals sent (watchdog) */
  _Atomic uint64_t looks;     /* times the watchdog woke up and looked (watchdog) */
  volatile sig_atomic_t armed; /* low bits of the slice the handler hooked (handler: loop thread) */
  /* the calm watch: a timer on the loop thread's CPU clock (see the file's head) */
  timer_t tick;               /* under mu */
  int has_tick;               /* tick is armed (under mu) */
  uint32_t tick_last;         /* the slice running at the last tick (handler: loop thread) */
  _Atomic uint64_t ticks;     /* ticks that found a slice running (handler) */
};

/* ---- the hook ---- */

static void preempt_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  pogo_node *N = pogo_node_of(L);
  pogo_watchdog *w = N ? N->wd : NULL;
  pogo_proc *p = N && !N->closed ? N->current : NULL;
  if (!w || !p || p->co != L) { /* not the running process's own coroutine */
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
    return;
  }
  N->preempted = 1;
  lua_yield(L, 0);
}

/* ---- the signal ---- */

/* The calm watch's tick: the loop thread has used another CALM_FACTOR time
 * slices of CPU. A slice that was running at the last tick as well has run
 * at least that long: hook it. */
static void on_tick(pogo_watchdog *w) {
  pogo_node *N = w->N;
  uint32_t s = atomic_load_explicit(&w->slice, memory_order_relaxed);
  pogo_proc *p = N->current;
  if (s == 0 || !p || !p->co || N->slice != s) {
    w->tick_last = 0;
    return;
  }
  atomic_fetch_add_explicit(&w->ticks, 1, memory_order_relaxed);
  if (s != w->tick_last) {
    w->tick_last = s;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* uv_hrtime's clock; this one is async-signal-safe */
    atomic_store_explicit(&w->seen_ns, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec,
                          memory_order_relaxed);
    return;
  }
  w->armed = (sig_atomic_t)s;
  lua_sethook(p->co, preempt_hook, LUA_MASKCOUNT, 1);
}

static void on_signal(int sig, siginfo_t *si, void *uc) {
  (void)sig;
  (void)uc;
  if (!si || (si->si_code != SI_QUEUE && si->si_code != SI_TIMER)) return;
  pogo_watchdog *w = si->si_value.sival_ptr;
  if (!w || w->magic != WD_MAGIC) return;
  if (si->si_code == SI_TIMER) {
    on_tick(w);
    return;
  }
  pogo_node *N = w->N;
  pogo_proc *p = N->current;
  if (!p || !p->co || N->slice != atomic_load_explicit(&w->target, memory_order_relaxed)) return;
  w->armed = (sig_atomic_t)N->slice;
  lua_sethook(p->co, preempt_hook, LUA_MASKCOUNT, 1);
}

/* A real-time signal for the watchdog: ours already, or one nobody handles. */
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

/* ---- the watchdog thread ---- */

/* The loop thread's CPU time (ns), or the time on the clock without its CPU
 * clock. Under mu. */
static uint64_t loop_cpu_ns(pogo_watchdog *w) {
  struct timespec ts;
  if (w->has_cpu && clock_gettime(w->loop_cpu, &ts) == 0)
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
  return uv_hrtime();
}

/* Set the tick's period to CALM_FACTOR time slices of CPU. Under mu. */
static void tick_period(pogo_watchdog *w) {
  uint64_t ns = CALM_FACTOR * (uint64_t)atomic_load_explicit(&w->period_ns, memory_order_relaxed);
  struct itimerspec its;
  its.it_value.tv_sec = its.it_interval.tv_sec = (time_t)(ns / 1000000000ull);
  its.it_value.tv_nsec = its.it_interval.tv_nsec = (long)(ns % 1000000000ull);
  if (timer_settime(w->tick, 0, &its, NULL) != 0) {
    timer_delete(w->tick);
    w->has_tick = 0;
  }
}

/* Take the CPU clock of the loop thread (w->loop_thread), which is the
 * calling thread, and start the tick on it (without either, the watchdog
 * keeps the calm watch by looking). Under mu. */
static void take_cpu_clock(pogo_watchdog *w) {
  if (w->has_tick) timer_delete(w->tick);
  w->has_tick = 0;
  w->tick_last = 0;
  w->has_cpu = pthread_getcpuclockid(w->loop_thread, &w->loop_cpu) == 0;
  if (!w->has_cpu || !w->signo) return;
  struct sigevent ev;
  memset(&ev, 0, sizeof ev);
  ev.sigev_notify = SIGEV_THREAD_ID;
  ev.sigev_signo = w->signo;
  ev.sigev_value.sival_ptr = w;
  ev.sigev_notify_thread_id = gettid();
  if (timer_create(w->loop_cpu, &ev, &w->tick) != 0) return;
  w->has_tick = 1;
  tick_period(w);
}

static void wd_main(void *arg) {
  pogo_watchdog *w = arg;
  uint32_t last = 0;
  uint64_t last_cpu = 0; /* the loop thread's CPU time when `last` was first seen */
  uint64_t calm = 0;     /* the wait between calm looks (see the file's head) */
  uint64_t prev_at = 0, prev_cpu = 0; /* the clock and the loop thread's CPU time at the last look */
  unsigned idle = 0;     /* looks in a row that saw no slice (without a CPU clock) */
  uv_mutex_lock(&w->mu);
  while (!w->stop) {
    uint64_t period = atomic_load_explicit(&w->period_ns, memory_order_relaxed);
    uint64_t busy_wait = CALM_FACTOR * period;
    if (calm < busy_wait) calm = busy_wait;
    uint32_t hot = atomic_load_explicit(&w->hot, memory_order_relaxed);
    int close = hot != 0 && hot == atomic_load_explicit(&w->slice, memory_order_relaxed);
    (void)uv_cond_timedwait(&w->cv, &w->mu, close ? period : w->has_tick ? TICKED_NS : calm);
    if (w->stop) break;
    if (w->has_tick) { /* the tick keeps the calm watch: look at a spinner's slice only */
      hot = atomic_load_explicit(&w->hot, memory_order_relaxed);
      if (hot == 0 || hot != atomic_load_explicit(&w->slice, memory_order_relaxed)) {
        last = 0;
        continue;
      }
    }
    atomic_fetch_add_explicit(&w->looks, 1, memory_order_relaxed);
    uint64_t now = uv_hrtime(), cpu = loop_cpu_ns(w);
    /* busy: the loop thread used a quarter of the time since the last look */
    int busy = w->has_cpu ? prev_at == 0 || (cpu - prev_cpu) * 4 >= now - prev_at : idle <= IDLE_LOOKS;
    prev_at = now;
    prev_cpu = cpu;
    uint32_t s = atomic_load_explicit(&w->slice, memory_order_relaxed);
    if (s == 0) {
      idle++;
      last = 0;
      calm = busy ? busy_wait : calm * 2 < IDLE_NS ? calm * 2 : IDLE_NS;
      continue;
    }
    idle = 0;
    calm = busy_wait;
    if (s != last) {
      last = s;
      last_cpu = cpu;
      atomic_store_explicit(&w->seen_ns, now, memory_order_relaxed);
      continue;
    }
    /* two looks apart, but it had the core less than half the time: it
     * waited for one, or in a system call */
    if (cpu - last_cpu < period / 2) continue;
    atomic_store_explicit(&w->target, s, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->signals, 1, memory_order_relaxed);
    union sigval v;
    v.sival_ptr = w;
    pthread_sigqueue(w->loop_thread, w->signo, v);
  }
  uv_mutex_unlock(&w->mu);
}

static pogo_watchdog *wd_new(pogo_node *N) {
  pogo_watchdog *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->magic = WD_MAGIC;
  w->N = N;
  atomic_init(&w->slice, 0);
  atomic_init(&w->target, 0);
  atomic_init(&w->hot, 0);
  atomic_init(&w->seen_ns, 0);
  atomic_init(&w->signals, 0);
  atomic_init(&w->looks, 0);
  atomic_init(&w->period_ns, (uint32_t)N->preempt_us * 1000u);
  w->loop_thread = pthread_self();
  sigset_t cur;
  int sig = claim_signal();
  if (sig && pthread_sigmask(SIG_BLOCK, NULL, &cur) == 0 && !sigismember(&cur, sig)) w->signo = sig;
  if (!w->signo) return w; /* the permanent count hook */
  if (uv_mutex_init(&w->mu) != 0) {
    w->signo = 0;
    return w;
  }
  if (uv_cond_init(&w->cv) != 0) {
    uv_mutex_destroy(&w->mu);
    w->signo = 0;
    return w;
  }
  take_cpu_clock(w); /* no thread yet: mu is not needed */
  if (uv_thread_create(&w->thread, wd_main, w) != 0) {
    if (w->has_tick) timer_delete(w->tick);
    w->has_tick = 0;
    uv_cond_destroy(&w->cv);
    uv_mutex_destroy(&w->mu);
    w->signo = 0;
    return w;
  }
  w->started = 1;
  return w;
}

static void wd_free(pogo_watchdog *w) {
  if (w->started) {
    uv_mutex_lock(&w->mu);
    w->stop = 1;
    uv_cond_signal(&w->cv);
    uv_mutex_unlock(&w->mu);
    uv_thread_join(&w->thread);
    if (w->has_tick) timer_delete(w->tick);
    /* a signal it or the tick sent may still be pending for this thread: take it here */
    sigset_t one, old;
    sigemptyset(&one);
    sigaddset(&one, w->signo);
    if (pthread_sigmask(SIG_BLOCK, &one, &old) == 0) {
      struct timespec zero = {0, 0};
      while (sigtimedwait(&one, NULL, &zero) > 0) {}
      pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    uv_cond_destroy(&w->cv);
    uv_mutex_destroy(&w->mu);
  }
  w->magic = 0;
  free(w);
}

/* ---- the scheduler's side ---- */

void pogo_preempt_batch(pogo_node *N) {
  pogo_watchdog *w = N->wd;
  if (!w || !w->started) return;
  pthread_t me = pthread_self();
  if (pthread_equal(me, w->loop_thread)) return;
  uv_mutex_lock(&w->mu); /* the host runs the loop on another thread now */
  w->loop_thread = me;
  take_cpu_clock(w);
  uv_mutex_unlock(&w->mu);
}

void pogo_preempt_slice_begin(pogo_node *N) {
  atomic_signal_fence(memory_order_seq_cst); /* the handler sees N->current and N->slice set */
  pogo_watchdog *w = N->wd;
  if (!w || !w->signo) return;
  atomic_store_explicit(&w->slice, N->slice, memory_order_relaxed);
  pogo_proc *p = N->current;
  if (p && (p->flags & PF_PREEMPTED)) { /* a spinner, likely: watch this slice from its start */
    atomic_store_explicit(&w->hot, N->slice, memory_order_relaxed);
    uv_cond_signal(&w->cv);
  }
}

void pogo_preempt_slice_end(pogo_node *N, pogo_proc *p, lua_State *co) {
  atomic_signal_fence(memory_order_seq_cst); /* the handler sees N->current cleared */
  if (N->preempted) p->flags |= PF_PREEMPTED;
  else p->flags &= (uint16_t)~PF_PREEMPTED;
  pogo_watchdog *w = N->wd;
  if (!w || !w->signo) return;
  atomic_store_explicit(&w->slice, 0, memory_order_relaxed);
  if (w->armed) {
    w->armed = 0;
    lua_sethook(co, NULL, 0, 0);
  }
  if (N->preempted) {
    w->preemptions++;
    uint64_t seen = atomic_load_explicit(&w->seen_ns, memory_order_relaxed);
    uint64_t now = uv_hrtime();
    uint64_t period = atomic_load_explicit(&w->period_ns, memory_order_relaxed);
    p->reductions += (now > seen ? now - seen : 0) / 1000 + period / 1000;
  }
}

void pogo_preempt_arm(pogo_node *N, lua_State *co) {
  if (!N->wd && N->preempt_us > 0) N->wd = wd_new(N); /* with the first process */
  pogo_watchdog *w = N->wd;
  if (w && !w->signo && N->preempt_us > 0) lua_sethook(co, preempt_hook, LUA_MASKCOUNT, FALLBACK_COUNT);
  else if (lua_gethook(co)) lua_sethook(co, NULL, 0, 0); /* a coroutine inherits its creator's hook */
}

int pogo_preempt_hook_free(pogo_node *N) {
  if (N->preempt_us == 0) return 1;
  if (!N->wd) N->wd = wd_new(N); /* (made with the first process otherwise) */
  return N->wd && N->wd->signo;
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
    if (us == 0) pogo_preempt_close(N); /* stop the thread; made again when turned on */
    else {
      uv_mutex_lock(&w->mu);
      atomic_store_explicit(&w->period_ns, (uint32_t)us * 1000u, memory_order_relaxed);
      if (w->has_tick) tick_period(w);
      uv_mutex_unlock(&w->mu);
    }
  } else if (w || us > 0) { /* the permanent hooks follow the setting */
    for (uint32_t s = 1; s <= N->nslots; s++) {
      pogo_proc *p = N->procs[s];
      if (p && p->co && p->state != PS_EXITING && p != N->current) pogo_preempt_arm(N, p->co);
    }
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
 * preemptions = slices preempted, signals = signals the watchdog sent, looks = times it looked,
 * ticks = ticks of the calm watch that found a slice running} */
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

void pogo_preempt_register(lua_State *L) {
  static const luaL_Reg fns[] = {{"set_preempt_ms", l_set_preempt_ms}, {"preempt_info", l_preempt_info},
                                  {"critical_enter", l_critical_enter}, {"critical_leave", l_critical_leave},
                                  {NULL, NULL}};
  pogo_node_setfuncs(L, fns);
}
