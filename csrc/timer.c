/*
 * timer.c: process timers (sleep, receive timeouts) in one binary min-heap
 * driven by a single uv_timer.
 *
 * Contract
 * - A process has at most one timer; arming replaces it, cancelling removes it
 *   in O(log n) (processes know their heap position), so abandoned timeouts
 *   never pile up.
 * - When a deadline passes the process gets PF_TIMER_FIRED and, if it is
 *   blocked, becomes ready; the external (main chunk) process only gets the flag.
 */
#include <stdlib.h>

#include "runtime.h"

static void heap_set(pogo_node *N, uint32_t i, pogo_proc *p) {
  N->heap[i] = p;
  p->heap_pos = (int32_t)i;
}

static void sift_up(pogo_node *N, uint32_t i) {
  pogo_proc *p = N->heap[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (N->heap[parent]->deadline <= p->deadline) break;
    heap_set(N, i, N->heap[parent]);
    i = parent;
  }
  heap_set(N, i, p);
}

static void sift_down(pogo_node *N, uint32_t i) {
  pogo_proc *p = N->heap[i];
  for (;;) {
    uint32_t l = 2 * i + 1, r = l + 1, m = i;
    uint64_t md = p->deadline;
    if (l < N->heap_len && N->heap[l]->deadline < md) { m = l; md = N->heap[l]->deadline; }
    if (r < N->heap_len && N->heap[r]->deadline < md) m = r;
    if (m == i) break;
    heap_set(N, i, N->heap[m]);
    i = m;
  }
  heap_set(N, i, p);
}

static void rearm(pogo_node *N) {
  if (!N->uvh) return;
  if (N->heap_len == 0) {
    if (N->timer_due) uv_timer_stop(&N->uvh->timer);
    N->timer_due = 0;
    return;
  }
  uint64_t due = N->heap[0]->deadline;
  if (N->timer_due == due) return;
  uint64_t now = uv_now(N->loop);
  uv_timer_start(&N->uvh->timer, pogo_timer_cb, due > now ? due - now : 0, 0);
  N->timer_due = due;
}

void pogo_timer_arm(pogo_node *N, pogo_proc *p, uint64_t deadline) {
  if (p->heap_pos >= 0) {
    uint64_t old = p->deadline;
    p->deadline = deadline;
    if (deadline < old) sift_up(N, (uint32_t)p->heap_pos);
    else sift_down(N, (uint32_t)p->heap_pos);
  } else {
    if (N->heap_len == N->heap_cap) {
      uint32_t ncap = N->heap_cap ? N->heap_cap * 2 : 64;
      pogo_proc **nh = realloc(N->heap, ncap * sizeof *nh);
      if (!nh) return; /* out of memory: no timeout */
      N->heap = nh;
      N->heap_cap = ncap;
    }
    p->deadline = deadline;
    heap_set(N, N->heap_len++, p);
    sift_up(N, N->heap_len - 1);
  }
  if (N->heap[0] == p) rearm(N);
}

void pogo_timer_cancel(pogo_node *N, pogo_proc *p) {
  if (p->heap_pos < 0) return;
  uint32_t i = (uint32_t)p->heap_pos;
  p->heap_pos = -1;
  N->heap_len--;
  if (i != N->heap_len) {
    pogo_proc *moved = N->heap[N->heap_len];
    heap_set(N, i, moved);
    sift_up(N, i);
    sift_down(N, (uint32_t)moved->heap_pos);
  }
  /* The uv timer is left as it is: firing early just re-arms it. */
  if (N->heap_len == 0) rearm(N);
}

void pogo_timer_cb(uv_timer_t *t) {
  pogo_node *N = t->data;
  if (!N || N->closed) return;
  N->timer_due = 0;
  uint64_t now = uv_now(N->loop);
  while (N->heap_len && N->heap[0]->deadline <= now) {
    pogo_proc *p = N->heap[0];
    pogo_timer_cancel(N, p);
    p->flags |= PF_TIMER_FIRED;
    if (p->flags & PF_EXTERNAL) N->ext_woken = 1;
    else if (p->state == PS_WAITING || p->state == PS_SLEEPING) pogo_sched_enqueue(N, p);
  }
  rearm(N);
}
