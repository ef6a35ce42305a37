/* Userspace shim: a circular doubly linked list with the kernel's API. */
#ifndef SHIM_LINUX_LIST_H
#define SHIM_LINUX_LIST_H
#include <linux/types.h>
struct list_head { struct list_head *next, *prev; };
#define LIST_HEAD_INIT(n) { &(n), &(n) }
#define LIST_HEAD(n) struct list_head n = LIST_HEAD_INIT(n)
static inline void INIT_LIST_HEAD(struct list_head *l) { l->next = l; l->prev = l; }
static inline void __list_link(struct list_head *n, struct list_head *prev, struct list_head *next)
{ next->prev = n; n->next = next; n->prev = prev; prev->next = n; }
static inline void list_add(struct list_head *n, struct list_head *h) { __list_link(n, h, h->next); }
static inline void list_add_tail(struct list_head *n, struct list_head *h) { __list_link(n, h->prev, h); }
static inline void __list_unlink(struct list_head *e) { e->next->prev = e->prev; e->prev->next = e->next; }
static inline void list_del(struct list_head *e) { __list_unlink(e); e->next = (void *)0x100; e->prev = (void *)0x122; }
static inline void list_del_init(struct list_head *e) { __list_unlink(e); INIT_LIST_HEAD(e); }
static inline int list_empty(const struct list_head *h) { return h->next == h; }
static inline void list_move(struct list_head *e, struct list_head *h) { __list_unlink(e); list_add(e, h); }
static inline void list_move_tail(struct list_head *e, struct list_head *h) { __list_unlink(e); list_add_tail(e, h); }
static inline void list_splice_init(struct list_head *l, struct list_head *h)
{
	if (list_empty(l)) return;
	struct list_head *first = l->next, *last = l->prev, *at = h->next;
	first->prev = h; h->next = first; last->next = at; at->prev = last;
	INIT_LIST_HEAD(l);
}
#define list_entry(p, t, m) container_of(p, t, m)
#define list_first_entry(h, t, m) list_entry((h)->next, t, m)
#define list_first_entry_or_null(h, t, m) (list_empty(h) ? NULL : list_first_entry(h, t, m))
#define list_next_entry(p, m) list_entry((p)->m.next, __typeof__(*(p)), m)
#define list_for_each_entry(p, h, m) \
	for (p = list_first_entry(h, __typeof__(*p), m); &p->m != (h); p = list_next_entry(p, m))
#define list_for_each_entry_safe(p, n, h, m) \
	for (p = list_first_entry(h, __typeof__(*p), m), n = list_next_entry(p, m); \
	     &p->m != (h); p = n, n = list_next_entry(n, m))
#endif
