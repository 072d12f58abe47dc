// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Device-mapper devices through libdevmapper (dm_task_*), as cryptsetup
 * does; never by running dmsetup.
 *
 * udev: where udev runs, device nodes come from it and we wait for it with
 * a cookie.  Without udev (DM_DISABLE_UDEV set, or no /run/udev/control,
 * e.g. the test guests) libdevmapper creates /dev/mapper/NAME itself; the
 * same cookie wait then performs the node operations.
 *
 * libdevmapper logs to stderr by default; the library must not print, so
 * its messages are captured and the last one is appended to our error.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libdevmapper.h>
#include "internal.h"
#include "lifecycle.h"

static char dm_last[512];

static void dm_logger(int level, const char *file, int line, int dm_errno,
		      const char *fmt, ...)
{
	va_list ap;

	(void)file;
	(void)line;
	(void)dm_errno;
	if (level > 3)	/* _LOG_ERR: keep errors only */
		return;
	va_start(ap, fmt);
	vsnprintf(dm_last, sizeof(dm_last), fmt, ap);
	va_end(ap);
}

static void dm_setup(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	dm_log_with_errno_init(dm_logger);
	if (getenv("DM_DISABLE_UDEV") || access("/run/udev/control", F_OK)) {
		dm_udev_set_sync_support(0);
		setenv("DM_DISABLE_UDEV", "1", 0);
	}
}

static int dm_fail(struct cowchain_error *err, const char *what, const char *name)
{
	int code = errno ? -errno : -EIO;

	if (dm_last[0])
		return cc_fail(err, code, "cannot %s device '%s': %s", what, name, dm_last);
	return cc_fail(err, code, "cannot %s device '%s'", what, name);
}

/* Run dmt with a udev cookie (node creation/removal) when with_nodes. */
static int run_task(struct dm_task *dmt, bool with_nodes)
{
	uint32_t cookie = 0;
	int ok;

	dm_last[0] = 0;
	errno = 0;
	if (with_nodes && !dm_task_set_cookie(dmt, &cookie, 0))
		return 0;
	ok = dm_task_run(dmt);
	if (with_nodes)
		dm_udev_wait(cookie);
	return ok;
}

int cowchain_dm_info(const char *name, struct cowchain_dm_info *info,
		     struct cowchain_error *err)
{
	struct dm_task *dmt;
	struct dm_info di;
	int r = 0;

	dm_setup();
	memset(info, 0, sizeof(*info));
	dmt = dm_task_create(DM_DEVICE_INFO);
	if (!dmt)
		return cc_fail(err, -ENOMEM, "cannot talk to device-mapper");
	if (!dm_task_set_name(dmt, name) || !run_task(dmt, false) || !dm_task_get_info(dmt, &di)) {
		r = dm_fail(err, "query", name);
		goto out;
	}
	info->exists = di.exists;
	info->suspended = di.suspended;
	info->live_table = di.live_table;
	info->inactive_table = di.inactive_table;
	info->read_only = di.read_only;
	info->open_count = di.open_count;
	info->major = di.major;
	info->minor = (unsigned)di.minor;
out:
	dm_task_destroy(dmt);
	return r;
}

int cowchain_dm_table(const char *name, char **type, u64 *len, char **params,
		      struct cowchain_error *err)
{
	struct dm_task *dmt;
	uint64_t start, length;
	char *ttype = NULL, *tparams = NULL;
	void *next;
	int r = 0;

	dm_setup();
	dmt = dm_task_create(DM_DEVICE_TABLE);
	if (!dmt)
		return cc_fail(err, -ENOMEM, "cannot talk to device-mapper");
	if (!dm_task_set_name(dmt, name) || !run_task(dmt, false)) {
		r = dm_fail(err, "read the table of", name);
		goto out;
	}
	next = dm_get_next_target(dmt, NULL, &start, &length, &ttype, &tparams);
	if (!ttype) {
		r = cc_fail(err, -ENXIO, "device '%s' has no active table", name);
		goto out;
	}
	if (next || start) {
		r = cc_fail(err, -EINVAL, "device '%s' has more than one target", name);
		goto out;
	}
	*type = strdup(ttype);
	*params = strdup(tparams ? tparams : "");
	*len = length;
	if (!*type || !*params) {
		free(*type);
		free(*params);
		r = cc_fail(err, -ENOMEM, "out of memory");
	}
out:
	dm_task_destroy(dmt);
	return r;
}

static int load(int task, const char *what, const char *name, u64 sectors,
		const char *params, bool ro, struct cowchain_error *err)
{
	struct dm_task *dmt;
	int r = 0;

	dm_setup();
	dmt = dm_task_create(task);
	if (!dmt)
		return cc_fail(err, -ENOMEM, "cannot talk to device-mapper");
	if (!dm_task_set_name(dmt, name) ||
	    !dm_task_add_target(dmt, 0, sectors, "cowchain", params) ||
	    (ro && !dm_task_set_ro(dmt)) ||
	    !run_task(dmt, task == DM_DEVICE_CREATE))
		r = dm_fail(err, what, name);
	dm_task_destroy(dmt);
	if (!r && task == DM_DEVICE_CREATE)
		dm_task_update_nodes();
	return r;
}

int cowchain_dm_create(const char *name, u64 sectors, const char *params, bool ro,
		       struct cowchain_error *err)
{
	return load(DM_DEVICE_CREATE, "create", name, sectors, params, ro, err);
}

int cowchain_dm_reload(const char *name, u64 sectors, const char *params, bool ro,
		       struct cowchain_error *err)
{
	return load(DM_DEVICE_RELOAD, "load a new table into", name, sectors, params, ro, err);
}

static int simple(int task, const char *what, const char *name, bool nodes,
		  struct cowchain_error *err)
{
	struct dm_task *dmt;
	int r = 0;

	dm_setup();
	dmt = dm_task_create(task);
	if (!dmt)
		return cc_fail(err, -ENOMEM, "cannot talk to device-mapper");
	if (task == DM_DEVICE_REMOVE)
		dm_task_retry_remove(dmt);
	if (!dm_task_set_name(dmt, name) || !run_task(dmt, nodes))
		r = dm_fail(err, what, name);
	dm_task_destroy(dmt);
	if (!r && nodes)
		dm_task_update_nodes();
	return r;
}

int cowchain_dm_clear(const char *name, struct cowchain_error *err)
{
	return simple(DM_DEVICE_CLEAR, "clear the inactive table of", name, false, err);
}

int cowchain_dm_suspend(const char *name, struct cowchain_error *err)
{
	return simple(DM_DEVICE_SUSPEND, "suspend", name, false, err);
}

int cowchain_dm_resume(const char *name, struct cowchain_error *err)
{
	return simple(DM_DEVICE_RESUME, "resume", name, true, err);
}

int cowchain_dm_remove(const char *name, struct cowchain_error *err)
{
	return simple(DM_DEVICE_REMOVE, "remove", name, true, err);
}

int cowchain_dm_name_of(unsigned major, unsigned minor, char *name, size_t len)
{
	char p[128];
	FILE *f;

	snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/dm/name", major, minor);
	f = fopen(p, "re");
	if (!f)
		return -ENOENT;
	if (!fgets(name, (int)len, f)) {
		fclose(f);
		return -ENOENT;
	}
	fclose(f);
	name[strcspn(name, "\n")] = 0;
	return 0;
}
