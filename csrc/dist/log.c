/*
 * log.c: the transport's log lines (connections made, lost and refused).
 *
 * Contract
 * - One line per event on stderr, "pogo[<node name>]: <message>", unless the
 *   node was started with log = false. Never raises, never allocates.
 */
#include <stdarg.h>
#include <stdio.h>

#include "dist/dist.h"

void pogo_log_line(pogo_dist *d, const char *fmt, ...) {
  if (!d->log) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "pogo[%s]: %s\n", d->name ? d->name : "?", buf);
  fflush(stderr);
}
