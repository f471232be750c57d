// SPDX-License-Identifier: GPL-2.0
/*
 * lv_leak_kmod: a guest kernel module with known kernel leaks and known non-leaks, for
 * LeakVisor's kernel leak detection (expected results: KMOD-LEAKS.md beside this file).
 *
 * Loading it creates /proc/lv_kmod and the cache lv_kmod_cache; nothing is allocated yet.
 * Writes to /proc/lv_kmod:
 *   "leak"     one run of the scenario (lv_kmod_run): every leak and non-leak below, once.
 *              A guest may write it several times; each run leaks the same set again.
 *   "block"    the writing task sleeps in lv_kmod_block() until an "unblock" write
 *              (a task with a known module frame on its kernel stack).
 *   "unblock"  wakes every task blocked by "block".
 * Reading /proc/lv_kmod lists the objects of the last run: kind, address (complemented in the
 * module, so the list itself references nothing), requested size.
 *
 * Allocating lines carry a comment LV-KALLOC <tag> on the same line (tests look the line up by
 * tag); the blocking line carries LV-MARK block-wait.
 */
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/list.h>
#include <linux/workqueue.h>
#include <linux/wait.h>
#include <linux/uaccess.h>
#include <linux/seq_file.h>
#include <linux/mutex.h>
#include <linux/string.h>

#define LV_KMALLOC_SIZE   1200 /* leak, kmalloc-2k */
#define LV_KZALLOC_SIZE   712  /* leak, kmalloc-1k */
#define LV_CACHE_SIZE     344  /* leak, lv_kmod_cache */
#define LV_VMALLOC_SIZE   20000 /* leak, vmalloc: 5 pages */
#define LV_CHAIN_LENGTH   4    /* leak: 1 direct + 3 indirect, kmalloc-96 */
#define LV_KEPT_SIZE      456  /* non-leak: held by the module global lv_kept */
#define LV_FREED_SIZE     584  /* non-leak: freed at once */
#define LV_DEFERRED_SIZE  776  /* non-leak: freed by a delayed work 1.5 s later */
#define LV_DEFERRED_DELAY_MS 1500

/* A chain node: 88 bytes, linked through `next` to the following node. */
struct lv_node {
	struct lv_node *next;
	char payload[80];
};

/* 200 bytes, kept only on lv_listed: the list head points at `link`, 120 bytes inside. */
struct lv_listed {
	char before[120];
	struct list_head link;
	char after[64];
};

/* Freed by its own work item: referenced only through the timer of `work` until then. */
struct lv_deferred {
	struct delayed_work work;
	char payload[LV_DEFERRED_SIZE - sizeof(struct delayed_work)];
};

enum lv_kind { LV_KMALLOC, LV_KZALLOC, LV_CACHE, LV_VMALLOC, LV_CHAIN_HEAD, LV_CHAIN_NODE,
	       LV_KEPT, LV_FREED, LV_LISTED, LV_DEFERRED, LV_KINDS };
static const char *const lv_kind_names[LV_KINDS] = {
	"kmalloc", "kzalloc", "cache", "vmalloc", "chain-head", "chain-node",
	"kept", "freed", "listed", "deferred",
};

static struct kmem_cache *lv_cache;
static void *lv_kept;               /* non-leak: the kept object of the last run */
static LIST_HEAD(lv_listed_head);   /* non-leak: interior pointers into lv_listed objects */
static DEFINE_MUTEX(lv_lock);
static bool lv_leaked;              /* a run happened: lv_kmod_cache holds leaked objects */

/* The last run's objects, complemented (~address) so this table is no reference. */
#define LV_RECORDS 16
static struct { enum lv_kind kind; unsigned long inverted; size_t size; } lv_records[LV_RECORDS];
static int lv_record_count;

static DECLARE_WAIT_QUEUE_HEAD(lv_block_wait);
static unsigned long lv_unblock_generation;

static void lv_note(enum lv_kind kind, const void *p, size_t size)
{
	if (lv_record_count < LV_RECORDS) {
		lv_records[lv_record_count].kind = kind;
		lv_records[lv_record_count].inverted = ~(unsigned long)p;
		lv_records[lv_record_count].size = size;
		lv_record_count++;
	}
}

