/*
 * profile.c: a profiler of the Lua code of a node's processes, for finding
 * where a node spends its time (bench/scale.lua --profile, pogo.profile).
 *
 * How
 * - While a profile runs, every process's coroutine carries a line and
 *   return hook (set as each slice begins: the scheduler clears and
 *   preemption replaces hooks, so a hook set once would not last). At each
 *   new line the hook reads the clock (uv_hrtime) and gives the time since
 *   the previous event to the line that ran: the Lua code of the line, the
 *   C functions it called (the codec, pg's index, table.sort, a send) and
 *   the collector's steps that its allocations paid for. At each return the
 *   caller's line runs again (Lua has no line event for it: without the
 *   return hook, a C call after a call to a Lua function on the same line,
 *   or after a metamethod, went to the callee's last line).
 * - A slice's last line gets the time up to the slice's end: the line that
 *   yielded (in pogo.receive) or was preempted; the next slice of that
 *   process goes on with that line until its next event (read from the
 *   suspended coroutine's stack). So the ten-microsecond slices of a server
 *   answering one message are counted in full, which a timer sampling every
 *   millisecond would almost never see.
 * - What runs outside process slices (the scheduler, the transport's
 *   decoding, I/O, idle) is in no line: `slices_ms` against `wall_ms` tells
 *   how much that is. `outside_ms` is the time of slices in no line (a new
 *   process before its first line) and of the hook's own work.
 * - Its cost, while it runs: a hook call, a lua_getinfo, a lookup and two
 *   clock reads per line run and per return, some 150 ns each, so Lua code
 *   runs several times slower (long C functions do not). The hook's own
 *   work is in no line; Lua's hook dispatch, some 30 ns a line, is in the
 *   lines, so lines of plain Lua weigh a little more than they would. Off,
 *   it costs nothing (one pointer test as a slice begins).
 * - Lines are keyed by (source, line): the source pointer of a function's
 *   chunk (lua_Debug.source) is stable while the function lives; the entry
 *   keeps a copy of its short_src and its function's name for the report.
 *   The table is an open addressing hash, grown by doubling; it is the
 *   profile's own memory, freed when the profile stops or the node goes.
 * - Limits: the instruction at which a slice was preempted runs again at
 *   the next slice without a line event (Lua's CIST_HOOKYIELD), so when it
 *   begins a new line, that line's time up to its next event goes to the
 *   line before; a function's chunk freed and another loaded at the same
 *   address would share its lines' entries (the first name stays).
 * - Preemption keeps working: its signal replaces the hook of the slice it
 *   preempts, and the next slice gets the profiler's hook again. With the
 *   permanent preemption hook (no real-time signal for preemption) the
 *   two would fight over the one hook a coroutine has: profile_start
 *   refuses then.
 *
 * Lua API (pogo.core; lua/pogo/profile.lua wraps it):
 *   profile_start() -> true | nil, reason
 *   profile_stop() -> {wall_ms =, slices_ms =, outside_ms =, lines = {{where =, fn =, ms =}, ...}}
 *     (lines unsorted) | nil, "no profile runs on this node"
 */
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

#define INITIAL_CAP 1024

typedef struct prof_line {
  const char *source; /* lua_Debug.source of the function (NULL: empty slot) */
  int line;
  uint64_t ns;
  char where[LUA_IDSIZE + 16]; /* "short_src:line" */
  char fn[48];                 /* the function's name, if Lua knew it */
} prof_line;

struct pogo_profile {
  uint64_t started;  /* uv_hrtime at profile_start */
  uint64_t last;     /* the previous event in this slice, or the slice's start */
  uint64_t slice_ns; /* sum of the slices' durations */
  uint64_t slice_at; /* when the running slice began (0: none) */
  uint64_t lines_ns; /* time given to lines */
  size_t cur;        /* the line running (its index in tab), or NO_LINE */
  prof_line *tab;
  size_t cap, n;
};

