/*
 * examples/embed/c_host/host.c: a C program with its own epoll loop that
 * runs two Lua states, each a pogo node, linked to each other over TCP.
 *
 *   pogo_c_host [--cookie C] [--seeds host:port,...] [--name PREFIX]
 *               [--heartbeat-ms MS] [--timeout-ms MS] [script.lua [args...]]
 *
 * Node 1 is PREFIX1, node 2 is PREFIX2 (default prefix "c"), both on
 * 127.0.0.1 with ephemeral ports; node 2 has node 1 as a seed, both have
 * --seeds. Each prints "POGO_NODE <name>" on stdout once listening, and
 * runs the script (if any) as its first process, as bin/pogo does. The
 * cookie defaults to $POGO_COOKIE. SIGTERM or SIGINT: pogo.stop() in both,
 * step until their links are closed (at most 2 s), close both states, exit 0.
 *
 * The loop is the embedding contract of the README ("Hosts that own their
 * loop") in C: each node's pogo.fd() is in the host's epoll set; the epoll
 * timeout is the smallest pogo.timeout(); a node is stepped when its fd is
 * readable, when its timer is due, or when its last step said more work was
 * ready (then the epoll wait does not block). Nothing here is global: the
 * two nodes share the process, the thread and this loop, nothing else.
 *
 * pogo is loaded by `require` through LUA_PATH / LUA_CPATH, as by lua5.4.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#define NODES 2

/* Run in each state: start the node, run the script, hand the host its
 * functions. Arguments: name, cookie, seeds, heartbeat_ms, timeout_ms,
 * script, the script's arguments. */
static const char *BOOT =
  "local pogo = require 'pogo'\n"
  "local name, cookie, seeds, heartbeat, timeout, script = ...\n"
  "local list = {}\n"
  "for s in seeds:gmatch('[^,]+') do list[#list + 1] = s end\n"
  "local node = pogo.start { name = name, cookie = cookie ~= '' and cookie or nil, seeds = list,\n"
  "  heartbeat_ms = tonumber(heartbeat), timeout_ms = tonumber(timeout) }\n"
  "if script ~= '' then\n"
  "  local chunk = assert(loadfile(script))\n"
  "  pogo.spawn(chunk, select(7, ...))\n"
  "end\n"
  "local function links() local i = pogo.dist_info() return (i.started and 1 or 0) + #i.links end\n"
  "return node, pogo.fd(), pogo.step, pogo.timeout, pogo.stop, links\n";

typedef struct node {
  lua_State *L;
  int fd;
  int ref_step, ref_timeout, ref_stop, ref_links;
  int more;         /* the last step said more work is ready at once */
  int64_t due;      /* monotonic ms when its next timer is due, -1: none */
  char name[256];
} node;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Call the function at registry ref with no argument; its result is left on
 * the stack. 0 on success; on error the message is printed. */
static int call_ref(node *n, int ref) {
  lua_rawgeti(n->L, LUA_REGISTRYINDEX, ref);
  if (lua_pcall(n->L, 0, 1, 0) != LUA_OK) {
    fprintf(stderr, "pogo_c_host: %s: %s\n", n->name, lua_tostring(n->L, -1));
    lua_pop(n->L, 1);
    return -1;
  }
  return 0;
}

/* After a step (or host code): when is this node's next timer due? */
static int refresh_due(node *n) {
  if (call_ref(n, n->ref_timeout) != 0) return -1;
  lua_Integer t = lua_tointeger(n->L, -1);
  lua_pop(n->L, 1);
  n->due = t < 0 ? -1 : now_ms() + t;
  return 0;
}

static int step(node *n) {
  if (call_ref(n, n->ref_step) != 0) return -1;
  n->more = lua_toboolean(n->L, -1);
  lua_pop(n->L, 1);
  return refresh_due(n);
}

static int open_node(node *n, const char *name, const char *cookie, const char *seeds, const char *hb,
                     const char *to, const char *script, int nargs, char **args) {
  n->L = luaL_newstate();
  if (!n->L) return -1;
  luaL_openlibs(n->L);
  snprintf(n->name, sizeof n->name, "%s", name);
  if (luaL_loadstring(n->L, BOOT) != LUA_OK) goto fail;
  const char *strs[] = {name, cookie, seeds, hb, to, script};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) lua_pushstring(n->L, strs[i]);
  for (int i = 0; i < nargs; i++) lua_pushstring(n->L, args[i]);
  if (lua_pcall(n->L, 6 + nargs, 6, 0) != LUA_OK) goto fail;
  n->ref_links = luaL_ref(n->L, LUA_REGISTRYINDEX);
  n->ref_stop = luaL_ref(n->L, LUA_REGISTRYINDEX);
  n->ref_timeout = luaL_ref(n->L, LUA_REGISTRYINDEX);
  n->ref_step = luaL_ref(n->L, LUA_REGISTRYINDEX);
  n->fd = (int)lua_tointeger(n->L, -1);
  snprintf(n->name, sizeof n->name, "%s", lua_tostring(n->L, -2));
  lua_pop(n->L, 2);
  printf("POGO_NODE %s\n", n->name);
  fflush(stdout);
  n->more = 1; /* host code ran: step it at once */
  return 0;