/* Each allocation sits in its own noinline function; the object is filled after the call, so
 * the allocator's return address lies in that function, on the tagged line. */
static noinline void lv_leak_kmalloc(void)
{
	char *p = kmalloc(LV_KMALLOC_SIZE, GFP_KERNEL); /* LV-KALLOC kmalloc */

	if (p) {
		memset(p, 'k', LV_KMALLOC_SIZE);
		lv_note(LV_KMALLOC, p, LV_KMALLOC_SIZE);
	}
}

static noinline void lv_leak_kzalloc(void)
{
	char *p = kzalloc(LV_KZALLOC_SIZE, GFP_KERNEL); /* LV-KALLOC kzalloc */

	if (p) {
		p[0] = 'z';
		lv_note(LV_KZALLOC, p, LV_KZALLOC_SIZE);
	}
}

static noinline void lv_leak_cache(void)
{
	char *p = kmem_cache_alloc(lv_cache, GFP_KERNEL); /* LV-KALLOC cache */

	if (p) {
		p[0] = 'C';
		lv_note(LV_CACHE, p, LV_CACHE_SIZE);
	}
}

static noinline void lv_leak_vmalloc(void)
{
	char *p = vmalloc(LV_VMALLOC_SIZE); /* LV-KALLOC vmalloc */

	if (p) {
		memset(p, 'v', LV_VMALLOC_SIZE);
		lv_note(LV_VMALLOC, p, LV_VMALLOC_SIZE);
	}
}

/* A chain of LV_CHAIN_LENGTH nodes, all from one line; the head is dropped. */
static noinline void lv_leak_chain(void)
{
	struct lv_node *head = NULL;
	int i;

	for (i = 0; i < LV_CHAIN_LENGTH; i++) {
		struct lv_node *node = kmalloc(sizeof(*node), GFP_KERNEL); /* LV-KALLOC chain */

		if (!node)
			break;
		memset(node->payload, 'n', sizeof(node->payload));
		node->next = head;
		head = node;
	}
	/* Recorded head first, then the nodes it reaches. */
	for (i = 0; head; head = head->next, i++)
		lv_note(i == 0 ? LV_CHAIN_HEAD : LV_CHAIN_NODE, head, sizeof(*head));
}

static noinline void lv_keep(void)
{
	void *old = lv_kept;
	char *p = kmalloc(LV_KEPT_SIZE, GFP_KERNEL); /* LV-KALLOC kept */

	if (p) {
		memset(p, 'K', LV_KEPT_SIZE);
		lv_note(LV_KEPT, p, LV_KEPT_SIZE);
	}
	lv_kept = p;
	kfree(old);
}

static noinline void lv_free_at_once(void)
{
	char *p = kmalloc(LV_FREED_SIZE, GFP_KERNEL); /* LV-KALLOC freed */

	if (p) {
		memset(p, 'F', LV_FREED_SIZE);
		lv_note(LV_FREED, p, LV_FREED_SIZE);
	}
	kfree(p);
}

static noinline void lv_keep_listed(void)
{
	struct lv_listed *o = kmalloc(sizeof(*o), GFP_KERNEL); /* LV-KALLOC listed */

	if (!o)
		return;
	memset(o->before, 'L', sizeof(o->before));
	memset(o->after, 'L', sizeof(o->after));
	list_add_tail(&o->link, &lv_listed_head);
	lv_note(LV_LISTED, o, sizeof(*o));
}

static void lv_deferred_free(struct work_struct *work)
{
	kfree(container_of(to_delayed_work(work), struct lv_deferred, work));
}

static noinline void lv_free_later(void)
{
	struct lv_deferred *d = kmalloc(sizeof(*d), GFP_KERNEL); /* LV-KALLOC deferred */

	if (!d)
		return;
	memset(d->payload, 'D', sizeof(d->payload));
	INIT_DELAYED_WORK(&d->work, lv_deferred_free);
	lv_note(LV_DEFERRED, d, sizeof(*d));
	schedule_delayed_work(&d->work, msecs_to_jiffies(LV_DEFERRED_DELAY_MS));
}

