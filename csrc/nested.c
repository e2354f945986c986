/*
 * nested.c: coroutines nested in a process are preempted too.
 *
 * Contract
 * - A process is a coroutine, and preemption (preempt.c) makes it yield to
 *   the scheduler when it has run a whole time slice. Code in a process may
 *   run coroutines of its own (a generator, an iterator made with
 *   coroutine.wrap); a loop inside one of them ran with no hook, and its node
 *   froze until the loop ended.
 * - core.resume and core.wrap are Lua's coroutine.resume and coroutine.wrap
 *   (lbaselib's, with the same values, errors and messages), which pogo puts
 *   in place of Lua's in the node's state (lua/pogo/init.lua). In a process
 *   they tell the node which coroutine runs (p->inner, set before each
 *   resume and back to the caller after it), so that the hook is set on that
 *   one. The hook yields it with a mark (p->inner_preempted) and no values;
 *   the resume that ran it sees the mark and yields its own coroutine the
 *   same way (lua_yieldk, so it goes on where it was), up to the process,
 *   whose slice ends as any preempted slice. When the process runs again,
 *   each resume takes its coroutine up where it stopped. The code that
 *   resumed it never sees these yields.
 * - Outside a process (the main chunk, luv callbacks, a host's own code:
 *   Prosody's, cqueues') they are Lua's own, also while the node closes.
 *   A coroutine resumed from C (a C library's lua_resume) is not preempted;
 *   nor is one whose resumer cannot yield (a resume inside a table.sort
 *   comparator, say): it is resumed again at once.
 * - A process's own coroutine is the scheduler's: coroutine.resume of it
 *   (from another process, or host code that got hold of it through an
 *   upvalue) returns false, "cannot resume a process's coroutine", and
 *   core.close (pogo's coroutine.close, lcorolib's otherwise) raises, where
 *   they ran the waiting process's code inside the caller, or ended it. The
 *   scheduler's coroutines are kept in a set with weak keys in the registry
 *   (Lua's extra space per thread was no place: a new coroutine copies the
 *   main thread's, which Lua leaves uninitialised and a host may use).
 */
#include "runtime.h"

/* lbaselib's auxresume: narg values of L go to co, which runs; its results
 * (or its error) come back on L. The number of results, or -1 (error on top). */
static int auxresume(lua_State *L, lua_State *co, int narg) {
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  lua_xmove(L, co, narg);
  int nres;
  int status = lua_resume(co, L, narg, &nres);
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1);
  return -1;
}

/* The node (upvalue 1; NULL once it is closed: no process runs then). */
static pogo_node *node_of(lua_State *L) {
  pogo_node *N = lua_touserdata(L, lua_upvalueindex(1));
  return N && !N->closed ? N : NULL;
}

/* The running process, told that `co` (NULL: the coroutine that calls) runs. */
static pogo_proc *runs(lua_State *L, lua_State *co) {
  pogo_node *N = node_of(L);
  pogo_proc *p = N ? N->current : NULL;
  if (p) {
    p->inner = co ? co : (L == p->co ? NULL : L);
    if (co) pogo_preempt_nested(N, co);
  }
  return p;
}

static int resume_k(lua_State *L, int status, lua_KContext ctx);

/* Resume co (its arguments on top of L, narg of them), passing a preemption
 * of co up: then L yields the same way, and resume_k goes on (`wrap`: its
 * context). The results of the resume (>= 0) or -1 (error on top). */
static int run(lua_State *L, lua_State *co, int narg, lua_KContext wrap) {
  for (;;) {
    runs(L, co);
    int r = auxresume(L, co, narg);
    pogo_proc *p = runs(L, NULL);
    if (r != 0 || !p || !p->inner_preempted) return r;
    p->inner_preempted = 0;
    if (lua_isyieldable(L)) {
      if (L == p->co) node_of(L)->preempted = 1;
      else p->inner_preempted = 1;
      return lua_yieldk(L, 0, wrap, resume_k);
    }
    narg = 0; /* (L cannot yield here, inside a call from C: co goes on at once) */
  }
}

/* The results of a resume, as coroutine.resume returns them. */
static int resume_results(lua_State *L, int r) {
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
}

/* Close co's pending to-be-closed variables after its error (Lua 5.4.6 named
 * lua_resetthread lua_closethread). */