fail:
  fprintf(stderr, "pogo_c_host: node %s: %s\n", name, lua_tostring(n->L, -1));
  return -1;
}

static int usage(void) {
  fprintf(stderr, "usage: pogo_c_host [--cookie C] [--seeds host:port,...] [--name PREFIX] "
                  "[--heartbeat-ms MS] [--timeout-ms MS] [script.lua [args...]]\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *cookie = getenv("POGO_COOKIE"), *seeds = "", *prefix = "c", *hb = "", *to = "", *script = "";
  int i = 1;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
    if (i + 1 >= argc) return usage();
    if (strcmp(argv[i], "--cookie") == 0) cookie = argv[i + 1];
    else if (strcmp(argv[i], "--seeds") == 0) seeds = argv[i + 1];
    else if (strcmp(argv[i], "--name") == 0) prefix = argv[i + 1];
    else if (strcmp(argv[i], "--heartbeat-ms") == 0) hb = argv[i + 1];
    else if (strcmp(argv[i], "--timeout-ms") == 0) to = argv[i + 1];
    else return usage();
  }
  if (i < argc) script = argv[i++];
  if (!cookie) cookie = "";

  /* SIGTERM and SIGINT arrive through a descriptor in the same epoll set */
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (sfd < 0 || ep < 0) { perror("pogo_c_host"); return 1; }
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = NODES};
  epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);

  node nodes[NODES];
  memset(nodes, 0, sizeof nodes);
  int rc = 0, opened = 0;
  for (int k = 0; k < NODES; k++) {
    char name[64], seeds_k[1024];
    snprintf(name, sizeof name, "%s%d", prefix, k + 1);
    /* node 2 links to node 1: its address is node 1's name after the '@' */
    if (k > 0) snprintf(seeds_k, sizeof seeds_k, "%s,%s", strchr(nodes[0].name, '@') + 1, seeds);
    else snprintf(seeds_k, sizeof seeds_k, "%s", seeds);
    if (open_node(&nodes[k], name, cookie, seeds_k, hb, to, script, argc - i, argv + i) != 0) { rc = 1; break; }
    opened++;
    ev.events = EPOLLIN;
    ev.data.u32 = (uint32_t)k;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, nodes[k].fd, &ev) != 0) { perror("epoll_ctl"); rc = 1; break; }
  }

  int stopping = 0;
  int64_t stop_deadline = 0;
  while (rc == 0) {
    /* wait: not at all if a node has more ready work, else until the first timer */
    int64_t now = now_ms(), wait = -1;
    for (int k = 0; k < NODES; k++) {
      if (nodes[k].more) wait = 0;
      else if (nodes[k].due >= 0 && (wait < 0 || nodes[k].due - now < wait)) wait = nodes[k].due > now ? nodes[k].due - now : 0;
    }
    if (stopping && (wait < 0 || wait > 10)) wait = 10;
    struct epoll_event evs[NODES + 1];
    int n = epoll_wait(ep, evs, NODES + 1, (int)wait);
    if (n < 0 && errno != EINTR) { perror("epoll_wait"); rc = 1; break; }
    int ready[NODES] = {0};
    for (int e = 0; e < n; e++) {
      if (evs[e].data.u32 < NODES) { ready[evs[e].data.u32] = 1; continue; }
      struct signalfd_siginfo si;
      if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si && !stopping) {
        stopping = 1;
        stop_deadline = now_ms() + 16000; /* the stop's timeout (15 s by default), and a second more */
        for (int k = 0; k < NODES; k++) {
          if (call_ref(&nodes[k], nodes[k].ref_stop) == 0) lua_pop(nodes[k].L, 1);
          nodes[k].more = 1; /* host code ran */
        }
      }
    }
    now = now_ms();
    for (int k = 0; k < NODES; k++) {
      node *nd = &nodes[k];
      if ((ready[k] || nd->more || (nd->due >= 0 && now >= nd->due)) && step(nd) != 0) rc = 1;
    }
    if (stopping) {
      int left = 0;
      for (int k = 0; k < NODES; k++) {
        if (call_ref(&nodes[k], nodes[k].ref_links) != 0) continue;
        left += (int)lua_tointeger(nodes[k].L, -1);
        lua_pop(nodes[k].L, 1);
      }
      if (left == 0 || now_ms() > stop_deadline) break;
    }
  }
  for (int k = 0; k < opened; k++) {
    step(&nodes[k]); /* run the close callbacks of the handles closed last */
    lua_close(nodes[k].L);
  }
  if (opened < NODES && nodes[opened].L) lua_close(nodes[opened].L);
  close(ep);
  close(sfd);
  return rc;
}