static noinline void lv_kmod_run(void)
{
	mutex_lock(&lv_lock);
	lv_record_count = 0;
	lv_leak_kmalloc();
	lv_leak_kzalloc();
	lv_leak_cache();
	lv_leak_vmalloc();
	lv_leak_chain();
	lv_keep();
	lv_free_at_once();
	lv_keep_listed();
	lv_free_later();
	lv_leaked = true;
	mutex_unlock(&lv_lock);
}

/* Sleeps until the next "unblock" write: the caller's kernel stack holds this frame. */
static noinline int lv_kmod_block(void)
{
	unsigned long generation = READ_ONCE(lv_unblock_generation);
	int ret;

	ret = wait_event_interruptible(lv_block_wait, READ_ONCE(lv_unblock_generation) != generation); /* LV-MARK block-wait */
	return ret;
}

static ssize_t lv_kmod_write(struct file *file, const char __user *buffer, size_t count, loff_t *pos)
{
	char command[16] = {};
	size_t length = min(count, sizeof(command) - 1);
	int ret;

	if (copy_from_user(command, buffer, length))
		return -EFAULT;
	strim(command);
	if (!strcmp(command, "leak")) {
		lv_kmod_run();
	} else if (!strcmp(command, "block")) {
		ret = lv_kmod_block();
		if (ret)
			return ret;
	} else if (!strcmp(command, "unblock")) {
		WRITE_ONCE(lv_unblock_generation, lv_unblock_generation + 1);
		wake_up_all(&lv_block_wait);
	} else {
		return -EINVAL;
	}
	return count;
}

static int lv_kmod_show(struct seq_file *m, void *v)
{
	int i;

	mutex_lock(&lv_lock);
	for (i = 0; i < lv_record_count; i++)
		seq_printf(m, "%s 0x%lx %zu\n", lv_kind_names[lv_records[i].kind],
			   ~lv_records[i].inverted, lv_records[i].size);
	mutex_unlock(&lv_lock);
	return 0;
}

static int lv_kmod_open(struct inode *inode, struct file *file)
{
	return single_open(file, lv_kmod_show, NULL);
}

static const struct proc_ops lv_kmod_ops = {
	.proc_open = lv_kmod_open,
	.proc_read = seq_read,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
	.proc_write = lv_kmod_write,
};

/* A constructor keeps SLUB from merging lv_kmod_cache into another cache of the same size
 * (its objects then keep their own cache name). */
static void lv_cache_ctor(void *object)
{
	memset(object, 'c', LV_CACHE_SIZE);
}

static int __init lv_kmod_init(void)
{
	BUILD_BUG_ON(sizeof(struct lv_node) != 88);
	BUILD_BUG_ON(sizeof(struct lv_listed) != 200);
	BUILD_BUG_ON(sizeof(struct lv_deferred) != LV_DEFERRED_SIZE);
	lv_cache = kmem_cache_create("lv_kmod_cache", LV_CACHE_SIZE, 0, 0, lv_cache_ctor);
	if (!lv_cache)
		return -ENOMEM;
	if (!proc_create("lv_kmod", 0600, NULL, &lv_kmod_ops)) {
		kmem_cache_destroy(lv_cache);
		return -ENOMEM;
	}
	return 0;
}

static void __exit lv_kmod_exit(void)
{
	struct lv_listed *o, *next;

	remove_proc_entry("lv_kmod", NULL);
	WRITE_ONCE(lv_unblock_generation, lv_unblock_generation + 1);
	wake_up_all(&lv_block_wait);
	flush_scheduled_work();
	kfree(lv_kept);
	list_for_each_entry_safe(o, next, &lv_listed_head, link) {
		list_del(&o->link);
		kfree(o);
	}
	/* Leaked objects remain in the cache after a run; destroying it would complain. */
	if (!lv_leaked)
		kmem_cache_destroy(lv_cache);
}

module_init(lv_kmod_init);
module_exit(lv_kmod_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("LeakVisor test module: known kernel leaks and non-leaks");
