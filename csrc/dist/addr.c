/*
 * addr.c: node names and addresses (contract in addr.h).
 */
#include <string.h>

#include "dist/addr.h"

int pogo_addr_split(const char *addr, size_t len, char host[POGO_HOST_MAX], int *port) {
  size_t colon = len;
  for (size_t i = len; i-- > 0;)
    if (addr[i] == ':') { colon = i; break; }
  if (colon == len || colon == 0 || len - colon - 1 == 0 || len - colon - 1 > 5) return -1;
  int pt = 0;
  for (size_t i = colon + 1; i < len; i++) {
    if (addr[i] < '0' || addr[i] > '9') return -1;
    pt = pt * 10 + (addr[i] - '0');
  }
  if (pt > 65535) return -1;
  const char *h = addr;
  size_t hl = colon;
  if (h[0] == '[') {
    if (hl < 3 || h[hl - 1] != ']') return -1;
    h++;
    hl -= 2;
  }
  if (hl == 0 || hl >= POGO_HOST_MAX) return -1;
  for (size_t i = 0; i < hl; i++)
    if (h[i] <= 0x20 || h[i] >= 0x7f || h[i] == '@' || h[i] == '[' || h[i] == ']') return -1;
  if (host) {
    memcpy(host, h, hl);
    host[hl] = '\0';
  }
  if (port) *port = pt;
  return 0;
}

int pogo_addr_of_node(const char *name, size_t len, char host[POGO_HOST_MAX], int *port) {
  if (len < 5 || len > POGO_NAME_MAX) return 0;
  size_t at = len;
  for (size_t i = 0; i < len; i++) {
    if (name[i] <= 0x20 || name[i] >= 0x7f) return 0;
    if (name[i] == '@' && at == len) at = i;
  }
  if (at == 0 || at == len) return 0;
  return pogo_addr_split(name + at + 1, len - at - 1, host, port) == 0;
}
