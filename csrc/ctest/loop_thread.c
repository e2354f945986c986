/*
 * loop_thread.c: a host that moves its node's loop to another thread. The
 * node is made and stepped on the main thread, then stepped on a second
 * thread only; preemption's timers (preempt.c) signal the thread that runs
 * the loop, so they must follow it there. A process that spins without end
 * is the test: a step returns only when the spinner is preempted, so without
 * timers on the second thread its first step there never returns (the main
 * thread, which then blocks every signal, gives up after 10 s and fails). A
 * process that sleeps 1 ms at a time counts its runs, to show the others
 * still run beside the spinner. Exit status 0 on success.
 *
 * Run by spec/support/run_tests.sh (from $BUILD/ctest) with LUA_PATH/LUA_CPATH
 * pointing at the source tree and the build.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

static const char *SCRIPT =
  "local pogo = require 'pogo'\n"
  "local runs = 0\n"
  "pogo.spawn(function() local x = 0; while true do x = x + 1 end end)\n"
  "pogo.spawn(function() while true do pogo.sleep(1); runs = runs + 1 end end)\n"
  "return function() pogo.step(); return runs, pogo.core.preempt_info().preemptions end\n";

typedef struct {
  lua_State *L;
  long runs, preemptions;
  int failed, done;
} host;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Step the node for `ms` milliseconds (the step function is on the stack). */
static void step_for(host *h, double ms) {
  double end = now_ms() + ms;
  while (now_ms() < end) {
    lua_pushvalue(h->L, -1);
    if (lua_pcall(h->L, 0, 2, 0) != LUA_OK) {
      fprintf(stderr, "loop_thread: %s\n", lua_tostring(h->L, -1));
      h->failed = 1;
      return;
    }
    h->runs = (long)lua_tointeger(h->L, -2);
    h->preemptions = (long)lua_tointeger(h->L, -1);
    lua_pop(h->L, 2);
  }
}

static void *second(void *arg) {
  host *h = arg;
  step_for(h, 300);
  __atomic_store_n(&h->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

int main(void) {
  host h = {0};
  h.L = luaL_newstate();
  luaL_openlibs(h.L);
  if (luaL_loadstring(h.L, SCRIPT) != LUA_OK || lua_pcall(h.L, 0, 1, 0) != LUA_OK) {
    fprintf(stderr, "loop_thread: %s\n", lua_tostring(h.L, -1));
    return 1;
  }
  step_for(&h, 100);
  long runs = h.runs, preemptions = h.preemptions;
  if (h.failed || runs < 10 || preemptions < 10) {
    fprintf(stderr, "loop_thread: on the main thread, %ld runs, %ld preemptions\n", runs, preemptions);
    return 1;
  }
  pthread_t t;
  if (pthread_create(&t, NULL, second, &h) != 0) return 1;
  /* the main thread now blocks every signal, as a host's thread that waits
   * for signals with sigwait would: a timer left on it would signal it in
   * vain, and the spinner on the second thread would run on */
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  struct timespec limit;
  clock_gettime(CLOCK_REALTIME, &limit);
  limit.tv_sec += 10;
  if (pthread_timedjoin_np(t, NULL, &limit) != 0) {
    fprintf(stderr, "loop_thread: a step on the second thread did not return in 10 s (the spinner ran on)\n");
    return 1; /* the thread still spins in the VM: leave without closing the state */
  }
  if (h.failed || !__atomic_load_n(&h.done, __ATOMIC_ACQUIRE)) return 1;
  if (h.runs - runs < 30 || h.preemptions - preemptions < 30) {
    fprintf(stderr, "loop_thread: on the second thread, %ld runs, %ld preemptions\n", h.runs - runs,
            h.preemptions - preemptions);
    return 1;
  }
  printf("loop_thread: the node's loop moved to another thread: %ld runs beside a spinner preempted %ld times there\n",
         h.runs - runs, h.preemptions - preemptions);
  lua_close(h.L);
  return 0;
}
