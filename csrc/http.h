/*
 * http.h: a small HTTP/1.1 server on the node's loop (csrc/http.c), which
 * hands each request to a process and writes what that process answers.
 *
 * Contract
 * - pogo_http_register(L): adds http_listen() to the table at -2 (the node
 *   userdata is at -1, as for pogo_node_register). See http.c for the Lua
 *   functions; lua/pogo/http.lua is their one user.
 */
#ifndef POGO_HTTP_H
#define POGO_HTTP_H

#include <lua.h>

void pogo_http_register(lua_State *L);

#endif