static size_t slot_of(const char *source, int line, size_t cap) {
  uintptr_t h = (uintptr_t)source * 0x9E3779B97F4A7C15u ^ (uintptr_t)(unsigned)line * 0xC2B2AE3D27D4EB4Fu;
  return (size_t)(h >> 17) & (cap - 1);
}

/* The entry of (source, line), made if missing; NULL if memory fails. */
static prof_line *entry(pogo_profile *pr, const char *source, int line) {
  if ((pr->n + 1) * 4 > pr->cap * 3) {
    size_t ncap = pr->cap * 2;
    prof_line *nt = calloc(ncap, sizeof *nt);
    if (!nt) return NULL;
    for (size_t i = 0; i < pr->cap; i++) {
      prof_line *e = &pr->tab[i];
      if (!e->source) continue;
      size_t j = slot_of(e->source, e->line, ncap);
      while (nt[j].source) j = (j + 1) & (ncap - 1);
      nt[j] = *e;
    }
    free(pr->tab);
    pr->tab = nt;
    pr->cap = ncap;
  }
  size_t i = slot_of(source, line, pr->cap);
  while (pr->tab[i].source) {
    if (pr->tab[i].source == source && pr->tab[i].line == line) return &pr->tab[i];
    i = (i + 1) & (pr->cap - 1);
  }
  pr->n++;
  pr->tab[i].source = source;
  pr->tab[i].line = line;
  return &pr->tab[i];
}

#define NO_LINE ((size_t)-1)

/* The index of the entry of ar's line (ar got with "S" and a current line),
 * made and named on first sight; NO_LINE if memory fails. */
static size_t line_index(pogo_profile *pr, lua_State *L, lua_Debug *ar) {
  prof_line *e = entry(pr, ar->source, ar->currentline);
  if (!e) return NO_LINE;
  if (!e->where[0]) {
    snprintf(e->where, sizeof e->where, "%s:%d", ar->short_src, ar->currentline);
    if (lua_getinfo(L, "n", ar) && ar->name) snprintf(e->fn, sizeof e->fn, "%s", ar->name);
  }
  return (size_t)(e - pr->tab);
}

/* The line of the innermost Lua function of L's stack from `level` on (C
 * functions are skipped: their time is their Lua caller's); NO_LINE if
 * there is none. */
static size_t lua_line_from(pogo_profile *pr, lua_State *L, int level) {
  lua_Debug ar;
  for (int top = level + 4; level < top && lua_getstack(L, level, &ar); level++) {
    if (lua_getinfo(L, "Sl", &ar) && ar.source && ar.currentline >= 0) return line_index(pr, L, &ar);
  }
  return NO_LINE;
}

/* Give the running line the time since the last event. */
static void charge(pogo_profile *pr, uint64_t now) {
  if (pr->cur == NO_LINE) return;
  pr->tab[pr->cur].ns += now - pr->last;
  pr->lines_ns += now - pr->last;
}

