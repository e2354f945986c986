/*
 * addr.h: node names and network addresses, as the transport reads them
 * (pure: no I/O, no Lua).
 *
 * Contract
 * - An address is "host:port", IPv6 hosts in brackets ("[::1]:4000"); port
 *   0..65535, host 1..POGO_HOST_MAX-1 printable ASCII bytes without spaces,
 *   '@' or brackets.
 * - A node name is "name@address": POGO_NAME_MAX bytes at most, printable
 *   ASCII without spaces, the first '@' ending the name part (non-empty).
 * - Both parsers check every byte and never read past len. The handshake
 *   parser (handshake.c) uses them, so the fuzz target
 *   csrc/fuzz/fuzz_frame.c compiles this file alone: hence its own header.
 */
#ifndef POGO_ADDR_H
#define POGO_ADDR_H

#include <stddef.h>

#define POGO_NAME_MAX 255 /* node names */
#define POGO_HOST_MAX 256 /* host part of an address, with its NUL */

/* 1 if name is a valid node name "name@host:port"; then, if host is not NULL,
 * the host (without IPv6 brackets, NUL-terminated) and port are returned.
 * 0 if it is not. */
int pogo_addr_of_node(const char *name, size_t len, char host[POGO_HOST_MAX], int *port);
/* Split "host:port" (IPv6 as "[addr]:port"): 0, or -1 if malformed. */
int pogo_addr_split(const char *addr, size_t len, char host[POGO_HOST_MAX], int *port);

#endif