static int close_thread(lua_State *co, lua_State *from) {
#if LUA_VERSION_RELEASE_NUM >= 50406
  return lua_closethread(co, from);
#else
  (void)from;
  return lua_resetthread(co);
#endif
}

/* The results of a wrap's call: its values, or its error raised (lbaselib's
 * auxwrap: the coroutine closed, a string error with the caller's position). */
static int wrap_results(lua_State *L, lua_State *co, int r) {
  if (r >= 0) return r;
  int stat = lua_status(co);
  if (stat != LUA_OK && stat != LUA_YIELD) { /* an error in the coroutine */
    stat = close_thread(co, L);
    lua_xmove(co, L, 1);
  }
  if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) { /* (a dead coroutine's error too) */
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

/* After L yielded for a preemption of the coroutine it runs: run it again.
 * ctx 0: a resume (co at index 1); 1: a wrap (co its upvalue 2, after the node). */
static int resume_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lua_State *co = lua_tothread(L, ctx ? lua_upvalueindex(2) : 1);
  lua_settop(L, ctx ? 0 : 1);
  int r = run(L, co, 0, ctx);
  return ctx ? wrap_results(L, co, r) : resume_results(L, r);
}

/* A bad first argument, named as Lua's own coroutine library names it
 * (luaL_argerror would find these functions under pogo.core first). */
static int bad_first(lua_State *L, const char *fname, const char *expected) {
  return luaL_error(L, "bad argument #1 to '%s' (%s expected, got %s)", fname, expected,
                    luaL_typename(L, 1));
}

/* The registry's key of the set of processes' own coroutines (a table
 * with weak keys: thread -> true). */
static const char PROCESS_THREADS = 'p';

/* The set on top of L (made on first use). */
static void push_processes(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &PROCESS_THREADS) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &PROCESS_THREADS);
}

/* (the thread on top of L stays there) */
void pogo_nested_mark_process(lua_State *L) {
  push_processes(L);
  lua_pushvalue(L, -2);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

/* Whether the coroutine at index 1 of L is a process's own. */
static int is_process(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &PROCESS_THREADS) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushvalue(L, 1);
  int yes = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  return yes;
}

/* resume(co, ...): coroutine.resume. */
static int l_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  if (!co) return bad_first(L, "coroutine.resume", "coroutine");
  if (is_process(L)) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "cannot resume a process's coroutine");
    return 2;
  }
  return resume_results(L, run(L, co, lua_gettop(L) - 1, 0));
}

static int auxwrap(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(2));
  return wrap_results(L, co, run(L, co, lua_gettop(L), 1));
}

/* wrap(f): coroutine.wrap. */
static int l_wrap(lua_State *L) {
  if (lua_type(L, 1) != LUA_TFUNCTION) return bad_first(L, "coroutine.wrap", "function");
  lua_pushvalue(L, lua_upvalueindex(1)); /* the node (POGO_NODE), then the coroutine */
  lua_State *NL = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, NL, 1);
  lua_pushcclosure(L, auxwrap, 2);
  return 1;
}

/* lcorolib's status of co seen from L: 0 running, 1 dead, 2 suspended, 3 normal. */
static int co_status(lua_State *L, lua_State *co) {
  if (L == co) return 0;
  switch (lua_status(co)) {
  case LUA_YIELD: return 2;
  case LUA_OK: {
    lua_Debug ar;
    if (lua_getstack(co, 0, &ar)) return 3; /* it has frames: it resumed another */
    return lua_gettop(co) == 0 ? 1 : 2;      /* dead, or not started */
  }
  default: return 1; /* it ended with an error */
  }
}

/* close(co): coroutine.close (lcorolib's), refusing a process's coroutine. */
static int l_close(lua_State *L) {
  static const char *const names[] = {"running", "dead", "suspended", "normal"};
  lua_State *co = lua_tothread(L, 1);
  if (!co) return bad_first(L, "coroutine.close", "coroutine");
  if (is_process(L)) return luaL_error(L, "cannot close a process's coroutine");
  int st = co_status(L, co);
  if (st != 1 && st != 2) return luaL_error(L, "cannot close a %s coroutine", names[st]);
  if (close_thread(co, L) == LUA_OK) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_xmove(co, L, 1); /* its error */
  return 2;
}

void pogo_nested_register(lua_State *L) {
  static const luaL_Reg fns[] = {{"resume", l_resume}, {"wrap", l_wrap}, {"close", l_close}, {NULL, NULL}};
  pogo_node_setfuncs(L, fns);
}
