/*
 * be.h: big-endian (network order) integers in byte buffers, the one set of
 * helpers the codec (msgpack's fixed-width fields), ident.c (pids and refs on
 * the wire) and the transport (frame lengths, wire and handshake fields) use.
 *
 * Contract
 * - pogo_be_putN(p, v) writes v to p[0..N/8) most significant byte first;
 *   pogo_be_getN(p) reads it back. The caller checks that the bytes exist.
 * - Header-only and pure (no Lua, no libuv), so fuzz targets can use it alone.
 */
#ifndef POGO_BE_H
#define POGO_BE_H

#include <stdint.h>

static inline void pogo_be_put16(unsigned char *p, uint16_t v) {
  p[0] = (unsigned char)(v >> 8);
  p[1] = (unsigned char)v;
}
static inline void pogo_be_put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}
static inline void pogo_be_put64(unsigned char *p, uint64_t v) {
  pogo_be_put32(p, (uint32_t)(v >> 32));
  pogo_be_put32(p + 4, (uint32_t)v);
}
static inline uint16_t pogo_be_get16(const unsigned char *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t pogo_be_get32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t pogo_be_get64(const unsigned char *p) {
  return ((uint64_t)pogo_be_get32(p) << 32) | pogo_be_get32(p + 4);
}

#endif