static void profile_hook(lua_State *L, lua_Debug *ar) {
  pogo_node *N = pogo_node_of(L);
  pogo_profile *pr = N && !N->closed ? N->prof : NULL;
  if (!pr) { /* the profile stopped: a coroutine that kept the hook */
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  if (!pr->slice_at) return; /* not inside a slice (a coroutine resumed by a luv callback) */
  charge(pr, uv_hrtime());
  pr->cur = NO_LINE;
  if (ar->event == LUA_HOOKLINE) {
    if (lua_getinfo(L, "S", ar) && ar->source) pr->cur = line_index(pr, L, ar);
  } else { /* a return: the caller's line goes on (no line event says so) */
    pr->cur = lua_line_from(pr, L, 1);
  }
  pr->last = uv_hrtime(); /* the hook's own work is no line's */
}

void pogo_profile_slice_begin(pogo_node *N, lua_State *co) {
  pogo_profile *pr = N->prof;
  if (!pr) return;
  lua_sethook(co, profile_hook, LUA_MASKLINE | LUA_MASKRET, 0);
  pr->slice_at = uv_hrtime();
  /* until its next line, the slice goes on with the line it stopped in */
  pr->cur = lua_status(co) == LUA_YIELD ? lua_line_from(pr, co, 0) : NO_LINE;
  pr->last = uv_hrtime();
}

void pogo_profile_slice_end(pogo_node *N) {
  pogo_profile *pr = N->prof;
  if (!pr || !pr->slice_at) return;
  uint64_t now = uv_hrtime();
  pr->slice_ns += now - pr->slice_at;
  pr->slice_at = 0;
  charge(pr, now); /* the slice ended in its last line (a yield, in pogo.receive) */
  pr->cur = NO_LINE;
}

void pogo_profile_close(pogo_node *N) {
  pogo_profile *pr = N->prof;
  if (!pr) return;
  N->prof = NULL;
  free(pr->tab);
  free(pr);
}

/* profile_start() -> true | nil, reason */
static int l_profile_start(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  if (N->prof) {
    lua_pushnil(L);
    lua_pushliteral(L, "a profile runs already on this node");
    return 2;
  }
  if (!pogo_preempt_hook_free(N)) {
    lua_pushnil(L);
    lua_pushliteral(L, "the preemption hook holds every process (no signal for preemption): cannot profile");
    return 2;
  }
  pogo_profile *pr = calloc(1, sizeof *pr);
  prof_line *tab = calloc(INITIAL_CAP, sizeof *tab);
  if (!pr || !tab) {
    free(pr);
    free(tab);
    return luaL_error(L, "profile_start: out of memory");
  }
  pr->tab = tab;
  pr->cap = INITIAL_CAP;
  pr->started = uv_hrtime();
  N->prof = pr;
  /* the caller's own slice runs on: it is timed from now */
  if (N->current && N->current->co) pogo_profile_slice_begin(N, N->current->co);
  lua_pushboolean(L, 1);
  return 1;
}

static void set_ms(lua_State *L, const char *k, uint64_t ns) {
  lua_pushnumber(L, (lua_Number)ns / 1e6);
  lua_setfield(L, -2, k);
}

/* profile_stop() -> report | nil, reason */
static int l_profile_stop(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_profile *pr = N->prof;
  if (!pr) {
    lua_pushnil(L);
    lua_pushliteral(L, "no profile runs on this node");
    return 2;
  }
  uint64_t now = uv_hrtime();
  if (pr->slice_at) { /* the caller's slice, so far */
    pr->slice_ns += now - pr->slice_at;
    charge(pr, now);
  }
  /* the hooks go: on the caller at once, on the others as they next fire */
  if (N->current && N->current->co && lua_gethook(N->current->co) == profile_hook)
    lua_sethook(N->current->co, NULL, 0, 0);
  lua_createtable(L, 0, 4);
  set_ms(L, "wall_ms", now - pr->started);
  set_ms(L, "slices_ms", pr->slice_ns);
  set_ms(L, "outside_ms", pr->slice_ns > pr->lines_ns ? pr->slice_ns - pr->lines_ns : 0);
  lua_createtable(L, (int)pr->n, 0);
  lua_Integer k = 0;
  for (size_t i = 0; i < pr->cap; i++) {
    prof_line *e = &pr->tab[i];
    if (!e->source) continue;
    lua_createtable(L, 0, 3);
    lua_pushstring(L, e->where);
    lua_setfield(L, -2, "where");
    if (e->fn[0]) {
      lua_pushstring(L, e->fn);
      lua_setfield(L, -2, "fn");
    }
    set_ms(L, "ms", e->ns);
    lua_rawseti(L, -2, ++k);
  }
  lua_setfield(L, -2, "lines");
  pogo_profile_close(N);
  return 1;
}

void pogo_profile_register(lua_State *L) {
  static const luaL_Reg fns[] = {{"profile_start", l_profile_start}, {"profile_stop", l_profile_stop}, {NULL, NULL}};
  pogo_node_setfuncs(L, fns);
}
